// What both floor servers do per request, apart from the channel. The bare forwarder keeps one
// pending answer, sends 16 bytes to the child once per event-loop turn, and answers once per 16 bytes
// echoed back. The protocol forwarder (PROTOCOL=1) adds the work no dispatcher can skip: it reads the
// request's method, path and headers, sends them as one forkyard frame (src/protocol/codec.ts, coalesced per
// turn), parses each echoed frame, and answers with a status and two headers, as forkyard does.
import { setImmediate } from "node:timers";
import type { Body } from "../../src/protocol/body.ts";
import { type AnyFrames, FrameDecoder, FrameWriter, recycleBody } from "../../src/protocol/codec.ts";
import { F } from "../../src/protocol/frames.ts";
import { removeOrphanSpills, SPILL_THRESHOLD, spillPrefix } from "../../src/protocol/spill.ts";
import type { Runtime } from "../../src/runtime.ts";
import { IdTable } from "../../src/id_table.ts";

const json = JSON.stringify({ hello: "world" });
const EMPTY = new Uint8Array(0);

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
        waiting[head++](new Response(json, { headers: { "content-type": "application/json" } }));
      }
      if (head === waiting.length) {
        waiting.length = 0;
        head = 0;
      }
    },
  };
}

/**
 * How the Node forwarder reads a request body and learns that a response is written out; Deno and Bun use
 * `request.arrayBuffer()`, and their `Response` copies its body when made.
 */
export interface NodeIO {
  /** The request body as the chunks it arrived in. */
  body(): Promise<Uint8Array[]>;
  /** Calls back once the response has been written out (see `AdapterRequest.afterResponse`). */
  after(listener: () => void): void;
}

/**
 * The protocol forwarder (see the top of this file): `write` sends bytes to the child; feed what it echoes
 * to `onChunk`. With `traceHeader` false it answers with `content-type` alone, to show what the second
 * header costs (on Deno, any second header leaves `Deno.serve`'s static fast path). Request bodies (POST)
 * go as forkyard sends them: large ones through the runtime's spill files, which the echoed frame names, so the
 * forwarder reads back the file it wrote, into bytes it reuses once the runtime no longer reads them. The
 * answer is the echoed body.
 */
export function protocolForwarder(write: (bytes: Uint8Array) => void, traceHeader: boolean, runtime: Runtime) {
  const spill = runtime.spill();
  // Files a floor killed earlier left behind (as a dispatcher does when it starts).
  if (spill !== null) removeOrphanSpills(spill, runtime.alive);
  // The table forkyard keeps its requests in (a Map costs a Node dispatcher 1-2 µs a request in GC, see id_table.ts).
  const waiting = new IdTable<(r: Response) => void>();
  const nodeIO = new IdTable<NodeIO>();
  const ownFiles = spillPrefix(runtime.pid);
  let next = 0;
  const writer = new FrameWriter<AnyFrames>(
    (bytes) => {
      write(bytes);
      return undefined;
    },
    spill === null ? undefined : { files: spill, prefix: ownFiles, threshold: SPILL_THRESHOLD },
  );
  const decoder = new FrameDecoder(
    (frameType, frameHeader, body, lent) => {
      const header = frameHeader as { i: number; x: string; p: string };
      // A decoding child (decode_child.ts) read one of our files: it may take a later body.
      if (frameType === F.RELEASED) return writer.release(header.p);
      const resolve = waiting.get(header.i)!;
      waiting.delete(header.i);
      const type = body.length === 0 ? "application/json" : "application/octet-stream";
      const headers: Record<string, string> = traceHeader
        ? { "content-type": type, "x-request-id": header.x }
        : { "content-type": type };
      resolve(new Response(body.length === 0 ? json : body as BodyInit, { headers }));
      const io = nodeIO.get(header.i);
      if (io !== undefined) nodeIO.delete(header.i);
      if (!lent) return;
      if (io === undefined) recycleBody(body, spill);
      else io.after(() => recycleBody(body, spill));
    },
    spill,
    // The echo child hands back our own files; a decoding child writes files of its own, which it may reuse.
    (path) => path.includes(`/${ownFiles}`) ? writer.release(path) : writer.send(F.RELEASE, { p: path }),
  );
  const send = (request: Request, body: Body, io?: NodeIO): Promise<Response> => {
    const url = request.url;
    const start = url.indexOf("/", url.indexOf("//") + 2);
    const q = url.indexOf("?", start);
    const headers: string[] = [];
    request.headers.forEach((v, k) => headers.push(k, v));
    const i = ++next;
    if (io !== undefined) nodeIO.set(i, io);
    writer.send(F.REQUEST, {
      i,
      m: request.method,
      p: q < 0 ? url.slice(start) : url.slice(start, q),
      q: q < 0 ? "" : url.slice(q + 1),
      h: headers,
      x: `t-${i}`,
    }, body);
    return new Promise((resolve) => waiting.set(i, resolve));
  };
  return {
    handle: (request: Request, io?: NodeIO): Promise<Response> => {
      if (request.method === "GET") return send(request, EMPTY);
      if (io === undefined) return request.arrayBuffer().then((body) => send(request, new Uint8Array(body)));
      return io.body().then((body) => send(request, body, io));
    },
    onChunk: (chunk: Uint8Array) => decoder.push(chunk),
  };
}
