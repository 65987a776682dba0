// Hash routing: #/projects, #/projects/:id, #/tasks/:id[/tab[/file path]],
// #/explorer[/:id], #/signup[?invite=…], #/account/keys, #/account/sessions,
// #/admin/audit. Hash routes work with any server fallback and keep /api
// and /apps free of client routes.
import { useEffect, useState } from 'preact/hooks';

export interface Route {
  name: 'projects' | 'project' | 'task' | 'explorer' | 'scan' | 'signup' | 'keys' | 'sessions' | 'audit' | 'notfound';
  params: Record<string, string>;
}

export function parse(hash: string): Route {
  const [path, query = ''] = (hash.replace(/^#/, '') || '/').split('?', 2);
  const parts = path.split('/').filter(Boolean).map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
  if (parts.length === 0 || (parts[0] === 'projects' && parts.length === 1)) return { name: 'projects', params: {} };
  if (parts[0] === 'projects' && parts.length === 2) return { name: 'project', params: { id: parts[1] } };
  if (parts[0] === 'tasks' && parts.length >= 2) {
    return { name: 'task', params: { id: parts[1], tab: parts[2] ?? '', file: parts.slice(3).join('/') } };
  }
  if (parts[0] === 'explorer' && parts.length === 1) return { name: 'explorer', params: {} };
  if (parts[0] === 'explorer' && parts.length === 2) return { name: 'scan', params: { id: parts[1] } };
  if (parts[0] === 'signup' && parts.length === 1) return { name: 'signup', params: { invite: new URLSearchParams(query).get('invite') ?? '' } };
  if (parts[0] === 'account' && parts.length === 2 && (parts[1] === 'keys' || parts[1] === 'sessions')) return { name: parts[1], params: {} };
  if (parts[0] === 'admin' && parts.length === 2 && parts[1] === 'audit') return { name: 'audit', params: {} };
  return { name: 'notfound', params: {} };
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parse(location.hash));
  useEffect(() => {
    const on = () => setRoute(parse(location.hash));
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return route;
}

export function href(...parts: string[]): string {
  return '#/' + parts.map((p) => p.split('/').map(encodeURIComponent).join('/')).join('/');
}

export function navigate(to: string, replace = false) {
  if (replace) history.replaceState(null, '', to);
  else location.hash = to.replace(/^#/, '');
  if (replace) window.dispatchEvent(new HashChangeEvent('hashchange'));
}
