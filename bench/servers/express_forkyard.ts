// The benchmark's Express app in a forkyard app pool of WORKERS workers, unchanged.
import { AppPool, Dispatcher, type ListenInfo } from "./forkyard_lib.ts";

const g = globalThis as unknown as {
  Deno?: { env: { get(k: string): string | undefined }; pid: number };
  process: { env: Record<string, string | undefined>; pid: number };
};
const env = (name: string) => g.Deno ? g.Deno.env.get(name) : g.process.env[name];

class BenchDispatcher extends Dispatcher {
  override onListen(info: ListenInfo) {
    console.log(JSON.stringify({ port: info.port }));
  }
}

await new BenchDispatcher({
  port: Number(env("PORT") ?? 0),
  hostname: "127.0.0.1",
  accessLog: false,
  httpServer: (env("HTTP_SERVER") ?? "node") as "node" | "native",
  pools: [new AppPool("/", new URL("./express_app.js", import.meta.url), { workers: Number(env("WORKERS") ?? 2) })],
}).run();
