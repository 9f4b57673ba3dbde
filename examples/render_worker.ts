/**
 * The worker class of examples/remote.ts, in a module of its own: worker hosts
 * run it (`forkyard worker`), and the dispatcher reads its routes. It starts
 * nothing when imported.
 */
import { api, Worker, type WorkerRequest } from "../mod.ts";

/** Renders a (pretend) thumbnail: 20 ms of CPU per request. */
export class Render extends Worker {
  @api("/render/{name}", "GET")
  render(req: WorkerRequest) {
    const until = performance.now() + 20;
    let spins = 0;
    while (performance.now() < until) spins++;
    return { name: req.pathParams.name, spins, host: process.env.HOSTNAME ?? null, pid: process.pid };
  }
}
