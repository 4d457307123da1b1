export interface Facts {
  hostname?: string; os?: string; os_version?: string; kernel?: string; arch?: string;
  cpus?: number; memory_bytes?: number; addresses?: string[]; extra?: Record<string, string>;
}
export interface Agent {
  id: string; name: string; tags: Record<string, string>; facts: Facts; version?: string;
  cert_serial: string; cert_not_after: string; enrolled_at: string; join_token_id: string;
  status: string; revoked: boolean; revoked_at?: string; draining: boolean;
  plugins?: { name: string; version?: string; sha256?: string }[];
  last_seen?: string; connected_to?: string;
}
export interface JoinToken {
  id: string; created_at: string; created_by: string; expires_at: string; max_uses: number; uses: number;
  tags: Record<string, string>; revoked: boolean;
}
export interface CreatedJoinToken extends JoinToken { token: string; ca_pin: string; join_command: string }

/** "k=v, k2=v2" as a map; the problems name the bad pieces. */
export function parseTags(s: string): { tags: Record<string, string>; problems: string[] } {
  const tags: Record<string, string> = {};
  const problems: string[] = [];
  for (const part of s.split(',').map((x) => x.trim()).filter(Boolean)) {
    const i = part.indexOf('=');
    if (i <= 0) problems.push(`"${part}" is not key=value`);
    else tags[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  return { tags, problems };
}

export function formatBytes(n?: number): string {
  if (!n) return '—';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(v >= 10 || i === 0 ? 0 : 1)} ${u[i]}`;
}

/** The status shown: revoked and draining win over up/down. */
export function agentState(a: Agent): { status: string; tone: 'ok' | 'bad' | 'warn' | 'idle' } {
  if (a.revoked) return { status: 'revoked', tone: 'idle' };
  if (a.status === 'up') return a.draining ? { status: 'draining', tone: 'warn' } : { status: 'up', tone: 'ok' };
  if (a.status === 'down') return { status: a.draining ? 'down, draining' : 'down', tone: 'bad' };
  return { status: a.status || 'unknown', tone: 'idle' };
}
