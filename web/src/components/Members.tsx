import { useEffect, useState } from 'preact/hooks';
import { allows, api, Member, Project } from '../api';
import { useMe } from '../me';
import { href, navigate } from '../router';
import { Card, ErrorBox, RoleBadge, Spinner } from './ui';

type MemberRole = Member['role'];
const ROLES: [MemberRole, string][] = [
  ['viewer', 'Viewer: reads everything'],
  ['editor', 'Editor: also runs, cancels and retries tasks'],
];

// Who a project is shared with. Everyone who sees the project sees the list;
// its owner (and administrators) add, change and remove members; a member may
// leave. The server refuses whatever this page would wrongly offer.
export function Members({ project }: { project: Project }) {
  const me = useMe();
  const [list, setList] = useState<Member[] | null>(null);
  const [err, setErr] = useState<unknown>(null);
  const manage = allows(project, 'owner');
  const load = () => {
    setErr(null);
    api.members(project.id).then((m) => setList(m.sort((a, b) => (a.email ?? a.user_id).localeCompare(b.email ?? b.user_id))), setErr);
  };
  useEffect(load, [project.id]);

  const upsert = (m: Member) => setList((cur) => [...(cur ?? []).filter((x) => x.user_id !== m.user_id), m].sort((a, b) => (a.email ?? a.user_id).localeCompare(b.email ?? b.user_id)));
  const change = async (m: Member, role: MemberRole) => {
    setErr(null);
    try {
      upsert(await api.setMemberRole(project.id, m.user_id, role));
    } catch (e) {
      setErr(e);
      load();
    }
  };
  const remove = async (m: Member) => {
    const self = m.user_id === me?.id;
    const who = m.email || m.name || m.user_id;
    if (!confirm(self ? `Leave “${project.name}”? You will no longer see it.` : `Remove ${who} from “${project.name}”?`)) return;
    setErr(null);
    try {
      await api.removeMember(project.id, m.user_id);
      if (self && !manage) {
        navigate(href('projects'));
        return;
      }
      setList((cur) => (cur ?? []).filter((x) => x.user_id !== m.user_id));
    } catch (e) {
      setErr(e);
    }
  };

  return (
    <Card title="Members" testid="members">
      <ErrorBox error={err} />
      {!list && !err ? <Spinner label="Loading members…" /> : null}
      <ul class="member-list" data-testid="member-list">
        <li class="member-row" data-testid="member-owner">
          <span class="member-who">{project.owner_id && project.owner_id === me?.id ? 'You' : 'The project’s owner'}</span>
          <RoleBadge role="owner" />
        </li>
        {(list ?? []).map((m) => (
          <li key={m.user_id} class="member-row" data-testid="member-row" data-email={m.email ?? ''} data-role={m.role}>
            <span class="member-who">
              {m.name ? <strong>{m.name}</strong> : null} <span class={m.name ? 'muted' : ''}>{m.email || m.user_id}</span>
              {m.user_id === me?.id ? <span class="muted"> (you)</span> : null}
            </span>
            {manage ? (
              <select aria-label={`Role of ${m.email || m.user_id}`} value={m.role} onChange={(e) => change(m, (e.target as HTMLSelectElement).value as MemberRole)} data-testid="member-role">
                {ROLES.map(([r]) => (
                  <option key={r} value={r}>
                    {r}
                  </option>
                ))}
              </select>
            ) : (
              <RoleBadge role={m.role} />
            )}
            {manage || m.user_id === me?.id ? (
              <button type="button" class="btn btn-ghost btn-small" onClick={() => remove(m)} data-testid="remove-member" aria-label={manage ? `Remove ${m.email || m.user_id}` : 'Leave the project'}>
                {m.user_id === me?.id && !manage ? 'Leave' : 'Remove'}
              </button>
            ) : null}
          </li>
        ))}
      </ul>
      {list && list.length === 0 ? <p class="muted small" data-testid="members-empty">Not shared with anyone.</p> : null}
      {manage ? <AddMember projectId={project.id} onAdded={upsert} /> : null}
    </Card>
  );
}

function AddMember({ projectId, onAdded }: { projectId: string; onAdded: (m: Member) => void }) {
  const [email, setEmail] = useState('');
  const [role, setRole] = useState<MemberRole>('viewer');
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState<unknown>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    if (!email.trim() || busy) return;
    setBusy(true);
    setErr(null);
    try {
      onAdded(await api.setMember(projectId, email.trim(), role));
      setEmail('');
    } catch (x) {
      setErr(x);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="form add-member" onSubmit={submit} data-testid="add-member">
      <div class="form-row">
        <label class="field grow">
          <span class="sr-only">E-mail address</span>
          <input type="email" required maxLength={254} value={email} onInput={(e) => setEmail((e.target as HTMLInputElement).value)} placeholder="colleague@example.com" autoComplete="off" data-testid="member-email" />
        </label>
        <label class="field">
          <span class="sr-only">Role</span>
          <select value={role} onChange={(e) => setRole((e.target as HTMLSelectElement).value as MemberRole)} data-testid="member-new-role">
            {ROLES.map(([r, label]) => (
              <option key={r} value={r}>
                {label}
              </option>
            ))}
          </select>
        </label>
        <button class="btn" type="submit" disabled={busy || !email.trim()} data-testid="add-member-submit">
          {busy ? 'Adding…' : 'Share'}
        </button>
      </div>
      <ErrorBox error={err} />
    </form>
  );
}
