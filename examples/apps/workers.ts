// A Worker class for a config-file pool (decorator-free, so the module loads on plain Node too).
import { api, Worker, type WorkerRequest } from "../../mod.ts";

export class ComputeWorker extends Worker {
  square(req: WorkerRequest) {
    const n = req.pathParams.n as number;
    return { n, square: n * n, worker: this.workerId };
  }
}
api("/api/compute/square/{n:int}", "GET")(ComputeWorker.prototype.square);
