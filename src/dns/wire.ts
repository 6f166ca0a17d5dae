/**
 * The few raw-byte operations dns-packet does not offer: reading a query's header and question without losing a bit
 * (case, odd label bytes), walking records to find the OPT, and cutting an answer down to a TC=1 reply.
 * Pure: bytes in, bytes or plain objects out.
 */

export const QR = 0x8000;
export const AA = 0x0400;
export const TC = 0x0200;
export const RD = 0x0100;


/** The query's question exactly as sent. */
export interface RawQuestion {
  /** The question section bytes (name, type, class). */
  bytes: Uint8Array;
  /** Labels as sent (latin1, case kept). */
  labels: string[];
  qtype: number;
  qclass: number;
  /** Offset just past the question. */
  end: number;
}

/** A record's place in a message. */
export interface RawRecord {
  type: number;
  /** Offset of the record's first byte (its owner name). */
  start: number;
  /** Offset of the TYPE field. */
  fixed: number;
  end: number;
}

/** Reads a question at offset 12; null when malformed (compression pointers are not allowed in a query's question). */
export function readQuestion(msg: Uint8Array, offset = 12): RawQuestion | null {
  const labels: string[] = [];
  let p = offset;
  let nameLen = 1;
  for (;;) {
    if (p >= msg.length) return null;
    const len = msg[p];
    if (len === 0) {
      p++;
      break;
    }
    if (len & 0xc0) return null;
    if (p + 1 + len > msg.length) return null;
    nameLen += len + 1;
    if (nameLen > 255) return null;
    let label = "";
    for (let i = p + 1; i <= p + len; i++) label += String.fromCharCode(msg[i]);
    labels.push(label);
    p += len + 1;
  }
  if (p + 4 > msg.length) return null;
  const qtype = (msg[p] << 8) | msg[p + 1];
  const qclass = (msg[p + 2] << 8) | msg[p + 3];
  p += 4;
  return { bytes: msg.subarray(offset, p), labels, qtype, qclass, end: p };
}

/** Skips a (possibly compressed) name; returns the offset after it, or -1 when malformed. */
export function skipName(msg: Uint8Array, offset: number): number {
  let p = offset;
  for (let guard = 0; guard < 128; guard++) {
    if (p >= msg.length) return -1;
    const len = msg[p];
    if (len === 0) return p + 1;
    if ((len & 0xc0) === 0xc0) return p + 2 <= msg.length ? p + 2 : -1;
    if (len & 0xc0) return -1;
    p += len + 1;
  }
  return -1;
}

/** Walks `count` resource records from `offset`; null when they do not fit the message. */
export function walkRecords(msg: Uint8Array, offset: number, count: number): { records: RawRecord[]; end: number } | null {
  const records: RawRecord[] = [];
  let p = offset;
  for (let i = 0; i < count; i++) {
    const fixed = skipName(msg, p);
    if (fixed < 0 || fixed + 10 > msg.length) return null;
    const rdlen = (msg[fixed + 8] << 8) | msg[fixed + 9];
    const end = fixed + 10 + rdlen;
    if (end > msg.length) return null;
    records.push({ type: (msg[fixed] << 8) | msg[fixed + 1], start: p, fixed, end });
    p = end;
  }
  return { records, end: p };
}

/** Header counts. */
export function counts(msg: Uint8Array): { qd: number; an: number; ns: number; ar: number } {
  const u16 = (o: number) => (msg[o] << 8) | msg[o + 1];
  return { qd: u16(4), an: u16(6), ns: u16(8), ar: u16(10) };
}

/** The UDP payload size a query asks for: 512 without OPT, else its OPT CLASS (at least 512). */
export function requestedUdpSize(query: Uint8Array): number {
  if (query.length < 12) return 512;
  const c = counts(query);
  const q = c.qd === 1 ? readQuestion(query) : null;
  if (!q) return 512;
  const walked = walkRecords(query, q.end, c.an + c.ns + c.ar);
  const opt = walked?.records.find((r) => r.type === 41);
  if (!opt) return 512;
  return Math.max(512, (query[opt.fixed + 2] << 8) | query[opt.fixed + 3]);
}

/**
 * Fits an answer into `limit` bytes for UDP: unchanged when it fits, else header with TC=1, the question and the OPT
 * (if any), no answer/authority records (RFC 2181 §9: the client retries over TCP).
 */
export function truncateAnswer(answer: Uint8Array, limit: number): Uint8Array {
  if (answer.length <= limit) return answer;
  const c = counts(answer);
  const q = c.qd === 1 ? readQuestion(answer) : null;
  const qEnd = q ? q.end : 12;
  const walked = walkRecords(answer, qEnd, c.an + c.ns + c.ar);
  const opt = walked?.records.slice(c.an + c.ns).find((r) => r.type === 41);
  const optBytes = opt ? answer.subarray(opt.start, opt.end) : new Uint8Array(0);
  const out = new Uint8Array(qEnd + optBytes.length);
  out.set(answer.subarray(0, qEnd), 0);
  out.set(optBytes, qEnd);
  out[2] |= TC >> 8;
  out[4] = 0;
  out[5] = q ? 1 : 0;
  out[6] = out[7] = out[8] = out[9] = out[10] = 0;
  out[11] = opt ? 1 : 0;
  return out;
}

/** Lowercases ASCII letters only (DNS names compare case-insensitively over ASCII, RFC 4343). */
export function asciiLower(s: string): string {
  let upper = false;
  for (let i = 0; i < s.length && !upper; i++) upper = s.charCodeAt(i) >= 65 && s.charCodeAt(i) <= 90;
  if (!upper) return s;
  return s.replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 32));
}
