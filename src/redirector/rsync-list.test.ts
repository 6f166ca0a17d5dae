import { describe, expect, it } from "vitest";
import { parseConfig } from "../config/config.ts";
import { Catalog } from "./catalog.ts";
import { FileState, MirrorState } from "./mirror-state.ts";
import { Redirector } from "./redirector.ts";
import { applyListing, parseRsyncListing } from "./rsync-list.ts";

// What rsync 3.2 printed for a module on this machine (`rsync --list-only -r rsync://…/mirror/`).
const LISTING = `drwxr-xr-x          4,096 2026/12/07 21:57:32 .
-rw-r--r--              1 2026/12/07 21:57:32 new\\#012line
drwxr-xr-x          4,096 2026/12/07 21:57:32 a b
-rw-r--r--              3 2026/12/07 21:57:32 a b/ü n.txt
lrwxrwxrwx              5 2026/12/07 21:57:32 iso/latest.iso -> x.iso
drwxr-xr-x          4,096 2026/12/07 21:57:32 iso
-rw-r--r--      1,234,567 2026/12/07 21:57:32 iso/x.iso
-rw-r--r--             10 2026/12/07 21:57:32 iso/old.iso
`;

describe("rsync listings", () => {
  it("reads regular files with their sizes, names with spaces, UTF-8 and escaped bytes; no directories or links", () => {
    expect(parseRsyncListing(LISTING)).toEqual(
      new Map([
        ["/new\nline", 1],
        ["/a b/ü n.txt", 3],
        ["/iso/x.iso", 1234567],
        ["/iso/old.iso", 10],
      ]),
    );
    expect(parseRsyncListing("garbage\n-rw-r--r-- lots 2026/12/07 21:57:32 x\n").size).toBe(0);
  });

  it("one listing gives every carried file a state: present, wrong size, absent", () => {
    const catalog = new Catalog();
    catalog.update([{ path: "/iso/x.iso", size: 1234567 }, { path: "/iso/old.iso", size: 11 }, { path: "/iso/new.iso", size: 5 }, { path: "/debian/a.deb", size: 7 }], 0);
    const m = new MirrorState(parseConfig('[[mirrors]]\nname = "m"\nurl = "http://m/"\nlat = 0\nlon = 0\npaths = ["/iso/**"]').mirrors[0]!, 0, {});
    m.follow(catalog);
    m.recordFailure("earlier");
    expect(applyListing(m, catalog, parseRsyncListing(LISTING))).toEqual({ present: 1, absent: 1, wrong: 1 });
    expect(Array.from(m.files.subarray(0, 4))).toEqual([FileState.Present, FileState.Wrong, FileState.Absent, FileState.NotCarried]);
    expect(m.failures).toBe(0);
  });

  it("a mirror with an rsync module is scanned by one listing (no HEADs); a failed listing counts and falls back to HTTP", async () => {
    const config = parseConfig(`[redirector]
origin = "http://origin"
cdn = "http://cdn"
paths = ["/iso/**"]
indexes = [ { path = "/iso/SHA256SUMS", kind = "sha256sums" } ]

[[mirrors]]
name = "m"
url = "http://m/"
rsync = "rsync://m/parrot/"
lat = 0
lon = 0
`);
    const asked: string[] = [];
    const fetchImpl = async (input: RequestInfo | URL, init?: RequestInit) => {
      const url = String(input);
      asked.push(`${init?.method ?? "GET"} ${url}`);
      if (url === "http://origin/iso/SHA256SUMS") return new Response(`${"a".repeat(64)}  x.iso\n`);
      return new Response(null, { headers: { "content-length": "1234567" } });
    };
    let listing: string | Error = LISTING;
    const r = new Redirector({ config, fetch: fetchImpl, listRsync: async (url) => (listing instanceof Error ? Promise.reject(listing) : (expect(url).toBe("rsync://m/parrot/"), listing)) });
    await r.refreshOrigin();
    asked.length = 0;
    await r.scanRound();
    expect(asked).toEqual([]);
    expect(r.mirrors[0]!.has(r.catalog.get("/iso/x.iso")!.id)).toBe(true);
    listing = new Error("rsync rsync://m/parrot/: exit 10: connection refused");
    await r.scanRound();
    expect(asked).toEqual(["HEAD http://m/iso/x.iso"]);
    expect(r.mirrors[0]!.failures).toBe(0); // the HEAD answered after the listing failed
  });

  it("refuses an rsync value that is not an rsync:// URL, by field", () => {
    expect(() => parseConfig('[[mirrors]]\nname = "m"\nurl = "http://m/"\nlat = 0\nlon = 0\nrsync = "http://m/"')).toThrow(/mirrors\[0\]\.rsync: an rsync:\/\/ URL/);
  });
});
