// Typed client for Catalyst's HTTP API. Errors are RFC 9457 problem+json;
// they surface as ApiError with the server's title and detail.

/** A node's id in its task's graph (GET /api/graphs/{kind}): the dashboard has no node list of its own. */
export type NodeName = string;
export type NodeState = 'pending' | 'running' | 'completed' | 'failed' | 'skipped';
export type TaskStatus = 'pending' | 'running' | 'completed' | 'failed' | 'cancelled';

/** What the asking actor is to a project: viewer < editor < owner < admin (an admin on a project with no role of theirs). */
export type ProjectRole = 'viewer' | 'editor' | 'owner' | 'admin';

export interface Project {
  id: string;
  name: string;
  description: string;
  status: 'active' | 'archived';
  github_repo?: string;
  /** Git repository that tasks of kind change start from. */
  repo_url?: string;
  owner_id?: string;
  /** Absent from servers without tenants: the token holder may do everything. */
  my_role?: ProjectRole;
  created_at: string;
  updated_at: string;
}

const RANK: Record<ProjectRole, number> = { viewer: 1, editor: 2, owner: 3, admin: 4 };

/**
 * Whether the actor's role on p allows what needs `need`. Only hides
 * controls: the server decides (403) whatever the page shows.
 */
export function allows(p: Pick<Project, 'my_role'> | null | undefined, need: ProjectRole): boolean {
  if (!p) return false;
  if (!p.my_role) return true;
  return (RANK[p.my_role] ?? 0) >= RANK[need];
}

export interface User {
  id: string;
  email: string;
  name: string;
  role: 'admin' | 'user';
  created_at?: string;
}

/** The server token's holder (the sign-in link) is no account: GET /api/auth/me answers it without an e-mail address. */
export const isTokenHolder = (u: User | null) => !!u && !u.email;

export interface AuthConfig {
  signup: 'open' | 'invite' | 'closed';
  has_users: boolean;
}

export interface APIKey {
  id: string;
  user_id: string;
  name: string;
  prefix: string;
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
}

export interface KeyCreated {
  id: string;
  name: string;
  /** Shown once: the server keeps only its hash. */
  key: string;
  prefix: string;
  created_at: string;
  expires_at: string | null;
}

export interface Session {
  id: string;
  user_id: string;
  created_at: string;
  last_seen_at: string;
  user_agent?: string;
  remote_addr?: string;
  current: boolean;
}

export interface Member {
  project_id: string;
  user_id: string;
  email?: string;
  name?: string;
  role: 'viewer' | 'editor';
  added_by: string;
  created_at: string;
  updated_at: string;
}

export interface AuditEntry {
  id: string;
  time: string;
  actor_id: string;
  actor_kind: string;
  actor_email?: string;
  action: string;
  resource_type?: string;
  resource_id?: string;
  remote_addr?: string;
  user_agent?: string;
  result: 'ok' | 'denied' | 'error';
  status?: number;
  detail?: string;
}

export interface AuditFilter {
  actor?: string;
  action?: string;
  resource_type?: string;
  resource_id?: string;
  result?: string;
  /** RFC 3339. */
  since?: string;
  until?: string;
}

export interface Task {
  id: string;
  project_id: string;
  prompt: string;
  /** The graph the task runs (GET /api/graphs/{kind}); absent on old tasks: build. */
  kind?: string;
  graph_state: Record<NodeName, NodeState>;
  status: TaskStatus;
  cost: number;
  node_costs?: Record<NodeName, number>;
  error?: string;
  fix_iteration: number;
  /** Who answered the task's model calls: "anthropic", "openai", … or "offline". */
  provider?: string;
  model?: string;
  /** Answered by the offline demonstration provider (no LLM configured). */
  offline?: boolean;
  created_at: string;
  updated_at: string;
  started_at?: string;
  finished_at?: string;
}

export type EventType = 'log' | 'node_state' | 'task_state' | 'cost' | 'token_delta' | 'fix_round' | 'tool_call';

/** A task graph as GET /api/graphs serves it (internal/graph Description). */
export interface GraphDesc {
  kind: string;
  label: string;
  /** In topological order. */
  nodes: GraphNode[];
  edges: GraphEdge[];
  /** Absent for graphs without a fix loop. */
  fix_loop?: FixLoop;
}
export interface GraphNode {
  id: string;
  /** The agent's name, as events name it ("Planner"). */
  label: string;
  description?: string;
  /** Whether the node's verdict can send work back. */
  check: boolean;
}
export interface GraphEdge {
  from: string;
  to: string;
  /** always: to waits for from; pass: from must also pass its check; fail: a failing check sends work back to to. */
  when: 'always' | 'pass' | 'fail';
}
export interface FixLoop {
  /** The node the work goes back to. */
  target: string;
  /** The nodes whose failing verdict starts a fix round. */
  checks: string[];
  /** The nodes that run again in a fix round. */
  body: string[];
}

