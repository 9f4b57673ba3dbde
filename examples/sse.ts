/**
 * A worker streams Server-Sent Events; the dispatcher relays them as they come.
 *
 *   deno task sse  |  bun run examples/sse.ts  |  npm run sse
 *   curl -N localhost:8080/events?count=5
 */
import { api, Dispatcher, sse, Worker, WorkerPool, type WorkerRequest } from "../mod.ts";

class EventsWorker extends Worker {
  streams = 0;

  override onDisconnect(requestId: number) {
    this.log.info("client of request {requestId} left", { requestId });
  }

  @api("/events", "GET")
  events(req: WorkerRequest) {
    const count = Math.min(Number(req.query?.count ?? 10), 1000);
    this.streams++;
    return sse(async (stream) => {
      stream.send({ retry: 2000, comment: "hello" });
      for (let i = 1; i <= count && !stream.closed; i++) {
        stream.send({ event: "tick", id: i, data: { i, at: new Date().toISOString(), worker: this.workerId } });
        await new Promise((r) => setTimeout(r, 500));
      }
      stream.send({ event: "end", data: "bye" });
    });
  }
}

await new Dispatcher({
  port: Number(process.env.PORT ?? 8080),
  pools: [new WorkerPool(EventsWorker, { workers: 2, logLevel: "info" })],
}).run();
