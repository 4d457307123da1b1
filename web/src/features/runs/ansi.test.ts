import { describe, expect, it } from 'vitest';
import { applySgr, endStyle, paletteColour, parseAnsi, stripAnsi, type Segment, type Style } from './ansi';

const E = '\x1b';

describe('parseAnsi', () => {
  const cases: { name: string; in: string; initial?: Style; want: Segment[] }[] = [
    { name: 'plain text is one unstyled segment', in: 'hello world', want: [{ text: 'hello world', style: {} }] },
    { name: 'an empty line has no segments', in: '', want: [] },
    { name: 'a named foreground colour and its reset', in: `${E}[31mred${E}[0m plain`, want: [{ text: 'red', style: { fg: 'var(--ansi-1)' } }, { text: ' plain', style: {} }] },
    { name: 'bold and colour in one sequence', in: `${E}[1;32mok`, want: [{ text: 'ok', style: { bold: true, fg: 'var(--ansi-2)' } }] },
    { name: 'bright colours 90-97 and 100-107 map to palette 8-15', in: `${E}[91;104mx`, want: [{ text: 'x', style: { fg: 'var(--ansi-9)', bg: 'var(--ansi-12)' } }] },
    { name: 'a background colour and its default (49)', in: `${E}[42mg${E}[49mn`, want: [{ text: 'g', style: { bg: 'var(--ansi-2)' } }, { text: 'n', style: {} }] },
    { name: '256-colour foreground from the cube', in: `${E}[38;5;208mo`, want: [{ text: 'o', style: { fg: 'rgb(255,135,0)' } }] },
    { name: '256-colour grey ramp background', in: `${E}[48;5;232mg`, want: [{ text: 'g', style: { bg: 'rgb(8,8,8)' } }] },
    { name: '256-colour index below 16 is a named colour', in: `${E}[38;5;3my`, want: [{ text: 'y', style: { fg: 'var(--ansi-3)' } }] },
    { name: 'truecolour foreground and background', in: `${E}[38;2;10;20;30;48;2;200;100;0mt`, want: [{ text: 't', style: { fg: 'rgb(10,20,30)', bg: 'rgb(200,100,0)' } }] },
    { name: 'truecolour in colon form with a colour-space slot', in: `${E}[38:2::1:2:3mc`, want: [{ text: 'c', style: { fg: 'rgb(1,2,3)' } }] },
    { name: 'an out-of-range truecolour is ignored', in: `${E}[38;2;300;0;0mx`, want: [{ text: 'x', style: {} }] },
    { name: 'ESC[m alone resets', in: `${E}[1mb${E}[mn`, want: [{ text: 'b', style: { bold: true } }, { text: 'n', style: {} }] },
    { name: '22 ends bold, 39 the foreground', in: `${E}[1;31mA${E}[22mB${E}[39mC`, want: [{ text: 'A', style: { bold: true, fg: 'var(--ansi-1)' } }, { text: 'B', style: { fg: 'var(--ansi-1)' } }, { text: 'C', style: {} }] },
    { name: 'italic, underline, dim and inverse', in: `${E}[2;3;4;7mx`, want: [{ text: 'x', style: { dim: true, italic: true, underline: true, inverse: true } }] },
    { name: 'cursor movement and erase sequences are stripped', in: `a${E}[2K${E}[1Gb${E}[?25lc`, want: [{ text: 'abc', style: {} }] },
    { name: 'an OSC title ended by BEL is stripped', in: `${E}]0;title\x07text`, want: [{ text: 'text', style: {} }] },
    { name: 'an OSC 8 hyperlink ended by ST keeps its text', in: `${E}]8;;http://x${E}\\link${E}]8;;${E}\\`, want: [{ text: 'link', style: {} }] },
    { name: 'a charset selection is stripped', in: `${E}(Bok`, want: [{ text: 'ok', style: {} }] },
    { name: 'a carriage return keeps what a terminal would show last', in: '10%\r50%\r100%', want: [{ text: '100%', style: {} }] },
    { name: 'a trailing carriage return (CRLF) is dropped', in: 'dos line\r', want: [{ text: 'dos line', style: {} }] },
    { name: 'other control characters are dropped, tabs kept', in: 'a\x07b\x08c\td', want: [{ text: 'abc\td', style: {} }] },
    { name: 'a lone ESC at the end is dropped', in: `x${E}`, want: [{ text: 'x', style: {} }] },
    { name: 'the starting style applies until changed', in: `still${E}[0m done`, initial: { fg: 'var(--ansi-4)' }, want: [{ text: 'still', style: { fg: 'var(--ansi-4)' } }, { text: ' done', style: {} }] },
    { name: 'HTML in the log stays text', in: '<img src=x onerror=alert(1)>', want: [{ text: '<img src=x onerror=alert(1)>', style: {} }] },
    { name: 'adjacent segments of one style merge', in: `${E}[31ma${E}[31mb`, want: [{ text: 'ab', style: { fg: 'var(--ansi-1)' } }] },
  ];
  for (const c of cases) {
    it(c.name, () => {
      expect(parseAnsi(c.in, c.initial)).toEqual(c.want);
    });
  }
});

describe('applySgr', () => {
  it('does not change the style it is given', () => {
    const s: Style = { bold: true };
    applySgr(s, '0');
    expect(s).toEqual({ bold: true });
  });
  it('ignores a malformed extended colour and what follows it', () => {
    expect(applySgr({}, '38;9;1')).toEqual({});
  });
});

describe('endStyle', () => {
  it('carries a colour left open to the next line', () => {
    expect(endStyle(`${E}[33mwarn`)).toEqual({ fg: 'var(--ansi-3)' });
  });
  it('returns the starting style for a line without escapes', () => {
    const s = { bold: true };
    expect(endStyle('plain', s)).toBe(s);
  });
});

describe('stripAnsi', () => {
  it('removes escapes and control characters', () => {
    expect(stripAnsi(`${E}[1;31mERR${E}[0m: disk\x07 full`)).toBe('ERR: disk full');
  });
  it('returns plain text unchanged', () => {
    expect(stripAnsi('nothing to strip')).toBe('nothing to strip');
  });
});

describe('paletteColour', () => {
  it('maps the cube corners', () => {
    expect(paletteColour(16)).toBe('rgb(0,0,0)');
    expect(paletteColour(231)).toBe('rgb(255,255,255)');
    expect(paletteColour(255)).toBe('rgb(238,238,238)');
  });
});