export interface AgentEvent {
  id: string;
  task_id: string;
  seq: number;
  type: EventType;
  agent_name: string;
  message: string;
  level?: string;
  data?: any;
  timestamp: string;
}

/** The data of a fix_round event: the checks sent the work back and the loop body's nodes are pending again. */
export interface FixRound {
  /** The fix round that starts (1 for the first). */
  round: number;
  /** The bound (MAX_FIX_ITERATIONS); 0 when the event did not say. */
  max: number;
  /** The node the work goes back to. */
  target: string;
  /** The checks that failed. */
  failing: string[];
  /** The nodes that are pending again. */
  reset: string[];
  /** The failing checks' findings, summarized. */
  findings: string[];
}

export interface Artifact<T = any> {
  task_id: string;
  node: NodeName;
  iteration: number;
  output: T;
  cost: number;
  usage?: { input_tokens?: number; output_tokens?: number };
  created_at: string;
}

export interface PlannerOutput {
  summary?: string;
  requirements?: string[];
  user_stories?: { title: string; story: string; acceptance_criteria?: string[] }[];
}
export interface ArchitectOutput {
  stack?: { language?: string; runtime?: string; framework?: string; test_command?: string[] };
  components?: { name: string; responsibility: string }[];
  files?: { path: string; purpose: string }[];
  interfaces?: { name: string; description: string }[];
}
export interface CoderOutput {
  iteration?: number;
  files?: { path: string; bytes: number; action: string }[];
  refused?: { path: string; reason: string }[];
  notes?: string;
  /** The tool loop: model turns, and why it ended (finish, max_steps, repetition, ...). */
  steps?: number;
  end?: string;
  reason?: string;
}
export interface TesterOutput {
  command?: string | string[];
  exit_code?: number;
  passed?: number;
  failed?: number;
  duration_ms?: number;
  output?: string;
  failures?: { name: string; message: string }[];
  tool_missing?: boolean;
  tests_added?: string[];
  sandbox?: { isolation?: string[]; warnings?: string[] };
  /** Every named test and its outcome (tasks of kind change). */
  results?: { name: string; status: 'passed' | 'failed' }[];
  /** This run against the repository's own results before the change. */
  baseline?: BaselineComparison;
}
export interface BaselineComparison {
  before: { command: string; passed: number; failed: number; exit_code: number; verdict: string };
  tests: { name: string; before: 'passed' | 'failed' | 'absent'; after: 'passed' | 'failed' | 'absent' }[];
  fixed: string[];
  pre_existing: string[];
  new_failures: string[];
}
export interface CloneOutput {
  repo_url: string;
  base_sha: string;
  base_branch: string;
  branch: string;
  files: number;
  bytes: number;
}
export type Severity = 'critical' | 'major' | 'minor' | 'info';
export interface ReviewerOutput {
  approved?: boolean;
  summary?: string;
  findings?: { severity: Severity; file?: string; line?: number; message: string }[];
  /** The change reviewed, as a unified diff (tasks of kind change). */
  diff?: string;
}

export interface FileEntry {
  path: string;
  size: number;
}

export interface Deployment {
  id: string;
  task_id: string;
  url: string;
  commit_sha: string;
  cost: number;
  report: string;
  mock: boolean;
  branch?: string;
  pull_request_url?: string;
  created_at: string;
}

export interface ScanLocation {
  path?: string;
  line?: number;
  ref?: string;
  url?: string;
}

export interface ScanFact {
  id: string;
  source: string;
  kind: string;
  summary: string;
  value?: unknown;
  where?: ScanLocation;
}

export interface ScanSource {
  source: string;
  status: 'running' | 'ok' | 'failed' | 'skipped';
  error?: string;
  facts: number;
  duration_ms: number;
}

export interface ScanRisk {
  title: string;
  severity: 'low' | 'medium' | 'high' | 'critical';
  rule?: string;
  by: 'rule' | 'model';
  evidence: { fact_id: string; summary: string; where?: ScanLocation }[];
}

export interface Scan {
  id: string;
  system_name: string;
  repo_url?: string;
  jira_project?: string;
  servicenow_ci?: string;
  github_repo?: string;
  task_id?: string;
  status: 'pending' | 'running' | 'completed' | 'failed' | 'cancelled';
  brief: string;
  risks: string[] | null;
  proposals: string[] | null;
  risk_details?: ScanRisk[] | null;
  /** A list since scans run as explore tasks; older documents may hold an object. */
  facts?: ScanFact[] | Record<string, unknown> | null;
  sources?: ScanSource[] | null;
  error?: string;
  cost: number;
  created_at: string;
}

