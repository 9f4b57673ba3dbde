// The benchmark's handlers as a Worker class: served by bench/servers/forkyard.ts, and by worker hosts of a remote
// pool (`forkyard worker --nats URL bench/servers/bench_worker.ts:BenchWorker`). Starts nothing at import. Routes in
// the plain form, without decorators: Node runs the benchmark servers with its own type stripping, not through tsx
// (see forkyard_lib.ts).
import { api, type WebSocketHandler, Worker, type WorkerRequest, ws } from "./forkyard_lib.ts";
import { burn } from "./baseline_burn.ts";

/** The routes every benchmark server serves. */
export class BenchWorker extends Worker {
  json() {
    return { hello: "world" };
  }

  cpu() {
    burn();
    return { hello: "world" };
  }

  echo(req: WorkerRequest) {
    return req.body;
  }

  wsEcho(): WebSocketHandler {
    return { onMessage: (socket, data) => socket.send(data) };
  }

  async slow() {
    await new Promise((r) => setTimeout(r, 60_000));
    return null;
  }
}
api("/json", "GET")(BenchWorker.prototype.json);
api("/cpu", "GET")(BenchWorker.prototype.cpu);
api("/echo", "POST")(BenchWorker.prototype.echo);
ws("/ws")(BenchWorker.prototype.wsEcho);
api("/slow", "GET")(BenchWorker.prototype.slow);
