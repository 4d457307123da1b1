// The console's sections. Each feature folder default-exports one
// component from routes.tsx that owns every path under its prefix, so
// features load lazily and are written independently.

export interface Section {
  /** URL prefix, without the trailing /*. */
  path: string;
  label: string;
  group: 'Operate' | 'Automate' | 'Inventory' | 'Settings';
  /** Shown only to users holding this permission (the API enforces it too). */
  permission?: string;
  /** Keyboard shortcut after "g" (g then j opens Jobs). */
  key?: string;
}

export const sections: Section[] = [
  { path: '/', label: 'Dashboard', group: 'Operate', key: 'd' },
  { path: '/runs', label: 'Runs', group: 'Operate', permission: 'jobs:read', key: 'r' },
  { path: '/agents', label: 'Agents', group: 'Operate', permission: 'agents:read', key: 'a' },
  { path: '/jobs', label: 'Jobs', group: 'Automate', permission: 'jobs:read', key: 'j' },
  { path: '/schedules', label: 'Schedules', group: 'Automate', permission: 'jobs:read', key: 's' },
  { path: '/notifications', label: 'Notifications', group: 'Automate', permission: 'notifications:read', key: 'n' },
  { path: '/inventory', label: 'Inventory', group: 'Inventory', permission: 'assets:read', key: 'i' },
  { path: '/credentials', label: 'Credentials', group: 'Inventory', permission: 'credentials:read', key: 'c' },
  { path: '/discovery', label: 'Discovery', group: 'Inventory', permission: 'assets:read', key: 'v' },
  { path: '/admin', label: 'Users & access', group: 'Settings', permission: 'users:read', key: 'u' },
  { path: '/audit', label: 'Audit log', group: 'Settings', permission: 'audit:read', key: 'l' },
  { path: '/cluster', label: 'Cluster', group: 'Settings', permission: 'cluster:admin', key: 'k' },
];

/** The section a path belongs to (the longest matching prefix). */
export function sectionFor(pathname: string): Section | undefined {
  let best: Section | undefined;
  for (const s of sections) {
    const hit = s.path === '/' ? pathname === '/' : pathname === s.path || pathname.startsWith(s.path + '/');
    if (hit && (!best || s.path.length > best.path.length)) best = s;
  }
  return best;
}