export interface ScanRequest {
  system_name: string;
  repo_url?: string;
  jira_project?: string;
  servicenow_ci?: string;
  github_repo?: string;
}

export class ApiError extends Error {
  status: number;
  title: string;
  detail: string;
  errors?: { location?: string; message?: string; value?: unknown }[];
  constructor(status: number, title: string, detail: string, errors?: ApiError['errors']) {
    super(detail || title);
    this.status = status;
    this.title = title;
    this.detail = detail;
    this.errors = errors;
  }
}

async function problem(res: Response): Promise<ApiError> {
  const text = await res.text().catch(() => '');
  try {
    const p = JSON.parse(text);
    if (p && typeof p === 'object') {
      return new ApiError(res.status, p.title || res.statusText, p.detail || p.message || '', p.errors);
    }
  } catch {
    /* not JSON */
  }
  return new ApiError(res.status, res.statusText || `HTTP ${res.status}`, text.slice(0, 300));
}

/** Fired on window when the server answers 401: the dashboard has no (or an expired) session. */
export const UNAUTHORIZED = 'catalyst:unauthorized';

async function request(method: string, path: string, body?: unknown): Promise<Response> {
  let res: Response;
  // The server refuses requests that change something unless they declare
  // JSON, even without a body: a page elsewhere cannot send that header
  // without a CORS preflight.
  const changes = method !== 'GET' && method !== 'HEAD';
  try {
    res = await fetch(path, {
      method,
      headers: changes ? { 'Content-Type': 'application/json', Accept: 'application/json' } : { Accept: 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
    });
  } catch (e) {
    throw new ApiError(0, 'Cannot reach the Catalyst server', e instanceof Error ? e.message : String(e));
  }
  if (res.status === 401) window.dispatchEvent(new Event(UNAUTHORIZED));
  if (!res.ok) throw await problem(res);
  return res;
}

async function json<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await request(method, path, body);
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

/** Returns the URL of the Link rel="next" header, if any. */
function nextLink(res: Response): string | null {
  const link = res.headers.get('Link');
  if (!link) return null;
  for (const part of link.split(',')) {
    const m = part.match(/<([^>]+)>\s*;\s*rel="?next"?/);
    if (m) {
      // Followed on this origin only, with the cookie: never to a host a header names.
      try {
        const u = new URL(m[1], location.origin);
        return u.pathname.startsWith('/api/') ? u.pathname + u.search : null;
      } catch {
        return null;
      }
    }
  }
  return null;
}

const enc = encodeURIComponent;

/** A page of a list and the URL of the next one (the Link rel="next" header). */
async function page<T>(url: string): Promise<{ items: T[]; next: string | null }> {
  const res = await request('GET', url);
  const items = ((await res.json()) as T[] | null) ?? [];
  return { items, next: nextLink(res) };
}

export const api = {
  info: () => json<Record<string, unknown>>('GET', '/api/'),

  authConfig: () => json<AuthConfig>('GET', '/api/auth/config'),
  me: () => json<User>('GET', '/api/auth/me'),
  // Passwords travel in JSON bodies only, never in a URL.
  register: (b: { email: string; password: string; name?: string; invite?: string }) => json<User>('POST', '/api/auth/register', b),
  login: (email: string, password: string) => json<{ user: User }>('POST', '/api/auth/login', { email, password }),
  logout: () => json<void>('POST', '/api/auth/logout'),
  sessions: async () => (await json<Session[] | null>('GET', '/api/auth/sessions')) ?? [],
  revokeSession: (id: string) => json<void>('DELETE', `/api/auth/sessions/${enc(id)}`),
  keys: async () => (await json<APIKey[] | null>('GET', '/api/auth/keys')) ?? [],
  createKey: (name: string, expires_at?: string) => json<KeyCreated>('POST', '/api/auth/keys', expires_at ? { name, expires_at } : { name }),
  revokeKey: (id: string) => json<void>('DELETE', `/api/auth/keys/${enc(id)}`),
  users: (url = '/api/users?limit=100') => page<User>(url),

  members: async (projectId: string) => (await json<Member[] | null>('GET', `/api/projects/${enc(projectId)}/members`)) ?? [],
  /** Adds a member, or changes the role of one. */
  setMember: (projectId: string, email: string, role: 'viewer' | 'editor') => json<Member>('POST', `/api/projects/${enc(projectId)}/members`, { email, role }),
  setMemberRole: (projectId: string, userId: string, role: 'viewer' | 'editor') =>
    json<Member>('POST', `/api/projects/${enc(projectId)}/members`, { user_id: userId, role }),
  removeMember: (projectId: string, userId: string) => json<void>('DELETE', `/api/projects/${enc(projectId)}/members/${enc(userId)}`),

  /** A page of the audit log (admins); `url` is a next link from an earlier page. */
  audit(f: AuditFilter, url?: string, limit = 50) {
    if (url) return page<AuditEntry>(url);
    const q = new URLSearchParams({ limit: String(limit) });
    for (const [k, v] of Object.entries(f)) if (v) q.set(k, v);
    return page<AuditEntry>(`/api/audit?${q}`);
  },

  health: () => json<Record<string, unknown>>('GET', '/api/health'),

  listProjects: (url = '/api/projects?limit=50') => page<Project>(url),
  getProject: (id: string) => json<Project>('GET', `/api/projects/${enc(id)}`),
  createProject: (name: string, description: string, repo?: { repo_url?: string; repo_credential?: string }) =>
    json<Project>('POST', '/api/projects', { name, description, ...(repo ?? {}) }),
  updateProject: (id: string, patch: Partial<Pick<Project, 'name' | 'description' | 'status' | 'repo_url'>> & { repo_credential?: string }) =>
    json<Project>('PATCH', `/api/projects/${enc(id)}`, patch),
  archiveProject: (id: string) => json<unknown>('DELETE', `/api/projects/${enc(id)}`),

  graphs: async () => (await json<GraphDesc[] | null>('GET', '/api/graphs')) ?? [],
  graph: (kind: string) => json<GraphDesc>('GET', `/api/graphs/${enc(kind)}`),

  listTasks: async (projectId?: string) =>
    (await json<Task[] | null>('GET', projectId ? `/api/tasks?project_id=${enc(projectId)}` : '/api/tasks')) ?? [],
  getTask: (id: string) => json<Task>('GET', `/api/tasks/${enc(id)}`),
  createTask: (project_id: string, prompt: string, kind?: string) => json<Task>('POST', '/api/tasks', { project_id, prompt, ...(kind ? { kind } : {}) }),
  /** A change task's commit as git format-patch text; null until the deployer has committed it. */
  async patch(taskId: string): Promise<string | null> {
    try {
      const res = await request('GET', patchURL(taskId));
      return await res.text();
    } catch (e) {
      if (e instanceof ApiError && (e.status === 404 || e.status === 409)) return null;
      throw e;
    }
  },
  cancelTask: (id: string) => json<Task>('POST', `/api/tasks/${enc(id)}/cancel`),
  retryTask: (id: string) => json<Task>('POST', `/api/tasks/${enc(id)}/retry`),

  /** Stored events after seq `after`, following the Link rel="next" pages (at most `maxPages`). */
  async logs(taskId: string, after = 0, maxPages = 40): Promise<AgentEvent[]> {
    const out: AgentEvent[] = [];
    let url: string | null = `/api/logs/${enc(taskId)}?after=${after}&limit=1000`;
    for (let i = 0; url && i < maxPages; i++) {
      const res = await request('GET', url);
      out.push(...(((await res.json()) as AgentEvent[] | null) ?? []));
      url = nextLink(res);
    }
    return out;
  },
  artifacts: async (taskId: string) => (await json<Artifact[] | null>('GET', `/api/tasks/${enc(taskId)}/artifacts`)) ?? [],
  files: async (taskId: string) => (await json<FileEntry[] | null>('GET', `/api/tasks/${enc(taskId)}/files`)) ?? [],
  async fileContent(taskId: string, path: string): Promise<string> {
    const res = await request('GET', fileURL(taskId, path));
    return res.text();
  },
  async deployment(taskId: string): Promise<Deployment | null> {
    try {
      return await json<Deployment>('GET', `/api/deployments/${enc(taskId)}`);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) return null;
      throw e;
    }
  },

  scan: (req: ScanRequest) => json<Scan>('POST', '/api/explorer/scan', req),
  scans: async () => (await json<Scan[] | null>('GET', '/api/explorer/scans')) ?? [],
  getScan: (id: string) => json<Scan>('GET', `/api/explorer/scans/${enc(id)}`),
};

export function fileURL(taskId: string, path: string): string {
  return `/api/tasks/${enc(taskId)}/files/${path.split('/').map(enc).join('/')}`;
}
export function patchURL(taskId: string): string {
  return `/api/tasks/${enc(taskId)}/patch`;
}
export function archiveURL(taskId: string): string {
  return `/api/tasks/${enc(taskId)}/archive.zip`;
}
export function previewURL(taskId: string): string {
  return `/apps/${enc(taskId)}/`;
}
