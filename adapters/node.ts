/**
 * The Node.js adapter: `node:child_process`, `process` signals and
 * `@hono/node-server`.
 *
 * @module
 */

import { spawn as spawnProcess } from "node:child_process";
import { createServer as createHttpsServer } from "node:https";
import type { IncomingMessage, Server as HttpServerNode, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import process from "node:process";
import * as fs from "node:fs";
import { existsSync } from "node:fs";
import { Socket } from "node:net";
import { inspect } from "node:util";
import type { MiddlewareHandler } from "hono";
import type {
  AdapterRequest,
  ChildProcess,
  HttpServer,
  ParentChannel,
  Runtime,
  ServeOptions,
  SignalName,
  SpawnOptions,
  SpillFiles,
  StaticOptions,
} from "../src/runtime.ts";
import { codeOf, firstLine } from "../src/error_text.ts";
import {
  childEnv,
  fsSpill,
  processAlive,
  processChannel,
  spawnNodeLike,
  takeChannelFd,
  watchTree,
} from "./node_like.ts";

/** Node flags that must not reach a worker process. */
const DROP_FLAG = /^--(test|inspect|watch|eval|print|input-type|check)/;

function selfCommand(script: string): string[] {
  const flags = process.execArgv.filter((flag, i, all) =>
    !DROP_FLAG.test(flag) && !(i > 0 && DROP_FLAG.test(all[i - 1]) && !flag.startsWith("-"))
  );
  return [process.execPath, ...flags, script];
}

/**
 * What the dispatcher may read of one request besides its web `Request`, straight from Node's IncomingMessage:
 * the raw header list and the body without building the `Request`'s `Headers` and body stream (reading
 * `request.headers` makes @hono/node-server build a full web Request for every request).
 */
class NodeRequest implements AdapterRequest {
  #incoming: IncomingMessage;
  #outgoing: ServerResponse;

  constructor(incoming: IncomingMessage, outgoing: ServerResponse) {
    this.#incoming = incoming;
    this.#outgoing = outgoing;
  }

  afterResponse(listener: () => void): void {
    // "close" comes after "finish" (the last byte handed to the kernel) or when the connection is destroyed,
    // which cancels the writes still queued. If it came already, the listener never runs: nothing is reused.
    this.#outgoing.once("close", listener);
  }

  remoteAddress(): string {
    return this.#incoming.socket.remoteAddress ?? "";
  }

  rawHeaders(): string[] {
    return this.#incoming.rawHeaders;
  }

  readBody(limit: number): Promise<Uint8Array[] | null> {
    const incoming = this.#incoming;
    const length = incoming.headers["content-length"];
    // Refused from the headers: the 413 closes the connection, so the body need not be read (or waited for).
    if (length !== undefined && Number(length) > limit) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      // Plain views, not Buffers: a body reads the same on every runtime (Buffer's toString and toJSON differ).
      const chunks: Uint8Array[] = [];
      let size = 0;
      incoming.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size > limit) {
          incoming.removeAllListeners("data");
          incoming.resume();
          resolve(null);
          return;
        }
        chunks.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length));
      });
      incoming.once("end", () => {
        if (size <= limit) resolve(chunks);
      });
      incoming.once("error", reject);
    });
  }
}

function spawn(options: SpawnOptions): ChildProcess {
  return spawnNodeLike(spawnProcess, options);
}

/**
 * Calls `process.nextTick` 20,000 times with a no-op before the dispatcher serves: without it, the tick objects
 * node:http makes several times per request often end up in a slow shape (V8 migrating their maps), which costs the
 * dispatcher CPU on every request. Checked with `node bench/probe.mjs node`; numbers in `git log -S warmNextTick`.
 */
function warmNextTick() {
  const noop = () => {};
  for (let i = 0; i < 20_000; i++) process.nextTick(noop);
}

