/**
 * Reading a request body in the dispatcher, up to `maxBodySize`, as the chunks
 * it arrived in: they are written to the worker as they are, never joined.
 *
 * @module
 */

/** Reads a request body as its chunks, stopping at `limit` bytes; `null` when it is larger. */
export async function readBody(request: Request, limit: number): Promise<Uint8Array[] | null> {
  const length = request.headers.get("content-length");
  if (length !== null && Number(length) > limit) return null;
  if (request.body === null) return [];
  if (length !== null) {
    const buf = new Uint8Array(await request.arrayBuffer());
    return buf.length > limit ? null : [buf];
  }
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
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
