import { describe, expect, it } from 'vitest';
import {
  addStep, connect, disconnect, emptyDoc, fromYaml, problemsByStep, removeSteps, renameStep, setJobKey, setStepKey,
  stepIndexOf, fieldWithinStep, toGraph, toYaml, updateStep, YamlError, type JobDoc,
} from './model';

const sample = `name: deploy
description: Roll out the web tier
params:
  - name: version
    type: string
    required: true
  - name: count
    type: integer
    default: 3
targets:
  names:
    - local
  tags:
    role: web
concurrency: queue
steps:
  - id: fetch
    uses: shell
    with:
      command: echo "fetch \${{ params.version }}"
      env:
        A: "1"
  - id: build
    name: Build it
    uses: shell
    with:
      script: |
        set -e
        make all
    needs:
      - fetch
    when: params.count > 1
    retries:
      count: 2
      backoff: 5s
    timeout: 10m
  - id: notify
    uses: http@1
    needs:
      - build
    on_failure: true
    continue_on_error: true
    x-extra: kept
`;

describe('YAML round trip', () => {
  it('canvas → YAML → canvas gives the same document, for a document built by the designer', () => {
    let doc: JobDoc = setJobKey(emptyDoc(), 'name', 'three');
    for (const uses of ['shell', 'shell', 'shell']) doc = addStep(doc, uses).doc;
    doc = connect(doc, 0, 1);
    doc = connect(doc, 1, 2);
    doc = updateStep(doc, 0, (s) => setStepKey(s, 'with', { command: 'echo one' }));
    doc = updateStep(doc, 1, (s) => setStepKey(s, 'timeout', '30s'));
    doc = updateStep(doc, 2, (s) => setStepKey(s, 'retries', { count: 1 }));
    const text = toYaml(doc);
    expect(fromYaml(text)).toEqual(doc);
    expect(toYaml(fromYaml(text))).toBe(text);
    expect(toGraph(fromYaml(text))).toEqual(toGraph(doc));
  });

  it('keeps every key, including ones the designer does not know, and their order', () => {
    const doc = fromYaml(sample);
    const again = fromYaml(toYaml(doc));
    expect(again).toEqual(doc);
    expect(Object.keys(again)).toEqual(['name', 'description', 'params', 'targets', 'concurrency', 'steps']);
    expect(again.steps[2]!['x-extra']).toBe('kept');
    expect(toYaml(again)).toBe(toYaml(doc));
  });

  it('keeps strings that look like other types as strings', () => {
    let doc = addStep(emptyDoc('j'), 'shell').doc;
    doc = updateStep(doc, 0, (s) => setStepKey(s, 'with', { command: '123', flag: 'true', n: 'null', y: 'yes', multi: 'a\nb\n' }));
    expect(fromYaml(toYaml(doc))).toEqual(doc);
  });

  it('keeps numbers, booleans, nested values and multi-line scripts exact', () => {
    const doc = fromYaml(sample);
    expect(doc.params![1]!.default).toBe(3);
    expect(doc.steps[1]!.with!.script).toBe('set -e\nmake all\n');
    expect(doc.steps[0]!.with!.env).toEqual({ A: '1' });
    expect(doc.steps[2]!.on_failure).toBe(true);
  });

  it('reads JSON too', () => {
    const doc = fromYaml('{"name":"j","steps":[{"id":"a","uses":"shell"}]}');
    expect(doc).toEqual({ name: 'j', steps: [{ id: 'a', uses: 'shell' }] });
  });

  it('reports parse errors with a line number', () => {
    try {
      fromYaml('name: j\nsteps:\n  - id: a\n   uses: shell\n');
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(YamlError);
      expect((e as YamlError).line).toBeGreaterThanOrEqual(3);
      expect((e as YamlError).message).toMatch(/^line \d+/);
    }
  });

  it('refuses shapes the canvas cannot draw, naming the line', () => {
    expect(() => fromYaml('- a\n- b\n')).toThrow(/mapping/);
    expect(() => fromYaml('name: j\nsteps: nope\n')).toThrow(/line 2.*steps must be a list/);
    expect(() => fromYaml('name: j\nsteps:\n  - 3\n')).toThrow(/steps\[0\] must be a mapping/);
    expect(() => fromYaml('name: a\nname: b\n')).toThrow(/line/);
  });

  it('treats an empty text as an empty job', () => {
    expect(fromYaml('')).toEqual({ steps: [] });
    expect(fromYaml('name: j\n')).toEqual({ name: 'j', steps: [] });
  });
});

