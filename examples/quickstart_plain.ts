/**
 * The quick start without decorators: runs on Node's built-in type stripping
 * with no loader (`node examples/quickstart_plain.ts` on Node 22.18+), and as is
 * on Deno and Bun.
 */
import { api, ApiHandler, type Client, Dispatcher, RejectRequest, sync, Worker, WorkerPool } from "../mod.ts";
import type { ListenInfo, WorkerRequest } from "../mod.ts";

class ItemsHandler extends ApiHandler<StorageWorker> {
  static override pattern = "/api/items";

  list(_req: WorkerRequest) {
    return { items: [...this.worker.items.values()] };
  }

  create(req: WorkerRequest) {
    const item = { id: this.worker.nextId++, name: (req.data as { name?: string })?.name ?? "" };
    this.worker.items.set(item.id, item);
    return Response.json(item, { status: 201 });
  }
}
api("", "GET")(ItemsHandler.prototype.list);
api("", "POST")(ItemsHandler.prototype.create);

class StorageWorker extends Worker {
  static override handlers = [ItemsHandler];
  items = new Map<number, { id: number; name: string }>();
  nextId = 1;

  get(req: WorkerRequest) {
    return this.items.get(req.pathParams.id as number) ?? Response.json({ error: "Not found" }, { status: 404 });
  }
}
api("/api/item/{id:int}", "GET")(StorageWorker.prototype.get);

class MyDispatcher extends Dispatcher {
  override doCheck(client: Client) {
    if (client.headers.get("x-api-key") !== "demo-key") {
      client.respond({ error: "unauthorized" }, 401);
      throw new RejectRequest();
    }
  }

  health(client: Client) {
    client.respond({ status: "ok", pid: process.pid });
  }

  override onListen(info: ListenInfo) {
    // The test suite starts this example on a free port and reads the port from stdout.
    if (process.env.PRINT_PORT) console.log(JSON.stringify({ port: info.port }));
    else super.onListen(info);
  }
}
sync("/health", "GET")(MyDispatcher.prototype.health);

await new MyDispatcher({
  port: Number(process.env.PORT ?? 8080),
  pools: [new WorkerPool(StorageWorker, { workers: 2, routes: ["/api/**"], timeout: 10_000 })],
}).run();
