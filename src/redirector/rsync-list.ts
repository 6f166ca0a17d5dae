/**
 * Freshness from a mirror's rsync module: one `rsync --list-only -r` of the mirror's copy of the origin's root lists
 * every file with its size, so a single round checks them all (HEAD scans take files ÷ scan_files_per_round rounds).
 * Pure: the listing text in, per-file states out; the Node host runs rsync (src/node/rsync-lister.ts).
 */
import type { Catalog } from "./catalog.ts";
import { FileState, type MirrorState } from "./mirror-state.ts";

/** `-rw-r--r--      1,234,567 2026/12/07 21:57:32 iso/x.iso`: regular files only (no directories, links, devices). */
const FILE_LINE = /^-[rwxsStT-]{9}\s+([\d,.]+)\s+\d{4}\/\d{2}\/\d{2} \d{2}:\d{2}:\d{2} (.+)$/;

/** rsync writes a byte it will not print (a newline in a name) as `\#ooo`, octal. */
function unescapeName(name: string): string {
  if (!name.includes("\\#")) return name;
  const parts = name.split(/\\#([0-7]{3})/); // odd indexes: the escaped bytes' octal codes
  const bytes: number[] = [];
  const encoder = new TextEncoder();
  parts.forEach((part, i) => (i % 2 ? bytes.push(parseInt(part, 8)) : bytes.push(...encoder.encode(part))));
  return new TextDecoder().decode(Uint8Array.from(bytes));
}

/** The listing as path (from the mirror's root, with a leading /) → size; lines that are not regular files are skipped. */
export function parseRsyncListing(text: string): Map<string, number> {
  const files = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = FILE_LINE.exec(line.trimEnd());
    if (!m) continue;
    const size = Number(m[1]!.replace(/[,.]/g, ""));
    if (!Number.isSafeInteger(size)) continue;
    files.set(`/${unescapeName(m[2]!)}`, size);
  }
  return files;
}

/** Applies a complete listing: each listed file the mirror carries is present (right size), wrong, or absent. */
export function applyListing(m: MirrorState, catalog: Catalog, listing: Map<string, number>): { present: number; absent: number; wrong: number } {
  const counts = { present: 0, absent: 0, wrong: 0 };
  for (const f of catalog.files) {
    if (!f.listed || f.size === undefined || m.files[f.id] === FileState.NotCarried) continue;
    const size = listing.get(f.path);
    const state = size === undefined ? FileState.Absent : size === f.size ? FileState.Present : FileState.Wrong;
    m.recordFile(f.id, state);
    if (state === FileState.Present) counts.present++;
    else if (state === FileState.Absent) counts.absent++;
    else counts.wrong++;
  }
  m.recordSuccess();
  return counts;
}
