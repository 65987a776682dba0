import { useEffect, useRef, useState } from 'preact/hooks';
import { isTokenHolder, User } from '../api';
import { href } from '../router';
import { RoleBadge } from './ui';

// The header's user menu: who is signed in, their role, their keys and
// sessions, the audit log for administrators, and signing out.
export function UserMenu({ user, onSignOut }: { user: User; onSignOut: () => void }) {
  const [open, setOpen] = useState(false);
  const root = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!open) return;
    const away = (e: Event) => {
      if (!root.current?.contains(e.target as Node)) setOpen(false);
    };
    const key = (e: KeyboardEvent) => {
      if (e.key === 'Escape') setOpen(false);
    };
    const nav = () => setOpen(false);
    document.addEventListener('pointerdown', away);
    document.addEventListener('keydown', key);
    window.addEventListener('hashchange', nav);
    return () => {
      document.removeEventListener('pointerdown', away);
      document.removeEventListener('keydown', key);
      window.removeEventListener('hashchange', nav);
    };
  }, [open]);
  const token = isTokenHolder(user);
  const label = token ? 'Server token' : user.name || user.email;
  return (
    <div class="usermenu" ref={root}>
      <button type="button" class="usermenu-button" aria-haspopup="menu" aria-expanded={open} onClick={() => setOpen(!open)} data-testid="user-menu">
        <span class="avatar" aria-hidden="true">
          {(label || '?').slice(0, 1).toUpperCase()}
        </span>
        <span class="usermenu-name" data-testid="user-menu-name">
          {label}
        </span>
      </button>
      {open ? (
        <div class="usermenu-pop" role="menu" data-testid="user-menu-pop">
          <div class="usermenu-who">
            <strong>{token ? 'Server token holder' : user.name || user.email}</strong>
            {!token && user.name ? <span class="muted small" data-testid="user-menu-email">{user.email}</span> : null}
            <span>
              <RoleBadge role={user.role} testid="user-role" />
            </span>
          </div>
          {token ? (
            <p class="muted small usermenu-note">Signed in with the server token: the installation's administrator, without an account of its own (no API keys or sessions).</p>
          ) : (
            <>
              <a role="menuitem" href={href('account', 'keys')} data-testid="menu-keys">
                API keys
              </a>
              <a role="menuitem" href={href('account', 'sessions')} data-testid="menu-sessions">
                Sessions
              </a>
            </>
          )}
          {user.role === 'admin' ? (
            <a role="menuitem" href={href('admin', 'audit')} data-testid="menu-audit">
              Audit log
            </a>
          ) : null}
          <button type="button" role="menuitem" class="usermenu-out" onClick={onSignOut} data-testid="sign-out">
            Sign out
          </button>
        </div>
      ) : null}
    </div>
  );
}
