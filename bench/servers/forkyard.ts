// The same handlers behind a forkyard dispatcher with WORKERS worker processes (and SPARES spares).
// Settings come from Deno.env on Deno, not node:process: every worker re-runs this program, and the first use of
// node:process starts Deno's Node compatibility layer (about 10 ms per worker start, measured with and without).
// The bare runtime it is compared with (ready.ts) loads neither.
const g = globalThis as unknown as {
  Deno?: { env: { get(k: string): string | undefined }; pid: number };
  process: { env: Record<string, string | undefined>; pid: number };
};
const env = (name: string) => g.Deno ? g.Deno.env.get(name) : g.process.env[name];
import {
  api,
  type Client,
  Dispatcher,
  type ListenInfo,
  sync,
  type WebSocketHandler,
  Worker,
  WorkerPool,
  type WorkerRequest,
  ws,
} from "../../mod.ts";
import { burn } from "./baseline_burn.ts";

class BenchWorker extends Worker {
  @api("/json", "GET")
  json() {
    return { hello: "world" };
  }

  @api("/cpu", "GET")
  cpu() {
    burn();
    return { hello: "world" };
  }

  @api("/echo", "POST")
  echo(req: WorkerRequest) {
    return req.body;
  }

  @ws("/ws")
  wsEcho(): WebSocketHandler {
    return { onMessage: (socket, data) => socket.send(data) };
  }

  @api("/slow", "GET")
  async slow() {
    await new Promise((r) => setTimeout(r, 60_000));
    return null;
  }
}

/** Takes large uploads in a pool of its own and reads only their size (UPLOAD_POOL=1). */
class UploadWorker extends Worker {
  @api("/upload", "POST")
  upload(req: WorkerRequest) {
    return { bytes: req.body.length };
  }
}

class BenchDispatcher extends Dispatcher {
  override onListen(info: ListenInfo) {
    console.log(JSON.stringify({ port: info.port }));
  }

  @sync("/pids")
  pids(client: Client) {
    client.respond({
      dispatcher: g.Deno?.pid ?? g.process.pid,
      workers: this.pools[0].status().workers.map((w) => w.pid),
    });
  }

  @sync("/pending")
  pending(client: Client) {
    client.respond({ pending: this.pendingCount });
  }
}

await new BenchDispatcher({
  port: Number(env("PORT") ?? 0),
  hostname: "127.0.0.1",
  maxPending: 20_000,
  dispatchers: Number(env("DISPATCHERS") ?? 1),
  maxBodySize: 8 * 1024 * 1024,
  accessLog: (env("ACCESS_LOG") as "combined" | "json" | undefined) ?? false,
  pools: [
    ...(env("UPLOAD_POOL") === "1" ? [new WorkerPool(UploadWorker, { routes: ["/upload"], timeout: 120_000 })] : []),
    new WorkerPool(BenchWorker, {
      workers: Number(env("WORKERS") ?? 1),
      concurrency: Number(env("CONCURRENCY") ?? 10_000),
      timeout: 120_000,
      queueWarning: 0,
      restartDelay: 0,
      spares: Number(env("SPARES") ?? 0),
    }),
  ],
}).run();
// Exit at once after shutdown: a Deno WebSocket cut by its client keeps the process up to half its idle timeout.
if (g.Deno) (g.Deno as unknown as { exit(code: number): never }).exit(0);
