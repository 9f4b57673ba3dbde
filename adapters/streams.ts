/**
 * Web-stream helpers shared by the Deno and Bun adapters, whose pipes are
 * `ReadableStream`s.
 *
 * @module
 */

/** Reads `stream` to its end, calling `onChunk` for every chunk; a broken pipe counts as the end. */
export async function pump(stream: ReadableStream<Uint8Array>, onChunk: (chunk: Uint8Array) => void) {
  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      onChunk(value);
    }
  } catch {
    // the pipe broke: the same as end of file
  } finally {
    reader.releaseLock();
  }
}
