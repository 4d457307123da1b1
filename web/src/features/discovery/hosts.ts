import type { DiscoveredPort, HostView } from './types';

/** One line about what a port's service said (banner, HTTP title, certificate). */
export function describePort(p: DiscoveredPort): string {
  const parts: string[] = [];
  if (p.service) parts.push(p.service);
  if (p.http) parts.push(`HTTP ${p.http.status}${p.http.server ? ` ${p.http.server}` : ''}${p.http.title ? ` “${p.http.title}”` : ''}`);
  if (p.tls?.subject) parts.push(`cert ${p.tls.subject}${p.tls.issuer ? ` by ${p.tls.issuer}` : ''}`);
  if (p.banner) parts.push(p.banner);
  return parts.join(', ') || `port ${p.port}`;
}

/** A host can be chosen for import only while the inventory lacks it. */
export function selectable(h: HostView): boolean {
  return !h.target;
}
