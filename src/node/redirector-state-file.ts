/**
 * The mirrors' states across a restart without the control plane (`[redirector] state_file`; Node): after every
 * round the host writes each scanned mirror's state (the values redirector boxes share, src/redirector/shared-state.ts)
 * to a temp file and renames it over the old one, so a crash leaves the old file or the new one, never half of one.
 * At start, before the first round, it applies them (as a box applies another's: only files of the same catalog,
 * only mirrors with the same url and paths). Bounded: a mirror's value at most 1 MiB, the file at most that per mirror.
 */
import { readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import type { Redirector } from "../redirector/redirector.ts";
import { applyMirror, catalogOrder, decodeMirror, encodeMirror, SHARED_MAX_VALUE_BYTES } from "../redirector/shared-state.ts";

const maxBytes = (r: Redirector) => (r.mirrors.length + 1) * SHARED_MAX_VALUE_BYTES;

/** Writes the state of every mirror scanned so far (temp file + rename). */
export async function saveStateFile(path: string, r: Redirector, box: string): Promise<void> {
  const order = await catalogOrder(r.catalog);
  const text = JSON.stringify({ v: 1, mirrors: r.mirrors.filter((m) => m.lastScan !== undefined).map((m) => encodeMirror(m, order, box)) });
  const aside = `${path}.${process.pid}.tmp`;
  writeFileSync(aside, text);
  renameSync(aside, path);
}

/** Applies the states in the file (none when it does not exist); a bad file or entry is skipped with a log line. */
export async function loadStateFile(path: string, r: Redirector, log: (line: string) => void): Promise<number> {
  const say = (why: string) => log(JSON.stringify({ redirector: "state_file", path, ignored: why }));
  let text: string;
  try {
    if (statSync(path).size > maxBytes(r)) return (say(`larger than ${maxBytes(r)} bytes`), 0);
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") say((err as Error).message);
    return 0;
  }
  let doc: { v?: unknown; mirrors?: unknown };
  try {
    doc = JSON.parse(text) as typeof doc;
  } catch {
    return (say("not JSON"), 0);
  }
  if (doc?.v !== 1 || !Array.isArray(doc.mirrors)) return (say("not a state file (v 1, mirrors)"), 0);
  const order = await catalogOrder(r.catalog);
  let applied = 0;
  for (const [i, value] of doc.mirrors.entries()) {
    const s = typeof value === "string" ? decodeMirror(value) : "not a string";
    if (typeof s === "string") {
      say(`mirrors[${i}]: ${s}`);
      continue;
    }
    const m = r.mirrors.find((x) => x.config.name === s.mirror);
    if (m && applyMirror(m, s, order) === "applied") applied++;
  }
  log(JSON.stringify({ redirector: "state_file", path, mirrors: applied }));
  return applied;
}
