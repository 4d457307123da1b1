import { useState } from 'react';

/** Copies text to the clipboard and says so for two seconds. */
export function CopyButton({ text, label = 'Copy' }: { text: string; label?: string }) {
  const [state, setState] = useState<'idle' | 'copied' | 'failed'>('idle');
  return (
    <button
      type="button"
      className="btn"
      onClick={async () => {
        try {
          await navigator.clipboard.writeText(text);
          setState('copied');
        } catch {
          setState('failed');
        }
        window.setTimeout(() => setState('idle'), 2000);
      }}
    >
      {state === 'copied' ? 'Copied' : state === 'failed' ? 'Copy failed: select and copy' : label}
    </button>
  );
}

/** A secret or command shown once, selectable, with a copy button. */
export function SecretBlock({ value, label }: { value: string; label: string }) {
  return (
    <div className="secret-block">
      <pre aria-label={label} tabIndex={0}>{value}</pre>
      <CopyButton text={value} />
    </div>
  );
}
