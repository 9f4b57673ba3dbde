/**
 * The seed's multi-pool example: a compute pool and a storage pool, an API-key
 * check, results forwarded from compute to storage in `onResponse`, health and
 * version handlers in the dispatcher, and a static index page.
 *
 *   npm start                                   (Node, port 8080)
 *   deno task multi-pool  |  bun run examples/multi_pool.ts
 *
 *   curl localhost:8080/                                        static index page
 *   curl localhost:8080/health
 *   curl -H 'x-api-key: demo-key' localhost:8080/api/compute/fib/30
 *   curl -H 'x-api-key: demo-key' localhost:8080/api/items      results stored by forwarding
 */
import {
  api,
  ApiHandler,
  type Client,
  Dispatcher,
  type ListenInfo,
  type PendingRequest,
  RejectRequest,
  sync,
  Worker,
  WorkerPool,
  type WorkerRequest,
  type WorkerResponse,
} from "../mod.ts";

const VALID_KEYS = new Set(["demo-key"]);

function fib(n: number): number {
  return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

/** CPU-bound work: runs in its own processes so it never blocks the dispatcher. */
class ComputeWorker extends Worker {
  @api("/api/compute/fib/{n:int}", "GET")
  fib(req: WorkerRequest) {
    const n = Math.min(req.pathParams.n as number, 35);
    return { n, result: fib(n), worker: this.workerId };
  }
}

class ItemsHandler extends ApiHandler<StorageWorker> {
  static override pattern = "/api/items";

  @api("", "GET")
  list() {
    return { items: this.worker.items };
  }
}

/** Keeps state; one process so that every request sees the same items. */
class StorageWorker extends Worker {
  static override handlers = [ItemsHandler];
  items: unknown[] = [];

  override setup() {
    this.log.info("storage ready, limit {limit}", { limit: this.kwargs.limit });
  }

  @api("/internal/storage/save", "POST")
  save(req: WorkerRequest) {
    this.items.push(req.data);
    if (this.items.length > Number(this.kwargs.limit)) this.items.shift();
    return { saved: true };
  }
}

class MultiPoolDispatcher extends Dispatcher {
  override doCheck(client: Client) {
    if (!VALID_KEYS.has(client.headers.get("x-api-key") ?? "")) {
      client.respond({ error: "unauthorized" }, 401);
      throw new RejectRequest();
    }
  }

  override onResponse(response: WorkerResponse, pending: PendingRequest) {
    if (response.status === 200 && pending.pool.name === "compute") {
      this.findPool("/internal/storage/save")!.send({
        path: "/internal/storage/save",
        data: { path: pending.client?.path, result: response.data },
      });
    }
  }

  /** Prints what to try, with the API key the pools need, once the server listens. */
  override onListen(info: ListenInfo) {
    super.onListen(info);
    const base = `http://localhost:${info.port}`;
    console.log(`forkyard demo on ${base} (API key for /api: ${[...VALID_KEYS][0]})
  curl ${base}/                                                 static index page
  curl ${base}/health                                           pools and workers, from the dispatcher
  curl -H 'x-api-key: demo-key' ${base}/api/compute/fib/30      CPU work in the compute pool
  curl -H 'x-api-key: demo-key' ${base}/api/items               results the storage pool kept`);
  }

  @sync("/health", "GET")
  health(client: Client) {
    client.respond({ status: "ok", pools: this.pools.map((p) => p.status()) });
  }

  @sync("/version", "GET")
  version(client: Client) {
    client.respond({ version: "1.0.0" });
  }
}

await new MultiPoolDispatcher({
  port: Number(process.env.PORT ?? 8080),
  staticRoutes: { "/": new URL("./static/", import.meta.url).pathname },
  pools: [
    new WorkerPool(ComputeWorker, { name: "compute", workers: 2, routes: ["/api/compute/**"], timeout: 60_000 }),
    new WorkerPool(StorageWorker, {
      name: "storage",
      workers: 1,
      routes: ["/api/items/**", "/internal/storage/**"],
      timeout: 10_000,
      logLevel: "info",
      kwargs: { limit: 100 },
    }),
  ],
}).run();
