/** Streams of a known length: workerd answers them with Content-Length (a JavaScript stream alone is chunked). */

/** A stream that must carry exactly `length` bytes: workerd's FixedLengthStream (its length is the answer's). */
export function lengthStream(length: number): { readable: ReadableStream<Uint8Array>; writable: WritableStream<Uint8Array> } {
  if (typeof FixedLengthStream === "function") {
    const fixed = new FixedLengthStream(length);
    return { readable: fixed.readable as unknown as ReadableStream<Uint8Array>, writable: fixed.writable as unknown as WritableStream<Uint8Array> };
  }
  return new TransformStream<Uint8Array, Uint8Array>();
}

/** `body` carried by a stream of `contentLength` bytes when that is a length (it fails if the body brings another). */
export function withLength(body: ReadableStream<Uint8Array>, contentLength: string | null): ReadableStream<Uint8Array> {
  if (contentLength === null || !/^\d+$/.test(contentLength)) return body;
  const { readable, writable } = lengthStream(Number(contentLength));
  body.pipeTo(writable).catch(() => undefined); // a failed body fails the readable: the answer ends short
  return readable;
}
