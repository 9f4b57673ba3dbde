// The floor for WebSockets through a dispatcher: the runtime's server (through forkyard's adapter, as the dispatcher
// accepts sockets) forwards each message as one forkyard frame to a child that echoes the bytes back, parses the
// echoed frames and sends each message back on its socket: the design's relay, with no routing, no handshake through
// a worker, no hub and no supervision. The child is the runtime's echo child of the HTTP floors, over stdio (Deno,
// Bun) or the pipe of its own Node's adapter gives it. Prints {"port": N} when listening. Run by bench/run.mjs.
import { loadRuntime } from "../../src/detect.ts";
import { type AnyFrames, FrameDecoder, FrameWriter } from "../../src/protocol/codec.ts";
import { F } from "../../src/protocol/frames.ts";
import type { ServerWebSocket } from "../../src/runtime.ts";

const runtime = await loadRuntime();
const child = new URL(`./${runtime.name}_echo_child.ts`, import.meta.url).pathname;
const sockets = new Map<number, ServerWebSocket>();
const decoder = new TextDecoder();
const frames = new FrameDecoder((_type, header, body) => {
  const socket = sockets.get((header as { i: number }).i);
  if (socket === undefined) return;
  socket.send((header as { b?: 1 }).b === 1 ? body.slice() : decoder.decode(body));
}, null);
/**
 * Writes to the child, whose echo goes to `frames`: on Deno over an abstract Unix socket, the channel Deno workers
 * use (its adapter's spawn expects a worker's handshake on it), elsewhere over the adapter's pipes.
 */
async function childChannel(): Promise<(bytes: Uint8Array) => Promise<void> | undefined> {
  const Deno = (globalThis as { Deno?: typeof globalThis.Deno }).Deno;
  if (Deno !== undefined) {
    const address = `\0forkyard-ws-floor-${Deno.pid}`;
    const listener = Deno.listen({ transport: "unix", path: address });
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", child],
      env: { CHANNEL: "unix", ADDRESS: address.slice(1) },
    }).spawn();
    const conn = await listener.accept();
    (async () => {
      const buf = new Uint8Array(65536);
      for (let n; (n = await conn.read(buf)) !== null;) frames.push(buf.slice(0, n));
    })();
    let busy = Promise.resolve();
    return (bytes) => {
      busy = busy.then(async () => {
        for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
      });
      return undefined;
    };
  }
  const proc = runtime.spawn({
    cmd: runtime.selfCommand(child),
    onStdout: (chunk) => frames.push(chunk),
    // Node's echo child answers on a pipe of its own (fd 3), as Node workers do.
    ...(runtime.name === "node" ? { onText: () => {} } : {}),
    onStderr: () => {},
  });
  return (bytes) => proc.write(bytes);
}
const writer = new FrameWriter<AnyFrames>(await childChannel());
let nextId = 1;
const server = await runtime.serve({
  port: Number(runtime.env("PORT") ?? 0),
  hostname: "127.0.0.1",
  websocket: { idleTimeout: 60_000, maxMessageSize: 16 * 1024 * 1024 },
  fetch: (_request, extras) => {
    if (extras.upgrade === undefined) return new Response("not found", { status: 404 });
    const id = nextId++;
    return extras.upgrade({
      open: (socket) => sockets.set(id, socket),
      message: (data) => {
        if (typeof data === "string") writer.send(F.WS_MESSAGE, { i: id }, data);
        else writer.send(F.WS_MESSAGE, { i: id, b: 1 }, data);
      },
      close: () => sockets.delete(id),
    }, null);
  },
});
console.log(JSON.stringify({ port: server.port }));
