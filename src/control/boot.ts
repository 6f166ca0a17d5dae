/**
 * Box start ids: `<ms since epoch>-<random hex>`. The host makes one at every start of an edge box and gives it to
 * the edge worker (binding BOOT_ID) and to the box's control agent; the time in it tells the edge which stored entries
 * predate the start (see `controlGate` in src/cache/purge.ts). Pure: the edge bundle imports it.
 */

/** A new box start id for time `now` (ms). */
export function newBootId(now: number = Date.now()): string {
  const random = new Uint8Array(8);
  crypto.getRandomValues(random);
  return `${Math.floor(now)}-${[...random].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** The id and its start time, or undefined for anything that is not a box start id. */
export function parseBootId(id: string | undefined): { id: string; at: number } | undefined {
  const m = id ? /^(\d{1,15})-[0-9a-f]{16}$/.exec(id) : null;
  return m ? { id: id!, at: Number(m[1]) } : undefined;
}
