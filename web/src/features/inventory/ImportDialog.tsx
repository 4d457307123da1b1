import { useMemo, useState } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import { api, ApiError } from '../../api/client';
import { Button, Dialog, ErrorBox, Field, StatusBadge } from '../../components/ui';
import { detectFormat, importQuery, parseRowField, previewRows, rowResults, summarize, type ImportFormat } from './importRows';
import type { ImportReport } from './types';

const csvExample = `name,addresses,via,port,username,tags,groups
web-1,10.0.0.11,relay-1,22,deploy,env=prod;role=web,web
db-1,10.0.0.21,relay-1,,postgres,env=prod;role=db,`;

/**
 * Import: paste or upload CSV or JSON, check it with a dry run that
 * lists every row's result, then import all-or-nothing or only the valid
 * rows. Nothing is written before the operator has seen the dry run.
 */
export function ImportDialog({ onClose }: { onClose: () => void }) {
  const [text, setText] = useState('');
  const [fileName, setFileName] = useState<string | undefined>();
  const [mode, setMode] = useState<'create' | 'upsert'>('create');
  const [checked, setChecked] = useState<{ report: ImportReport; text: string; mode: string } | null>(null);
  const [done, setDone] = useState<ImportReport | null>(null);
  const [busy, setBusy] = useState<'dry' | 'all' | 'partial' | null>(null);
  const [error, setError] = useState<unknown>(null);
  const qc = useQueryClient();
  const format: ImportFormat = detectFormat(text, fileName);
  const preview = useMemo(() => (checked ? previewRows(checked.text, format) : []), [checked, format]);
  const results = checked ? rowResults(done ?? checked.report, preview) : [];
  const stale = checked !== null && (checked.text !== text || checked.mode !== mode);

  const send = async (kind: 'dry' | 'all' | 'partial') => {
    setBusy(kind);
    setError(null);
    try {
      const path = `/api/v1/targets/import${importQuery({ dryRun: kind === 'dry', partial: kind === 'partial', mode })}`;
      const report = await api.post<ImportReport>(path, text, { headers: { 'Content-Type': format === 'csv' ? 'text/csv' : 'application/json' } });
      if (kind === 'dry') {
        setChecked({ report, text, mode });
        setDone(null);
      } else {
        setDone(report);
        await qc.invalidateQueries({ queryKey: ['targets'] });
      }
    } catch (e) {
      // An all-or-nothing import refused with rows[N].field problems: show
      // them on the rows, as a dry run would.
      if (e instanceof ApiError && checked && e.problem.details?.some((d) => d.field && parseRowField(d.field))) {
        const errors = e.problem.details.flatMap((d) => {
          const rf = d.field ? parseRowField(d.field) : null;
          return rf ? [{ row: rf.row, field: rf.field, message: d.message }] : [];
        });
        setChecked({ ...checked, report: { ...checked.report, errors, invalid: new Set(errors.map((x) => x.row)).size } });
      }
      setError(e);
    } finally {
      setBusy(null);
    }
  };
  const onFile = async (f: File | undefined) => {
    if (!f) return;
    setFileName(f.name);
    setText(await f.text());
    setChecked(null);
    setDone(null);
  };
  const report = done ?? checked?.report;

  return (
    <Dialog
      title="Import targets"
      open
      onClose={onClose}
      footer={
        done ? (
          <Button variant="primary" onClick={onClose}>Close</Button>
        ) : (
          <>
            <Button onClick={onClose}>Cancel</Button>
            <Button onClick={() => void send('dry')} busy={busy === 'dry'} disabled={!text.trim() || !!busy} variant={checked && !stale ? 'default' : 'primary'}>
              {checked ? 'Check again' : 'Check (dry run)'}
            </Button>
            {checked && !stale && checked.report.invalid > 0 && checked.report.valid > 0 && (
              <Button variant="primary" onClick={() => void send('partial')} busy={busy === 'partial'} disabled={!!busy}>
                Import {checked.report.valid} valid row{checked.report.valid === 1 ? '' : 's'}
              </Button>
            )}
            {checked && !stale && checked.report.invalid === 0 && (
              <Button variant="primary" onClick={() => void send('all')} busy={busy === 'all'} disabled={!!busy}>
                Import {checked.report.rows} row{checked.report.rows === 1 ? '' : 's'}
              </Button>
            )}
          </>
        )
      }
    >
      {!done && (
        <>
          <p className="muted" style={{ margin: 0 }}>
            CSV with a header row (name and addresses required; columns: name, addresses, connection, via, port, username,
            host_key, host_key_policy, tags, groups, owner, notes — lists separated by “;”, tags as k=v), or a JSON array of
            targets. A dry run checks every row first; nothing is written until you import.
          </p>
          <div style={{ display: 'flex', gap: 12, alignItems: 'flex-end', flexWrap: 'wrap' }}>
            <Field label="Upload a file">
              <input type="file" accept=".csv,.json,text/csv,application/json" onChange={(e) => void onFile(e.target.files?.[0])} aria-label="Import file" />
            </Field>
            <Field label="Existing names">
              <select value={mode} onChange={(e) => setMode(e.target.value as 'create' | 'upsert')} aria-label="Import mode">
                <option value="create">Refuse (every name must be new)</option>
                <option value="upsert">Replace the existing target</option>
              </select>
            </Field>
            <span className="muted">Format: {format.toUpperCase()}{fileName ? ` (${fileName})` : ''}</span>
          </div>
          <Field label="Or paste CSV or JSON">
            <textarea rows={8} value={text} onChange={(e) => { setText(e.target.value); setFileName(undefined); }} placeholder={csvExample} aria-label="Import data" spellCheck={false} />
          </Field>
        </>
      )}
      <ErrorBox error={error} />
      {report && (
        <div aria-live="polite">
          <p data-testid="import-summary"><strong>{summarize(report)}</strong>{stale && !done && <span className="muted"> The data changed since this check: check again before importing.</span>}</p>
          {report.errors_omitted ? <p className="muted">{report.errors_omitted} more problems are not listed.</p> : null}
          <div className="inv-import-rows">
            <table aria-label="Import rows">
              <thead>
                <tr><th>Row</th><th>Name</th><th>Address</th><th>Result</th></tr>
              </thead>
              <tbody>
                {results.map((r) => (
                  <tr key={r.row} className={r.ok ? '' : 'row-bad'} data-testid={`import-row-${r.row}`}>
                    <td>{r.row}</td>
                    <td>{r.name || <span className="muted">—</span>}</td>
                    <td className="mono">{r.address}</td>
                    <td>
                      {r.ok ? (
                        <StatusBadge status={done ? (done.written ? 'imported' : 'not written') : 'ok'} tone={done && !done.written ? 'idle' : 'ok'} />
                      ) : (
                        <>
                          <StatusBadge status={done?.written ? 'skipped' : 'error'} tone="bad" />
                          <ul style={{ margin: '2px 0 0', paddingLeft: 16 }}>
                            {r.errors.map((e, i) => (
                              <li key={i}>
                                Row {r.row}{e.field ? <>, column <code>{e.field}</code></> : null}: {e.message}
                              </li>
                            ))}
                          </ul>
                        </>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </div>
      )}
    </Dialog>
  );
}
