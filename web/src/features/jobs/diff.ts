// A line diff of two texts by longest common subsequence: small and exact,
// which is all that comparing two versions of a job definition needs
// (definitions are at most a few thousand lines).

export type DiffOp =
  | { op: 'eq'; text: string; a: number; b: number }
  | { op: 'del'; text: string; a: number }
  | { op: 'add'; text: string; b: number };

function lines(text: string): string[] {
  if (text === '') return [];
  const l = text.split('\n');
  if (l[l.length - 1] === '') l.pop();
  return l;
}

/** Line numbers (a, b) are 1-based. */
export function diffLines(aText: string, bText: string): DiffOp[] {
  const a = lines(aText);
  const b = lines(bText);
  // Trim the common head and tail first: versions usually differ in a few lines.
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
    endA--;
    endB--;
  }
  const n = endA - start;
  const m = endB - start;
  // lcs[i][j]: LCS length of a[start+i..endA) and b[start+j..endB).
  const lcs: Uint32Array[] = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    const row = lcs[i]!;
    const below = lcs[i + 1]!;
    for (let j = m - 1; j >= 0; j--) {
      row[j] = a[start + i] === b[start + j] ? below[j + 1]! + 1 : Math.max(below[j]!, row[j + 1]!);
    }
  }
  const out: DiffOp[] = [];
  for (let k = 0; k < start; k++) out.push({ op: 'eq', text: a[k]!, a: k + 1, b: k + 1 });
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[start + i] === b[start + j]) {
      out.push({ op: 'eq', text: a[start + i]!, a: start + i + 1, b: start + j + 1 });
      i++;
      j++;
    } else if (i < n && (j === m || lcs[i + 1]![j]! >= lcs[i]![j + 1]!)) {
      // Removals before additions, so a changed line reads old then new.
      out.push({ op: 'del', text: a[start + i]!, a: start + i + 1 });
      i++;
    } else {
      out.push({ op: 'add', text: b[start + j]!, b: start + j + 1 });
      j++;
    }
  }
  for (let k = 0; k < a.length - endA; k++) out.push({ op: 'eq', text: a[endA + k]!, a: endA + k + 1, b: endB + k + 1 });
  return out;
}

/** Counts of added and removed lines. */
export function diffStats(ops: DiffOp[]): { added: number; removed: number } {
  let added = 0;
  let removed = 0;
  for (const o of ops) {
    if (o.op === 'add') added++;
    else if (o.op === 'del') removed++;
  }
  return { added, removed };
}
