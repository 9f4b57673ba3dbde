/**
 * The README's quick start: one worker pool, one route, one health check
 * served by the dispatcher itself.
 *
 *   deno run -A examples/hello.ts
 *   bun run examples/hello.ts
 *   node --import tsx examples/hello.ts
 *
 * curl localhost:8080/hello/world
 */
import { api, type Client, Dispatcher, sync, Worker, WorkerPool, type WorkerRequest } from "../mod.ts";

class Hello extends Worker {
  @api("/hello/{name}", "GET")
  hello(req: WorkerRequest) {
    return { hello: req.pathParams.name, worker: this.workerId, pid: process.pid };
  }
}

class App extends Dispatcher {
  @sync("/health")
  health(client: Client) {
    client.respond({ status: "ok", pools: this.pools.map((pool) => pool.status().degraded ? "degraded" : "ok") });
  }
}

await new App({
  port: Number(process.env.PORT ?? 8080),
  pools: [new WorkerPool(Hello, { workers: 2, routes: ["/hello/**"] })],
}).run();
