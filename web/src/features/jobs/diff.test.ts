import { describe, expect, it } from 'vitest';
import { diffLines, diffStats, type DiffOp } from './diff';

// Rebuilds both sides from the ops: a diff is right when it yields them.
function sides(ops: DiffOp[]) {
  const a: string[] = [];
  const b: string[] = [];
  for (const o of ops) {
    if (o.op !== 'add') a.push(o.text);
    if (o.op !== 'del') b.push(o.text);
  }
  return { a: a.join('\n'), b: b.join('\n') };
}

describe('diffLines', () => {
  it('finds nothing to change between equal texts', () => {
    const ops = diffLines('a\nb\n', 'a\nb\n');
    expect(ops.every((o) => o.op === 'eq')).toBe(true);
    expect(diffStats(ops)).toEqual({ added: 0, removed: 0 });
  });

  it('marks a changed line as one removal and one addition, with line numbers', () => {
    const ops = diffLines('name: j\ntimeout: 5s\nsteps: []\n', 'name: j\ntimeout: 10s\nsteps: []\n');
    expect(ops).toEqual([
      { op: 'eq', text: 'name: j', a: 1, b: 1 },
      { op: 'del', text: 'timeout: 5s', a: 2 },
      { op: 'add', text: 'timeout: 10s', b: 2 },
      { op: 'eq', text: 'steps: []', a: 3, b: 3 },
    ]);
  });

  it('is minimal: the unchanged lines are a longest common subsequence', () => {
    const a = 'a\nb\nc\nd\ne\nf';
    const b = 'b\nc\nx\ne\nf\ng';
    const ops = diffLines(a, b);
    expect(ops.filter((o) => o.op === 'eq').map((o) => o.text)).toEqual(['b', 'c', 'e', 'f']);
    expect(diffStats(ops)).toEqual({ added: 2, removed: 2 });
    expect(sides(ops)).toEqual({ a, b });
  });

  it('handles empty sides', () => {
    expect(diffLines('', 'x\ny')).toEqual([{ op: 'add', text: 'x', b: 1 }, { op: 'add', text: 'y', b: 2 }]);
    expect(diffLines('x', '')).toEqual([{ op: 'del', text: 'x', a: 1 }]);
    expect(diffLines('', '')).toEqual([]);
  });

  it('reproduces both sides for random texts', () => {
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
    for (let t = 0; t < 50; t++) {
      const mk = () => Array.from({ length: Math.floor(rnd() * 20) }, () => 'abcde'[Math.floor(rnd() * 5)]).join('\n');
      const a = mk();
      const b = mk();
      expect(sides(diffLines(a, b))).toEqual({ a, b });
    }
  });
});
