/**
 * Reading a request body in the dispatcher, up to `maxBodySize`, as the chunks
 * it arrived in: they are written to the worker as they are, never joined.
 *
 * @module
 */

/** A read of `reader` that rejects with a `TimeoutError` when nothing comes for `idleMs` (0: waits). */
function readWithin<T>(reader: ReadableStreamDefaultReader<T>, idleMs: number): Promise<ReadableStreamReadResult<T>> {
  if (idleMs <= 0) return reader.read();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      // Rejected before the cancel, which ends the pending read as if the body were whole.
      reject(new DOMException(`no part of the body for ${idleMs} ms`, "TimeoutError"));
      reader.cancel().catch(() => {});
    }, idleMs);
  });
  return Promise.race([reader.read(), timeout]).finally(() => clearTimeout(timer));
}

/**
 * Reads a request body as its chunks, stopping at `limit` bytes (`null` when it is larger); rejects with a
 * `TimeoutError` when no part comes for `idleMs` (0: no limit).
 */
export async function readBody(request: Request, limit: number, idleMs = 0): Promise<Uint8Array[] | null> {
  const length = request.headers.get("content-length");
  if (length !== null && Number(length) > limit) return null;
  if (request.body === null) return [];
  if (length !== null && idleMs <= 0) {
    const buf = new Uint8Array(await request.arrayBuffer());
    return buf.length > limit ? null : [buf];
  }
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await readWithin(reader, idleMs);
    if (done) break;
    size += value.length;
    if (size > limit) {
      reader.cancel().catch(() => {});
      return null;
    }
    chunks.push(value);
  }
  return chunks;
}
