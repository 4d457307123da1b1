// A small ANSI escape parser for log lines. It understands SGR (colours:
// the 16 named ones, the 256-colour palette and 24-bit truecolour, for
// foreground and background; bold, dim, italic, underline, inverse and
// their resets) and strips every other escape sequence (cursor movement,
// OSC titles and links, charset selection) and stray control characters.
// The output is plain data: the viewer renders it as text nodes, never as
// HTML.

export interface Style {
  /** A CSS colour: var(--ansi-N) for the 16 named colours, rgb() otherwise. */
  fg?: string;
  bg?: string;
  bold?: boolean;
  dim?: boolean;
  italic?: boolean;
  underline?: boolean;
  inverse?: boolean;
}

export interface Segment {
  text: string;
  style: Style;
}

const ESC = '\x1b';

/** The CSS colour of palette entry n (0-255). */
export function paletteColour(n: number): string {
  if (n < 16) return `var(--ansi-${n})`;
  if (n < 232) {
    const i = n - 16;
    const level = (v: number) => (v === 0 ? 0 : 55 + v * 40);
    return `rgb(${level(Math.floor(i / 36))},${level(Math.floor(i / 6) % 6)},${level(i % 6)})`;
  }
  const g = 8 + (n - 232) * 10;
  return `rgb(${g},${g},${g})`;
}

function clamp255(n: number | undefined): number | undefined {
  return n === undefined || Number.isNaN(n) || n < 0 || n > 255 ? undefined : n;
}

/**
 * Applies one SGR parameter list ("1;31", "38;5;208", "38:2::10:20:30", "")
 * to a style and returns the new style (the input is not changed).
 */
export function applySgr(style: Style, params: string): Style {
  const s: Style = { ...style };
  // Colon sub-parameters (38:2::r:g:b) are read like their ; forms.
  const parts = params === '' ? ['0'] : params.split(';');
  const nums: (number | string)[] = [];
  for (const p of parts) nums.push(p.includes(':') ? p : p === '' ? 0 : Number(p));
  for (let i = 0; i < nums.length; i++) {
    const p = nums[i];
    if (typeof p === 'string') {
      // 38:5:n, 38:2:r:g:b or 38:2:cs:r:g:b (the colour-space ID is optional).
      const sub = p.split(':').map((x) => (x === '' ? NaN : Number(x)));
      const [code, mode] = sub;
      if ((code === 38 || code === 48 || code === 58) && (mode === 5 || mode === 2)) {
        let colour: string | undefined;
        if (mode === 5) {
          const n = clamp255(sub[2]);
          if (n !== undefined) colour = paletteColour(n);
        } else {
          const rgb = sub.length >= 6 ? sub.slice(3, 6) : sub.slice(2, 5);
          const [r, g, b] = rgb.map(clamp255);
          if (r !== undefined && g !== undefined && b !== undefined) colour = `rgb(${r},${g},${b})`;
        }
        if (colour && code === 38) s.fg = colour;
        if (colour && code === 48) s.bg = colour;
      } else if (code === 4) {
        s.underline = mode !== 0;
      }
      continue;
    }
    if (p === undefined || Number.isNaN(p)) continue;
    if (p === 0) {
      for (const k of Object.keys(s) as (keyof Style)[]) delete s[k];
    } else if (p === 1) s.bold = true;
    else if (p === 2) s.dim = true;
    else if (p === 3) s.italic = true;
    else if (p === 4) s.underline = true;
    else if (p === 7) s.inverse = true;
    else if (p === 21 || p === 22) {
      delete s.bold;
      delete s.dim;
    } else if (p === 23) delete s.italic;
    else if (p === 24) delete s.underline;
    else if (p === 27) delete s.inverse;
    else if (p >= 30 && p <= 37) s.fg = paletteColour(p - 30);
    else if (p === 39) delete s.fg;
    else if (p >= 40 && p <= 47) s.bg = paletteColour(p - 40);
    else if (p === 49) delete s.bg;
    else if (p >= 90 && p <= 97) s.fg = paletteColour(p - 90 + 8);
    else if (p >= 100 && p <= 107) s.bg = paletteColour(p - 100 + 8);
    else if (p === 38 || p === 48 || p === 58) {
      const mode = nums[i + 1];
      let colour: string | undefined;
      if (mode === 5) {
        const n = clamp255(nums[i + 2] as number);
        if (n !== undefined) colour = paletteColour(n);
        i += 2;
      } else if (mode === 2) {
        const [r, g, b] = [nums[i + 2], nums[i + 3], nums[i + 4]].map((x) => clamp255(x as number));
        if (r !== undefined && g !== undefined && b !== undefined) colour = `rgb(${r},${g},${b})`;
        i += 4;
      } else {
        i = nums.length; // a malformed extended colour: ignore the rest
      }
      if (colour && p === 38) s.fg = colour;
      if (colour && p === 48) s.bg = colour;
    }
  }
  return s;
}

