/**
 * The Deno adapter: `Deno.Command`, `Deno.addSignalListener` and `Deno.serve`.
 *
 * @module
 */

import type { MiddlewareHandler } from "hono";
import type {
  ChildProcess,
  ExitStatus,
  HttpServer,
  ParentChannel,
  Runtime,
  ServeOptions,
  SignalName,
  SpawnOptions,
  StaticOptions,
} from "../src/runtime.ts";
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
  if (!granted.includes("env")) flags.push("--allow-env=FORKYARD_WORKER,FORKYARD_POOL,FORKYARD_LOG_LEVEL");
  return flags;
}

function spawn(options: SpawnOptions): ChildProcess {
  const [command, ...args] = options.cmd;
  const env: Record<string, string> = { ...options.env };
  const child = new Deno.Command(command, {
    args,
    cwd: options.cwd,
    env,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let done = false;
  const streams = Promise.all([pump(child.stdout, options.onStdout), pump(child.stderr, options.onStderr)]);
  const exited = Promise.all([child.status, streams]).then(([status]): ExitStatus => {
    done = true;
    return status.signal ? { code: null, signal: status.signal } : { code: status.code, signal: null };
  });
  child.status.then(() => (done = true));
  const writer = child.stdin.getWriter();
  let open = true;
  return {
    pid: child.pid,
    write(data) {
      if (!open) return undefined;
      const written = writer.write(data).catch(() => {
        open = false;
      });
      return (writer.desiredSize ?? 0) > 0 ? undefined : written;
    },
    closeStdin() {
      if (!open) return;
      open = false;
      writer.close().catch(() => {});
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
    flush: () => last,
    redirectStdout(onText) {
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
    },
  };
}

function serve(options: ServeOptions): Promise<HttpServer> {
  return new Promise((resolve, reject) => {
    try {
      const server = Deno.serve(
        {
          port: options.port,
          hostname: options.hostname,
          ...(options.tls ? { cert: options.tls.cert, key: options.tls.key } : {}),
          onListen: () => {},
          onError: () => Response.json({ error: "Internal server error" }, { status: 500 }),
        },
        (request, info) => options.fetch(request, () => (info.remoteAddr as Deno.NetAddr).hostname),
      );
      resolve({
        port: server.addr.port,
        hostname: options.hostname,
        close: () => server.shutdown(),
      });
    } catch (error) {
      reject(error);
    }
  });
}

/** The Deno implementation of {@linkcode Runtime}. */
export const runtime: Runtime = {
  name: "deno",
  pid: Deno.pid,
  selfCommand: (script) => [Deno.execPath(), "run", ...permissionFlags(), script],
  spawn,
  parentChannel,
  onSignal(signal: SignalName, handler: () => void): () => void {
    Deno.addSignalListener(signal, handler);
    return () => Deno.removeSignalListener(signal, handler);
  },
  serve,
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
  spillDir: () => {
    // Only with full read and write permission, which children inherit: both ends can use the files.
    const full = (name: "read" | "write") => Deno.permissions.querySync({ name }).state === "granted";
    if (!full("read") || !full("write")) return null;
    try {
      return Deno.statSync("/dev/shm").isDirectory ? "/dev/shm" : null;
    } catch {
      return null;
    }
  },
  rss: () => Deno.memoryUsage().rss,
  exit: (code) => Deno.exit(code),
};
