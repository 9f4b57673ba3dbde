/**
 * The small interface that each runtime adapter implements. The core in `src/`
 * only talks to a runtime through this interface; `adapters/deno.ts`,
 * `adapters/bun.ts` and `adapters/node.ts` map it onto `Deno.Command`,
 * `Bun.spawn` and `node:child_process`.
 *
 * @module
 */

/** The name of a supported runtime. */
export type RuntimeName = "deno" | "bun" | "node";

/**
 * Which HTTP server a runtime serves with: `"node"`, the `node:http` server all three runtimes provide (it enforces
 * the connection limits and answers pipelined requests), or `"native"`, `Deno.serve` and `Bun.serve` (fewer µs per
 * request; on Node it is `node:http` too).
 */
export type HttpServerKind = "node" | "native";

/** A POSIX signal that forkyard sends or listens for. */
export type SignalName =
  | "SIGTERM"
  | "SIGINT"
  | "SIGHUP"
  | "SIGUSR1"
  | "SIGTTIN"
  | "SIGTTOU"
  | "SIGKILL";

/** An open log destination (stderr, or a file appended to), written asynchronously, off the event loop. */
export interface LogTarget {
  /** Writes all of `text` (UTF-8); resolves once written, rejects when it cannot be. */
  write(text: string): Promise<void>;
  /** Closes it (a file: before it is opened again, after logrotate moved it). */
  close(): void;
}

/** How a child process ended: `code` for a normal exit, `signal` when a signal ended it. */
export interface ExitStatus {
  /** Exit code, or `null` when a signal ended the process. */
  code: number | null;
  /** The signal that ended the process, or `null`. */
  signal: string | null;
}

/** Options for {@linkcode Runtime.spawn}. */
export interface SpawnOptions {
  /** Executable and arguments. */
  cmd: readonly string[];
  /** Variables added to the inherited environment. */
  env?: Record<string, string>;
  /** Working directory; the current one by default. */
  cwd?: string;
  /**
   * Called with every chunk of the child's channel: what it writes to its
   * stdout, or, when `onText` is given and the adapter can, to a pipe or socket
   * of its own (Bun and Node: fd 3; Deno: its socket channel).
   */
  onStdout: (chunk: Uint8Array) => void;
  /**
   * Lets the adapter give the channel a pipe or socket of its own; this is then
   * called with what the child writes to its stdout, as plain text.
   */
  onText?: (chunk: Uint8Array) => void;
  /** Called with every chunk the child writes to its stderr. */
  onStderr: (chunk: Uint8Array) => void;
}

/** A running child process with piped stdin, stdout and stderr. */
export interface ChildProcess {
  /** The child's process id. */
  readonly pid: number;
  /**
   * Writes bytes to the child's stdin. Returns a promise when the pipe is
   * full; the caller should wait for it before writing more.
   */
  write(data: Uint8Array): Promise<void> | undefined;
  /** Closes the child's stdin; the child sees end of file. */
  closeStdin(): void;
  /** Sends a signal; does nothing when the child has already exited. */
  kill(signal?: SignalName): void;
  /** Resolves once the child has exited and its stdout and stderr are fully read. */
  readonly exited: Promise<ExitStatus>;
}

/** The current process's own stdin/stdout, used by a worker as its channel to the dispatcher. */
export interface ParentChannel {
  /** Starts reading stdin: `onData` for each chunk, `onEnd` once at end of file or error. */
  start(onData: (chunk: Uint8Array) => void, onEnd: () => void): void;
  /** Writes bytes to stdout. Returns a promise while the pipe is full. */
  write(data: Uint8Array): Promise<void> | undefined;
  /**
   * Diverts every other write to this process's stdout to `onText`, so nothing
   * else reaches the channel; does nothing when the channel has its own pipe
   * (the parent then reads stdout as text, see `SpawnOptions.onText`).
   */
  redirectStdout(onText: (text: string) => void): void;
}

/** Options for {@linkcode Runtime.serve}. */
export interface ServeOptions {
  /** Handles one request; `extras` carries what the adapter knows about it beyond the web `Request`. */
  fetch: (request: Request, extras: AdapterRequest) => Response | Promise<Response>;
  /** TCP port; 0 picks a free one. */
  port: number;
  /** A Unix socket to listen on instead of `port` (the `node:http` server only), made with `mode`. */
  unixSocket?: { path: string; mode: number };
  /** Address to listen on. */
  hostname: string;
  /** PEM certificate and key for HTTPS. */
  tls?: { cert: string; key: string };
  /** Milliseconds a client gets to send a request's headers, counted from its connection or its last answer. */
  headersTimeout?: number;
  /** Milliseconds a keep-alive connection may stay idle between requests. */
  idleTimeout?: number;
  /** Connections served at once (0: no limit). */
  maxConnections?: number;
  /** Header fields a request may carry; more get 431 (every server: some drop the surplus silently). */
  maxHeaders?: number;
  /**
   * Called when the listener failed while serving (a runtime whose server stops when accept fails, as Deno's does
   * without a free descriptor) and the adapter will listen again after `retryMs`.
   */
  onListenerFailed?: (error: unknown, retryMs: number) => void;
  /** Limits for the WebSockets the server accepts (see {@linkcode AdapterRequest.upgrade}). */
  websocket?: WebSocketLimits;
  /** Binds with SO_REUSEPORT, so that several processes listen on the port (only where `Runtime.reusePortMissing` is `null`). */
  reusePort?: boolean;
  /** The server to serve with. @default {"node"} */
  httpServer?: HttpServerKind;
}

