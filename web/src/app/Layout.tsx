import { useState } from 'react';
import { NavLink, Navigate, Outlet, useLocation, useNavigate } from 'react-router';
import { sections, sectionFor } from './nav';
import { useAuth } from './auth';
import { useShortcuts } from './shortcuts';
import { useTheme, type ThemePref } from './theme';
import { Dialog, EmptyState, Spinner } from '../components/ui';
import { LiveUpdates, useLiveStatus, type LiveStatus } from '../api/live';

const groups = ['Operate', 'Automate', 'Inventory', 'Settings'] as const;

export function Layout() {
  const { me, restoring, can, logout, expired } = useAuth();
  const loc = useLocation();
  const navigate = useNavigate();
  const [help, setHelp] = useState(false);
  useShortcuts({
    go: (p) => navigate(p),
    help: () => setHelp(true),
    allowed: (p) => can(sections.find((s) => s.path === p)?.permission),
  });
  if (restoring) return <div className="center"><Spinner label="Restoring session…" /></div>;
  if (!me) return <Navigate to={`/login?next=${encodeURIComponent(loc.pathname + loc.search)}${expired ? '&expired=1' : ''}`} replace />;
  if (me.user.must_change_password) return <Navigate to={`/password?next=${encodeURIComponent(loc.pathname + loc.search)}`} replace />;
  const section = sectionFor(loc.pathname);
  const permitted = !section || can(section.permission);
  return (
    <div className="shell">
      <a className="skip-link" href="#main">Skip to content</a>
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
                  <span>{s.label}</span>
                  {s.key && <kbd className="nav-key" aria-hidden title={`g then ${s.key}`}>{s.key}</kbd>}
                </NavLink>
              ))}
            </div>
          );
        })}
        <div className="nav-footer">
          <LiveIndicator />
          <ThemeToggle />
          <button className="btn btn-ghost" onClick={() => setHelp(true)} aria-label="Keyboard shortcuts" title="Keyboard shortcuts (?)">?</button>
          <div className="nav-user">
            <NavLink to="/account" className="nav-account" title={`${me.user.display_name || me.user.username}: my account`}>{me.user.username}</NavLink>
            <button className="btn btn-ghost" onClick={() => void logout().then(() => navigate('/login', { replace: true }))}>Sign out</button>
          </div>
        </div>
      </nav>
      <main className="content" id="main" tabIndex={-1}>
        <LiveUpdates />
        <OfflineBanner />
        {permitted ? (
          <Outlet />
        ) : (
          <EmptyState
            title="Not permitted"
            hint={<>This page needs the <code>{section?.permission}</code> permission, which your roles do not grant. Ask an administrator to add it to one of your roles.</>}
          />
        )}
      </main>
      <ShortcutHelp open={help} onClose={() => setHelp(false)} can={can} />
    </div>
  );
}

function ThemeToggle() {
  const { pref, setPref } = useTheme();
  return (
    <label className="theme-toggle">
      <span className="sr-only">Theme</span>
      <select aria-label="Theme" value={pref} onChange={(e) => setPref(e.target.value as ThemePref)}>
        <option value="system">System theme</option>
        <option value="light">Light</option>
        <option value="dark">Dark</option>
      </select>
    </label>
  );
}

function ShortcutHelp({ open, onClose, can }: { open: boolean; onClose: () => void; can: (p?: string) => boolean }) {
  return (
    <Dialog title="Keyboard shortcuts" open={open} onClose={onClose}>
      <table className="shortcut-table">
        <tbody>
          {sections.filter((s) => s.key && can(s.permission)).map((s) => (
            <tr key={s.path}><td><kbd>g</kbd> then <kbd>{s.key}</kbd></td><td>Go to {s.label}</td></tr>
          ))}
          <tr><td><kbd>/</kbd></td><td>Focus the page's search box</td></tr>
          <tr><td><kbd>?</kbd></td><td>Show this help</td></tr>
          <tr><td><kbd>Esc</kbd></td><td>Close a dialog</td></tr>
        </tbody>
      </table>
    </Dialog>
  );
}

const liveText: Record<LiveStatus, string> = { live: 'Live', connecting: 'Connecting…', offline: 'Offline' };
const liveHint: Record<LiveStatus, string> = {
  live: 'Changes appear as they happen.',
  connecting: 'Connecting to live updates…',
  offline: 'Live updates are disconnected; retrying. Pages show what they last loaded.',
};

/** The live-updates connection's state, always visible in the sidebar. */
function LiveIndicator() {
  const s = useLiveStatus();
  return (
    <div>
      <span className={`live live-${s}`} role="status" aria-live="polite" title={liveHint[s]} data-testid="live-status" data-status={s}>
        <span className="live-dot" aria-hidden />
        {liveText[s]}
      </span>
    </div>
  );
}

/** Says so above the page when the console is offline: what you see may be stale. */
function OfflineBanner() {
  const s = useLiveStatus();
  if (s !== 'offline') return null;
  return (
    <div className="offline-banner" role="alert">
      <strong>Offline.</strong> The connection to the controller dropped; reconnecting by itself. What you see may be out of date until it returns.
    </div>
  );
}
