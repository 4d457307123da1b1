import { afterEach, describe, expect, it } from 'vitest';
import { autoLayout, completePositions, loadPositions, nodeHeight, savePositions } from './layout';
import { fromYaml } from './model';

const doc = fromYaml(`name: j
steps:
  - {id: c, uses: shell, needs: [a, b]}
  - {id: a, uses: shell}
  - {id: b, uses: shell, needs: [a]}
  - {id: d, uses: shell}
`);

afterEach(() => localStorage.clear());

describe('layout', () => {
  it('lays needs out above the steps that need them, without overlaps', () => {
    const p = autoLayout(doc);
    expect(Object.keys(p).sort()).toEqual(['a', 'b', 'c', 'd']);
    expect(p.a!.y).toBeLessThan(p.b!.y);
    expect(p.b!.y).toBeLessThan(p.c!.y);
    const boxes = Object.values(p);
    for (let i = 0; i < boxes.length; i++) {
      for (let j = i + 1; j < boxes.length; j++) {
        const [u, v] = [boxes[i]!, boxes[j]!];
        expect(Math.abs(u.x - v.x) >= 200 || Math.abs(u.y - v.y) >= nodeHeight).toBe(true);
      }
    }
  });

  it('keeps stored positions and puts new steps below them', () => {
    const stored = { a: { x: 5, y: 10 }, b: { x: 5, y: 300 }, c: { x: 400, y: 50 } };
    const p = completePositions(doc, stored);
    expect(p.a).toEqual({ x: 5, y: 10 });
    expect(p.d!.y).toBeGreaterThan(300);
    expect(completePositions(doc, p)).toBe(p);
  });

  it('lays everything out when nothing is stored', () => {
    expect(completePositions(doc, {})).toEqual(autoLayout(doc));
  });

  it('stores positions per job', () => {
    savePositions('deploy', { a: { x: 1, y: 2 } });
    expect(loadPositions('deploy')).toEqual({ a: { x: 1, y: 2 } });
    expect(loadPositions('other')).toEqual({});
    localStorage.setItem('opsconductor.designer.layout.broken', '{');
    expect(loadPositions('broken')).toEqual({});
  });
});
