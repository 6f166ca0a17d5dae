/**
 * Tiered cache: which shield box an object is filled from. Rendezvous (highest random weight) hashing of the cache
 * key over the shields' names: every edge computes the same order for a key without talking to the others, and when
 * a shield leaves the list only the keys it owned move (each to its next shield in that key's order). Pure.
 */

/** 32-bit FNV-1a of a string's UTF-16 code units, finished with murmur3's mixer (FNV alone clusters on short keys). */
function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * The indexes of `names` in the order a key tries them: the highest weight `hash(name, key)` first; ties (never
 * in practice) by name, so every box agrees.
 */
export function rendezvousOrder(names: readonly string[], key: string): number[] {
  const weights = names.map((name) => hash32(`${name}\n${key}`));
  return names.map((_, i) => i).sort((a, b) => weights[b]! - weights[a]! || (names[a]! < names[b]! ? -1 : 1));
}
