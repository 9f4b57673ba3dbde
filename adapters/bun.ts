/**
 * The Bun adapter: `Bun.spawn`, `Bun.serve` and Bun's file sinks.
 *
 * @module
 */

import { badHost, countHeaders, MAX_HEADERS, tooManyHeaders, validHost } from "./request_head.ts";
import process from "node:process";
import type { MiddlewareHandler } from "hono";
import type {
  AdapterRequest,
  ChildProcess,
  ExitStatus,
  HttpServer,
  ParentChannel,
  Runtime,
  ServeOptions,
  ServerWebSocket,
  SignalName,
  SpawnOptions,
  SpillFiles,
  StaticOptions,
  WebSocketEvents,
} from "../src/runtime.ts";
import { pump } from "./streams.ts";
import {
  CHANNEL_FD,
  dropProcessPrivileges,
  fsLogTarget,
  fsSpill,
  processAlive,
  redirectProcessStdout,
  spawnEnv,
  takeChannelFd,
  watchTree,
} from "./node_like.ts";

/** The parts of Bun's API this adapter uses. */
interface FileSink {
  write(data: Uint8Array): number;
  flush(): number | Promise<number>;
  end(): unknown;
}
interface BunSubprocess {
  pid: number;
  /** Extra pipes (index 3 on) as file descriptors the caller owns. */
  stdio: (number | null)[];
  stdin: FileSink;
  stdout: ReadableStream<Uint8Array>;
  stderr: ReadableStream<Uint8Array>;
  exited: Promise<number>;
  exitCode: number | null;
  signalCode: string | null;
  kill(signal?: string): void;
}
interface BunServer {
  port: number;
  stop(closeActiveConnections?: boolean): Promise<void>;
  requestIP(request: Request): { address: string } | null;
  upgrade(request: Request, options: { data: SocketData; headers?: Record<string, string> }): boolean;
}
interface SocketData {
  events: WebSocketEvents;
}
interface BunWebSocket {
  data: SocketData;
  send(data: string | Uint8Array): number;
  close(code?: number, reason?: string): void;
  getBufferedAmount(): number;
  readyState: number;
}
interface BunWebSocketHandler {
  maxPayloadLength: number;
  idleTimeout: number;
  sendPings: boolean;
  open(ws: BunWebSocket): void;
  message(ws: BunWebSocket, message: string | Uint8Array): void;
  close(ws: BunWebSocket, code: number, reason: string): void;
}
interface BunApi {
  spawn(options: {
    cmd: string[];
    cwd?: string;
    env: Record<string, string>;
    stdio: ["pipe", "pipe", "pipe", "pipe"] | ["pipe", "pipe", "pipe"];
  }): BunSubprocess;
  file(fd: number): { stream(): ReadableStream<Uint8Array>; writer(): FileSink };
  serve(options: {
    port: number;
    hostname: string;
    reusePort?: boolean;
    idleTimeout: number;
    tls?: { cert: string; key: string };
    fetch(request: Request, server: BunServer): Response | undefined | Promise<Response | undefined>;
    error(error: Error): Response;
    websocket?: BunWebSocketHandler;
  }): BunServer;
  stdin: { stream(): ReadableStream<Uint8Array> };
  stdout: { writer(): FileSink };
  main: string;
  inspect(value: unknown): string;
}
const Bun = (globalThis as unknown as { Bun: BunApi }).Bun;

function spawn(options: SpawnOptions): ChildProcess {
  const { onText } = options;
  const proc = Bun.spawn({
    cmd: [...options.cmd],
    cwd: options.cwd,
    env: spawnEnv(options),
    stdio: onText ? ["pipe", "pipe", "pipe", "pipe"] : ["pipe", "pipe", "pipe"],
  });
  const streams = Promise.all([
    pump(proc.stdout, onText ?? options.onStdout),
    pump(proc.stderr, options.onStderr),
    onText ? readFd(proc.stdio[CHANNEL_FD]!, options.onStdout) : undefined,
  ]);
  const exited = Promise.all([proc.exited, streams]).then((): ExitStatus =>
    proc.signalCode ? { code: null, signal: proc.signalCode } : { code: proc.exitCode, signal: null }
  );
  let open = true;
  return {
    pid: proc.pid,
    write(data) {
      if (!open) return undefined;
      try {
        proc.stdin.write(data);
        const flushed = proc.stdin.flush();
        return flushed instanceof Promise ? flushed.then(() => {}, () => {}) : undefined;
      } catch {
        open = false;
        return undefined;
      }
    },
    closeStdin() {
      if (!open) return;
      open = false;
      try {
        proc.stdin.end();
      } catch {
        // already closed
      }
    },
    kill(signal = "SIGTERM") {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
    },
    exited,
  };
}

