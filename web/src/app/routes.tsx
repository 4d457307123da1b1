import type { RouteObject } from 'react-router';

// Each section's component is loaded on first visit: only the shell and
// the dashboard are in the initial bundle's critical path.
const feature = (load: () => Promise<{ default: React.ComponentType }>) => async () => ({
  Component: (await load()).default,
});

export const featureRoutes: RouteObject[] = [
  { index: true, lazy: feature(() => import('../features/dashboard/routes')) },
  { path: 'runs/*', lazy: feature(() => import('../features/runs/routes')) },
  { path: 'agents/*', lazy: feature(() => import('../features/agents/routes')) },
  { path: 'jobs/*', lazy: feature(() => import('../features/jobs/routes')) },
  { path: 'schedules/*', lazy: feature(() => import('../features/schedules/routes')) },
  { path: 'notifications/*', lazy: feature(() => import('../features/notifications/routes')) },
  { path: 'inventory/*', lazy: feature(() => import('../features/inventory/routes')) },
  { path: 'credentials/*', lazy: feature(() => import('../features/credentials/routes')) },
  { path: 'discovery/*', lazy: feature(() => import('../features/discovery/routes')) },
  { path: 'admin/*', lazy: feature(() => import('../features/admin/routes')) },
  { path: 'audit/*', lazy: feature(() => import('../features/audit/routes')) },
  { path: 'cluster/*', lazy: feature(() => import('../features/cluster/routes')) },
  { path: 'account', lazy: feature(() => import('../features/login/Account')) },
];
