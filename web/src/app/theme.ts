import { useEffect, useSyncExternalStore } from 'react';

// The colour theme: the system's by default, or the one the user picked.
// The choice is a display preference, not a secret, so localStorage is
// fine for it.

export type ThemePref = 'system' | 'light' | 'dark';
const storageKey = 'opsconductor.theme';
const listeners = new Set<() => void>();

function readPref(): ThemePref {
  try {
    const v = localStorage.getItem(storageKey);
    return v === 'light' || v === 'dark' ? v : 'system';
  } catch {
    return 'system';
  }
}

let current: ThemePref = typeof localStorage === 'undefined' ? 'system' : readPref();

export function setThemePref(p: ThemePref) {
  current = p;
  try {
    if (p === 'system') localStorage.removeItem(storageKey);
    else localStorage.setItem(storageKey, p);
  } catch {
    /* storage disabled: the choice lasts for this page only */
  }
  applyTheme();
  listeners.forEach((l) => l());
}

function systemDark(): boolean {
  return typeof matchMedia === 'function' && matchMedia('(prefers-color-scheme: dark)').matches;
}

export function resolvedTheme(p: ThemePref = current): 'light' | 'dark' {
  return p === 'system' ? (systemDark() ? 'dark' : 'light') : p;
}

/** Sets data-theme on <html>; called at start-up and on every change. */
export function applyTheme() {
  document.documentElement.dataset.theme = resolvedTheme();
}

/** The preference and its resolved theme; follows the system's changes. */
export function useTheme(): { pref: ThemePref; theme: 'light' | 'dark'; setPref: (p: ThemePref) => void } {
  const pref = useSyncExternalStore(
    (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    () => current,
  );
  useEffect(() => {
    if (pref !== 'system' || typeof matchMedia !== 'function') return;
    const mq = matchMedia('(prefers-color-scheme: dark)');
    const on = () => {
      applyTheme();
      listeners.forEach((l) => l());
    };
    mq.addEventListener('change', on);
    return () => mq.removeEventListener('change', on);
  }, [pref]);
  return { pref, theme: resolvedTheme(pref), setPref: setThemePref };
}
