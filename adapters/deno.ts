/**
 * The Deno adapter: `Deno.Command` (deno_spawn.ts) over a socket channel
 * (deno_channel.ts), `Deno.addSignalListener`, the `node:http` server or
 * `Deno.serve` (deno_serve.ts), and spill files in /dev/shm.
 *
 * @module
 */

import * as nodeFs from "node:fs";
import type { MiddlewareHandler } from "hono";
import type { Runtime, SignalName, SpillFiles, StaticOptions } from "../src/runtime.ts";
import { ReadBuffers, SPILL_BUFFERS } from "../src/protocol/read_buffers.ts";
import { privateSpillDir, SPILL_DIR_ENV } from "../src/protocol/spill.ts";
import { CHANNEL_ENV, parentChannel, TOKEN_BYTES } from "./deno_channel.ts";
import { permissionFlags, runFlags } from "./deno_permissions.ts";
import { serveNative } from "./deno_serve.ts";
import { readSpillFile, writeSpillFile } from "./node_like.ts";
import { spawn } from "./deno_spawn.ts";
import { dropDenoPrivileges } from "./deno_privileges.ts";

export { CHANNEL_ENV, TOKEN_BYTES };

/** Whether this process serves with node:http (one process serves with one kind of server). */
let nodeHttpServing = false;
let spillFiles: SpillFiles | null | undefined;
const encoder = new TextEncoder();

function denoSpill(): SpillFiles | null {
  // Only with full read and write permission, which children inherit: both ends can use the files.
  const full = (name: "read" | "write") => Deno.permissions.querySync({ name }).state === "granted";
  if (!full("read") || !full("write")) return null;
  const root = "/dev/shm";
  const dir = privateSpillDir(root, Deno.env.get(SPILL_DIR_ENV), Deno.pid, {
    mkdir: (path, mode) => Deno.mkdirSync(path, { mode }),
    lstat: (path) => {
      try {
        const info = Deno.lstatSync(path);
        return { directory: info.isDirectory, uid: info.uid ?? -1, mode: info.mode ?? 0o777 };
      } catch {
        return null;
      }
    },
    uid: Deno.uid(),
  });
  if (dir === null) return null;
  const buffers = new ReadBuffers((length) => new ArrayBuffer(length), SPILL_BUFFERS);
  return {
    dir,
    root,
    // node:fs, not Deno.open: only it takes O_NOFOLLOW.
    write: (path, chunks, at) => writeSpillFile(nodeFs, path, chunks, at),
    read: (path, length) => readSpillFile(nodeFs, path, buffers.take(length), length),
    recycle: (data) => void buffers.give(data),
    unlink: (path) => {
      try {
        Deno.removeSync(path, { recursive: true });
      } catch {
        // gone already
      }
    },
    list: () => [...Deno.readDirSync(dir)].map((entry) => entry.name),
    // Only this user's: removing a directory another user made would follow what they put in it.
    listRoot: () =>
      [...Deno.readDirSync(root)].map((entry) => entry.name).filter((name) => {
        if (!name.startsWith("forkyard-")) return false;
        try {
          return Deno.lstatSync(`${root}/${name}`).uid === Deno.uid();
        } catch {
          return false;
        }
      }),
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
    // Deno's node:http listener stops accepting for good after an accept failed (EMFILE); a probe notices.
    return (await import("./node_http.ts")).serveNodeHttp(options, true);
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
  // Deno's own async writes run off the event loop; node:fs's on fd 2 take a full pipe for a closed one.
  openLog: (path) => {
    const file = path === null ? Deno.stderr : Deno.openSync(path, { append: true, create: true, mode: 0o640 });
    return {
      write: async (text) => {
        const data = encoder.encode(text);
        for (let off = 0; off < data.length;) off += await file.write(data.subarray(off));
      },
      close: () => {
        if (path !== null) file.close();
      },
    };
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
  ids: () => ({ uid: Deno.uid() ?? -1, gid: Deno.gid() ?? -1 }),
  dropPrivileges: dropDenoPrivileges,
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
