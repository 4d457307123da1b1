import { createContext, useContext, useEffect, useState, useSyncExternalStore, type ReactNode } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api, csrfToken, session } from '../api/client';

export interface Me {
  user: { id: string; username: string; display_name: string; email: string; must_change_password: boolean; totp_enabled: boolean; roles?: { role: string; scope?: Record<string, unknown> }[] };
  permissions: string[];
  session_id?: string;
}

interface AuthState {
  me: Me | null;
  /** True while the page is finding out whether the cookie holds a session. */
  restoring: boolean;
  can: (permission: string | undefined) => boolean;
  /** The session ended by itself (expired or revoked), not by signing out. */
  expired: boolean;
  logout: () => Promise<void>;
}

const AuthContext = createContext<AuthState | null>(null);

export function useAuth(): AuthState {
  const a = useContext(AuthContext);
  if (!a) throw new Error('useAuth outside AuthProvider');
  return a;
}

/** Restores the session from the refresh cookie on load, then loads /me. */
export function AuthProvider({ children }: { children: ReactNode }) {
  const token = useSyncExternalStore((l) => session.subscribe(l), () => session.accessToken);
  const [restoring, setRestoring] = useState(true);
  const qc = useQueryClient();
  useEffect(() => {
    // Unreachable controller: show the sign-in page rather than spin.
    void session.refresh().catch(() => false).finally(() => setRestoring(false));
  }, []);
  const me = useQuery({
    queryKey: ['me', token],
    queryFn: () => api.get<Me>('/api/v1/me'),
    enabled: !!token,
    staleTime: 60_000,
  });
  const value: AuthState = {
    me: token ? (me.data ?? null) : null,
    restoring: restoring || (!!token && me.isPending),
    can: (p) => !p || !!me.data?.permissions.includes(p),
    expired: session.expired,
    logout: async () => {
      // Drop the token from the page first, so that nothing (a query the
      // live socket invalidates, say) uses it after the server revokes it;
      // the logout request carries it explicitly.
      const token = session.accessToken;
      session.set(null);
      qc.clear();
      const headers: Record<string, string> = { 'X-CSRF-Token': csrfToken() };
      if (token) headers.Authorization = `Bearer ${token}`;
      await api.post('/api/v1/auth/logout', undefined, { headers }).catch(() => {
        /* the session ends on this page either way; the server's expires */
      });
    },
  };
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}
