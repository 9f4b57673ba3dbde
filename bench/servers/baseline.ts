// The baseline: the same handlers served in one process by the runtime's own server
// (Deno.serve, Bun.serve, node:http; WebSocket echo at /ws with Deno.upgradeWebSocket, Bun's server.upgrade, and the
// ws package on Node). SERVER=node serves with node:http and ws on Deno and Bun too: the floor of forkyard's default
// server. Prints {"port": N} when listening.
import { createServer } from "node:http";
import process from "node:process";
import { burn } from "./baseline_burn.ts";

const body = JSON.stringify({ hello: "world" });
/** Requests to /slow not answered yet (the RSS-with-pending baseline). */
let pending = 0;
const slow = () => {
  pending++;
  return new Promise<void>((resolve) => setTimeout(resolve, 60_000)).then(() => pending--);
};

async function handle(req: Request): Promise<Response> {
  const path = new URL(req.url).pathname;
  if (path === "/json") return new Response(body, { headers: { "content-type": "application/json" } });
  if (path === "/cpu") {
    burn();
    return new Response(body, { headers: { "content-type": "application/json" } });
  }
  if (path === "/echo") {
    return new Response(await req.arrayBuffer(), { headers: { "content-type": "application/octet-stream" } });
  }
  if (path === "/slow") {
    await slow();
    return new Response(null, { status: 204 });
  }
  if (path === "/pending") return Response.json({ pending });
  if (path === "/pids") return Response.json({ dispatcher: process.pid, workers: [] });
  return new Response("not found", { status: 404 });
}

const port = Number(process.env.PORT ?? 0);
// REUSE_PORT=1: bind with SO_REUSEPORT, so that several of these serve one port (Deno needs --unstable-net).
const reusePort = process.env.REUSE_PORT === "1";
const g = globalThis as Record<string, any>;
const nodeHttp = process.env.SERVER === "node";
if (g.Deno && !nodeHttp) {
  const server = g.Deno.serve({ port, hostname: "127.0.0.1", reusePort, onListen() {} }, (req: Request) => {
    if (!req.url.endsWith("/ws")) return handle(req);
    const { socket, response } = g.Deno.upgradeWebSocket(req);
    socket.onmessage = (event: MessageEvent) => socket.send(event.data);
    return response;
  });
  console.log(JSON.stringify({ port: server.addr.port }));
} else if (g.Bun && !nodeHttp) {
  const server = g.Bun.serve({
    port,
    hostname: "127.0.0.1",
    reusePort,
    fetch: (req: Request, srv: { upgrade(req: Request): boolean }) =>
      req.url.endsWith("/ws") && srv.upgrade(req) ? undefined : handle(req),
    websocket: { message: (ws: { send(data: unknown): void }, message: unknown) => ws.send(message) },
  });
  console.log(JSON.stringify({ port: server.port }));
} else {
  // node:http directly, as a Node user's fastest in-process server
  const server = createServer((req, res) => {
    if (req.url === "/json" || req.url === "/cpu") {
      if (req.url === "/cpu") burn();
      res.writeHead(200, { "content-type": "application/json" }).end(body);
    } else if (req.url === "/echo") {
      const chunks: Buffer[] = [];
      req.on("data", (c) => chunks.push(c));
      req.on(
        "end",
        () => res.writeHead(200, { "content-type": "application/octet-stream" }).end(Buffer.concat(chunks)),
      );
    } else if (req.url === "/slow") {
      slow().then(() => res.writeHead(204).end());
    } else if (req.url === "/pending" || req.url === "/pids") {
      const answer = req.url === "/pending" ? { pending } : { dispatcher: process.pid, workers: [] };
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(answer));
    } else res.writeHead(404).end("not found");
  });
  const { WebSocketServer } = await import("ws");
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  server.on(
    "upgrade",
    (req, socket, head) =>
      wss.handleUpgrade(req, socket, head, (ws) => ws.on("message", (data, binary) => ws.send(data, { binary }))),
  );
  server.listen(
    { port, host: "127.0.0.1", reusePort },
    () => console.log(JSON.stringify({ port: (server.address() as { port: number }).port })),
  );
}