async function serve(options: ServeOptions): Promise<HttpServer> {
  warmNextTick();
  // Loaded here, not at the top: worker processes never serve HTTP.
  const { createAdaptorServer } = await import("@hono/node-server");
  const attachWebSockets = options.websocket
    ? await (await import("./node_websocket.ts")).webSockets(options.websocket)
    : null;
  let stopPinging = () => {};
  return await new Promise((resolve, reject) => {
    const server = createAdaptorServer({
      fetch: (request: Request, env: unknown) => {
        const { incoming, outgoing } = env as { incoming: IncomingMessage; outgoing: ServerResponse };
        return options.fetch(request, new NodeRequest(incoming, outgoing));
      },
      serverOptions: { ...limits(options), ...(options.tls ? { cert: options.tls.cert, key: options.tls.key } : {}) },
      ...(options.tls ? { createServer: createHttpsServer } : {}),
    });
    // listen() with options, not @hono/node-server's serve(): the options carry reusePort.
    server.listen(
      { port: options.port, host: options.hostname, ...(options.reusePort ? { reusePort: true } : {}) },
      () => {
        const info = server.address() as AddressInfo;
        server.off("error", reject);
        resolve({
          port: info.port,
          hostname: options.hostname,
          close: (graceMs?: number) =>
            new Promise<void>((done) => {
              // close() only closes connections idle right now; keep-alive connections
              // whose request finishes later must be closed as they become idle.
              const http = server as { closeIdleConnections(): void; closeAllConnections(): void };
              const sweep = setInterval(() => http.closeIdleConnections(), 50);
              const force = graceMs === undefined ? undefined : setTimeout(() => http.closeAllConnections(), graceMs);
              stopPinging();
              server.close(() => {
                clearInterval(sweep);
                clearTimeout(force);
                done();
              });
              http.closeIdleConnections();
            }),
        });
      },
    );
    server.once("error", reject);
    if (attachWebSockets !== null) stopPinging = attachWebSockets(server as HttpServerNode, options.fetch);
    if (options.maxConnections) server.maxConnections = options.maxConnections;
    if (options.headersTimeout) {
      // Node's headersTimeout starts at a request's first byte: a connection that sends none is closed here.
      const timeout = options.headersTimeout;
      server.on("connection", (socket: Socket) => {
        const timer = setTimeout(() => socket.destroy(), timeout);
        socket.once("data", () => clearTimeout(timer));
        socket.once("close", () => clearTimeout(timer));
      });
    }
  });
}

/** SO_REUSEPORT in `net` listen options came with Node 22.12 and 23.1, on Linux (and a few other systems). */
function reusePortMissing(): string | null {
  if (process.platform !== "linux") return `SO_REUSEPORT is used on Linux only, not ${process.platform}`;
  const [major, minor] = process.versions.node.split(".").map(Number);
  if (major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12)) return null;
  return `Node ${process.versions.node} cannot listen with SO_REUSEPORT (Node 22.12 or later can)`;
}

/** The server options that enforce the connection limits: Node checks them every connectionsCheckingInterval. */
function limits(options: ServeOptions) {
  const headersTimeout = options.headersTimeout ?? 60_000;
  return {
    headersTimeout,
    // No limit on a whole request: a large upload may take long, and the pools time out requests themselves.
    requestTimeout: 0,
    keepAliveTimeout: options.idleTimeout ?? 5000,
    connectionsCheckingInterval: Math.min(1000, headersTimeout),
  };
}

/** The worker's end: frames go out on a pipe of their own when the dispatcher gave one (see `CHANNEL_FD_ENV`). */
/**
 * Node refusing a TypeScript module it has no loader for (decorators above all; its type stripping transforms
 * nothing): say how to run it.
 */
function loadHint(error: unknown, module: string): string | null {
  if (!/\.[cm]?tsx?$/.test(module)) return null;
  const code = codeOf(error);
  const refused = code === "ERR_UNKNOWN_FILE_EXTENSION" || code === "ERR_UNSUPPORTED_TYPESCRIPT_SYNTAX" ||
    code === "ERR_UNSUPPORTED_NODE_MODULES_TYPE_STRIPPING" ||
    (error instanceof SyntaxError &&
      /decorator|Invalid or unexpected token|Unexpected token '@'/i.test(firstLine(error)));
  if (!refused) return null;
  return `Node runs TypeScript with decorators only through a loader; ` +
    `run NODE_OPTIONS="--import tsx" npx forkyard serve ${module} (after npm install tsx), ` +
    `or bunx --bun forkyard serve ${module}`;
}

function parentChannel(): ParentChannel {
  const fd = takeChannelFd(process);
  return processChannel(process, fd === null ? undefined : new Socket({ fd, readable: false, writable: true }));
}

let spillFiles: SpillFiles | null | undefined;

/** The Node.js implementation of {@linkcode Runtime}. */
export const runtime: Runtime = {
  name: "node",
  setHeaderAfter: false,
  loadHint,
  pid: process.pid,
  selfCommand,
  spawn,
  parentChannel,
  onSignal(signal: SignalName, handler: () => void): () => void {
    process.on(signal, handler);
    return () => process.off(signal, handler);
  },
  serve,
  serveStatic: async (options: StaticOptions): Promise<MiddlewareHandler> => {
    const { serveStatic } = await import("@hono/node-server/serve-static");
    return serveStatic({ root: options.root, rewriteRequestPath: options.rewriteRequestPath });
  },
  env: (name) => process.env[name],
  mainModule: () => process.argv[1],
  args: () => process.argv.slice(2),
  stderrIsTerminal: () => process.stderr.isTTY === true,
  writeStderr: (text) => void process.stderr.write(text),
  writeStdout: (text) => void process.stdout.write(text),
  reusePortMissing: reusePortMissing(),
  reusePortFlags: [],
  spill: () => (spillFiles ??= existsSync("/dev/shm") ? fsSpill("/dev/shm", () => fs) : null),
  inspect: (value) => inspect(value),
  rss: () => process.memoryUsage.rss(),
  alive: (pid) => processAlive(process, pid),
  watchFiles: (dir, onChange) => watchTree(fs, dir, onChange),
  exit: (code) => process.exit(code),
};

export { childEnv };
