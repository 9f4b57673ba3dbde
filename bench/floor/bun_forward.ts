// The floor for a dispatcher on Bun: Bun.serve forwards a 16-byte message per request to a
// child that echoes it back over its stdin/stdout, batched once per event-loop turn, no parsing;
// with PROTOCOL=1, forkyard's frames instead (see forwarder.ts), and TRACE_HEADER=0 answers those
// without the x-request-id header; CHILD=decode runs decode_child.ts, a child that does a worker's minimum.
// REUSE_PORT=1 binds with SO_REUSEPORT, so that two of these share one port.
// SERVER=node serves on node:http (node_http.ts), forkyard's default server, instead of Bun.serve.
// Prints {"port": N} when listening. Run by bench/run.mjs.
import process from "node:process";
import { runtime } from "../../adapters/bun.ts";
import { forwarder, protocolForwarder } from "./forwarder.ts";
import { serveNodeHttp } from "./node_http.ts";

interface Proc {
  stdin: { write(b: Uint8Array): number; flush(): unknown };
  stdout: ReadableStream<Uint8Array>;
}
const Bun = (globalThis as unknown as {
  Bun: {
    spawn(cmd: string[], o: { stdin: "pipe"; stdout: "pipe" }): Proc;
    serve(o: { port: number; hostname: string; reusePort: boolean; fetch(request: Request): Promise<Response> }): {
      port: number;
    };
  };
}).Bun;
const childFile = process.env.CHILD === "decode" ? "./decode_child.ts" : "./bun_echo_child.ts";
const child = Bun.spawn([process.execPath, new URL(childFile, import.meta.url).pathname], {
  stdin: "pipe",
  stdout: "pipe",
});
const write = (bytes: Uint8Array) => {
  child.stdin.write(bytes);
  child.stdin.flush();
};
const f = process.env.PROTOCOL ? protocolForwarder(write, process.env.TRACE_HEADER !== "0", runtime) : forwarder(write);
(async () => {
  for await (const chunk of child.stdout) f.onChunk(chunk);
})();
if (process.env.SERVER === "node") {
  serveNodeHttp(f, () => {});
} else {
  const server = Bun.serve({
    port: Number(process.env.PORT ?? 0),
    hostname: "127.0.0.1",
    reusePort: process.env.REUSE_PORT === "1",
    fetch: (request) => f.handle(request),
  });
  console.log(JSON.stringify({ port: server.port }));
}
