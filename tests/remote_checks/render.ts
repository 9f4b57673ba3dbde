// The worker class of tests/remote_checks.test.ts's remote pool, as a user would write one: run on worker hosts by
// `forkyard worker --nats URL tests/remote_checks/render.ts:Render`. Starts nothing when imported.
import { api, Worker, type WorkerRequest } from "../../mod.ts";

export class Render extends Worker {
  /** Which host answered. */
  @api("/render/who", "GET")
  who() {
    return { host: process.env.CHECK_HOST ?? null };
  }

  /** Answers after `ms` milliseconds, naming its host. */
  @api("/render/slow/{ms:int}", "GET")
  async slow(req: WorkerRequest) {
    await new Promise((r) => setTimeout(r, req.pathParams.ms as number));
    return { host: process.env.CHECK_HOST ?? null };
  }

  /** A status and headers of its own. */
  @api("/render/made", "GET")
  made() {
    const headers = new Headers({ "cache-control": "no-store", "x-made-by": "render", "content-type": "text/plain" });
    headers.append("set-cookie", "session=abc; HttpOnly");
    headers.append("set-cookie", "theme=dark; Path=/");
    return new Response("made", { status: 201, headers });
  }

  /** The body back. */
  @api("/render/echo", "POST")
  echo(req: WorkerRequest) {
    return req.body;
  }
}
