/**
 * A minimal HTTP/2 client over TLS that writes frames itself, for abuse tests: Node's http2 client queues streams
 * beyond the server's MAX_CONCURRENT_STREAMS and never sends a stream it cancelled while queued, so it cannot produce
 * a rapid reset (HEADERS + RST_STREAM pairs) on the wire. Requests are GETs encoded with HPACK's static table and
 * literals (no dynamic table); the server's frames are parsed for GOAWAY and the status of answered streams.
 */
import { connect as netConnect } from "node:net";
import { connect as tlsConnect, type TLSSocket } from "node:tls";

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
const HEADERS = 0x1;
const RST_STREAM = 0x3;
const SETTINGS = 0x4;
const GOAWAY = 0x7;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const ACK = 0x1;
const CANCEL = 0x8;

function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

/** A literal header field without indexing, its name from the static table (HPACK §6.2.2), value < 127 bytes. */
function literal(nameIndex: number, value: string): Buffer {
  const v = Buffer.from(value);
  if (v.length >= 127) throw new Error("header value too long for this encoder");
  return Buffer.concat([Buffer.from([nameIndex, v.length]), v]);
}

/** GET https://authority/path as an HPACK block: :method GET (2), :scheme https (7), :authority (1), :path (4). */
function getBlock(authority: string, path: string): Buffer {
  return Buffer.concat([Buffer.from([0x82, 0x87]), literal(1, authority), literal(4, path)]);
}

export class RawH2 {
  /** The server's GOAWAY error code, once one arrived. */
  goaway?: number;
  closed = false;
  private readonly socket: TLSSocket;
  private nextStream = 1;
  private inbox = Buffer.alloc(0);
  private readonly statuses = new Map<number, number>();
  private readonly resets = new Set<number>();
  private readonly waiters = new Set<() => void>();

  private constructor(socket: TLSSocket) {
    this.socket = socket;
    socket.on("data", (d: Buffer) => this.read(d));
    socket.on("error", () => {});
    socket.on("close", () => {
      this.closed = true;
      this.wake();
    });
  }

  /** Connects over TLS with ALPN h2 from `localAddress`, trusting `ca`, and sends the preface and SETTINGS. */
  static async connect(opts: { port: number; servername: string; ca: string; localAddress: string }): Promise<RawH2> {
    const tcp = netConnect({ host: "127.0.0.1", port: opts.port, localAddress: opts.localAddress });
    const socket = tlsConnect({ socket: tcp, servername: opts.servername, ca: opts.ca, ALPNProtocols: ["h2"] });
    await new Promise<void>((resolve, reject) => {
      socket.once("secureConnect", () => (socket.alpnProtocol === "h2" ? resolve() : reject(new Error(`ALPN gave ${socket.alpnProtocol}`))));
      socket.once("error", reject);
    });
    const c = new RawH2(socket);
    socket.write(Buffer.concat([PREFACE, frame(SETTINGS, 0, 0, Buffer.alloc(0))]));
    return c;
  }

  private wake() {
    for (const w of this.waiters) w();
  }

  private read(d: Buffer) {
    this.inbox = Buffer.concat([this.inbox, d]);
    while (this.inbox.length >= 9) {
      const len = this.inbox.readUIntBE(0, 3);
      if (this.inbox.length < 9 + len) break;
      const type = this.inbox[3]!;
      const flags = this.inbox[4]!;
      const stream = this.inbox.readUInt32BE(5) & 0x7fffffff;
      const payload = this.inbox.subarray(9, 9 + len);
      this.inbox = this.inbox.subarray(9 + len);
      if (type === SETTINGS && !(flags & ACK)) this.socket.write(frame(SETTINGS, ACK, 0, Buffer.alloc(0)));
      else if (type === GOAWAY) this.goaway = payload.readUInt32BE(4);
      else if (type === RST_STREAM) this.resets.add(stream);
      else if (type === HEADERS && !this.statuses.has(stream)) {
        // HAProxy answers `:status 200` with the static table's index 8 (0x88); anything else counts as answered.
        this.statuses.set(stream, payload[0] === 0x88 ? 200 : -1);
      }
    }
    this.wake();
  }

  /** Writes `pairs` HEADERS + RST_STREAM(CANCEL) pairs, honouring back-pressure; stops early if the server closes. */
  async rapidReset(authority: string, path: string, pairs: number, timeoutMs = 20_000): Promise<number> {
    const until = Date.now() + timeoutMs;
    let sent = 0;
    while (sent < pairs && !this.closed && Date.now() < until) {
      const batch: Buffer[] = [];
      for (let i = 0; i < 50 && sent < pairs; i++, sent++) {
        const id = this.nextStream;
        this.nextStream += 2;
        batch.push(frame(HEADERS, END_HEADERS | END_STREAM, id, getBlock(authority, `${path}${path.includes("?") ? "&" : "?"}rr=${id}`)));
        const code = Buffer.alloc(4);
        code.writeUInt32BE(CANCEL);
        batch.push(frame(RST_STREAM, 0, id, code));
      }
      if (!this.socket.write(Buffer.concat(batch))) {
        await new Promise<void>((r) => {
          const done = () => (this.socket.off("drain", done), this.socket.off("close", done), r());
          this.socket.once("drain", done).once("close", done);
        });
      }
    }
    return sent;
  }

  /**
   * One GET the client does not reset: 200 (or -1 for another status) when answered, 0 when the server reset the
   * stream or ended the connection first; undefined when nothing happened within `timeoutMs`.
   */
  async get(authority: string, path: string, timeoutMs = 15_000): Promise<number | undefined> {
    if (this.closed) return 0;
    const id = this.nextStream;
    this.nextStream += 2;
    this.socket.write(frame(HEADERS, END_HEADERS | END_STREAM, id, getBlock(authority, path)));
    const settled = () => this.statuses.get(id) ?? (this.resets.has(id) || this.closed || (this.goaway !== undefined && this.closed) ? 0 : undefined);
    if (settled() !== undefined) return settled();
    return new Promise((resolve) => {
      const timer = setTimeout(() => (this.waiters.delete(check), resolve(undefined)), timeoutMs);
      const check = () => {
        const s = settled();
        if (s === undefined) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(s);
      };
      this.waiters.add(check);
    });
  }

  /** Resolves once the server has closed the connection, or with false after `timeoutMs`. */
  async closedWithin(timeoutMs: number): Promise<boolean> {
    if (this.closed) return true;
    return new Promise((resolve) => {
      const timer = setTimeout(() => (this.waiters.delete(check), resolve(false)), timeoutMs);
      const check = () => {
        if (!this.closed) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(true);
      };
      this.waiters.add(check);
    });
  }

  destroy() {
    this.socket.destroy();
  }
}
