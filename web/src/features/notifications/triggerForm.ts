// A trigger's parameter map as text: one "param = expression" per line.

export function parseParamMap(s: string): { map: Record<string, string>; error?: string } {
  const map: Record<string, string> = {};
  for (const line of s.split('\n').map((x) => x.trim()).filter(Boolean)) {
    const i = line.indexOf('=');
    // "==" right after the name would be an expression, not the separator.
    if (i <= 0 || line[i + 1] === '=') return { map, error: `"${line}" must be param = expression` };
    const k = line.slice(0, i).trim();
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) return { map, error: `"${k}" is not a parameter name` };
    if (k in map) return { map, error: `parameter "${k}" is mapped twice` };
    map[k] = line.slice(i + 1).trim();
  }
  return { map };
}

export function formatParamMap(m: Record<string, string> | undefined): string {
  return Object.entries(m ?? {}).map(([k, v]) => `${k} = ${v}`).join('\n');
}