describe('editing steps', () => {
  it('names new steps after their kind, without clashes', () => {
    let doc = emptyDoc('j');
    const ids: string[] = [];
    for (const u of ['shell', 'shell', 'http@1.2.0', 'Disk_Usage', '9lives']) {
      const r = addStep(doc, u);
      doc = r.doc;
      ids.push(r.id);
    }
    expect(ids).toEqual(['shell', 'shell-2', 'http', 'disk_usage', 'step-9lives']);
    expect(doc.steps[2]!.uses).toBe('http@1.2.0');
  });

  it('connects A→B as "B needs A" and refuses self-loops, duplicates and cycles', () => {
    let doc = emptyDoc('j');
    for (let i = 0; i < 3; i++) doc = addStep(doc, 'shell').doc;
    doc = connect(doc, 0, 1);
    expect(doc.steps[1]!.needs).toEqual(['shell']);
    expect(connect(doc, 0, 1)).toBe(doc);
    expect(connect(doc, 1, 1)).toBe(doc);
    doc = connect(doc, 1, 2);
    expect(connect(doc, 2, 0)).toBe(doc); // shell-3 → shell would close a cycle
    const g = toGraph(doc);
    expect(g.edges.map((e) => [e.source, e.target])).toEqual([['0', '1'], ['1', '2']]);
  });

  it('disconnecting removes the need and the key when it is the last one', () => {
    let doc = emptyDoc('j');
    for (let i = 0; i < 2; i++) doc = addStep(doc, 'shell').doc;
    doc = connect(doc, 0, 1);
    doc = disconnect(doc, 'shell', 1);
    expect(doc.steps[1]).toEqual({ id: 'shell-2', uses: 'shell' });
  });

  it('removing a step removes the needs that named it', () => {
    let doc = emptyDoc('j');
    for (let i = 0; i < 3; i++) doc = addStep(doc, 'shell').doc;
    doc = connect(doc, 0, 1);
    doc = connect(doc, 0, 2);
    doc = connect(doc, 1, 2);
    doc = removeSteps(doc, [0]);
    expect(doc.steps.map((s) => [s.id, s.needs])).toEqual([['shell-2', undefined], ['shell-3', ['shell-2']]]);
  });

  it('renaming a step renames the needs that name it', () => {
    let doc = emptyDoc('j');
    for (let i = 0; i < 2; i++) doc = addStep(doc, 'shell').doc;
    doc = connect(doc, 0, 1);
    doc = renameStep(doc, 0, 'fetch');
    expect(doc.steps[1]!.needs).toEqual(['fetch']);
  });

  it('adds keys in the usual order and drops empty ones', () => {
    let s = { id: 'a', uses: 'shell' } as JobDoc['steps'][number];
    s = setStepKey(s, 'timeout', '5s');
    s = setStepKey(s, 'with', { command: 'x' });
    s = setStepKey(s, 'name', 'A');
    expect(Object.keys(s)).toEqual(['id', 'name', 'uses', 'with', 'timeout']);
    s = setStepKey(s, 'name', '');
    s = setStepKey(s, 'on_failure', false);
    expect(Object.keys(s)).toEqual(['id', 'uses', 'with', 'timeout']);
  });

  it('draws no edge for a need that names no step (validation reports it)', () => {
    const doc = fromYaml('name: j\nsteps:\n  - id: a\n    uses: shell\n    needs: [ghost, a]\n');
    expect(toGraph(doc).edges).toEqual([]);
  });
});

describe('problems', () => {
  it('maps field paths to steps', () => {
    expect(stepIndexOf('steps[2].needs[0]')).toBe(2);
    expect(stepIndexOf('steps[10]')).toBe(10);
    expect(stepIndexOf('steps')).toBeUndefined();
    expect(stepIndexOf('targets')).toBeUndefined();
    expect(fieldWithinStep('steps[2].with.command')).toBe('with.command');
    const m = problemsByStep([
      { field: 'steps[1].uses', message: 'required' },
      { field: 'name', message: 'required' },
      { field: 'steps[1].needs[0]', message: 'unknown step "x"' },
    ]);
    expect(m.get(1)!.map((p) => p.field)).toEqual(['steps[1].uses', 'steps[1].needs[0]']);
    expect(m.get(-1)!.map((p) => p.field)).toEqual(['name']);
  });
});

describe('YAML round trip over generated documents', () => {
  // Seeded so that a failure can be replayed; the seed is in the test name.
  const seed = 20261127;
  it(`canvas → YAML → canvas is the identity (seed ${seed})`, () => {
    let s = seed;
    const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
    const pick = <T,>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)]!;
    const strings = ['', ' ', 'plain', 'a: b', '# not a comment', '- dash', 'yes', 'no', 'on', 'null', '~', '123', '1e3', '0x10', '.5',
      'true', '${{ params.x }}', 'line1\nline2', 'trailing\n', '  leading', 'tab\there', 'quote"s', "it's", 'ünïcødé ✓', '@at', '`tick`',
      '{braces}', '[list]', '*star', '&amp', '!bang', '%pct', '|pipe', '>gt', 'a #b', 'x\n\n\ny\n\n'];
    const value = (depth: number): unknown => {
      const r = rnd();
      if (depth > 2 || r < 0.45) return pick(strings);
      if (r < 0.55) return Math.floor(rnd() * 1000) - 500;
      if (r < 0.6) return rnd() * 100;
      if (r < 0.68) return rnd() < 0.5;
      if (r < 0.72) return null;
      if (r < 0.86) return Array.from({ length: Math.floor(rnd() * 4) }, () => value(depth + 1));
      return Object.fromEntries(Array.from({ length: Math.floor(rnd() * 4) }, () => [pick(strings) || 'k', value(depth + 1)]));
    };
    for (let n = 0; n < 200; n++) {
      let doc: JobDoc = setJobKey(emptyDoc(), 'name', pick(strings));
      const steps = Math.floor(rnd() * 6);
      for (let i = 0; i < steps; i++) {
        doc = addStep(doc, pick(['shell', 'http@1', 'noop'])).doc;
        const w: Record<string, unknown> = {};
        for (let k = 0; k < 3; k++) w[pick(strings) || 'k'] = value(0);
        doc = updateStep(doc, i, (st) => setStepKey(setStepKey(st, 'with', w), 'when', pick(strings)));
        if (i > 0 && rnd() < 0.7) doc = connect(doc, Math.floor(rnd() * i), i);
      }
      if (rnd() < 0.5) doc = setJobKey(doc, 'description', pick(strings));
      const text = toYaml(doc);
      const back = fromYaml(text);
      expect(back, text).toEqual(doc);
      expect(toYaml(back)).toBe(text);
      expect(toGraph(back)).toEqual(toGraph(doc));
    }
  });
});
