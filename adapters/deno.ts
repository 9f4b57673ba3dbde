/**
 * The Deno adapter: `Deno.Command`, `Deno.addSignalListener` and `Deno.serve`.
 *
 * @module
 */

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
  WebSocketLimits,
} from "../src/runtime.ts";
import { ReadBuffers, SPILL_BUFFERS } from "../src/protocol/read_buffers.ts";
import { pump } from "./streams.ts";

const PERMISSIONS = ["read", "write", "net", "env", "run", "sys", "ffi", "import"] as const;

/**
 * Permission flags for a child: every permission this process holds in full is
 * passed on; a child always may read forkyard's own variables.
 */
function permissionFlags(): string[] {
  const granted = PERMISSIONS.filter((name) => Deno.permissions.querySync({ name }).state === "granted");
  if (granted.length === PERMISSIONS.length) return ["--allow-all"];
  const flags = granted.map((name) => `--allow-${name}`);
  if (!granted.includes("env")) flags.push("--allow-env=FORKYARD_WORKER,FORKYARD_MODULE");
  return flags;
}

/** `deno run` flags a worker must not get: permissions (recomputed above), watchers and debuggers. */
const DROP_FLAG = /^(-A$|--allow-|--watch|--hmr|--inspect)/;

/**
 * The flags this process was run with that affect loading and running (`--sloppy-imports`, `--config`,
 * `--import-map`, `--unstable-*`, `--env-file`, `--v8-flags`, `--conditions`, `--preload`, ...), so that a worker
 * loads the program as the dispatcher did. Deno has no `execArgv`: they are read from `/proc/self/cmdline`; where
 * that cannot be read, or the process is not a `deno run` of its main module, there are none.
 */
function runFlags(): string[] {
  return (flagsOfThisRun ??= readRunFlags());
}
let flagsOfThisRun: string[] | undefined;

