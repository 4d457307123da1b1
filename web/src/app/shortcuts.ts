import { useEffect, useRef } from 'react';
import { sections } from './nav';

// Keyboard navigation: "g" then a section key jumps to that section, "/"
// focuses the page's search box, "?" opens the shortcut help. Keys typed
// into a form field are left alone.

/** How long after "g" the section key may follow. */
export const chordTimeoutMs = 1500;

export type ShortcutAction =
  | { kind: 'go'; path: string }
  | { kind: 'search' }
  | { kind: 'help' }
  | { kind: 'pending' }
  | { kind: 'none' };

export interface KeyInput {
  key: string;
  ctrlKey?: boolean;
  metaKey?: boolean;
  altKey?: boolean;
  /** The event happened in a text field, select or contentEditable. */
  inField?: boolean;
}

/**
 * What a key press means, given when "g" was last pressed (null if it was
 * not). Pure, so that the rules are tested without a DOM.
 */
export function interpretKey(k: KeyInput, gPressedAt: number | null, now: number): ShortcutAction {
  if (k.inField || k.ctrlKey || k.metaKey || k.altKey) return { kind: 'none' };
  if (gPressedAt !== null && now - gPressedAt <= chordTimeoutMs) {
    const s = sections.find((x) => x.key === k.key.toLowerCase());
    return s ? { kind: 'go', path: s.path } : { kind: 'none' };
  }
  if (k.key === 'g') return { kind: 'pending' };
  if (k.key === '/') return { kind: 'search' };
  if (k.key === '?') return { kind: 'help' };
  return { kind: 'none' };
}

export function isEditable(t: EventTarget | null): boolean {
  if (!(t instanceof HTMLElement)) return false;
  if (t.isContentEditable) return true;
  const tag = t.tagName;
  if (tag === 'TEXTAREA' || tag === 'SELECT') return true;
  if (tag === 'INPUT') {
    const type = (t as HTMLInputElement).type;
    return !['button', 'checkbox', 'radio', 'submit', 'reset'].includes(type);
  }
  return false;
}

/** The page's search box: one marked data-page-search, else the first search input. */
export function findSearchBox(root: ParentNode = document): HTMLElement | null {
  return root.querySelector<HTMLElement>('[data-page-search]') ?? root.querySelector<HTMLElement>('main input[type="search"]');
}

export function useShortcuts(handlers: { go: (path: string) => void; help: () => void; allowed: (path: string) => boolean }) {
  const h = useRef(handlers);
  h.current = handlers;
  useEffect(() => {
    let gAt: number | null = null;
    const onKey = (e: KeyboardEvent) => {
      // Ignore keys while a modal dialog is open: it handles its own.
      if (document.querySelector('[role="dialog"][aria-modal="true"]')) return;
      const a = interpretKey({ key: e.key, ctrlKey: e.ctrlKey, metaKey: e.metaKey, altKey: e.altKey, inField: isEditable(e.target) }, gAt, Date.now());
      gAt = a.kind === 'pending' ? Date.now() : null;
      switch (a.kind) {
        case 'go':
          if (h.current.allowed(a.path)) {
            e.preventDefault();
            h.current.go(a.path);
          }
          break;
        case 'search': {
          const box = findSearchBox();
          if (box) {
            e.preventDefault();
            box.focus();
          }
          break;
        }
        case 'help':
          e.preventDefault();
          h.current.help();
          break;
      }
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, []);
}
