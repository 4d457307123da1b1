import { Spinner } from '../../components/ui';
import { percent } from './profileForm';
import type { Scan } from './types';

/** How far a scan is: a bar with counts while running, the totals after. */
export function ScanProgress({ scan, compact }: { scan: Scan; compact?: boolean }) {
  const p = scan.progress;
  if (scan.status === 'queued') return <Spinner label="queued: waiting for the agent" />;
  const pct = percent(p);
  if (scan.status === 'running') {
    return (
      <div style={{ display: 'flex', alignItems: 'center', gap: 8 }} data-testid="scan-progress">
        <div className="progress" role="progressbar" aria-label="Scan progress" aria-valuemin={0} aria-valuemax={100} aria-valuenow={pct ?? undefined} style={compact ? { minWidth: 90 } : undefined}>
          <span style={{ width: `${pct ?? 0}%` }} />
        </div>
        <span className="muted">
          {pct === null ? 'counting addresses…' : `${p.probed.toLocaleString()} / ${p.total.toLocaleString()} addresses (${pct}%)`}, {p.up} up
        </span>
      </div>
    );
  }
  return <span className="muted">{p.probed.toLocaleString()} probed, {p.up} up</span>;
}
