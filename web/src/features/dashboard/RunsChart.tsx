import { niceMax, runStates, type Bucket, type RunState } from './series';

const tone: Record<RunState, string> = { succeeded: 'ok', failed: 'bad', canceled: 'idle', active: 'info' };
const label: Record<RunState, string> = { succeeded: 'Succeeded', failed: 'Failed', canceled: 'Canceled', active: 'Queued, waiting or running' };

/** Stacked hourly bars in plain SVG; each bar's tooltip lists its counts. */
export function RunsChart({ buckets }: { buckets: Bucket[] }) {
  const W = 560, H = 130, left = 28, bottom = 18, top = 6;
  const max = niceMax(Math.max(0, ...buckets.map((b) => b.total)));
  const plotH = H - bottom - top;
  const bw = (W - left) / Math.max(1, buckets.length);
  const y = (v: number) => top + plotH - (v / max) * plotH;
  const hh = (d: Date) => d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return (
    <figure style={{ margin: 0 }}>
      <svg className="chart" viewBox={`0 0 ${W} ${H}`} role="img" aria-label="Runs per hour over the last 24 hours, by state">
        {[0, max / 2, max].map((v) => (
          <g key={v}>
            <line className="grid" x1={left} x2={W} y1={y(v)} y2={y(v)} />
            <text className="axis" x={left - 4} y={y(v) + 3} textAnchor="end">{Number.isInteger(v) ? v : ''}</text>
          </g>
        ))}
        {buckets.map((b, i) => {
          let acc = 0;
          const x = left + i * bw + 1;
          return (
            <g key={b.start.toISOString()} data-testid="chart-bar">
              <title>{`${hh(b.start)}: ${b.total} run${b.total === 1 ? '' : 's'}${runStates.filter((s) => b.counts[s]).map((s) => `, ${b.counts[s]} ${s}`).join('')}`}</title>
              <rect x={x} y={top} width={bw - 2} height={plotH} fill="transparent" />
              {runStates.map((s) => {
                const n = b.counts[s];
                if (!n) return null;
                const y0 = y(acc + n);
                const hgt = y(acc) - y0;
                acc += n;
                return <rect key={s} className={`fill-${tone[s]}`} x={x} y={y0} width={bw - 2} height={Math.max(1, hgt)} />;
              })}
              {i % 6 === 0 && <text className="axis" x={x} y={H - 4}>{hh(b.start)}</text>}
            </g>
          );
        })}
      </svg>
      <figcaption className="legend">
        {runStates.map((s) => (
          <span key={s}><i className={`swatch fill-${tone[s]}`} aria-hidden />{label[s]}</span>
        ))}
      </figcaption>
    </figure>
  );
}
