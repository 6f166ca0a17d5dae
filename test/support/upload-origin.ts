/**
 * A plain node:http origin that records every request body it gets: how many bytes, how it was framed, and whether
 * it ended cleanly (its last byte or last chunk arrived) or was cut (the connection closed first). It answers 200
 * once a body has ended, as an origin that takes uploads would.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface Upload {
  path: string;
  /** The Content-Length the origin was told, if any. */
  declared?: number;
  chunked: boolean;
  bytes: number;
  /** The body ended cleanly: the origin took it as complete. */
  ended: boolean;
  /** The request is over, one way or the other. */
  closed: boolean;
}

export interface UploadOrigin {
  url: string;
  uploads: Upload[];
  close(): Promise<void>;
}

export async function startUploadOrigin(): Promise<UploadOrigin> {
  const uploads: Upload[] = [];
  const server: Server = createServer((req, res) => {
    const declared = req.headers["content-length"];
    const upload: Upload = {
      path: req.url ?? "",
      declared: declared === undefined ? undefined : Number(declared),
      chunked: /chunked/i.test(req.headers["transfer-encoding"] ?? ""),
      bytes: 0,
      ended: false,
      closed: false,
    };
    uploads.push(upload);
    req.on("data", (chunk: Buffer) => (upload.bytes += chunk.length));
    req.on("end", () => {
      upload.ended = true;
      res.end(`accepted ${upload.bytes} bytes\n`);
    });
    req.on("error", () => undefined);
    req.on("close", () => (upload.closed = true));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    uploads,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}
