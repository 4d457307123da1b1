import { describe, expect, it } from 'vitest';
import { detectFormat, importQuery, parseCSV, parseRowField, previewRows, rowResults, summarize } from './importRows';
import type { ImportReport } from './types';

const report = (over: Partial<ImportReport>): ImportReport => ({
  mode: 'create', dry_run: true, partial: false, rows: 0, valid: 0, invalid: 0, created: 0, updated: 0, written: false, errors: [], ...over,
});

describe('parseCSV', () => {
  it('reads quoted cells holding commas, doubled quotes and line breaks', () => {
    expect(parseCSV('a,b\n"x, y","say ""hi""\nthere"\r\nlast,\n')).toEqual([
      ['a', 'b'],
      ['x, y', 'say "hi"\nthere'],
      ['last', ''],
    ]);
  });
  it('skips blank lines and a byte-order mark', () => {
    expect(parseCSV('\ufeffname\n\nweb-1\n\n')).toEqual([['name'], ['web-1']]);
  });
});

describe('previewRows', () => {
  it('numbers CSV rows from 1 after the header and finds the name and address columns', () => {
    const rows = previewRows('address,via,name\n10.0.0.1;10.0.0.2,r,web-1\n,r,bad\n', 'csv');
    expect(rows).toEqual([
      { row: 1, name: 'web-1', address: '10.0.0.1, 10.0.0.2' },
      { row: 2, name: 'bad', address: '' },
    ]);
  });
  it('reads a JSON array and tolerates rows that are not objects', () => {
    expect(previewRows('[{"name":"a","addresses":["1.1.1.1"]}, 7]', 'json')).toEqual([
      { row: 1, name: 'a', address: '1.1.1.1' },
      { row: 2, name: '', address: '' },
    ]);
  });
  it('gives nothing for JSON that does not parse (the server says why)', () => {
    expect(previewRows('[{', 'json')).toEqual([]);
  });
});

describe('rowResults', () => {
  it('lists every row once, in order, with all of its problems', () => {
    const preview = previewRows('name,addresses\na,1.1.1.1\nb,\nc,3.3.3.3\n', 'csv');
    const res = rowResults(report({ rows: 3, valid: 1, invalid: 2, errors: [
      { row: 2, field: 'addresses', message: 'at least one address' },
      { row: 3, field: 'via', message: 'is required' },
      { row: 2, field: 'via', message: 'is required' },
    ] }), preview);
    expect(res.map((r) => [r.row, r.name, r.ok, r.errors.map((e) => e.field)])).toEqual([
      [1, 'a', true, []],
      [2, 'b', false, ['addresses', 'via']],
      [3, 'c', false, ['via']],
    ]);
  });
  it('keeps rows the server counted that the preview could not read', () => {
    const res = rowResults(report({ rows: 2, errors: [{ row: 2, field: '', message: 'must be a JSON object' }] }), []);
    expect(res).toHaveLength(2);
    expect(res[1]).toMatchObject({ row: 2, ok: false, name: '' });
  });
});

describe('detectFormat', () => {
  it('prefers the file name, then the first character', () => {
    expect(detectFormat('[]', 'x.csv')).toBe('csv');
    expect(detectFormat('name', 'x.JSON')).toBe('json');
    expect(detectFormat('  [{"name":"a"}]')).toBe('json');
    expect(detectFormat('name,addresses')).toBe('csv');
  });
});

describe('parseRowField', () => {
  it('reads the row and column of a refusal field path', () => {
    expect(parseRowField('rows[12].connection.port')).toEqual({ row: 12, field: 'connection.port' });
    expect(parseRowField('rows[3]')).toEqual({ row: 3, field: '' });
    expect(parseRowField('header[0]')).toBeNull();
  });
});

describe('importQuery and summarize', () => {
  it('builds the query string for each choice', () => {
    expect(importQuery({ dryRun: true, partial: false, mode: 'create' })).toBe('?dry_run=true&mode=create');
    expect(importQuery({ dryRun: false, partial: true, mode: 'upsert' })).toBe('?partial=true&mode=upsert');
  });
  it('says what a dry run found and what an import wrote', () => {
    expect(summarize(report({ rows: 3, valid: 2, invalid: 1 }))).toBe('Dry run: 2 of 3 rows valid, 1 with problems. Nothing was written yet.');
    expect(summarize(report({ rows: 1, valid: 1 }))).toBe('Dry run: all 1 row are valid. Nothing was written yet.');
    expect(summarize(report({ dry_run: false, written: true, rows: 3, valid: 2, invalid: 1, created: 2 }))).toBe('Imported: 2 created, 1 skipped with problems.');
  });
});
