/**
 * The complete program from API.md: a storage pool behind an API-key check.
 *
 *   deno run -A examples/quickstart.ts
 *   bun run examples/quickstart.ts
 *   npx tsx examples/quickstart.ts
 *
 * curl -H 'x-api-key: demo-key' localhost:8080/api/items
 */
import {
  api,
  ApiHandler,
  type Client,
  Dispatcher,
  RejectRequest,
  sync,
  Worker,
  WorkerPool,
  type WorkerRequest,
} from "../mod.ts";

class ItemsHandler extends ApiHandler<StorageWorker> {
  static override pattern = "/api/items";

  @api("", "GET")
  list(_req: WorkerRequest) {
    return { items: [...this.worker.items.values()] }; // plain value: JSON, 200
  }

  @api("", "POST")
  create(req: WorkerRequest) {
    const item = { id: this.worker.nextId++, name: (req.data as { name?: string })?.name ?? "" };
    this.worker.items.set(item.id, item);
    return Response.json(item, { status: 201 }); // a web Response: as is
  }
}

class StorageWorker extends Worker {
  static override handlers = [ItemsHandler];
  items = new Map<number, { id: number; name: string }>();
  nextId = 1;

  override setup() { // once per worker process; may be async
    this.log.info("storage worker {id} ready", { id: this.workerId });
  }

  @api("/api/item/{id:int}", "GET")
  get(req: WorkerRequest) {
    return this.items.get(req.pathParams.id as number) ??
      Response.json({ error: "Not found" }, { status: 404 });
  }
}

class MyDispatcher extends Dispatcher {
  override doCheck(client: Client) { // before any request is queued
    if (client.headers.get("x-api-key") !== "demo-key") {
      client.respond({ error: "unauthorized" }, 401);
      throw new RejectRequest();
    }
  }

  @sync("/health")
  health(client: Client) {
    client.respond({ status: "ok", pools: this.pools.map((p) => p.status()) });
  }
}

await new MyDispatcher({
  port: Number(process.env.PORT ?? 8080),
  staticRoutes: { "/static/": new URL("./static/", import.meta.url).pathname },
  pools: [
    // One worker: the items live in its memory, and a second process would hold a second, different list.
    new WorkerPool(StorageWorker, { workers: 1, routes: ["/api/**"], timeout: 10_000, logLevel: "info" }),
  ],
}).run();
