// The one way the UI talks to the controller. The access token lives only
// in this module's memory; the refresh token is an HttpOnly cookie the
// page never sees, renewed through POST /api/v1/auth/refresh with the CSRF
// header (double-submit: the csrf cookie is readable, the refresh one not).

export interface ProblemDetail {
  kind: string;
  code: string;
  message: string;
  field?: string;
  details?: ProblemDetail[];
}

/** An error the API returned, with its problem body. */
export class ApiError extends Error {
  readonly status: number;
  readonly problem: ProblemDetail;
  constructor(status: number, problem: ProblemDetail) {
    super(problem.message || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
  /** The per-field messages, keyed by field path ("steps[2].needs[0]"). */
  fieldErrors(): Record<string, string> {
    const out: Record<string, string> = {};
    const list = this.problem.details?.length ? this.problem.details : [this.problem];
    for (const d of list) if (d.field) out[d.field] = d.message;
    return out;
  }
}

export interface Tokens {
  access_token: string;
  expires_in: number;
  session_id: string;
  must_change_password?: boolean;
}

type Listener = () => void;

class Session {
  private token: string | null = null;
  private refreshing: Promise<boolean> | null = null;
  private listeners = new Set<Listener>();
  mustChangePassword = false;
  /** The last session ended by itself (refresh refused), not by signing out. */
  expired = false;

  get accessToken(): string | null {
    return this.token;
  }
  set(t: Tokens | null) {
    if (t) this.expired = false;
    this.token = t?.access_token ?? null;
    this.mustChangePassword = !!t?.must_change_password;
    this.listeners.forEach((l) => l());
  }
  subscribe(l: Listener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
  /**
   * Renews the access token from the cookie: true when renewed, false when
   * there is no session (it is then cleared). It rejects when the
   * controller cannot be reached or answers 5xx, keeping the session,
   * since that says nothing about whether the session is still good.
   */
  refresh(): Promise<boolean> {
    // No CSRF cookie means no session cookie either: asking would only
    // earn a 400 (and an error in the browser's console).
    if (!this.refreshing && !csrfToken()) {
      if (this.token !== null) {
        this.expired = true;
        this.set(null);
      }
      return Promise.resolve(false);
    }
    this.refreshing ??= (async () => {
      try {
        const res = await fetch('/api/v1/auth/refresh', {
          method: 'POST',
          credentials: 'same-origin',
          headers: { 'X-CSRF-Token': csrfToken() },
        });
        if (res.status >= 500 || res.status === 429) {
          // The controller (or a proxy in front of it) is down or busy:
          // the session may well be fine, so keep it, and fail rather than
          // answer "no session" so that callers retry later.
          throw new Error(`the controller is unavailable (HTTP ${res.status}); try again shortly`);
        }
        if (!res.ok) {
          this.expired = this.token !== null;
          this.set(null);
          return false;
        }
        this.set((await res.json()) as Tokens);
        return true;
      } finally {
        this.refreshing = null;
      }
    })();
    return this.refreshing;
  }
}

export const session = new Session();

export function csrfToken(): string {
  const m = document.cookie.match(/(?:^|;\s*)opsconductor_csrf=([^;]*)/);
  return m?.[1] ? decodeURIComponent(m[1]) : '';
}

export interface RequestOptions {
  body?: unknown;
  signal?: AbortSignal;
  headers?: Record<string, string>;
  /** Return the raw Response (downloads, text logs). */
  raw?: boolean;
}

async function send(method: string, path: string, opts: RequestOptions): Promise<Response> {
  const headers: Record<string, string> = { Accept: 'application/json', ...opts.headers };
  const token = session.accessToken;
  if (token) headers.Authorization = `Bearer ${token}`;
  let body: BodyInit | undefined;
  if (opts.body instanceof FormData || typeof opts.body === 'string') {
    body = opts.body;
  } else if (opts.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(opts.body);
  }
  return fetch(path, { method, headers, body, signal: opts.signal, credentials: 'same-origin' });
}

/** Calls the API; on 401 it refreshes the session once and retries. */
export async function request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
  let res = await send(method, path, opts);
  if (res.status === 401 && !path.startsWith('/api/v1/auth/') && (await session.refresh())) {
    res = await send(method, path, opts);
  }
  if (!res.ok) {
    let problem: ProblemDetail = { kind: 'unknown', code: `http_${res.status}`, message: res.statusText };
    try {
      const b = (await res.json()) as { error?: ProblemDetail };
      if (b.error) problem = b.error;
    } catch {
      /* not JSON: keep the status text */
    }
    throw new ApiError(res.status, problem);
  }
  if (opts.raw) return res as unknown as T;
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

export const api = {
  get: <T>(path: string, opts?: RequestOptions) => request<T>('GET', path, opts),
  post: <T>(path: string, body?: unknown, opts?: RequestOptions) => request<T>('POST', path, { ...opts, body }),
  put: <T>(path: string, body?: unknown, opts?: RequestOptions) => request<T>('PUT', path, { ...opts, body }),
  patch: <T>(path: string, body?: unknown, opts?: RequestOptions) => request<T>('PATCH', path, { ...opts, body }),
  del: <T>(path: string, opts?: RequestOptions) => request<T>('DELETE', path, opts),
};

/** Builds a query string from defined, non-empty values. */
export function qs(params: Record<string, string | number | boolean | undefined | null>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') p.set(k, String(v));
  const s = p.toString();
  return s ? `?${s}` : '';
}

/**
 * Opens an authenticated websocket. Browsers cannot set Authorization on
 * a websocket, so the token rides in the subprotocol list, never the URL.
 */
export function openSocket(path: string): WebSocket {
  const url = new URL(path, window.location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  const protocols = ['opsconductor.v1'];
  if (session.accessToken) protocols.push(`bearer.${session.accessToken}`);
  return new WebSocket(url, protocols);
}
