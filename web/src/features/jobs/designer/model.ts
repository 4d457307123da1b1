// The designer's document model: a job definition as plain data, exactly
// as it reads in YAML. The canvas, the side panel and the YAML tab are all
// views of one JobDoc; nothing about the canvas (positions, selection) is
// kept in it, so saving sends only what the author wrote.
import YAML from 'yaml';

export interface ParamDoc {
  name: string;
  type?: string;
  description?: string;
  default?: unknown;
  required?: boolean;
  pattern?: string;
  min?: number;
  max?: number;
  enum?: unknown[];
  secret?: boolean;
  [key: string]: unknown;
}

export interface TargetsDoc {
  names?: string[];
  tags?: Record<string, string>;
  groups?: string[];
  selector?: string;
  all?: boolean;
  [key: string]: unknown;
}

export interface StepDoc {
  id: string;
  name?: string;
  uses: string;
  with?: Record<string, unknown>;
  needs?: string[];
  when?: string;
  on_failure?: boolean;
  continue_on_error?: boolean;
  idempotent?: boolean;
  retries?: { count?: number; backoff?: string; [key: string]: unknown };
  timeout?: string;
  credentials?: string[];
  [key: string]: unknown;
}

export interface JobDoc {
  name?: string;
  description?: string;
  params?: ParamDoc[];
  targets?: TargetsDoc;
  concurrency?: string;
  timeout?: string;
  credentials?: string[];
  steps: StepDoc[];
  [key: string]: unknown;
}

export function emptyDoc(name = ''): JobDoc {
  return name ? { name, steps: [] } : { name: '', steps: [] };
}

/** The order keys are written in when the designer adds them. */
const stepKeyOrder = ['id', 'name', 'uses', 'with', 'needs', 'when', 'retries', 'timeout', 'on_failure', 'continue_on_error', 'idempotent', 'credentials'];
const jobKeyOrder = ['name', 'description', 'params', 'targets', 'rollout', 'concurrency', 'timeout', 'credentials', 'steps'];

/** Puts known keys in their usual order, unknown ones after, keeping their order. */
function ordered<T extends Record<string, unknown>>(obj: T, order: string[]): T {
  const out: Record<string, unknown> = {};
  for (const k of order) if (k in obj) out[k] = obj[k];
  for (const k of Object.keys(obj)) if (!(k in out)) out[k] = obj[k];
  return out as T;
}

/** Sets (or, for undefined/empty values, removes) one key, keeping key order. */
export function setKey<T extends Record<string, unknown>>(obj: T, key: string, value: unknown, order: string[]): T {
  const next: Record<string, unknown> = { ...obj };
  const empty = value === undefined || value === '' || value === false || (Array.isArray(value) && value.length === 0) ||
    (typeof value === 'object' && value !== null && !Array.isArray(value) && Object.keys(value).length === 0);
  if (empty) {
    delete next[key];
    return next as T;
  }
  const had = key in obj;
  next[key] = value;
  return (had ? next : ordered(next, order)) as T;
}

export function setStepKey(step: StepDoc, key: string, value: unknown): StepDoc {
  return setKey(step, key, value, stepKeyOrder);
}

export function setJobKey(doc: JobDoc, key: string, value: unknown): JobDoc {
  if (key === 'steps') return { ...doc, steps: value as StepDoc[] };
  if (key === 'name') {
    // name stays even when empty: it is the first thing a new job asks for.
    const next = { ...doc, name: value as string };
    return ordered(next, jobKeyOrder);
  }
  return setKey(doc, key, value, jobKeyOrder);
}

// ---- YAML ----

export class YamlError extends Error {
  readonly line?: number;
  readonly col?: number;
  constructor(message: string, line?: number, col?: number) {
    super(line ? `line ${line}${col ? `, column ${col}` : ''}: ${message}` : message);
    this.line = line;
    this.col = col;
  }
}

/** Writes a document as YAML: block style, keys in the document's order. */
export function toYaml(doc: JobDoc): string {
  return YAML.stringify(doc, { lineWidth: 0, aliasDuplicateObjects: false });
}

