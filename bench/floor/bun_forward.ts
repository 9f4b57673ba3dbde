// The floor for a dispatcher on Bun: Bun.serve forwards a 16-byte message per request to a
// child that echoes it back over its stdin/stdout, batched once per event-loop turn, no parsing.
// Prints {"port": N} when listening. Run by bench/run.mjs.
import process from "node:process";
import { forwarder } from "./forwarder.ts";

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
const child = Bun.spawn([process.execPath, new URL("./bun_echo_child.ts", import.meta.url).pathname], {
  stdin: "pipe",
  stdout: "pipe",
});
const f = forwarder((bytes) => {
  child.stdin.write(bytes);
  child.stdin.flush();
});
(async () => {
  for await (const chunk of child.stdout) f.onBytes(chunk.length);
})();
const server = Bun.serve({ port: Number(process.env.PORT ?? 0), hostname: "127.0.0.1", fetch: f.handle });
console.log(JSON.stringify({ port: server.port }));