/** Reads a pipe Bun handed over to its end, then closes it (`Subprocess.stdio` transfers ownership). */
async function readFd(fd: number, onChunk: (chunk: Uint8Array) => void) {
  await pump(Bun.file(fd).stream(), onChunk);
  try {
    process.getBuiltinModule("node:fs").closeSync(fd);
  } catch {
    // already closed
  }
}

function parentChannel(): ParentChannel {
  // A pipe of its own (see CHANNEL_FD_ENV): creating process.stdout, to patch it, would slow every worker's start.
  const fd = takeChannelFd(process);
  const ownPipe = fd !== null;
  const sink = ownPipe ? Bun.file(fd).writer() : Bun.stdout.writer();
  return {
    start(onData, onEnd) {
      pump(Bun.stdin.stream(), onData).then(onEnd);
    },
    write(data) {
      try {
        sink.write(data);
        const flushed = sink.flush();
        if (flushed instanceof Promise) return flushed.then(() => {}, () => {});
      } catch {
        // the dispatcher is gone; stdin end of file stops this worker
      }
      return undefined;
    },
    redirectStdout(onText) {
      // With its own pipe, the channel is safe from stdout, which the dispatcher reads as text.
      if (!ownPipe) redirectProcessStdout(process, onText);
    },
  };
}

/** What `fetch` returns for an accepted handshake: Bun answers it itself, so the server gets `undefined`. */
const UPGRADED = new Response(null, { status: 200 });

/** The peer of one request, read only when asked for. */
class BunRequest implements AdapterRequest {
  #request: Request;
  #server: BunServer;
  upgrade?: (events: WebSocketEvents, protocol: string | null) => Response;

  constructor(request: Request, server: BunServer, websocket: boolean) {
    this.#request = request;
    this.#server = server;
    if (websocket) {
      this.upgrade = (events, protocol) => {
        const headers = protocol === null ? undefined : { "sec-websocket-protocol": protocol };
        if (!server.upgrade(request, { data: { events }, headers })) throw new Error("Invalid WebSocket handshake");
        return UPGRADED;
      };
    }
  }

  remoteAddress(): string {
    return this.#server.requestIP(this.#request)?.address ?? "";
  }

  afterResponse(listener: () => void): void {
    // Bun's Response copied its body when it was made (the fetch standard's "copy of the bytes").
    listener();
  }
}

/** The socket Bun gives its handlers, as the dispatcher drives it. */
function serverSocket(ws: BunWebSocket): ServerWebSocket {
  return {
    send: (data) => void ws.send(data),
    close: (code, reason) => ws.close(code, reason),
    bufferedAmount: () => ws.getBufferedAmount(),
  };
}

/** Bun's WebSocket handlers, for the limits given: one set for the server, each socket's own events in its data. */
function websocketHandler(limits: NonNullable<ServeOptions["websocket"]>): BunWebSocketHandler {
  return {
    maxPayloadLength: limits.maxMessageSize,
    // Seconds; Bun pings a socket silent that long and closes it when nothing comes back.
    idleTimeout: limits.idleTimeout > 0 ? Math.min(960, Math.max(1, Math.round(limits.idleTimeout / 1000))) : 0,
    sendPings: true,
    open: (ws) => ws.data.events.open(serverSocket(ws)),
    message: (ws, message) =>
      ws.data.events.message(
        typeof message === "string" ? message : new Uint8Array(message.buffer, message.byteOffset, message.length),
      ),
    close: (ws, code, reason) => ws.data.events.close(code, reason),
  };
}

const CONTENT_LENGTH = Symbol("forkyard.contentLength");

/**
 * Bun's ServerResponse has Node's private `_contentLength` but never writes it out, and @hono/node-server sets it
 * instead of a Content-Length header: without a header set here, every answer of known length would go out chunked.
 */
function writeContentLength() {
  const { ServerResponse } = process.getBuiltinModule("node:http");
  Object.defineProperty(ServerResponse.prototype, "_contentLength", {
    configurable: true,
    get(this: { [CONTENT_LENGTH]?: number | null }) {
      return this[CONTENT_LENGTH] ?? null;
    },
    set(
      this: { [CONTENT_LENGTH]?: number | null; headersSent: boolean; setHeader(n: string, v: number): void },
      length,
    ) {
      this[CONTENT_LENGTH] = length;
      if (typeof length === "number" && !this.headersSent) this.setHeader("Content-Length", length);
    },
  });
}

