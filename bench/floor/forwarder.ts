// What both floor servers do per request, apart from the channel. The bare forwarder keeps one
// pending answer, sends 16 bytes to the child once per event-loop turn, and answers once per 16 bytes
// echoed back. The protocol forwarder (PROTOCOL=1) adds the work no dispatcher can skip: it reads the
// request's method, path and headers, sends them as one forkyard frame (src/framing.ts, coalesced per
// turn), parses each echoed frame, and answers with a status and two headers, as forkyard does.
import { setImmediate } from "node:timers";
import { F, FrameDecoder, FrameWriter } from "../../src/framing.ts";
import { IdTable } from "../../src/id_table.ts";

const body = JSON.stringify({ hello: "world" });

/** `write` sends bytes to the child; feed what the child echoes to `onBytes`. */
export function forwarder(write: (bytes: Uint8Array) => void) {
  const waiting: ((r: Response) => void)[] = [];
  let head = 0;
  let queued = 0;
  let scheduled = false;
  let carry = 0;
  const flush = () => {
    scheduled = false;
    write(new Uint8Array(queued * 16));
    queued = 0;
  };
  return {
    /** The server's request handler. */
    handle: (): Promise<Response> =>
      new Promise((resolve) => {
        waiting.push(resolve);
        queued++;
        if (!scheduled) {
          scheduled = true;
          setImmediate(flush);
        }
      }),
    /** Bytes the child echoed. */
    onChunk(chunk: Uint8Array) {
      carry += chunk.length;
      for (; carry >= 16; carry -= 16) {
        waiting[head++](new Response(body, { headers: { "content-type": "application/json" } }));
      }
      if (head === waiting.length) {
        waiting.length = 0;
        head = 0;
      }
    },
  };
}

/**
 * The protocol forwarder (see the top of this file): `write` sends bytes to the child; feed what it echoes
 * to `onChunk`. With `traceHeader` false it answers with `content-type` alone, to show what the second
 * header costs (on Deno, any second header leaves `Deno.serve`'s static fast path).
 */
export function protocolForwarder(write: (bytes: Uint8Array) => void, traceHeader = true) {
  // The table forkyard keeps its requests in (a Map costs a Node dispatcher 1-2 µs a request in GC, see id_table.ts).
  const waiting = new IdTable<(r: Response) => void>();
  let next = 0;
  const writer = new FrameWriter((bytes) => {
    write(bytes);
    return undefined;
  });
  const decoder = new FrameDecoder((_type, header: { i: number; x: string }) => {
    const resolve = waiting.get(header.i)!;
    waiting.delete(header.i);
    const headers: Record<string, string> = traceHeader
      ? { "content-type": "application/json", "x-request-id": header.x }
      : { "content-type": "application/json" };
    resolve(new Response(body, { headers }));
  });
  return {
    handle: (request: Request): Promise<Response> => {
      const url = request.url;
      const start = url.indexOf("/", url.indexOf("//") + 2);
      const q = url.indexOf("?", start);
      const headers: string[] = [];
      request.headers.forEach((v, k) => headers.push(k, v));
      const i = ++next;
      writer.send(F.REQUEST, {
        i,
        m: request.method,
        p: q < 0 ? url.slice(start) : url.slice(start, q),
        q: q < 0 ? "" : url.slice(q + 1),
        h: headers,
        x: `t-${i}`,
      });
      return new Promise((resolve) => waiting.set(i, resolve));
    },
    onChunk: (chunk: Uint8Array) => decoder.push(chunk),
  };
}