/**
 * Reads YAML (or JSON, which is YAML) into a document. Only the shape the
 * canvas needs is checked here (a mapping with a list of steps, each a
 * mapping); everything else is the server's to judge.
 */
export function fromYaml(text: string): JobDoc {
  const parsed = YAML.parseDocument(text, { prettyErrors: false, uniqueKeys: true });
  if (parsed.errors.length > 0) {
    const e = parsed.errors[0]!;
    const { line, col } = lineCol(text, e.pos[0]);
    throw new YamlError(e.message.split('\n')[0] ?? e.message, line, col);
  }
  const value: unknown = parsed.toJS({ maxAliasCount: 100 });
  if (value === null || value === undefined) return { steps: [] };
  if (typeof value !== 'object' || Array.isArray(value)) throw new YamlError('a job definition is a mapping (name: …, steps: …)', 1);
  const doc = value as JobDoc;
  if (doc.steps === undefined || doc.steps === null) {
    doc.steps = [];
  } else if (!Array.isArray(doc.steps)) {
    throw new YamlError('steps must be a list', lineOfKey(parsed, text, ['steps']));
  } else {
    doc.steps.forEach((s, i) => {
      if (typeof s !== 'object' || s === null || Array.isArray(s)) throw new YamlError(`steps[${i}] must be a mapping (id: …, uses: …)`, lineOfKey(parsed, text, ['steps', i]));
    });
  }
  return doc;
}

function lineCol(text: string, offset: number): { line: number; col: number } {
  const before = text.slice(0, offset).split('\n');
  return { line: before.length, col: (before[before.length - 1]?.length ?? 0) + 1 };
}

function lineOfKey(doc: YAML.Document, text: string, path: (string | number)[]): number | undefined {
  const node = doc.getIn(path, true) as { range?: [number, number, number] } | undefined;
  if (!node?.range) return undefined;
  return lineCol(text, node.range[0]).line;
}

// ---- steps ----

const stepIdRE = /^[a-z][a-z0-9_-]{0,62}$/;

/** A step ID for a new step of this kind, unused in the document. */
export function newStepId(doc: JobDoc, uses: string): string {
  let base = (uses.split('@')[0] ?? 'step').toLowerCase().replace(/[^a-z0-9_-]/g, '-');
  if (!/^[a-z]/.test(base)) base = `step-${base}`;
  base = base.slice(0, 56);
  const taken = new Set(doc.steps.map((s) => s.id));
  if (!taken.has(base)) return base;
  for (let n = 2; ; n++) if (!taken.has(`${base}-${n}`)) return `${base}-${n}`;
}

export function isValidStepId(id: string): boolean {
  return stepIdRE.test(id);
}

export function addStep(doc: JobDoc, uses: string, withValues?: Record<string, unknown>): { doc: JobDoc; id: string } {
  const id = newStepId(doc, uses);
  const step: StepDoc = withValues && Object.keys(withValues).length ? { id, uses, with: withValues } : { id, uses };
  return { doc: { ...doc, steps: [...doc.steps, step] }, id };
}

/** Removes steps (by index) and every need that named them. */
export function removeSteps(doc: JobDoc, indexes: number[]): JobDoc {
  const drop = new Set(indexes);
  const gone = new Set(doc.steps.filter((_, i) => drop.has(i)).map((s) => s.id));
  const steps = doc.steps
    .filter((_, i) => !drop.has(i))
    .map((s) => (s.needs?.some((n) => gone.has(n)) ? setStepKey(s, 'needs', s.needs.filter((n) => !gone.has(n))) : s));
  return { ...doc, steps };
}

export function updateStep(doc: JobDoc, index: number, fn: (s: StepDoc) => StepDoc): JobDoc {
  const steps = doc.steps.slice();
  const cur = steps[index];
  if (!cur) return doc;
  steps[index] = fn(cur);
  return { ...doc, steps };
}

