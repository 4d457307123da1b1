// Turning an import file and the server's report into one line per row.
// The server numbers rows from 1 (a CSV header is not a row) and names a
// CSV column or a JSON field; the preview here only reads each row's name
// and address so that an error can be shown next to what it is about. The
// server stays the judge of validity.

import type { ProblemDetail } from '../../api/client';
import type { ImportReport, RowError } from './types';

export type ImportFormat = 'csv' | 'json';

/** Guesses the format from a file name, then from the first character. */
export function detectFormat(text: string, fileName?: string): ImportFormat {
  const n = fileName?.toLowerCase() ?? '';
  if (n.endsWith('.json')) return 'json';
  if (n.endsWith('.csv')) return 'csv';
  const first = text.trimStart()[0];
  return first === '[' || first === '{' ? 'json' : 'csv';
}

/**
 * Splits CSV text into records (RFC 4180: quoted cells may hold commas,
 * doubled quotes and line breaks). Blank lines are skipped, as Go's
 * encoding/csv does.
 */
export function parseCSV(text: string): string[][] {
  const out: string[][] = [];
  let rec: string[] = [];
  let cell = '';
  let quoted = false;
  let any = false;
  const s = text.replace(/^\ufeff/, '');
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (quoted) {
      if (c === '"') {
        if (s[i + 1] === '"') {
          cell += '"';
          i++;
        } else quoted = false;
      } else cell += c;
      continue;
    }
    if (c === '"') {
      quoted = true;
      any = true;
    } else if (c === ',') {
      rec.push(cell);
      cell = '';
      any = true;
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && s[i + 1] === '\n') i++;
      if (any || cell !== '') {
        rec.push(cell);
        out.push(rec);
      }
      rec = [];
      cell = '';
      any = false;
    } else {
      cell += c;
      any = true;
    }
  }
  if (any || cell !== '') {
    rec.push(cell);
    out.push(rec);
  }
  return out;
}

/** What the preview shows of one row of the file. */
export interface RowPreview {
  row: number;
  name: string;
  address: string;
}

/** Reads each row's name and address; [] when the file does not parse (the server will say why). */
export function previewRows(text: string, format: ImportFormat): RowPreview[] {
  if (format === 'json') {
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch {
      return [];
    }
    if (!Array.isArray(data)) return [];
    return data.map((item, i) => {
      const o = (item && typeof item === 'object' ? item : {}) as Record<string, unknown>;
      const addrs = o.addresses;
      return {
        row: i + 1,
        name: typeof o.name === 'string' ? o.name : '',
        address: Array.isArray(addrs) ? addrs.filter((a) => typeof a === 'string').join(', ') : '',
      };
    });
  }
  const recs = parseCSV(text);
  const header = recs[0]?.map((h) => h.trim().toLowerCase()) ?? [];
  const ni = header.indexOf('name');
  let ai = header.indexOf('addresses');
  if (ai < 0) ai = header.indexOf('address');
  return recs.slice(1).map((r, i) => ({
    row: i + 1,
    name: ni >= 0 ? (r[ni] ?? '') : '',
    address: ai >= 0 ? (r[ai] ?? '').split(';').join(', ') : '',
  }));
}

/** One line of the result table. */
export interface RowResult extends RowPreview {
  ok: boolean;
  errors: RowError[];
}

/**
 * Joins the preview with the server's errors: every row of the report
 * appears once, in order, ok or with each of its problems. Rows the
 * server counted but the preview could not read still appear (by number).
 */
export function rowResults(report: ImportReport, preview: RowPreview[]): RowResult[] {
  const byRow = new Map<number, RowError[]>();
  for (const e of report.errors) {
    const list = byRow.get(e.row) ?? [];
    list.push(e);
    byRow.set(e.row, list);
  }
  const n = Math.max(report.rows, preview.length);
  const out: RowResult[] = [];
  for (let row = 1; row <= n; row++) {
    const p = preview[row - 1] ?? { row, name: '', address: '' };
    const errors = byRow.get(row) ?? [];
    out.push({ ...p, row, ok: errors.length === 0, errors });
  }
  return out;
}

/** The problems a file-level refusal names (a bad header, broken quoting). */
export function fileProblems(problem: ProblemDetail): { field: string; message: string }[] {
  const list = problem.details?.length ? problem.details : [problem];
  return list.map((d) => ({ field: d.field ?? '', message: d.message }));
}

/**
 * Reads "rows[3].addresses" (the field path of an all-or-nothing refusal)
 * as row 3, field addresses; null for any other path.
 */
export function parseRowField(path: string): { row: number; field: string } | null {
  const m = /^rows\[(\d+)\](?:\.(.+))?$/.exec(path);
  if (!m) return null;
  return { row: Number(m[1]), field: m[2] ?? '' };
}

/** The import's query string for the chosen options. */
export function importQuery(opts: { dryRun: boolean; partial: boolean; mode: 'create' | 'upsert' }): string {
  const p = new URLSearchParams();
  if (opts.dryRun) p.set('dry_run', 'true');
  if (opts.partial) p.set('partial', 'true');
  p.set('mode', opts.mode);
  return `?${p.toString()}`;
}

/** A one-sentence summary of a report. */
export function summarize(r: ImportReport): string {
  const rows = `${r.rows} row${r.rows === 1 ? '' : 's'}`;
  if (r.dry_run) {
    return r.invalid === 0
      ? `Dry run: all ${rows} are valid. Nothing was written yet.`
      : `Dry run: ${r.valid} of ${rows} valid, ${r.invalid} with problems. Nothing was written yet.`;
  }
  if (!r.written) return `Nothing was written: ${r.invalid} of ${rows} have problems.`;
  const parts = [`${r.created} created`];
  if (r.updated) parts.push(`${r.updated} updated`);
  if (r.invalid) parts.push(`${r.invalid} skipped with problems`);
  return `Imported: ${parts.join(', ')}.`;
}