/** Limits for accepted WebSockets, enforced by the adapter with what its runtime offers. */
export interface WebSocketLimits {
  /**
   * Milliseconds a WebSocket may stay silent: the server pings it then, and closes it when no pong (or any other
   * frame) comes within about as long again.
   */
  idleTimeout: number;
  /** Largest message in bytes a client may send; a larger one closes the socket with 1009. */
  maxMessageSize: number;
}

/** A WebSocket the server accepted, as the dispatcher drives it. */
export interface ServerWebSocket {
  /** Sends a text (string) or binary message; does nothing once the socket is closing. */
  send(data: string | Uint8Array): void;
  /** Starts the closing handshake; the socket is cut after a few seconds if the client does not answer. */
  close(code: number, reason: string): void;
  /** Bytes given to `send` that the runtime has not written to the connection yet. */
  bufferedAmount(): number;
}

/** What the adapter tells the dispatcher about an accepted WebSocket, in this order: open, messages, close once. */
export interface WebSocketEvents {
  /** The handshake is done; `socket` sends from now on. */
  open(socket: ServerWebSocket): void;
  /** A message from the client: text as a string, binary as bytes. */
  message(data: string | Uint8Array): void;
  /** The socket closed, with the code and reason the closing side gave (1006: the connection broke). */
  close(code: number, reason: string): void;
}

/**
 * What an adapter passes along with each request: one object per request, whose methods the dispatcher
 * calls only when it needs them (one allocation where a closure per field took up to three).
 */
export interface AdapterRequest {
  /** The peer's IP address. */
  remoteAddress(): string;
  /**
   * Reads the body as the chunks it arrived in, not joined (`null` when it is larger than `limit`), without the
   * web `Request`'s body stream; offered by adapters whose server builds the `Request` lazily (@hono/node-server
   * on Node). Use this or `request.arrayBuffer()`, not both. Rejects with a `DOMException` named `TimeoutError`
   * when no part came for `idleMs` (0: no limit).
   */
  readBody?(limit: number, idleMs?: number): Promise<Uint8Array[] | null>;
  /**
   * The request headers as a flat `[name, value, ...]` list, names in any case, repeated headers repeated,
   * without building the `Request`'s `Headers`; offered with `readBody`.
   */
  rawHeaders?(): string[];
  /**
   * Calls `listener` once the runtime reads none of the bytes this request's `Response` was made with any more:
   * at once where a `Response` copies its body when made, as the fetch standard says (Deno, Bun); once the
   * response has been written out or its connection is gone where the server writes the bytes it was given
   * (@hono/node-server on Node). The dispatcher then reads later bodies into them.
   */
  afterResponse?(listener: () => void): void;
  /**
   * Calls `listener` when the client's connection closes, before or after its answer was written; offered where
   * that costs less than a listener on the `Request`'s `signal` (@hono/node-server makes an `AbortController` for
   * a request whose `signal` is read).
   */
  onClose?(listener: () => void): void;
  /**
   * Cuts the connection at once, for a streamed answer that broke off (its worker failed, or it was not the length
   * it stated); offered where the server would log a body stream's error with its stack (@hono/node-server).
   */
  abort?(): void;
  /**
   * Present only on a WebSocket handshake (`GET` with `Upgrade: websocket`): accepts it, and returns what the
   * server's `fetch` must return for it. `protocol` is the subprotocol chosen, if any. Throws when the handshake is
   * malformed (the dispatcher answers 400).
   */
  upgrade?: (events: WebSocketEvents, protocol: string | null) => Response;
}

/**
 * Files in a memory-backed directory that carry large bodies between processes.
 * A file is written again for later bodies without being truncated, so that it
 * keeps its memory pages: allocating them is most of the cost of a new file.
 */
export interface SpillFiles {
  /** This process's spill directory, of this user's alone: `root/forkyard-<pid>-<random>`. */
  readonly dir: string;
  /** Where spill directories live, e.g. /dev/shm. */
  readonly root: string;
  /** Writes `chunks`, in order, from byte `at` (0: the start) of a file, creating it if needed, never truncating it. */
  write(path: string, chunks: readonly Uint8Array[], at?: number): void;
  /** Reads the first `length` bytes of a file. */
  read(path: string, length: number): Uint8Array;
  /**
   * Takes back bytes `read()` returned, which nothing reads or writes any more: a later `read()` may fill
   * them again. Bytes `read()` did not return, or that were given back already, are ignored.
   */
  recycle?(data: Uint8Array): void;
  /** Removes a file, or a directory and all it holds; a missing one is not an error. */
  unlink(path: string): void;
  /** The names of the files in `dir`. */
  list(): string[];
  /** The names in `root` that are spill directories (`forkyard-*`) of this user's, this process's and others'. */
  listRoot(): string[];
}