/** Renames a step and the needs that name it. */
export function renameStep(doc: JobDoc, index: number, id: string): JobDoc {
  const old = doc.steps[index]?.id;
  if (old === undefined || old === id) return doc;
  const steps = doc.steps.map((s, i) => {
    if (i === index) return { ...s, id };
    if (old !== '' && s.needs?.includes(old)) return { ...s, needs: s.needs.map((n) => (n === old ? id : n)) };
    return s;
  });
  return { ...doc, steps };
}

/** Adds "target needs source"; false-y when it is already there or would be a self-loop. */
export function connect(doc: JobDoc, sourceIndex: number, targetIndex: number): JobDoc {
  const src = doc.steps[sourceIndex];
  const dst = doc.steps[targetIndex];
  if (!src || !dst || sourceIndex === targetIndex) return doc;
  if (dst.needs?.includes(src.id)) return doc;
  if (reaches(doc, targetIndex, sourceIndex)) return doc; // would close a cycle
  return updateStep(doc, targetIndex, (s) => setStepKey(s, 'needs', [...(s.needs ?? []), src.id]));
}

/** Whether step `to` (transitively) needs step `from`. */
function reaches(doc: JobDoc, from: number, to: number): boolean {
  const fromId = doc.steps[from]?.id;
  const seen = new Set<number>();
  const stack = [to];
  while (stack.length) {
    const i = stack.pop()!;
    if (seen.has(i)) continue;
    seen.add(i);
    const s = doc.steps[i];
    if (!s) continue;
    for (const n of s.needs ?? []) {
      if (n === fromId) return true;
      const j = doc.steps.findIndex((x) => x.id === n);
      if (j >= 0) stack.push(j);
    }
  }
  return false;
}

export function disconnect(doc: JobDoc, sourceId: string, targetIndex: number): JobDoc {
  return updateStep(doc, targetIndex, (s) => setStepKey(s, 'needs', (s.needs ?? []).filter((n) => n !== sourceId)));
}

// ---- graph ----

export interface GraphNode {
  /** The step's index in doc.steps, as a string: React Flow wants string IDs. */
  id: string;
  index: number;
  step: StepDoc;
}
export interface GraphEdge {
  id: string;
  source: string;
  target: string;
  /** The need this edge draws. */
  need: string;
}

/** The canvas graph: a node per step, an edge A→B for each "B needs A". */
export function toGraph(doc: JobDoc): { nodes: GraphNode[]; edges: GraphEdge[] } {
  const byId = new Map<string, number>();
  doc.steps.forEach((s, i) => {
    if (!byId.has(s.id)) byId.set(s.id, i);
  });
  const nodes = doc.steps.map((step, index) => ({ id: String(index), index, step }));
  const edges: GraphEdge[] = [];
  doc.steps.forEach((s, i) => {
    for (const n of s.needs ?? []) {
      const j = byId.get(n);
      if (j === undefined || j === i) continue;
      edges.push({ id: `${j}->${i}:${n}`, source: String(j), target: String(i), need: n });
    }
  });
  return { nodes, edges };
}

// ---- problems ----

export interface Problem {
  field: string;
  message: string;
}

/** Maps a problem's field path to the step it is about ("steps[2].needs[0]" → 2). */
export function stepIndexOf(field: string): number | undefined {
  const m = /^steps\[(\d+)\]/.exec(field);
  return m ? Number(m[1]) : undefined;
}

/** Groups problems by step index; problems about the job as a whole go under -1. */
export function problemsByStep(problems: Problem[]): Map<number, Problem[]> {
  const out = new Map<number, Problem[]>();
  for (const p of problems) {
    const i = stepIndexOf(p.field) ?? -1;
    const list = out.get(i) ?? [];
    list.push(p);
    out.set(i, list);
  }
  return out;
}

/** The part of a field path below the step ("steps[2].with.command" → "with.command"). */
export function fieldWithinStep(field: string): string {
  return field.replace(/^steps\[\d+\]\.?/, '');
}
