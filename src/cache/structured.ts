/**
 * RFC 8941 Structured Field dictionaries, as far as a targeted cache field (CDN-Cache-Control, RFC 9213) needs:
 * parse strictly, so that an invalid field is ignored as a whole rather than half-read.
 */

export type BareItem = number | string | boolean | { token: string } | { bytes: string };

/** The dictionary's members (key → item, inner lists as arrays); `undefined` when the text is not a valid dictionary. */
export function parseSfDictionary(text: string): Map<string, BareItem | BareItem[]> | undefined {
  const out = new Map<string, BareItem | BareItem[]>();
  let i = 0;
  const s = text.trim();
  const fail = () => undefined;
  const key = (): string | undefined => {
    const m = /^[a-z*][a-z0-9_.*-]*/.exec(s.slice(i));
    if (!m) return undefined;
    i += m[0].length;
    return m[0];
  };
  const bare = (): BareItem | undefined => {
    const rest = s.slice(i);
    let m: RegExpExecArray | null;
    if ((m = /^-?\d{1,15}(\.\d{1,3})?/.exec(rest))) {
      if (m[1] === undefined && m[0].replace("-", "").length > 15) return undefined;
      if (m[1] !== undefined && m[0].split(".")[0]!.replace("-", "").length > 12) return undefined;
      i += m[0].length;
      return Number(m[0]);
    }
    if (rest[0] === '"') {
      let v = "";
      for (let j = 1; j < rest.length; j++) {
        const c = rest[j]!;
        if (c === "\\") {
          const next = rest[j + 1];
          if (next !== '"' && next !== "\\") return undefined;
          v += next;
          j++;
        } else if (c === '"') {
          i += j + 1;
          return v;
        } else if (c < " " || c > "~") return undefined;
        else v += c;
      }
      return undefined;
    }
    if ((m = /^[A-Za-z*][A-Za-z0-9:/!#$%&'*+.^_`|~-]*/.exec(rest))) {
      i += m[0].length;
      return { token: m[0] };
    }
    if ((m = /^:([A-Za-z0-9+/=]*):/.exec(rest))) {
      i += m[0].length;
      return { bytes: m[1]! };
    }
    if ((m = /^\?([01])/.exec(rest))) {
      i += 2;
      return m[1] === "1";
    }
    return undefined;
  };
  const params = (): boolean => {
    while (s[i] === ";") {
      i++;
      while (s[i] === " ") i++;
      if (key() === undefined) return false;
      if (s[i] === "=") {
        i++;
        if (bare() === undefined) return false;
      }
    }
    return true;
  };
  while (i < s.length) {
    const k = key();
    if (k === undefined) return fail();
    let value: BareItem | BareItem[] = true;
    if (s[i] === "=") {
      i++;
      if (s[i] === "(") {
        i++;
        const list: BareItem[] = [];
        for (;;) {
          while (s[i] === " ") i++;
          if (s[i] === ")") {
            i++;
            break;
          }
          const item = bare();
          if (item === undefined || !params()) return fail();
          list.push(item);
          if (s[i] !== " " && s[i] !== ")") return fail();
        }
        value = list;
      } else {
        const item = bare();
        if (item === undefined) return fail();
        value = item;
      }
    }
    if (!params()) return fail();
    out.set(k, value); // later members overwrite earlier ones (RFC 8941 §4.2.2)
    while (s[i] === " " || s[i] === "\t") i++;
    if (i >= s.length) break;
    if (s[i] !== ",") return fail();
    i++;
    while (s[i] === " " || s[i] === "\t") i++;
    if (i >= s.length) return fail(); // trailing comma
  }
  return out;
}
