// The benchmark's handlers as a Worker class: served by bench/servers/forkyard.ts, and by worker hosts of a remote
// pool (`forkyard worker --nats URL bench/servers/bench_worker.ts:BenchWorker`). Starts nothing at import.
import { api, type WebSocketHandler, Worker, type WorkerRequest, ws } from "../../mod.ts";
import { burn } from "./baseline_burn.ts";

/** The routes every benchmark server serves. */
export class BenchWorker extends Worker {
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
