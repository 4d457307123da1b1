import { useQuery } from '@tanstack/react-query';
import { api } from '../../api/client';

export interface Binding { role: string; scope?: Record<string, unknown> }
export interface User {
  id: string; username: string; display_name: string; email: string; roles: Binding[];
  disabled: boolean; must_change_password: boolean; totp_enabled: boolean;
  locked_until?: string; last_login_at?: string; password_changed_at: string; created_at: string; updated_at: string;
}
export interface Role { name: string; description?: string; permissions: string[]; builtin: boolean }
export interface Token {
  id: string; name: string; description?: string; owner_id: string; roles: Binding[];
  created_at: string; expires_at?: string; revoked: boolean; expired: boolean;
}
export interface SessionRow {
  id: string; user_id: string; username: string; created_at: string; last_used_at: string; expires_at: string;
  source_ip: string; user_agent: string; current: boolean; active: boolean; revoked_at?: string; revoked_reason?: string;
}

export function useRoles() {
  return useQuery({ queryKey: ['roles'], queryFn: () => api.get<{ items: Role[] }>('/api/v1/roles') });
}

export function bindingLabel(b: Binding): string {
  return b.scope && Object.keys(b.scope).length ? `${b.role} (${JSON.stringify(b.scope)})` : b.role;
}

export function isLocked(u: User, now = Date.now()): boolean {
  return !!u.locked_until && Date.parse(u.locked_until) > now;
}

/** A user's states as badges: disabled, locked, must change password, 2FA. */
export function userBadges(u: User): { status: string; tone: 'ok' | 'bad' | 'warn' | 'info' | 'idle' }[] {
  const out: { status: string; tone: 'ok' | 'bad' | 'warn' | 'info' | 'idle' }[] = [];
  out.push(u.disabled ? { status: 'disabled', tone: 'idle' } : { status: 'active', tone: 'ok' });
  if (isLocked(u)) out.push({ status: 'locked', tone: 'bad' });
  if (u.must_change_password) out.push({ status: 'must change password', tone: 'warn' });
  if (u.totp_enabled) out.push({ status: '2FA', tone: 'info' });
  return out;
}
