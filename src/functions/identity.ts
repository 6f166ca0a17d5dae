/**
 * Which function a fetch() back to the edge comes from. The box holds a random key; each function process gets
 * HMAC-SHA256(key, id) as its token (in its own config, which no other function reads) and its workerd injects
 * `<id> <token>` into every request its function sends (FUNCTION_ID_HEADER); the edge, which holds the key,
 * recomputes the token. A function cannot pass for another: it never sees another's token nor the key.
 */
const encoder = new TextEncoder();

export async function functionToken(key: string, id: string): Promise<string> {
  const k = await crypto.subtle.importKey("raw", encoder.encode(key), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", k, encoder.encode(id)));
  return Array.from(mac, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The edge's check of FUNCTION_ID_HEADER: the function's id when the token is the one `key` gives it. */
export function functionIdentity(key: string): (header: string | null) => Promise<string | undefined> {
  const expected = new Map<string, Promise<string>>();
  return async (header) => {
    const space = header?.indexOf(" ") ?? -1;
    if (!header || space <= 0) return undefined;
    const id = header.slice(0, space);
    const token = header.slice(space + 1);
    let want = expected.get(id);
    if (!want) {
      if (expected.size > 10_000) expected.clear(); // ids come from the config: bounded, but never trusted to be
      want = functionToken(key, id);
      expected.set(id, want);
    }
    return sameText(token, await want) ? id : undefined;
  };
}

/** Equal strings, in a time that does not depend on where they differ. */
function sameText(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}
