// Undo/redo over whole document states. Documents are immutable values, so
// a history is a list of them; typing into one field coalesces into one
// entry (same key within the window) so that undo does not go a letter at
// a time.

export interface History<T> {
  past: T[];
  present: T;
  future: T[];
  /** Key and time of the last push, for coalescing. */
  lastKey?: string;
  lastAt?: number;
}

export const historyLimit = 200;
export const coalesceMs = 1000;

export function createHistory<T>(present: T): History<T> {
  return { past: [], present, future: [] };
}

/**
 * Records a new present. A push with the same key as the previous one
 * within coalesceMs replaces the present instead of adding an entry.
 */
export function push<T>(h: History<T>, next: T, key?: string, now = Date.now()): History<T> {
  if (Object.is(next, h.present)) return h;
  if (key !== undefined && key === h.lastKey && h.lastAt !== undefined && now - h.lastAt < coalesceMs) {
    return { ...h, present: next, future: [], lastAt: now };
  }
  const past = [...h.past, h.present];
  if (past.length > historyLimit) past.splice(0, past.length - historyLimit);
  return { past, present: next, future: [], lastKey: key, lastAt: now };
}

export function undo<T>(h: History<T>): History<T> {
  const prev = h.past[h.past.length - 1];
  if (h.past.length === 0) return h;
  return { past: h.past.slice(0, -1), present: prev as T, future: [h.present, ...h.future] };
}

export function redo<T>(h: History<T>): History<T> {
  if (h.future.length === 0) return h;
  const [next, ...rest] = h.future;
  return { past: [...h.past, h.present], present: next as T, future: rest };
}

export const canUndo = <T>(h: History<T>) => h.past.length > 0;
export const canRedo = <T>(h: History<T>) => h.future.length > 0;
