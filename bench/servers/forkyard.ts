// The same handlers behind a forkyard dispatcher with WORKERS worker processes (and SPARES spares); with REMOTE_NATS,
// on worker hosts instead (bench/servers/bench_worker.ts, run by `forkyard worker`).
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
  Worker,
  WorkerPool,
  type WorkerRequest,
} from "./forkyard_lib.ts";
import { BenchWorker } from "./bench_worker.ts";

/** Takes large uploads in a pool of its own and reads only their size (UPLOAD_POOL=1). */
class UploadWorker extends Worker {
  upload(req: WorkerRequest) {
    return { bytes: req.body.length };
  }
}
api("/upload", "POST")(UploadWorker.prototype.upload);

class BenchDispatcher extends Dispatcher {
  override onListen(info: ListenInfo) {
    console.log(JSON.stringify({ port: info.port }));
  }

  pids(client: Client) {
    client.respond({
      dispatcher: g.Deno?.pid ?? g.process.pid,
      workers: this.pools[0].status().workers.map((w) => w.pid),
    });
  }

  pending(client: Client) {
    client.respond({ pending: this.pendingCount });
  }
}
sync("/pids")(BenchDispatcher.prototype.pids);
sync("/pending")(BenchDispatcher.prototype.pending);

await new BenchDispatcher({
  port: Number(env("PORT") ?? 0),
  hostname: "127.0.0.1",
  maxPending: 20_000,
  dispatchers: Number(env("DISPATCHERS") ?? 1),
  httpServer: (env("HTTP_SERVER") ?? "node") as "node" | "native",
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
      // REMOTE_NATS: the pool's workers run on worker hosts (`forkyard worker --nats`), reached through that server.
      ...(env("REMOTE_NATS") ? { remote: { nats: env("REMOTE_NATS")! } } : {}),
    }),
  ],
}).run();
// Exit at once after shutdown: a Deno WebSocket cut by its client keeps the process up to half its idle timeout.
if (g.Deno) (g.Deno as unknown as { exit(code: number): never }).exit(0);