function sameStyle(a: Style, b: Style): boolean {
  return a.fg === b.fg && a.bg === b.bg && !!a.bold === !!b.bold && !!a.dim === !!b.dim && !!a.italic === !!b.italic &&
    !!a.underline === !!b.underline && !!a.inverse === !!b.inverse;
}

/** True when a style has nothing set. */
export function isPlain(s: Style | undefined): boolean {
  return !s || (!s.fg && !s.bg && !s.bold && !s.dim && !s.italic && !s.underline && !s.inverse);
}

/**
 * Where an escape sequence starting at i (text[i] === ESC) ends
 * (exclusive), and its SGR parameters when it is one.
 */
function scanEscape(text: string, i: number): { end: number; sgr?: string } {
  const next = text[i + 1];
  if (next === undefined) return { end: i + 1 };
  if (next === '[') {
    // CSI: parameter bytes 0x30-0x3F, intermediates 0x20-0x2F, final 0x40-0x7E.
    let j = i + 2;
    while (j < text.length) {
      const c = text.charCodeAt(j);
      if (c >= 0x40 && c <= 0x7e) {
        const body = text.slice(i + 2, j);
        return text[j] === 'm' && /^[0-9;:]*$/.test(body) ? { end: j + 1, sgr: body } : { end: j + 1 };
      }
      if (c < 0x20 || c > 0x3f) return { end: j }; // malformed: drop the introducer only
      j++;
    }
    return { end: text.length };
  }
  if (next === ']' || next === 'P' || next === '_' || next === '^' || next === 'X') {
    // OSC / DCS / APC / PM / SOS: up to BEL or ST (ESC \).
    for (let j = i + 2; j < text.length; j++) {
      if (text[j] === '\x07') return { end: j + 1 };
      if (text[j] === ESC && text[j + 1] === '\\') return { end: j + 2 };
    }
    return { end: text.length };
  }
  // ESC, intermediates 0x20-0x2F, then one final byte (charset selection, keypad modes).
  let j = i + 1;
  while (j < text.length && text.charCodeAt(j) >= 0x20 && text.charCodeAt(j) <= 0x2f) j++;
  return { end: Math.min(j + 1, text.length) };
}

/** Keeps what a terminal would show after carriage returns: the text after the last \r (a progress bar's final state). */
function lastCarriage(text: string): string {
  const t = text.endsWith('\r') ? text.slice(0, -1) : text;
  const r = t.lastIndexOf('\r');
  return r < 0 ? t : t.slice(r + 1);
}

// eslint-disable-next-line no-control-regex
const controlRE = /[\x00-\x08\x0b-\x1a\x1c-\x1f\x7f]/g;
// eslint-disable-next-line no-control-regex
const hasControlRE = /[\x00-\x08\x0b-\x1a\x1c-\x1f\x7f]/;

/**
 * Splits one line into styled segments, starting from style `initial`
 * (what earlier lines left set). Adjacent segments of one style merge;
 * empty ones are dropped.
 */
export function parseAnsi(line: string, initial: Style = {}): Segment[] {
  const text = lastCarriage(line);
  const out: Segment[] = [];
  let style = initial;
  let buf = '';
  const flush = () => {
    const t = buf.replace(controlRE, '');
    buf = '';
    if (!t) return;
    const last = out[out.length - 1];
    if (last && sameStyle(last.style, style)) last.text += t;
    else out.push({ text: t, style });
  };
  let i = 0;
  while (i < text.length) {
    const e = text.indexOf(ESC, i);
    if (e < 0) {
      buf += text.slice(i);
      break;
    }
    buf += text.slice(i, e);
    const { end, sgr } = scanEscape(text, e);
    if (sgr !== undefined) {
      flush();
      style = applySgr(style, sgr);
    }
    i = end;
  }
  flush();
  return out;
}

/** The style in force after a line, given the one before it. */
export function endStyle(line: string, initial: Style = {}): Style {
  if (!line.includes(ESC)) return initial;
  let style = initial;
  let i = 0;
  for (;;) {
    const e = line.indexOf(ESC, i);
    if (e < 0) return style;
    const { end, sgr } = scanEscape(line, e);
    if (sgr !== undefined) style = applySgr(style, sgr);
    i = end;
  }
}

/** The line as plain text: escapes and control characters removed. */
export function stripAnsi(line: string): string {
  if (!line.includes(ESC) && !line.includes('\r')) return hasControlRE.test(line) ? line.replace(controlRE, '') : line;
  return parseAnsi(line).map((s) => s.text).join('');
}