/** A listening HTTP server. */
export interface HttpServer {
  /** The port actually bound. */
  readonly port: number;
  /** The address listened on. */
  readonly hostname: string;
  /**
   * Stops accepting connections and resolves when in-flight requests have finished. With `graceMs`, every
   * connection still open after that long (a request still in progress, a client still sending its headers, an idle
   * keep-alive connection) is closed, so that the promise resolves within about `graceMs`.
   */
  close(graceMs?: number): Promise<void>;
}

/**
 * A middleware serving static files, in Hono's shape (`(context, next) => ...`), kept structural so that this
 * interface names no HTTP framework.
 */
// deno-lint-ignore no-explicit-any
export type StaticHandler = (context: any, next: () => Promise<void>) => Promise<Response | void>;

/** Options for {@linkcode Runtime.serveStatic}. */
export interface StaticOptions {
  /** Directory to serve from. */
  root: string;
  /** Maps the request path to a path below `root`. */
  rewriteRequestPath?: (path: string) => string;
}

/** Everything forkyard needs from a JavaScript runtime. */
export interface Runtime {
  /** Which runtime this is. */
  readonly name: RuntimeName;
  /** The current process id. */
  readonly pid: number;
  /**
   * Whether setting one header on a made `Response` is cheaper than passing it in the headers record (Deno's own
   * `Response` converts a record slowly), for the trace id on every answer. May change once `serve` has run.
   */
  readonly setHeaderAfter: boolean;
  /** Command prefix that starts a new process of this runtime running `script` with the flags it needs. */
  selfCommand(script: string): string[];
  /** Starts a child process with all three stdio streams piped. */
  spawn(options: SpawnOptions): ChildProcess;
  /** This process's stdin/stdout as a byte channel to its parent. */
  parentChannel(): ParentChannel;
  /** Calls `handler` on `signal`; returns a function that removes the listener. */
  onSignal(signal: SignalName, handler: () => void): () => void;
  /** Starts an HTTP(S) server. */
  serve(options: ServeOptions): Promise<HttpServer>;
  /** Hono middleware serving files from a directory (loaded on first use: workers never need it). */
  serveStatic(options: StaticOptions): Promise<StaticHandler>;
  /** Reads an environment variable. */
  env(name: string): string | undefined;
  /** The path or URL of the main module. */
  mainModule(): string;
  /** The command-line arguments after the main module. */
  args(): string[];
  /** Whether stderr is a terminal. */
  stderrIsTerminal(): boolean;
  /** Writes text to stderr synchronously. */
  writeStderr(text: string): void;
  /**
   * Opens a log destination written off the event loop: a file appended to (created 0640), or stderr for `null`. A
   * reader that stops reading holds a write, never the loop.
   */
  openLog(path: string | null): LogTarget;
  /** Writes text to stdout. */
  writeStdout(text: string): void;
  /**
   * Why this runtime's `server` cannot listen with SO_REUSEPORT here (`ServeOptions.reusePort`), or `null` when it
   * can: Linux, Node 22.12 or later, and on Bun only `Bun.serve`.
   */
  reusePortMissing(server: HttpServerKind): string | null;
  /** Flags a process of this runtime needs to listen with SO_REUSEPORT (Deno: `--unstable-net`). */
  readonly reusePortFlags: readonly string[];
  /**
   * A memory-backed directory both sides of a channel may write and read
   * large bodies through, or `null` (then bodies go through the pipes).
   */
  spill(): SpillFiles | null;
  /** Renders a value for a log line, as the runtime's `console.log` would. */
  inspect(value: unknown): string;
  /** Resident set size of this process in bytes. */
  rss(): number;
  /** Whether a process with this pid exists (`true` when that cannot be told). */
  alive(pid: number): boolean;
  /** This process's user and group ids. */
  ids(): { uid: number; gid: number };
  /**
   * Becomes user `uid` in group `gid`, with `name`'s supplementary groups (or `gid` alone when `name` is `null`); the
   * processes it starts afterwards are that user's. Throws when it cannot.
   */
  dropPrivileges(to: { uid: number; gid: number; name: string | null }): void;
  /**
   * Calls `onChange` with the path of each file changed, created or removed under `dir`, recursively, until the
   * returned function is called.
   */
  watchFiles(dir: string, onChange: (path: string) => void): () => void;
  /**
   * What to tell a user whose module this runtime could not import, when it can say more than the error (Node:
   * TypeScript with decorators needs a loader); `null` otherwise.
   */
  loadHint(error: unknown, module: string): string | null;
  /** Ends this process. */
  exit(code: number): never;
}