function readRunFlags(): string[] {
  let argv: string[];
  try {
    argv = Deno.readTextFileSync("/proc/self/cmdline").split("\0");
  } catch {
    return [];
  }
  if (argv[argv.length - 1] === "") argv.pop();
  const script = argv.length - Deno.args.length - 1;
  if (script < 1 || !Deno.mainModule.endsWith(argv[script].replace(/^\.\//, ""))) return [];
  const before = argv.slice(1, script);
  const command = before.findIndex((arg) => !arg.startsWith("-"));
  // `deno run FLAGS script` or `deno FLAGS script`; anything else (`deno test`, `deno eval`) is not a program run.
  if (command >= 0 && (command !== 0 || before[0] !== "run")) return [];
  return before.filter((arg) => arg !== "run" && !DROP_FLAG.test(arg));
}

/** Whether this process holds every permission (then so do its children). */
function allGranted(): boolean {
  return PERMISSIONS.every((name) => Deno.permissions.querySync({ name }).state === "granted");
}

/**
 * The variable that tells a worker where its socket channel is: `name:token`, the abstract socket's name without
 * its leading NUL and the hex token the worker sends first.
 */
export const CHANNEL_ENV = "FORKYARD_CHANNEL";
/** Bytes of that token. */
export const TOKEN_BYTES = 16;

/**
 * The channel to a worker goes over a Unix socket where one can be had (Linux,
 * full permissions): Deno reads a child's stdin on a blocking thread per read,
 * which costs a worker CPU on every request. The socket lives in the abstract
 * namespace (no file to clean up); a child proves it is ours with a random token
 * sent first. Elsewhere the channel is stdin/stdout, as on Bun and Node.
 */
interface SocketHub {
  address: string;
  /** Token (hex) → the spawned child waiting for its connection. */
  waiting: Map<string, (conn: Deno.Conn) => void>;
}
let hub: SocketHub | null | undefined;

function socketHub(): SocketHub | null {
  if (hub !== undefined) return hub;
  hub = null;
  if (Deno.build.os !== "linux" || !allGranted()) return hub;
  const address = `\0forkyard-${Deno.pid}-${hex(crypto.getRandomValues(new Uint8Array(8)))}`;
  let listener: Deno.Listener;
  try {
    listener = Deno.listen({ transport: "unix", path: address });
  } catch {
    return hub;
  }
  // The listener must not keep the process alive by itself.
  listener.unref();
  const waiting = new Map<string, (conn: Deno.Conn) => void>();
  (async () => {
    for await (const conn of listener) {
      readExactly(conn, TOKEN_BYTES).then((token) => {
        const attach = token === null ? undefined : waiting.get(hex(token));
        if (attach === undefined) return conn.close();
        waiting.delete(hex(token!));
        attach(conn);
      }, () => conn.close());
    }
  })().catch(() => {});
  hub = { address, waiting };
  return hub;
}

function hex(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

async function readExactly(conn: Deno.Conn, n: number): Promise<Uint8Array | null> {
  const buf = new Uint8Array(n);
  let off = 0;
  while (off < n) {
    const read = await conn.read(buf.subarray(off));
    if (read === null) return null;
    off += read;
  }
  return buf;
}

/**
 * Reads `conn` until it closes. Chunks are cut from a larger buffer that is
 * never written twice, so a consumer may keep them.
 */
async function readConn(conn: Deno.Conn, onChunk: (chunk: Uint8Array) => void): Promise<void> {
  let buf = new Uint8Array(READ_BUFFER);
  let off = 0;
  try {
    for (;;) {
      if (buf.length - off < READ_BUFFER / 8) {
        buf = new Uint8Array(READ_BUFFER);
        off = 0;
      }
      const n = await conn.read(buf.subarray(off));
      if (n === null) return;
      onChunk(buf.subarray(off, off + n));
      off += n;
    }
  } catch {
    // a reset connection is the same as end of file
  }
}
const READ_BUFFER = 64 * 1024;

/**
 * Writes to `conn` in order, one write at a time. `write` returns the promise of
 * the write in progress: the caller waits for it before handing over more.
 */
function connWriter(conn: Promise<Deno.Conn | null>) {
  const queue: Uint8Array[] = [];
  let busy: Promise<void> | undefined;
  let open = true;
  async function run() {
    const c = await conn;
    if (c === null) throw new Error("never connected");
    while (queue.length > 0) {
      const data = queue.shift()!;
      let off = 0;
      while (off < data.length) off += await c.write(data.subarray(off));
    }
  }
  return {
    write(data: Uint8Array): Promise<void> | undefined {
      if (!open) return undefined;
      queue.push(data);
      busy ??= run().catch(() => {
        open = false;
        queue.length = 0;
      }).finally(() => (busy = undefined));
      return busy;
    },
    /** Resolves once everything queued is written. */
    flushed: (): Promise<void> => busy ?? Promise.resolve(),
    close() {
      open = false;
    },
  };
}

function spawn(options: SpawnOptions): ChildProcess {
  const [command, ...args] = options.cmd;
  const env: Record<string, string> = { ...options.env };
  const sockets = socketHub();
  let token = "";
  let connected: (conn: Deno.Conn | null) => void = () => {};
  const conn = new Promise<Deno.Conn | null>((resolve) => (connected = resolve));
  if (sockets !== null) {
    token = hex(crypto.getRandomValues(new Uint8Array(TOKEN_BYTES)));
    env[CHANNEL_ENV] = `${sockets.address.slice(1)}:${token}`;
    sockets.waiting.set(token, connected);
  } else {
    // Our own channel's address must not reach a child that uses the pipes.
    env[CHANNEL_ENV] = "";
  }
  const child = new Deno.Command(command, {
    args,
    cwd: options.cwd,
    env,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let done = false;
  // On a socket channel, stdout carries no frames: a spawner taking it as text (onText) gets it so, and
  // writes that bypass Deno.stdout (a Node-API addon, V8 tracing) cannot break the channel.
  const onStdout = sockets !== null && options.onText ? options.onText : options.onStdout;
  const streams = Promise.all([pump(child.stdout, onStdout), pump(child.stderr, options.onStderr)]);
  const channelRead = sockets === null ? Promise.resolve() : conn.then((c) => c && readConn(c, options.onStdout));
  const exited = child.status.then((status) => {
    done = true;
    // A child that died before connecting never will.
    sockets?.waiting.delete(token);
    connected(null);
    return Promise.all([streams, channelRead]).then(async (): Promise<ExitStatus> => {
      // The child is gone: give back our end of its stdin and of its socket (each was a descriptor per worker).
      open = false;
      stdin.close().catch(() => {});
      const c = await conn;
      try {
        c?.close();
      } catch {
        // closed already
      }
      return status.signal ? { code: null, signal: status.signal } : { code: status.code, signal: null };
    });
  });
  const stdin = child.stdin.getWriter();
  let open = true;
  const socketWriter = sockets === null ? null : connWriter(conn);
  return {
    pid: child.pid,
    write(data) {
      if (!open) return undefined;
      if (socketWriter !== null) return socketWriter.write(data);
      const written = stdin.write(data).catch(() => {
        open = false;
      });
      return (stdin.desiredSize ?? 0) > 0 ? undefined : written;
    },
    closeStdin() {
      if (!open) return;
      open = false;
      stdin.close().catch(() => {});
      if (socketWriter !== null) {
        socketWriter.close();
        socketWriter.flushed().then(() => conn).then((c) => c?.closeWrite()).catch(() => {});
      }
    },
    kill(signal = "SIGTERM") {
      if (done) return;
      try {
        child.kill(signal);
      } catch {
        // it exited between the check and the kill
      }
    },
    exited,
  };
}

function parentChannel(): ParentChannel {
  const socket = runtime.env(CHANNEL_ENV);
  if (socket) {
    // Single use: not for this worker's own children.
    Deno.env.delete(CHANNEL_ENV);
    return socketChannel(socket);
  }
  const writer = Deno.stdout.writable.getWriter();
  let last: Promise<void> = Promise.resolve();
  return {
    start(onData, onEnd) {
      pump(Deno.stdin.readable, onData).then(onEnd);
    },
    write(data) {
      last = writer.write(data).catch(() => {});
      return (writer.desiredSize ?? 0) > 0 ? undefined : last;
    },
    redirectStdout,
  };
}

/** The worker's end of a socket channel (see {@linkcode socketHub}). */
function socketChannel(spec: string): ParentChannel {
  const at = spec.lastIndexOf(":");
  const token = new Uint8Array(TOKEN_BYTES);
  for (let i = 0; i < TOKEN_BYTES; i++) token[i] = parseInt(spec.slice(at + 1 + 2 * i, at + 3 + 2 * i), 16);
  const conn: Promise<Deno.Conn | null> = Deno.connect({ transport: "unix", path: "\0" + spec.slice(0, at) })
    .then(async (c) => {
      await c.write(token);
      return c;
    })
    .catch(() => null);
  const writer = connWriter(conn);
  return {
    start(onData, onEnd) {
      conn.then((c) => c && readConn(c, onData)).then(onEnd, onEnd);
    },
    write: (data) => writer.write(data),
    redirectStdout,
  };
}

function redirectStdout(onText: (text: string) => void): void {
  const decoder = new TextDecoder();
  const stdout = Deno.stdout as unknown as {
    write(p: Uint8Array): Promise<number>;
    writeSync(p: Uint8Array): number;
  };
  stdout.write = (p) => {
    onText(decoder.decode(p));
    return Promise.resolve(p.length);
  };
  stdout.writeSync = (p) => {
    onText(decoder.decode(p));
    return p.length;
  };
}

/** The peer of one request, read only when asked for. */
class DenoRequest implements AdapterRequest {
  #info: Deno.ServeHandlerInfo;
  upgrade?: (events: WebSocketEvents, protocol: string | null) => Response;

  constructor(info: Deno.ServeHandlerInfo, request: Request, limits: WebSocketLimits | undefined) {
    this.#info = info;
    if (
      limits !== undefined && request.method === "GET" && request.headers.get("upgrade")?.toLowerCase() === "websocket"
    ) {
      this.upgrade = (events, protocol) => upgradeDeno(request, limits, events, protocol);
    }
  }

  remoteAddress(): string {
    return (this.#info.remoteAddr as Deno.NetAddr).hostname;
  }

  afterResponse(listener: () => void): void {
    // Deno's Response copied its body when it was made (the fetch standard's "copy of the bytes").
    listener();
  }
}

/** Accepts a WebSocket handshake with `Deno.upgradeWebSocket`; Deno pings an idle socket itself. */
function upgradeDeno(
  request: Request,
  limits: WebSocketLimits,
  events: WebSocketEvents,
  protocol: string | null,
): Response {
  const { socket, response } = Deno.upgradeWebSocket(request, {
    idleTimeout: limits.idleTimeout > 0 ? Math.max(1, Math.round(limits.idleTimeout / 1000)) : 0,
    ...(protocol !== null ? { protocol } : {}),
  });
  socket.binaryType = "arraybuffer";
  const server: ServerWebSocket = {
    send: (data) => {
      if (socket.readyState === WebSocket.OPEN) socket.send(data);
    },
    close: (code, reason) => {
      if (socket.readyState === WebSocket.OPEN || socket.readyState === WebSocket.CONNECTING) {
        socket.close(code, reason);
      }
    },
    bufferedAmount: () => socket.bufferedAmount,
  };
  socket.onopen = () => events.open(server);
  socket.onmessage = (event) => {
    const data = event.data;
    events.message(typeof data === "string" ? data : new Uint8Array(data as ArrayBuffer));
  };
  // Deno reports 0 for a connection that broke without a close frame: 1006, as the web's WebSocket says.
  socket.onclose = (event) => events.close(event.code >= 1000 ? event.code : 1006, event.reason);
  return response;
}

/** How long after its listener failed (out of descriptors) the server listens again, doubling to the last. */
const RELISTEN_MS = [250, 500, 1000, 2000, 5000];

/**
 * Deno.serve, kept listening: when its accept loop fails while serving (EMFILE: no descriptor free for a new
 * connection), Deno ends the server; it listens again on the same port after a backoff, once descriptors may be free.
 */
function serveNative(options: ServeOptions): Promise<HttpServer> {
  let server: Deno.HttpServer<Deno.NetAddr>;
  let abort: AbortController;
  let closing = false;
  let retry: ReturnType<typeof setTimeout> | undefined;
  let failures = 0;
  const listen = (port: number) => {
    // Aborting closes every connection: what close() does once its grace time is over.
    abort = new AbortController();
    server = Deno.serve(
      {
        signal: abort.signal,
        port,
        ...(options.reusePort ? { reusePort: true } : {}),
        hostname: options.hostname,
        ...(options.tls ? { cert: options.tls.cert, key: options.tls.key } : {}),
        onListen: () => {},
        onError: () => Response.json({ error: "Internal server error" }, { status: 500 }),
      },
      (request, info) => {
        failures = 0;
        return options.fetch(request, new DenoRequest(info, request, options.websocket));
      },
    );
    server.finished.catch((error) => {
      if (closing) return;
      const delay = RELISTEN_MS[Math.min(failures++, RELISTEN_MS.length - 1)];
      options.onListenerFailed?.(error, delay);
      const again = () => {
        retry = undefined;
        if (closing) return;
        try {
          listen(port);
        } catch (error) {
          options.onListenerFailed?.(error, delay);
          retry = setTimeout(again, delay);
        }
      };
      retry = setTimeout(again, delay);
    });
  };
  try {
    listen(options.port);
  } catch (error) {
    return Promise.reject(error);
  }
  return Promise.resolve({
    port: server!.addr.port,
    hostname: options.hostname,
    close: async (graceMs?: number) => {
      closing = true;
      clearTimeout(retry);
      const force = graceMs === undefined ? undefined : setTimeout(() => abort.abort(), graceMs);
      await Promise.race([server.shutdown(), server.finished]).catch(() => {});
      clearTimeout(force);
    },
  });
}

let spillFiles: SpillFiles | null | undefined;
/** Whether this process serves with node:http (one process serves with one kind of server). */
let nodeHttpServing = false;

function denoSpill(): SpillFiles | null {
  // Only with full read and write permission, which children inherit: both ends can use the files.
  const full = (name: "read" | "write") => Deno.permissions.querySync({ name }).state === "granted";
  if (!full("read") || !full("write")) return null;
  const dir = "/dev/shm";
  try {
    if (!Deno.statSync(dir).isDirectory) return null;
  } catch {
    return null;
  }
  const buffers = new ReadBuffers((length) => new ArrayBuffer(length), SPILL_BUFFERS);
  return {
    dir,
    write: (path, chunks) => {
      using file = Deno.openSync(path, { write: true, create: true, mode: 0o600 });
      for (const data of chunks) for (let off = 0; off < data.length;) off += file.writeSync(data.subarray(off));
    },
    read: (path, length) => {
      using file = Deno.openSync(path);
      const data = buffers.take(length);
      for (let off = 0; off < length;) {
        const n = file.readSync(data.subarray(off));
        if (n === null) throw new Error(`${path} ends after ${off} of ${length} bytes`);
        off += n;
      }
      return data;
    },
    recycle: (data) => void buffers.give(data),
    unlink: (path) => {
      try {
        Deno.removeSync(path);
      } catch {
        // gone already
      }
    },
    list: () => [...Deno.readDirSync(dir)].map((entry) => entry.name).filter((name) => name.startsWith("forkyard-")),
  };
}

/** The Deno implementation of {@linkcode Runtime}. */
export const runtime: Runtime = {
  name: "deno",
  loadHint: () => null,
  // Deno's own Response converts a headers record slowly; @hono/node-server's (the node:http server's) keeps the
  // record as it is and builds a whole Headers once a header is set on it.
  get setHeaderAfter() {
    return !nodeHttpServing;
  },
  pid: Deno.pid,
  selfCommand: (script) => [Deno.execPath(), "run", ...permissionFlags(), ...runFlags(), script],
  spawn,
  parentChannel,
  onSignal(signal: SignalName, handler: () => void): () => void {
    Deno.addSignalListener(signal, handler);
    return () => Deno.removeSignalListener(signal, handler);
  },
  // Deno.serve enforces no connection limit (denoland/deno#3515) and gives no access to its connections.
  serve: async (options) => {
    if (options.httpServer === "native") return serveNative(options);
    nodeHttpServing = true;
    return (await import("./node_http.ts")).serveNodeHttp(options);
  },
  serveStatic: async (options: StaticOptions): Promise<MiddlewareHandler> => {
    const { serveStatic } = await import("hono/deno");
    return serveStatic({ root: options.root, rewriteRequestPath: options.rewriteRequestPath });
  },
  env: (name) => {
    try {
      return Deno.env.get(name);
    } catch {
      return undefined;
    }
  },
  mainModule: () => Deno.mainModule,
  args: () => [...Deno.args],
  stderrIsTerminal: () => Deno.stderr.isTerminal(),
  writeStderr: (text) => {
    const bytes = new TextEncoder().encode(text);
    let off = 0;
    while (off < bytes.length) off += Deno.stderr.writeSync(bytes.subarray(off));
  },
  writeStdout: (text) => {
    const bytes = new TextEncoder().encode(text);
    let off = 0;
    while (off < bytes.length) off += Deno.stdout.writeSync(bytes.subarray(off));
  },
  reusePortMissing: () =>
    Deno.build.os === "linux" ? null : `Deno offers SO_REUSEPORT on Linux only, not ${Deno.build.os}`,
  reusePortFlags: ["--unstable-net"],
  spill: () => (spillFiles ??= denoSpill()),
  inspect: (value) => Deno.inspect(value),
  rss: () => Deno.memoryUsage().rss,
  // Deno cannot send signal 0; /proc answers on Linux, and elsewhere every process counts as alive.
  alive: (pid) => {
    try {
      return Deno.build.os !== "linux" || Deno.statSync(`/proc/${pid}`).isDirectory;
    } catch (error) {
      return !(error instanceof Deno.errors.NotFound);
    }
  },
  watchFiles: (dir, onChange) => {
    const watcher = Deno.watchFs(dir, { recursive: true });
    (async () => {
      try {
        for await (const event of watcher) for (const path of event.paths) onChange(path);
      } catch {
        // closed
      }
    })();
    return () => {
      try {
        watcher.close();
      } catch {
        // closed already
      }
    };
  },
  exit: (code) => Deno.exit(code),
};
