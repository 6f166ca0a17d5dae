/**
 * Which configuration text an edge worker runs, as the fleet rollout checks it: the health answer carries
 * `cdn-config: <digest of the cdn.toml text the worker built its app from>`, and the box's control agent waits for
 * the digest of the text it wrote before it calls a version applied. An identity, not a security check (cyrb53).
 */
export const CONFIG_DIGEST_HEADER = "cdn-config";

/** 14 hex digits identifying a text (53-bit cyrb53 over its UTF-16 code units). */
export function configDigest(text: string): string {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return (4294967296 * (2097151 & h2) + (h1 >>> 0)).toString(16).padStart(14, "0");
}