/** Bun.serve, which closes a connection on which a request arrives while an asynchronous answer is pending. */
function serveNative(options: ServeOptions): Promise<HttpServer> {
  const limits = options.websocket;
  const maxHeaders = options.maxHeaders ?? MAX_HEADERS;
  const server = Bun.serve({
    port: options.port,
    hostname: options.hostname,
    ...(options.reusePort ? { reusePort: true } : {}),
    // Streams such as Server-Sent Events may stay quiet for long; the dispatcher owns timeouts.
    idleTimeout: 0,
    ...(options.tls ? { tls: { cert: options.tls.cert, key: options.tls.key } } : {}),
    fetch: (request, srv) => {
      if (!validHost(request.headers.get("host"))) return badHost();
      if (countHeaders(request.headers, maxHeaders) > maxHeaders) return tooManyHeaders();
      if (limits === undefined || request.method !== "GET" || request.headers.get("upgrade") === null) {
        return options.fetch(request, new BunRequest(request, srv, false));
      }
      // After server.upgrade() Bun has answered the handshake: fetch must return nothing.
      return Promise.resolve(options.fetch(request, new BunRequest(request, srv, true)))
        .then((response) => response === UPGRADED ? undefined : response);
    },
    error: () => Response.json({ error: "Internal server error" }, { status: 500 }),
    ...(limits !== undefined ? { websocket: websocketHandler(limits) } : {}),
  });
  return Promise.resolve({
    port: server.port,
    hostname: options.hostname,
    close: async (graceMs?: number) => {
      const force = graceMs === undefined ? undefined : setTimeout(() => void server.stop(true), graceMs);
      await server.stop(false);
      clearTimeout(force);
    },
  });
}

let spillFiles: SpillFiles | null | undefined;

/** Bun flags a worker must not get (watchers, debuggers); the rest (`--preload`, `--conditions`, ...) it needs. */
const DROP_FLAG = /^--(watch|hot|inspect)/;

/** The Bun implementation of {@linkcode Runtime}. */
export const runtime: Runtime = {
  name: "bun",
  loadHint: () => null,
  setHeaderAfter: false,
  pid: process.pid,
  selfCommand: (script) => [process.execPath, ...process.execArgv.filter((flag) => !DROP_FLAG.test(flag)), script],
  spawn,
  parentChannel,
  onSignal(signal: SignalName, handler: () => void): () => void {
    process.on(signal, handler);
    return () => process.off(signal, handler);
  },
  // Bun.serve fails pipelined requests behind an asynchronous answer (oven-sh/bun#38128) and has no header timeout
  // or connection count of its own to set.
  serve: async (options) => {
    if (options.httpServer === "native") return serveNative(options);
    writeContentLength();
    return (await import("./node_http.ts")).serveNodeHttp(options);
  },
  serveStatic: async (options: StaticOptions): Promise<MiddlewareHandler> => {
    const { serveStatic } = await import("hono/bun");
    return serveStatic({ root: options.root, rewriteRequestPath: options.rewriteRequestPath });
  },
  env: (name) => process.env[name],
  mainModule: () => Bun.main,
  args: () => process.argv.slice(2),
  stderrIsTerminal: () => process.stderr.isTTY === true,
  writeStderr: (text) => void process.stderr.write(text),
  openLog: (path) => fsLogTarget(process.getBuiltinModule("node:fs"), path),
  writeStdout: (text) => void process.stdout.write(text),
  reusePortFlags: [],
  reusePortMissing: (server) => {
    if (process.platform !== "linux") return `Bun offers SO_REUSEPORT on Linux only, not ${process.platform}`;
    return server === "native"
      ? null
      : `Bun's node:http server cannot listen with SO_REUSEPORT (set httpServer "native")`;
  },
  // A worker loads node:fs when a body first spills (it costs a Bun process about 4 MiB). Without /dev/shm (macOS),
  // a dispatcher has no spill directory and every body crosses the channel.
  spill: () => (spillFiles ??= fsSpill("/dev/shm", () => process.getBuiltinModule("node:fs"), process.env)),
  inspect: (value) => Bun.inspect(value),
  rss: () => process.memoryUsage.rss(),
  alive: (pid) => processAlive(process, pid),
  ids: () => ({ uid: process.getuid!(), gid: process.getgid!() }),
  dropPrivileges: (to) => dropProcessPrivileges(process, to),
  watchFiles: (dir, onChange) => watchTree(process.getBuiltinModule("node:fs"), dir, onChange),
  exit: (code) => process.exit(code),
};
