import { api } from '../api/client';

/**
 * Fetches path with the session's bearer token and saves the body as a
 * file. A plain <a href> would carry no token, so downloads go through
 * fetch and a Blob URL that is released once the click has started.
 */
export async function downloadWithToken(path: string, fallbackName: string): Promise<void> {
  const res = await api.get<Response>(path, { raw: true, headers: { Accept: '*/*' } });
  const blob = await res.blob();
  const cd = res.headers.get('Content-Disposition') ?? '';
  const m = cd.match(/filename\*?=(?:UTF-8'')?"?([^";]+)"?/i);
  const name = m?.[1] ? decodeURIComponent(m[1]) : fallbackName;
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  window.setTimeout(() => URL.revokeObjectURL(url), 0);
}
