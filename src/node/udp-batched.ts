/**
 * Batched UDP I/O through the native addon native/udp-batch.node (built by `npm ci`): the addon opens the socket,
 * reads up to SLOTS datagrams per readable event with one recvmmsg, calls JavaScript once with the batch, and sends the
 * replies left in its output buffer with one sendmmsg. node:dgram costs a system call and a call into JavaScript per
 * datagram each way, which was most of the DNS node's CPU per query. Knows nothing of DNS: a handler turns a datagram
 * and its sender into a reply (or nothing).
 */
import { createRequire } from "node:module";

/** What the addon exports (native/udp-batch.cc). */
interface UdpBatchAddon {
  SLOTS: number;
  SLOT: number;
  open(
    host: string,
    port: number,
    reusePort: boolean,
    input: Uint8Array,
    output: Uint8Array,
    meta: Int32Array,
    peers: Uint8Array,
    onBatch: (count: number) => void,
  ): { handle: unknown; port: number };
  close(handle: unknown): void;
  stats(handle: unknown): [received: number, sent: number, unsent: number];
}

export const ADDON_PATH = new URL("../../native/udp-batch.node", import.meta.url).pathname;

let loaded: UdpBatchAddon | string | undefined;

/** The addon, or why it cannot be used (not built, or it does not load here). Loaded once per path. */
export function loadUdpBatch(path = ADDON_PATH): UdpBatchAddon | string {
  if (path === ADDON_PATH && loaded !== undefined) return loaded;
  let result: UdpBatchAddon | string;
  try {
    result = createRequire(import.meta.url)(path) as UdpBatchAddon;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    result = e.code === "MODULE_NOT_FOUND" ? `${path} is not built: npm ci builds it with g++ and Node's headers` : `${path}: ${e.message}`;
  }
  if (path === ADDON_PATH) loaded = result;
  return result;
}

/**
 * A datagram in (its bytes are valid only during the call: the buffer is reused for the next batch) and the sender's
 * address (4 or 16 bytes, likewise reused); the reply to send back, or null for none.
 */
export type DatagramHandler = (message: Uint8Array, from: Uint8Array) => Uint8Array | null;

export interface BatchedSocket {
  port: number;
  /** Datagrams received, replies sent, and replies dropped (the socket's send buffer was full) since the start. */
  stats(): { received: number; sent: number; unsent: number };
  close(): void;
}

/** Opens a UDP socket on host (an IP address) and port (0: any) and answers every datagram with `handle`. */
export function openBatched(addon: UdpBatchAddon, host: string, port: number, reusePort: boolean, handle: DatagramHandler): BatchedSocket {
  const { SLOTS, SLOT } = addon;
  // Untouched pages of these cost no memory: a datagram fills only the start of its slot.
  const input = new Uint8Array(SLOTS * SLOT);
  const output = new Uint8Array(SLOTS * SLOT);
  const meta = new Int32Array(SLOTS * 4); // per slot: in length (-1: cut), out length, family (4 | 6), port
  const peers = new Uint8Array(SLOTS * 16);
  // One address view per slot and family, made once: no allocation per datagram for the sender.
  const v4 = Array.from({ length: SLOTS }, (_, i) => peers.subarray(i * 16, i * 16 + 4));
  const v6 = Array.from({ length: SLOTS }, (_, i) => peers.subarray(i * 16, i * 16 + 16));
  const onBatch = (count: number) => {
    for (let i = 0; i < count; i++) {
      const len = meta[i * 4];
      if (len < 0) continue;
      const start = i * SLOT;
      const reply = handle(input.subarray(start, start + len), meta[i * 4 + 2] === 4 ? v4[i] : v6[i]);
      if (!reply || reply.length > SLOT) continue;
      output.set(reply, start);
      meta[i * 4 + 1] = reply.length;
    }
  };
  const opened = addon.open(host, port, reusePort, input, output, meta, peers, onBatch);
  let closed = false;
  return {
    port: opened.port,
    stats() {
      const [received, sent, unsent] = addon.stats(opened.handle);
      return { received, sent, unsent };
    },
    close() {
      if (closed) return;
      closed = true;
      addon.close(opened.handle);
    },
  };
}
