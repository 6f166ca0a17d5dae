/**
 * The origin's files as the redirector knows them: path, size and SHA-256 (where a list says), and when each was
 * first listed (newer files are scanned on mirrors first). Ids are stable across updates, so every mirror's state
 * is a flat array indexed by file id. Parsers for the lists origins publish: SHA256SUMS and apt Packages indexes.
 */

/** One file of the origin. */
export interface OriginFile {
  path: string;
  /** Bytes; undefined until known (a SHA256SUMS entry whose size the origin has not told yet). */
  size?: number;
  /** Lower-case hex. */
  sha256?: string;
}

/** A file with its id and first listing. */
export interface CatalogFile extends OriginFile {
  id: number;
  firstSeen: number;
  /** False once a later list no longer has it (its id stays reserved; nobody is redirected for it). */
  listed: boolean;
}

export class Catalog {
  private readonly byPath = new Map<string, CatalogFile>();
  readonly files: CatalogFile[] = [];
  /** Bumped on every change: choosers and mirror states resize or recompute from it. */
  version = 0;

  get size(): number {
    return this.files.length;
  }

  get(path: string): CatalogFile | undefined {
    const f = this.byPath.get(path);
    return f?.listed ? f : undefined;
  }

  /**
   * Takes a complete new list: new paths get new ids (first seen `now`), changed sizes or checksums replace the old
   * ones (mirrors must then be checked again: `changed` lists them), missing paths are unlisted.
   */
  update(list: OriginFile[], now: number): { added: number[]; changed: number[]; removed: number[] } {
    const added: number[] = [];
    const changed: number[] = [];
    const removed: number[] = [];
    const seen = new Set<string>();
    for (const f of list) {
      seen.add(f.path);
      const old = this.byPath.get(f.path);
      if (!old) {
        const entry: CatalogFile = { ...f, id: this.files.length, firstSeen: now, listed: true };
        this.files.push(entry);
        this.byPath.set(f.path, entry);
        added.push(entry.id);
      } else if (!old.listed || old.size !== f.size || (f.sha256 !== undefined && old.sha256 !== f.sha256)) {
        if (old.listed && old.size === undefined && f.size !== undefined && old.sha256 === (f.sha256 ?? old.sha256)) {
          old.size = f.size; // the size became known: the same file
        } else {
          old.size = f.size;
          old.sha256 = f.sha256;
          old.firstSeen = now;
          old.listed = true;
          changed.push(old.id);
        }
      }
    }
    for (const f of this.files) {
      if (f.listed && !seen.has(f.path)) {
        f.listed = false;
        removed.push(f.id);
      }
    }
    if (added.length || changed.length || removed.length) this.version++;
    return { added, changed, removed };
  }
}

/** Joins a folder (`/iso/`) and a name from a list (`./a/b.iso`, `b.iso`); null when the name leaves the folder. */
export function joinListed(root: string, name: string): string | null {
  const parts = (root.endsWith("/") ? root : `${root}/`).split("/").filter(Boolean);
  for (const seg of name.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") return null;
    parts.push(seg);
  }
  return `/${parts.join("/")}`;
}

/** SHA256SUMS (`sha256sum` output: `<64 hex>  name` or `<64 hex> *name`); lines of another shape are skipped. */
export function parseSha256Sums(text: string, root: string): OriginFile[] {
  const out: OriginFile[] = [];
  for (const line of text.split("\n")) {
    const m = /^([0-9a-fA-F]{64}) [ *](.+?)\r?$/.exec(line);
    if (!m) continue;
    const path = joinListed(root, m[2]!);
    if (path) out.push({ path, sha256: m[1]!.toLowerCase() });
  }
  return out;
}

/** An apt Packages (or Sources-like) index: each stanza's Filename, Size and SHA256, relative to the archive root. */
export function parsePackages(text: string, root: string): OriginFile[] {
  const out: OriginFile[] = [];
  for (const stanza of text.split(/\n\s*\n/)) {
    const field = (name: string) => new RegExp(`^${name}:[ \\t]*(\\S+)`, "mi").exec(stanza)?.[1];
    const filename = field("Filename");
    if (!filename) continue;
    const path = joinListed(root, filename);
    if (!path) continue;
    const size = Number(field("Size"));
    const sha = field("SHA256");
    out.push({
      path,
      ...(Number.isSafeInteger(size) && size >= 0 && field("Size") !== undefined ? { size } : {}),
      ...(sha && /^[0-9a-f]{64}$/i.test(sha) ? { sha256: sha.toLowerCase() } : {}),
    });
  }
  return out;
}

/** Where the names of a list are relative to: the configured root, an apt archive's root (before `/dists/`), or its folder. */
export function listRoot(path: string, kind: "sha256sums" | "packages", root?: string): string {
  if (root) return root.endsWith("/") ? root : `${root}/`;
  const dists = path.indexOf("/dists/");
  if (kind === "packages" && dists >= 0) return path.slice(0, dists + 1);
  return path.slice(0, path.lastIndexOf("/") + 1);
}
