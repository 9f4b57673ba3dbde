// The floor for a dispatcher on Deno: Deno.serve forwards a 16-byte message per request to a
// child that echoes it back, batched once per event-loop turn, with no parsing at all.
// CHANNEL=stdio (the child's stdin/stdout) or CHANNEL=unix (an abstract Unix socket).
// Prints {"port": N} when listening. Run by bench/floor.mjs.
import { setImmediate } from "node:timers";

const channel = Deno.env.get("CHANNEL") ?? "stdio";
const body = JSON.stringify({ hello: "world" });
const answer = () => new Response(body, { headers: { "content-type": "application/json" } });
const waiting: ((r: Response) => void)[] = [];
let head = 0;
let queued = 0;
let scheduled = false;
let carry = 0;
const onBytes = (n: number) => {
  carry += n;
  for (; carry >= 16; carry -= 16) waiting[head++](answer());
  if (head === waiting.length) {
    waiting.length = 0;
    head = 0;
  }
};
const child = new URL("./deno_echo_child.ts", import.meta.url).pathname;
// Abstract namespace: a leading NUL, which cannot travel in an environment variable (the child adds it).
const address = `\0forkyard-floor-${Deno.pid}`;
let write: (bytes: Uint8Array) => void;
if (channel === "unix") {
  const listener = Deno.listen({ transport: "unix", path: address });
  new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", child],
    env: { CHANNEL: channel, ADDRESS: address.slice(1) },
  })
    .spawn();
  const conn = await listener.accept();
  let busy = Promise.resolve();
  write = (bytes) => {
    busy = busy.then(async () => {
      for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
    });
  };
  (async () => {
    const buf = new Uint8Array(65536);
    for (let n; (n = await conn.read(buf)) !== null;) onBytes(n);
  })();
} else {
  const proc = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", child],
    env: { CHANNEL: channel },
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const writer = proc.stdin.getWriter();
  write = (bytes) => void writer.write(bytes);
  (async () => {
    for await (const chunk of proc.stdout) onBytes(chunk.length);
  })();
}
const flush = () => {
  scheduled = false;
  write(new Uint8Array(queued * 16));
  queued = 0;
};
const server = Deno.serve(
  { port: Number(Deno.env.get("PORT") ?? 0), hostname: "127.0.0.1", onListen() {} },
  () =>
    new Promise<Response>((resolve) => {
      waiting.push(resolve);
      queued++;
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    }),
);
console.log(JSON.stringify({ port: server.addr.port }));
