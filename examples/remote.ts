/**
 * A remote pool: the dispatcher serves /render/** from worker hosts reached
 * over NATS. Start a NATS server (`apt-get install nats-server; nats-server`),
 * this dispatcher, and as many worker hosts as you like, on this machine or
 * others:
 *
 *   deno run -A examples/remote.ts                 (NATS_URL, default nats://127.0.0.1:4222)
 *   npx forkyard worker --nats nats://127.0.0.1:4222 examples/render_worker.ts:Render --workers 2
 *
 *   curl localhost:8080/render/cat                 answered by some worker host
 *   curl localhost:8080/health                     the hosts' workers, from the dispatcher
 */
import { type Client, Dispatcher, sync, WorkerPool } from "../mod.ts";
import { Render } from "./render_worker.ts";

const nats = process.env.NATS_URL ?? "nats://127.0.0.1:4222";

class Gateway extends Dispatcher {
  @sync("/health")
  health(client: Client) {
    const status = this.pools[0].status();
    client.respond({ workers: status.workers.map((w) => ({ host: w.host, pid: w.pid, alive: w.alive })) });
  }
}

await new Gateway({
  port: Number(process.env.PORT ?? 8080),
  pools: [new WorkerPool(Render, { routes: ["/render/**"], remote: { nats }, timeout: 10_000 })],
}).run();
