// The same handlers behind a forkyard dispatcher with WORKERS worker processes (and SPARES spares).
import process from "node:process";
import {
  api,
  type Client,
  Dispatcher,
  type ListenInfo,
  sync,
  Worker,
  WorkerPool,
  type WorkerRequest,
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

  @api("/slow", "GET")
  async slow() {
    await new Promise((r) => setTimeout(r, 60_000));
    return null;
  }
}

class BenchDispatcher extends Dispatcher {
  override onListen(info: ListenInfo) {
    console.log(JSON.stringify({ port: info.port }));
  }

  @sync("/pids")
  pids(client: Client) {
    client.respond({ dispatcher: process.pid, workers: this.pools[0].status().workers.map((w) => w.pid) });
  }

  @sync("/pending")
  pending(client: Client) {
    client.respond({ pending: this.pendingCount });
  }
}

await new BenchDispatcher({
  port: Number(process.env.PORT ?? 0),
  hostname: "127.0.0.1",
  maxPending: 20_000,
  maxBodySize: 2 * 1024 * 1024,
  pools: [
    new WorkerPool(BenchWorker, {
      workers: Number(process.env.WORKERS ?? 1),
      concurrency: Number(process.env.CONCURRENCY ?? 10_000),
      timeout: 120_000,
      queueWarning: 0,
      restartDelay: 0,
      spares: Number(process.env.SPARES ?? 0),
    }),
  ],
}).run();
