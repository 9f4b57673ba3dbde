/**
 * The `Dispatcher`'s options: their types, and their schema (defaults,
 * ranges, one-line docs, command-line flags, config-file keys).
 *
 * @module
 */

import type { WorkerPool } from "../pool.ts";
import { MAX_MS, type OptionSpec, type Schema } from "../options.ts";
import type { HttpServerKind } from "../runtime.ts";
import { type AdminAddress, parseAdmin } from "./admin_address.ts";

export type { AdminAddress };

/** Options of a {@linkcode Dispatcher}. Durations are milliseconds. */
export interface DispatcherOptions {
  /** TCP port; 0 picks a free one. @default {8080} */
  port?: number;
  /** Address to listen on. @default {"0.0.0.0"} */
  hostname?: string;
  /** Worker pools; the first whose routes match a path serves it. @default {[]} */
  pools?: WorkerPool[];
  /** URL prefix to directory: `{ "/static/": "./static/" }`. @default {{}} */
  staticRoutes?: Record<string, string>;
  /**
   * Whether files and directories whose names start with a dot (`.env`, `.git/`) may be served from `staticRoutes`;
   * refused with 404 by default. @default {false}
   */
  staticDotfiles?: boolean;
  /** Time pending requests get to finish on shutdown. @default {10000} */
  shutdownTimeout?: number;
  /** Requests waiting or in progress across pools before new ones get 503. @default {1000} */
  maxPending?: number;
  /** Largest accepted request body in bytes; larger gets 413. @default {10485760} */
  maxBodySize?: number;
  /**
   * Time a client may leave between two parts of a request body before it gets 408 and the connection closes (as
   * nginx's `client_body_timeout`); 0: no limit. @default {30000}
   */
  bodyTimeout?: number;
  /**
   * Time a client gets to send a request's headers, from the moment it connects or its previous answer was sent;
   * then the connection is closed (slowloris). Enforced by the `"node"` HTTP server on every runtime. @default {20000}
   */
  headersTimeout?: number;
  /**
   * Listen on this Unix socket instead of a TCP port (behind nginx or another proxy on the same host; `--bind
   * unix:PATH`). A stale socket at the path is replaced, a live one (another server) fails the start, and the socket
   * is removed at exit. Needs the `"node"` HTTP server and one dispatcher. @default {null}
   */
  unixSocket?: string | null;
  /** The Unix socket's permission bits: the owner and its group (the proxy's) by default. @default {0o660} */
  unixSocketMode?: number;
  /** Time a keep-alive connection may stay idle between requests before it is closed. @default {5000} */
  idleTimeout?: number;
  /**
   * Connections served at once; more are closed as they arrive (by the `"node"` HTTP server). 0: no limit. By default
   * below the open-files limit (`ulimit -n`) read at start, leaving descriptors for the workers.
   */
  maxConnections?: number;
  /**
   * Header fields a request may carry; more get 431 and the connection closes (Apache's `LimitRequestFields`). A
   * server that dropped the surplus silently would lose a header a proxy appends last. @default {100}
   */
  maxHeaders?: number;
  /**
   * The HTTP server: `"node"`, the `node:http` server that Node, Deno and Bun all provide, which enforces
   * `headersTimeout`, `idleTimeout` and `maxConnections` and answers pipelined requests in order; or `"native"`, the
   * runtime's own (Deno's and Bun's `serve`), which spends fewer µs per request but enforces none of the three (Bun
   * closes slow and idle connections after its own 10 s or so) and, on Bun, fails pipelined requests: for a
   * dispatcher behind a proxy that enforces such limits itself (nginx, a cloud load balancer). On Node both are
   * `node:http`.
   * @default {"node"}
   */
  httpServer?: HttpServerKind;
  /**
   * Dispatcher processes sharing the port with SO_REUSEPORT (Linux), started and supervised by a small primary
   * process; each runs its share of every pool's `workers` (the total divided among them, at least one each), its own
   * `maxPending`, and the `@sync` routes. 1: this process is the dispatcher. @default {1}
   */
  dispatchers?: number;
  /**
   * Time a WebSocket may stay silent before the server pings it; one that does not answer within about as long
   * again is closed. 0: never. @default {60000}
   */
  wsIdleTimeout?: number;
  /** Largest WebSocket message in bytes a client may send; a larger one closes the socket with 1009. @default {16777216} */
  wsMaxMessageSize?: number;
  /**
   * Bytes that may wait to be written to one WebSocket client; a client that falls further behind is closed with
   * 1008, so that a slow reader cannot grow the dispatcher's memory. @default {16777216}
   */
  wsMaxBuffered?: number;
  /**
   * The origins whose pages may open WebSockets here, besides the site's own (an `Origin` whose host is the request's
   * `Host`): `["https://app.example"]`, or `"*"` for any. Other handshakes get 403, so that a page elsewhere cannot
   * use a visitor's cookies for this site (cross-site WebSocket hijacking). Clients that send no `Origin` (not
   * browsers) pass. @default {[]}
   */
  origins?: string[] | "*";
  /** PEM certificate and key: serve HTTPS. */
  tls?: { cert: string; key: string };
  /**
   * When a pool cannot start a single worker before the server would listen (its program throws while loading, its
   * `setup()` always fails): `false` exits with status 3 and one line naming the pool and the error, as gunicorn's
   * "worker failed to boot"; `true` listens anyway and keeps restarting the pool's workers (it answers 503 meanwhile).
   * @default {false}
   */
  retryBoot?: boolean;
  /**
   * The admin listener, apart from the public port: its address, `"127.0.0.1:9464"` or a port alone (the host is
   * then 127.0.0.1), or `{ address, token, hosts }`. It serves `/metrics` (Prometheus), `/status` (JSON), `/ready`
   * and the status page. It answers only a `Host` that is its address, `localhost` or one of `hosts`; with a `token`
   * (or `adminToken`; `FORKYARD_ADMIN_TOKEN` on the command line) every request must carry it as
   * `Authorization: Bearer TOKEN` (the status page: `?token=TOKEN`). An address beyond loopback needs a token. Off
   * by default.
   */
  admin?: string | number | { address: string | number; token?: string; hosts?: string[] };
  /** The admin listener's bearer token (see `admin`); the command line takes `FORKYARD_ADMIN_TOKEN` when not given. */
  adminToken?: string;
  /**
   * Path of the control socket `forkyard ctl` talks to (a Unix socket, mode 0600), or `false` for none; its
   * directory must not be writable by other users. The command line opens one in a private directory
   * (`$XDG_RUNTIME_DIR/forkyard/`) unless told otherwise. @default {false}
   */
  control?: string | false;
  /**
   * One record per answered request under the LogTape category `["forkyard", "access"]`: `"combined"` (the
   * combined log format of Apache and nginx) or `"json"`, or `false` for none. The command line turns it on.
   * @default {false}
   */
  accessLog?: false | "combined" | "json";
  /**
   * A file the dispatcher's log lines go to instead of stderr (appended to; reopened on SIGUSR1, for logrotate).
   * Either way lines are written off the event loop, and dropped and counted when the reader is behind.
   * @default {null}
   */
  logFile?: string | null;
  /**
   * The user the dispatcher becomes once its sockets are open, when started as root (a name from /etc/passwd, or a
   * uid); its workers run as that user. `null` keeps the user it started as.
   * @default {null}
   */
  user?: string | number | null;
  /**
   * The group the dispatcher becomes with `user` (a name from /etc/group, or a gid); by default the user's own.
   * @default {null}
   */
  group?: string | number | null;
  /**
   * A file the access log's lines go to, alone and bare (the combined line or the JSON object), instead of with the
   * other lines (appended to; reopened on SIGUSR1).
   * @default {null}
   */
  accessLogFile?: string | null;
  /**
   * Query parameters whose values the access log writes as `REDACTED`, in the URL and the Referer: a name matches
   * when it is one of these or ends with one after `_`, `-` or `.` (`reset_token`), case aside. `[]` logs every
   * value. @default {["token", "secret", "password", "passwd", "pwd", "pass", "key", "apikey", "auth",
   * "authorization", "signature", "sig", "code", "session", "sessionid", "sid", "jwt", "otp", "credential",
   * "credentials"]}
   */
  accessLogRedact?: string[];
}

