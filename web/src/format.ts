export function money(v: number | undefined | null): string {
  const n = typeof v === 'number' && isFinite(v) ? v : 0;
  if (n === 0) return '$0.00';
  // LLM calls cost fractions of a cent: four decimals below $1, two above.
  return '$' + n.toFixed(n < 1 ? 4 : 2);
}

export function duration(ms: number): string {
  if (!isFinite(ms) || ms < 0) ms = 0;
  const s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (h > 0) return `${h}h ${String(m).padStart(2, '0')}m`;
  if (m > 0) return `${m}m ${String(sec).padStart(2, '0')}s`;
  if (ms < 10000 && ms % 1000 !== 0 && s < 1) return `${(ms / 1000).toFixed(1)}s`;
  return `${sec}s`;
}

export function ago(iso: string | undefined): string {
  if (!iso) return '';
  const t = Date.parse(iso);
  if (isNaN(t)) return iso;
  const d = (Date.now() - t) / 1000;
  if (d < 45) return 'just now';
  if (d < 3600) return `${Math.round(d / 60)} min ago`;
  if (d < 86400) return `${Math.round(d / 3600)} h ago`;
  if (d < 86400 * 30) return `${Math.round(d / 86400)} d ago`;
  return new Date(t).toLocaleDateString();
}

export function clock(iso: string): string {
  const t = new Date(iso);
  if (isNaN(t.getTime())) return '';
  return t.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

export function fullDate(iso: string | undefined): string {
  if (!iso) return '';
  const t = new Date(iso);
  return isNaN(t.getTime()) ? iso : t.toLocaleString();
}

// The run an artifact's iteration names: the server counts a node's runs from
// 1 (the first run), so fix round n is run n+1.
export function runLabel(iteration: number): string {
  return iteration > 1 ? `Fix round ${iteration - 1}` : 'First run';
}
