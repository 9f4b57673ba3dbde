// The floor for a dispatcher on Bun: Bun.serve forwards a 16-byte message per request to a
// child that echoes it back over its stdin/stdout, batched once per event-loop turn, no parsing.
// Prints {"port": N} when listening. Run by bench/floor.mjs.
import process from "node:process";
import { setImmediate } from "node:timers";

interface Proc {
  stdin: { write(b: Uint8Array): number; flush(): unknown };
  stdout: ReadableStream<Uint8Array>;
}
const Bun = (globalThis as unknown as {
  Bun: {
    spawn(cmd: string[], o: { stdin: "pipe"; stdout: "pipe" }): Proc;
    serve(o: { port: number; hostname: string; fetch(): Promise<Response> }): { port: number };
  };
}).Bun;
const body = JSON.stringify({ hello: "world" });
const answer = () => new Response(body, { headers: { "content-type": "application/json" } });
const waiting: ((r: Response) => void)[] = [];
let head = 0;
let queued = 0;
let scheduled = false;
let carry = 0;
const child = Bun.spawn([process.execPath, new URL("./bun_echo_child.ts", import.meta.url).pathname], {
  stdin: "pipe",
  stdout: "pipe",
});
(async () => {
  for await (const chunk of child.stdout) {
    carry += chunk.length;
    for (; carry >= 16; carry -= 16) waiting[head++](answer());
    if (head === waiting.length) {
      waiting.length = 0;
      head = 0;
    }
  }
})();
const flush = () => {
  scheduled = false;
  child.stdin.write(new Uint8Array(queued * 16));
  child.stdin.flush();
  queued = 0;
};
const server = Bun.serve({
  port: Number(process.env.PORT ?? 0),
  hostname: "127.0.0.1",
  fetch: () =>
    new Promise<Response>((resolve) => {
      waiting.push(resolve);
      queued++;
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    }),
});
console.log(JSON.stringify({ port: server.port }));