/** The `Dispatcher`'s options schema, in the order the docs list them. */
export const DISPATCHER_SCHEMA: Schema = {
  port: { type: "integer", default: 8080, min: 0, max: 65535, flags: ["--port"], doc: "TCP port; 0 picks a free one" },
  hostname: {
    type: "string",
    default: "0.0.0.0",
    flags: ["--host", "--hostname"],
    doc: "Address to listen on",
  },
  pools: {
    type: "custom",
    typeDoc: "WorkerPool[]",
    defaultDoc: "`[]`",
    config: "structured",
    doc: "Worker pools, in routing order: the first whose `routes` match a path serves it",
  },
  staticRoutes: {
    type: "custom",
    typeDoc: "object",
    defaultDoc: "`{}`",
    config: "structured",
    doc: 'URL prefix to directory: `{ "/static/": "./static/" }`',
  },
  staticDotfiles: {
    type: "boolean",
    default: false,
    flags: ["--static-dotfiles"],
    flagDefault: true,
    doc: "Serve names starting with a dot (`.env`, `.git/`) from `staticRoutes`; refused with 404 by default",
  },
  shutdownTimeout: {
    type: "integer",
    default: 10_000,
    min: 0,
    max: MAX_MS,
    flags: ["--shutdown-timeout"],
    doc: "Time pending requests get to finish on shutdown (ms)",
  },
  maxPending: {
    type: "integer",
    default: 1000,
    min: 1,
    flags: ["--max-pending"],
    doc: 'Requests waiting or in progress across pools before new ones get 503 `{"error": "Too many requests"}`',
  },
  maxBodySize: {
    type: "integer",
    default: 10 * 1024 * 1024,
    min: 0,
    flags: ["--max-body-size"],
    doc: "Largest accepted request body in bytes; larger gets 413",
  },
  bodyTimeout: {
    type: "integer",
    default: 30_000,
    min: 0,
    max: MAX_MS,
    flags: ["--body-timeout"],
    doc: "Time between two parts of a request body before 408 (ms); 0: no limit",
  },
  headersTimeout: {
    type: "integer",
    default: 20_000,
    min: 1,
    max: MAX_MS,
    flags: ["--headers-timeout"],
    doc: "Time a client gets to send a request's headers before its connection is closed (ms)",
  },
  idleTimeout: {
    type: "integer",
    default: 5000,
    min: 1,
    max: MAX_MS,
    flags: ["--idle-timeout"],
    doc: "Time a keep-alive connection may stay idle between requests (ms)",
  },
  httpServer: {
    type: "string",
    default: "node",
    choices: ["node", "native"],
    flags: ["--http-server"],
    doc: "`node` (node:http: enforces the connection limits, answers pipelined requests) or `native` (Deno's or " +
      "Bun's own `serve`: fewer µs per request, enforces none of them)",
  },
  dispatchers: {
    type: "integer",
    default: 1,
    min: 1,
    max: 256,
    flags: ["--dispatchers"],
    doc: "Dispatcher processes sharing the port (SO_REUSEPORT, Linux), each with its share of every pool's workers",
  },
  wsIdleTimeout: {
    type: "integer",
    default: 60_000,
    min: 0,
    max: MAX_MS,
    doc: "Time a WebSocket may stay silent before it is pinged, and closed without an answer (ms); 0: never",
  },
  wsMaxMessageSize: {
    type: "integer",
    default: 16 * 1024 * 1024,
    min: 1,
    doc: "Largest WebSocket message a client may send, in bytes; larger closes the socket with 1009",
  },
  wsMaxBuffered: {
    type: "integer",
    default: 16 * 1024 * 1024,
    min: 1,
    doc: "Bytes that may wait to be written to one WebSocket client before it is closed with 1008",
  },
  maxHeaders: {
    type: "integer",
    default: 100,
    min: 1,
    max: 1000,
    flags: ["--max-headers"],
    doc: "Header fields a request may carry; more get 431",
  },
  maxConnections: {
    type: "integer",
    defaultDoc: "the open-files limit less 64 and 8 per worker, at least half of it",
    min: 0,
    flags: ["--max-connections"],
    doc: "Connections served at once; more are closed as they arrive; 0: no limit",
  },
  retryBoot: {
    type: "boolean",
    default: false,
    flags: ["--retry-boot"],
    flagDefault: true,
    doc: "Listen and keep restarting a pool whose workers all fail to boot, instead of exiting with status 3",
  },
  admin: {
    type: "custom",
    typeDoc: '`"HOST:PORT"` or port',
    defaultDoc: "off",
    flags: ["--admin"],
    fromFlag: (text) => {
      try {
        parseAdmin(text);
        return text;
      } catch {
        throw new Error("needs [HOST:]PORT");
      }
    },
    doc: "Admin listener serving `/metrics` (Prometheus) and `/status`; the host defaults to 127.0.0.1",
  },
  adminToken: {
    type: "custom",
    typeDoc: "string",
    defaultDoc: "none (the command line: `FORKYARD_ADMIN_TOKEN`)",
    flags: ["--admin-token"],
    fromFlag: (text) => text,
    doc: "Bearer token the admin listener requires; needed to listen beyond loopback",
  },
  control: {
    type: "custom",
    typeDoc: "path or `false`",
    default: false,
    defaultDoc: "`false` (the command line: one in `$XDG_RUNTIME_DIR/forkyard/`)",
    cliDefault: "one per working directory, in $XDG_RUNTIME_DIR/forkyard/",
    flags: ["--control", "--no-control"],
    negatable: true,
    doc: "Unix socket (mode 0600) on which `forkyard ctl` asks for status, reload, scale and stop",
  },
  origins: {
    type: "custom",
    typeDoc: 'string[] or `"*"`',
    defaultDoc: "`[]` (the site's own origin only)",
    config: "structured",
    doc: "Origins whose pages may open WebSockets besides the site's own; others get 403 at the handshake",
  },
  accessLogRedact: {
    type: "custom",
    typeDoc: "string[]",
    defaultDoc: "`token`, `secret`, `password`, `key`, `code`, `session`, ... (docs/security.md)",
    config: "structured",
    doc: "Query parameters whose values the access log writes as `REDACTED` (also names ending in `_`/`-` + one)",
  },
  accessLog: {
    type: "custom",
    typeDoc: '`false`, `"combined"`, `"json"`',
    default: false,
    defaultDoc: '`false` (`"combined"` from the command line)',
    cliDefault: "combined",
    flags: ["--access-log", "--no-access-log"],
    flagDefault: "combined",
    fromFlag: (text) => {
      if (text !== "combined" && text !== "json") throw new Error("takes combined or json");
      return text;
    },
    doc: 'One record per answered request (category `["forkyard", "access"]`), as a combined-log-format line or JSON',
  },
  unixSocket: {
    type: "custom",
    typeDoc: "path or `null`",
    defaultDoc: "`null` (the TCP `port`)",
    flags: ["--bind"],
    fromFlag: (text) => {
      if (!text.startsWith("unix:") || text.length === 5) {
        throw new Error("takes unix:PATH (for a TCP address: --host and --port)");
      }
      return text.slice(5);
    },
    doc: "Unix socket to listen on instead of a TCP port (`--bind unix:PATH`); removed at exit",
  },
  unixSocketMode: {
    type: "custom",
    typeDoc: "integer (octal in a flag: `660`)",
    defaultDoc: "`0o660`",
    flags: ["--unix-socket-mode"],
    fromFlag: (text) => {
      if (!/^0?[0-7]{3}$/.test(text)) throw new Error("needs octal permission bits such as 660");
      return parseInt(text, 8);
    },
    doc: "Permission bits of the Unix socket (the proxy's user or group needs write access)",
  },
  logFile: {
    type: "custom",
    typeDoc: "path or `null`",
    defaultDoc: "`null` (stderr)",
    flags: ["--log-file"],
    fromFlag: (text) => text,
    doc: "File for the log lines instead of stderr; reopened on SIGUSR1 (logrotate)",
  },
  accessLogFile: {
    type: "custom",
    typeDoc: "path or `null`",
    defaultDoc: "`null` (with the other lines)",
    flags: ["--access-log-file"],
    fromFlag: (text) => text,
    doc: "File for the access log's lines alone, bare; reopened on SIGUSR1 (logrotate)",
  },
  user: {
    type: "custom",
    typeDoc: "name or uid, or `null`",
    defaultDoc: "`null` (the user it starts as)",
    flags: ["--user"],
    fromFlag: (text) => text,
    doc: "User to run as once the sockets are open, when started as root; the workers run as that user too",
  },
  group: {
    type: "custom",
    typeDoc: "name or gid, or `null`",
    defaultDoc: "`null` (the user's group)",
    flags: ["--group"],
    fromFlag: (text) => text,
    doc: "Group to run as with `user`",
  },
  tls: {
    type: "custom",
    typeDoc: "`{ cert, key }`",
    config: "structured",
    doc: "PEM certificate and key: serve HTTPS (in the config file: their paths)",
  },
} satisfies { [K in keyof Required<DispatcherOptions>]: OptionSpec };

/** The options with defaults applied. */
export type ResolvedDispatcherOptions =
  & Readonly<Required<Omit<DispatcherOptions, "pools" | "tls" | "admin" | "adminToken">>>
  & { readonly tls: { cert: string; key: string } | null; readonly admin: AdminAddress | null };
