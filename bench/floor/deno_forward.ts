// The floor for a dispatcher on Deno: Deno.serve forwards a 16-byte message per request to a
// child that echoes it back, batched once per event-loop turn, with no parsing at all.
// CHANNEL=stdio (the child's stdin/stdout) or CHANNEL=unix (an abstract Unix socket); with
// PROTOCOL=1, forkyard's frames instead of 16 bytes (see forwarder.ts), and TRACE_HEADER=0 answers
// those without the x-request-id header; CHILD=decode (with CHANNEL=unix) runs decode_child.ts, a child that does a
// worker's minimum and connects as a Deno worker does.
// REUSE_PORT=1 binds with SO_REUSEPORT, so that two of these share one port (Deno needs --unstable-net).
// SERVER=node serves on node:http (node_http.ts), forkyard's default server, instead of Deno.serve.
// Prints {"port": N} when listening. Run by bench/run.mjs.
import { CHANNEL_ENV, runtime, TOKEN_BYTES } from "../../adapters/deno.ts";
import { forwarder, protocolForwarder } from "./forwarder.ts";
import { serveNodeHttp } from "./node_http.ts";

const channel = Deno.env.get("CHANNEL") ?? "stdio";
const trace = Deno.env.get("TRACE_HEADER") !== "0";
const make = Deno.env.get("PROTOCOL")
  ? (w: (b: Uint8Array) => void) => protocolForwarder(w, trace, runtime)
  : forwarder;
const decode = Deno.env.get("CHILD") === "decode";
const child = new URL(decode ? "./decode_child.ts" : "./deno_echo_child.ts", import.meta.url).pathname;
let f: { handle(request: Request): Promise<Response>; onChunk(chunk: Uint8Array): void };
if (channel === "unix") {
  // Abstract namespace: a leading NUL, which cannot travel in an environment variable (the child adds it).
  const address = `\0forkyard-floor-${Deno.pid}`;
  const listener = Deno.listen({ transport: "unix", path: address });
  // The decoding child connects as a worker does: it finds the socket in CHANNEL_ENV and sends the token first.
  const env: Record<string, string> = decode
    ? { [CHANNEL_ENV]: `${address.slice(1)}:${"00".repeat(TOKEN_BYTES)}` }
    : { CHANNEL: channel, ADDRESS: address.slice(1) };
  new Deno.Command(Deno.execPath(), { args: ["run", "-A", child], env }).spawn();
  const conn = await listener.accept();
  let token = decode ? TOKEN_BYTES : 0;
  let busy = Promise.resolve();
  f = make((bytes) => {
    busy = busy.then(async () => {
      for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
    });
  });
  (async () => {
    const buf = new Uint8Array(65536);
    for (let n; (n = await conn.read(buf)) !== null;) {
      const skip = Math.min(token, n);
      token -= skip;
      if (n > skip) f.onChunk(buf.subarray(skip, n));
    }
  })();
} else {
  const proc = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", child],
    env: { CHANNEL: channel },
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const writer = proc.stdin.getWriter();
  f = make((bytes) => void writer.write(bytes));
  (async () => {
    for await (const chunk of proc.stdout) f.onChunk(chunk);
  })();
}
if (Deno.env.get("SERVER") === "node") {
  serveNodeHttp(f, () => {});
} else {
  const server = Deno.serve(
    {
      port: Number(Deno.env.get("PORT") ?? 0),
      hostname: "127.0.0.1",
      reusePort: Deno.env.get("REUSE_PORT") === "1",
      onListen() {},
    },
    (request) => f.handle(request),
  );
  console.log(JSON.stringify({ port: server.addr.port }));
}
