import { NavLink, Navigate, Outlet, useLocation } from 'react-router';
import { sections } from './nav';
import { useAuth } from './auth';
import { Spinner } from '../components/ui';

const groups = ['Operate', 'Automate', 'Inventory', 'Settings'] as const;

export function Layout() {
  const { me, restoring, can, logout } = useAuth();
  const loc = useLocation();
  if (restoring) return <div className="center"><Spinner label="Restoring session…" /></div>;
  if (!me) return <Navigate to={`/login?next=${encodeURIComponent(loc.pathname + loc.search)}`} replace />;
  if (me.user.must_change_password && loc.pathname !== '/password') return <Navigate to="/password" replace />;
  return (
    <div className="shell">
      <nav className="sidebar" aria-label="Sections">
        <div className="brand">OpsConductor</div>
        {groups.map((g) => {
          const items = sections.filter((s) => s.group === g && can(s.permission));
          if (!items.length) return null;
          return (
            <div key={g} className="nav-group">
              <div className="nav-group-label">{g}</div>
              {items.map((s) => (
                <NavLink key={s.path} to={s.path} end={s.path === '/'} className="nav-link">
                  {s.label}
                </NavLink>
              ))}
            </div>
          );
        })}
        <div className="nav-footer">
          <span className="muted">{me.user.username}</span>
          <button className="btn btn-ghost" onClick={() => void logout()}>Sign out</button>
        </div>
      </nav>
      <main className="content">
        <Outlet />
      </main>
    </div>
  );
}
