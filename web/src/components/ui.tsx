import { ComponentChildren } from 'preact';
import { ApiError } from '../api';

/** The colour class of an agent: its slot in the task's graph (graph.ts colours), System's grey otherwise. */
export function agentClass(name: string | undefined, colours: Map<string, number>): string {
  const c = name ? colours.get(name) : undefined;
  return c ? `agent-c${c}` : 'agent-system';
}

export function StatusBadge({ status, testid }: { status: string; testid?: string }) {
  return (
    <span class={`badge status-${status}`} data-testid={testid} data-status={status}>
      <span class="dot" aria-hidden="true" />
      {status}
    </span>
  );
}

export function Spinner({ label = 'Loading…' }: { label?: string }) {
  return (
    <div class="loading" role="status" aria-live="polite">
      <span class="spinner" aria-hidden="true" />
      <span>{label}</span>
    </div>
  );
}

export function ErrorBox({ error, onRetry }: { error: unknown; onRetry?: () => void }) {
  if (!error) return null;
  const e = error instanceof ApiError ? error : null;
  const title = e ? (e.status ? `${e.title}` : e.title) : 'Something went wrong';
  const detail = e ? e.detail : error instanceof Error ? error.message : String(error);
  return (
    <div class="alert alert-error" role="alert" data-testid="error">
      <div>
        <strong>{title}</strong>
        {e && e.status ? <span class="muted"> ({e.status})</span> : null}
        {detail ? <p>{detail}</p> : null}
        {e?.errors?.length ? (
          <ul>
            {e.errors.map((x, i) => (
              <li key={i}>
                {x.location ? <code>{x.location}</code> : null} {x.message}
              </li>
            ))}
          </ul>
        ) : null}
      </div>
      {onRetry ? (
        <button class="btn btn-small" onClick={onRetry}>
          Try again
        </button>
      ) : null}
    </div>
  );
}

export function Empty({ title, children, testid }: { title: string; children?: ComponentChildren; testid?: string }) {
  return (
    <div class="empty" data-testid={testid}>
      <div class="empty-title">{title}</div>
      {children ? <div class="empty-body">{children}</div> : null}
    </div>
  );
}

export function Card({ title, actions, children, class: cls, testid }: { title?: ComponentChildren; actions?: ComponentChildren; children: ComponentChildren; class?: string; testid?: string }) {
  return (
    <section class={`card ${cls ?? ''}`} data-testid={testid}>
      {title || actions ? (
        <header class="card-head">
          {title ? <h2>{title}</h2> : <span />}
          {actions ? <div class="card-actions">{actions}</div> : null}
        </header>
      ) : null}
      {children}
    </section>
  );
}

export function CopyButton({ text, label = 'Copy' }: { text: string; label?: string }) {
  return (
    <button
      type="button"
      class="btn btn-ghost btn-small"
      aria-label={`${label} to clipboard`}
      onClick={(e) => {
        const b = e.currentTarget as HTMLButtonElement;
        navigator.clipboard?.writeText(text).then(
          () => {
            b.textContent = 'Copied';
            setTimeout(() => (b.textContent = label), 1200);
          },
          () => {},
        );
      }}
    >
      {label}
    </button>
  );
}

/**
 * The error of a page that shows one resource. A 404 says "not found" and
 * nothing else: another tenant's resource answers 404 too, and the page must
 * not tell the two apart or echo what the server said.
 */
export function PageError({ error, what, onRetry }: { error: unknown; what: string; onRetry?: () => void }) {
  if (error instanceof ApiError && error.status === 404) {
    return (
      <div class="page" data-testid="not-found">
        <Empty title={`${what[0].toUpperCase()}${what.slice(1)} not found`}>
          <p>It does not exist, or it is not shared with you.</p>
          <a href="#/projects">Go to projects</a>
        </Empty>
      </div>
    );
  }
  return (
    <div class="page">
      <ErrorBox error={error} onRetry={onRetry} />
    </div>
  );
}

export function RoleBadge({ role, testid }: { role: string; testid?: string }) {
  return (
    <span class={`badge role-${role}`} data-testid={testid} data-role={role}>
      {role}
    </span>
  );
}
