/**
 * Cache-Control style directive lists (RFC 9111 §5.2, also CDN-Cache-Control from RFC 9213), parsed leniently the
 * way a conformant cache must: names are case-insensitive, values may be tokens or quoted strings, the first
 * occurrence of a duplicated directive wins, and unknown directives are kept but mean nothing.
 */

/** Directive name (lower case) → its value, or `true` when it has none. */
export type Directives = Map<string, string | true>;

/** Parses one or more field values (several header lines joined by ", " is fine). */
export function parseDirectives(value: string | null | undefined): Directives {
  const out: Directives = new Map();
  if (!value) return out;
  let i = 0;
  const n = value.length;
  while (i < n) {
    // skip separators and whitespace
    while (i < n && (value[i] === "," || value[i] === " " || value[i] === "\t")) i++;
    let nameStart = i;
    while (i < n && value[i] !== "=" && value[i] !== ",") i++;
    const name = value.slice(nameStart, i).trim().toLowerCase();
    let directiveValue: string | true = true;
    if (i < n && value[i] === "=") {
      i++;
      while (i < n && (value[i] === " " || value[i] === "\t")) i++;
      if (value[i] === '"') {
        // quoted-string with backslash escapes
        i++;
        let text = "";
        while (i < n && value[i] !== '"') {
          if (value[i] === "\\" && i + 1 < n) i++;
          text += value[i++];
        }
        i++; // closing quote (or end)
        directiveValue = text;
        while (i < n && value[i] !== ",") i++; // junk after the quote is ignored
      } else {
        const valueStart = i;
        while (i < n && value[i] !== ",") i++;
        directiveValue = value.slice(valueStart, i).trim();
      }
    }
    if (name && !out.has(name)) out.set(name, directiveValue);
    nameStart = i;
  }
  return out;
}

/**
 * A delta-seconds value (RFC 9111 §1.2.2): digits only; larger than 2^31 counts as 2^31.
 * Anything else (negative, fractional, empty, missing) is `undefined` — callers decide how strict to be.
 */
export function deltaSeconds(value: string | true | undefined): number | undefined {
  if (typeof value !== "string" || !/^\d+$/.test(value)) return undefined;
  const n = Number(value);
  return n > 2 ** 31 ? 2 ** 31 : n;
}

/** Field names listed in a directive value such as `no-cache="Set-Cookie, X-Foo"` (lower case). */
export function fieldNames(value: string | true | undefined): string[] {
  if (typeof value !== "string") return [];
  return value
    .split(",")
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
}
