import { api } from '../../api/client';

/**
 * Fetches path with the session's bearer token and saves the body as
 * fileName. A plain link would carry no token (it lives in memory only).
 */
export async function downloadFrom(path: string, fileName: string): Promise<void> {
  const res = await api.get<Response>(path, { raw: true });
  const blob = await res.blob();
  const url = URL.createObjectURL(blob);
  try {
    const a = document.createElement('a');
    a.href = url;
    a.download = fileName;
    document.body.appendChild(a);
    a.click();
    a.remove();
  } finally {
    // Revoke after the click has been handled.
    setTimeout(() => URL.revokeObjectURL(url), 0);
  }
}
