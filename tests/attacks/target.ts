// The target of tests/attacks.test.ts: a dispatcher as a user would write one, with a pool, a WebSocket route,
// static files, an auth check, the admin listener and the access log. Prints {"port", "admin"} once listening.
import {
  api,
  type Client,
  Dispatcher,
  RejectRequest,
  type WebSocketHandler,
  Worker,
  WorkerPool,
  ws,
} from "../../mod.ts";

class Api extends Worker {
  @api("/api/echo", "POST")
  echo(req: { data: unknown }) {
    return { got: req.data === null ? 0 : 1 };
  }

  @api("/api/hello")
  hello() {
    return { hello: "world" };
  }

  /** A worker that tries to write the dispatcher's access log. */
  @api("/api/forge")
  async forge() {
    const { getLogger } = await import("@logtape/logtape");
    getLogger(["forkyard", "access"]).info('FORGED 6.6.6.6 - - "GET /admin HTTP/1.1" 200');
    return { forged: true };
  }

  @ws("/api/ws")
  socket(): WebSocketHandler {
    return { onMessage: (socket, data) => socket.send(data) };
  }
}

class Target extends Dispatcher {
  override doCheck(client: Client) {
    if (client.path.startsWith("/api/private") && client.headers.get("authorization") !== "Bearer ok") {
      throw new RejectRequest({ error: "unauthorized" }, 401);
    }
  }

  override onListen(info: { port: number; admin?: { port: number } }) {
    console.log(JSON.stringify({ port: info.port, admin: info.admin?.port }));
  }
}

await new Target({
  port: 0,
  hostname: "127.0.0.1",
  admin: "127.0.0.1:0",
  accessLog: "combined",
  staticRoutes: { "/static/": process.env.STATIC_DIR! },
  httpServer: (process.env.HTTP_SERVER ?? "node") as "node" | "native",
  shutdownTimeout: 1000,
  pools: [new WorkerPool(Api, { workers: 2, routes: ["/api/**"], logLevel: "info" })],
}).run();
