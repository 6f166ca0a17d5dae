/**
 * A client upload that ends early never reaches the origin as a complete body, on bare workerd and on Miniflare: a
 * body shorter than its Content-Length (the client closes, or half-closes and waits for the answer) and a chunked
 * body with a malformed chunk size. The origin is plain node:http and records whether each body ended cleanly; the
 * client is a raw socket (no HTTP client sends a short body). The client cuts its upload only once the origin has
 * the bytes sent before the cut, so what the origin then sees is decided by the edge alone.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningEdge } from "../../src/node/edge-host.ts";
import { startEdgeMiniflare } from "../../src/node/edge-host.ts";
import { startEdgeWorkerd } from "../../src/node/workerd-host.ts";
import { waitFor } from "../support/anycast.ts";
import { startUploadOrigin, type Upload, type UploadOrigin } from "../support/upload-origin.ts";

const RUNTIMES = ["workerd", "miniflare"] as const;
const DEADLINE_MS = 20_000;

describe.each(RUNTIMES)("uploads cut short, runtime %s", (runtime) => {
  let origin: UploadOrigin;
  let edge: RunningEdge;
  let dir: string;
  let port: number;

  beforeAll(async () => {
    origin = await startUploadOrigin();
    dir = mkdtempSync(join(tmpdir(), "parrot-uploads-"));
    const configText = `[edge]\nname = "u"\norigin = "${origin.url}"\naccess_log = false\n`;
    edge = runtime === "workerd"
      ? await startEdgeWorkerd({ configText, storeDir: join(dir, "store"), log: () => {} })
      : await startEdgeMiniflare({ configText });
    port = Number(new URL(edge.url).port);
  }, 60_000);

  afterAll(async () => {
    await edge?.stop();
    await origin?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Sends a request's head and the first part of its body; resolves once the origin has that part. */
  async function startUpload(path: string, head: string, part: Buffer, bytesAtOrigin: number): Promise<{ socket: Socket; answer: Promise<string>; upload: Upload }> {
    const socket = connect(port, "127.0.0.1");
    socket.on("error", () => undefined);
    let got = "";
    socket.on("data", (c: Buffer) => (got += c.toString("latin1")));
    const answer = new Promise<string>((done) => {
      socket.on("close", () => done(got.split("\r\n")[0] || "closed"));
      setTimeout(() => socket.destroy(), DEADLINE_MS).unref();
    });
    socket.write(`POST ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${head}\r\n`);
    socket.write(part);
    const seen = await waitFor(async () => origin.uploads.find((u) => u.path === path && u.bytes === bytesAtOrigin), DEADLINE_MS, 20);
    expect(seen, `the origin got the first ${bytesAtOrigin} bytes of ${path}`).toBeDefined();
    return { socket, answer, upload: seen!.value };
  }

  /** Waits (bounded) until the origin is done with the upload, and checks it never took it as complete. */
  async function expectCut(upload: Upload, bytes: number) {
    expect(await waitFor(async () => (upload.closed ? true : undefined), DEADLINE_MS, 20)).toBeDefined();
    expect({ ended: upload.ended, bytes: upload.bytes }).toEqual({ ended: false, bytes });
  }

  it("a body shorter than its Content-Length (the client closes) is cut at the origin, never complete", async () => {
    const { socket, upload } = await startUpload("/closed", "Content-Length: 1000000\r\n", Buffer.alloc(100_000, 97), 100_000);
    socket.destroy();
    await expectCut(upload, 100_000);
    expect(upload.declared).toBe(1_000_000); // the declared length is kept on the way
  });

  it("a body shorter than its Content-Length (the client half-closes) is answered 400 and cut at the origin", async () => {
    const { socket, answer, upload } = await startUpload("/half-closed", "Content-Length: 1000000\r\n", Buffer.alloc(100_000, 97), 100_000);
    socket.end();
    expect(await answer).toMatch(/^HTTP\/1\.1 400/);
    await expectCut(upload, 100_000);
  });

  it("a malformed chunk size after 4096 bytes is answered 400 and cut at the origin, never complete", async () => {
    const chunk = Buffer.concat([Buffer.from("1000\r\n"), Buffer.alloc(4096, 97), Buffer.from("\r\n")]);
    const { socket, answer, upload } = await startUpload("/malformed", "Transfer-Encoding: chunked\r\n", chunk, 4096);
    socket.write("zzzz\r\n" + "a".repeat(100));
    expect(await answer).toMatch(/^HTTP\/1\.1 400/);
    await expectCut(upload, 4096);
  });

  it("a whole upload still reaches the origin complete, with its length", async () => {
    const res = await fetch(`${edge.url}/whole`, { method: "POST", body: Buffer.alloc(100_000, 97) });
    expect([res.status, await res.text()]).toEqual([200, "accepted 100000 bytes\n"]);
    const upload = origin.uploads.find((u) => u.path === "/whole")!;
    expect(upload).toMatchObject({ ended: true, bytes: 100_000, declared: 100_000 });
  });
});
