// The floor for a dispatcher on Deno: Deno.serve forwards a 16-byte message per request to a
// child that echoes it back, batched once per event-loop turn, with no parsing at all.
// CHANNEL=stdio (the child's stdin/stdout) or CHANNEL=unix (an abstract Unix socket).
// Prints {"port": N} when listening. Run by bench/run.mjs.
import { forwarder } from "./forwarder.ts";

const channel = Deno.env.get("CHANNEL") ?? "stdio";
const child = new URL("./deno_echo_child.ts", import.meta.url).pathname;
let f: ReturnType<typeof forwarder>;
if (channel === "unix") {
  // Abstract namespace: a leading NUL, which cannot travel in an environment variable (the child adds it).
  const address = `\0forkyard-floor-${Deno.pid}`;
  const listener = Deno.listen({ transport: "unix", path: address });
  new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", child],
    env: { CHANNEL: channel, ADDRESS: address.slice(1) },
  })
    .spawn();
  const conn = await listener.accept();
  let busy = Promise.resolve();
  f = forwarder((bytes) => {
    busy = busy.then(async () => {
      for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
    });
  });
  (async () => {
    const buf = new Uint8Array(65536);
    for (let n; (n = await conn.read(buf)) !== null;) f.onBytes(n);
  })();
} else {
  const proc = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", child],
    env: { CHANNEL: channel },
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const writer = proc.stdin.getWriter();
  f = forwarder((bytes) => void writer.write(bytes));
  (async () => {
    for await (const chunk of proc.stdout) f.onBytes(chunk.length);
  })();
}
const server = Deno.serve({ port: Number(Deno.env.get("PORT") ?? 0), hostname: "127.0.0.1", onListen() {} }, f.handle);
console.log(JSON.stringify({ port: server.addr.port }));
