// The floors' node:http server: @hono/node-server, as forkyard's dispatcher serves by default on every runtime, in
// front of a floor forwarder. node_forward.ts always serves with it; deno_forward.ts and bun_forward.ts with
// SERVER=node, so that the default server's floor is measured like for like on Deno and Bun too.
// Prints {"port": N} when listening.
import process from "node:process";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createAdaptorServer } from "@hono/node-server";
import type { NodeIO } from "./forwarder.ts";

/** What a floor forwarder answers a request with. */
export interface Forwarding {
  handle(request: Request, io?: NodeIO): Promise<Response>;
}

/** As forkyard's node:http path: the body's chunks straight from the IncomingMessage, reuse after "close". */
const nodeIO = (incoming: IncomingMessage, outgoing: ServerResponse): NodeIO => ({
  body: () =>
    new Promise((resolve) => {
      const chunks: Uint8Array[] = [];
      incoming.on("data", (c: Uint8Array) => chunks.push(c));
      incoming.once("end", () => resolve(chunks));
    }),
  after: (listener) => void outgoing.once("close", listener),
});

/** Serves `f` on 127.0.0.1:$PORT (REUSE_PORT=1: with SO_REUSEPORT); `stop` runs on SIGTERM before exiting. */
export function serveNodeHttp(f: Forwarding, stop: () => void): void {
  const fetch = (request: Request, env: unknown) => {
    const { incoming, outgoing } = env as { incoming: IncomingMessage; outgoing: ServerResponse };
    return f.handle(request, request.method === "GET" ? undefined : nodeIO(incoming, outgoing));
  };
  const server = createAdaptorServer({ fetch });
  server.listen(
    { port: Number(process.env.PORT ?? 0), host: "127.0.0.1", reusePort: process.env.REUSE_PORT === "1" },
    () => console.log(JSON.stringify({ port: (server.address() as { port: number }).port })),
  );
  process.on("SIGTERM", () => {
    stop();
    server.close();
    process.exit(0);
  });
}
