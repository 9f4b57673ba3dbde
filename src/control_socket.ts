/**
 * The control socket: a Unix socket (mode 0600) on which a running dispatcher
 * answers `forkyard ctl`: status, reload, scale, stop. One JSON line in, one
 * JSON line out, per connection; `node:net`, which all three runtimes provide.
 *
 * @module
 */

import { firstLine } from "./error_text.ts";
import { plural } from "./logging/plural.ts";
import { chmodSync, existsSync, lstatSync, statSync, unlinkSync } from "node:fs";
import { connect, createServer, type Server } from "node:net";
import { dirname, resolve } from "node:path";
import process from "node:process";
import type { PoolStatus, WorkerPool } from "./pool.ts";
import { socketAnswers } from "./socket_answers.ts";

/** A command on the control socket. */
export type ControlCommand =
  | { cmd: "status" }
  | { cmd: "reload"; pool?: string; host?: string }
  | { cmd: "scale"; pool: string; workers: number; host?: string }
  | { cmd: "stop" };

/** What the dispatcher does for each command; a thrown error is answered `{ error }`. */
export type ControlHandler = (command: ControlCommand) => unknown | Promise<unknown>;

/** What the control socket's commands act on: the dispatcher. */
export interface ControlTarget {
  pid: number;
  port: number;
  pending(): number;
  pools: readonly WorkerPool[];
  statuses(): PoolStatus[];
  reload(): Promise<number>;
  stop(): Promise<void>;
}

/** Carries out `command` on `target`; what it resolves with is the answer. */
export async function runCommand(command: ControlCommand, target: ControlTarget): Promise<unknown> {
  const pool = (name: string | undefined) => {
    const found = target.pools.find((p) => p.name === name);
    if (found === undefined) {
      throw new Error(`no pool named "${name}" (pools: ${target.pools.map((p) => p.name).join(", ")})`);
    }
    return found;
  };
  switch (command.cmd) {
    case "status":
      return { pid: target.pid, port: target.port, pending: target.pending(), pools: target.statuses() };
    case "reload":
      return {
        replaced: command.pool === undefined ? await target.reload() : await pool(command.pool).reload(command.host),
      };
    case "scale": {
      const found = pool(command.pool);
      found.scale(command.workers, command.host);
      return {
        pool: found.name,
        workers: command.workers,
        ...(command.host !== undefined ? { host: command.host } : {}),
      };
    }
    case "stop":
      setTimeout(() => void target.stop(), 0);
      return { stopping: true };
    default:
      throw new Error(`unknown command ${JSON.stringify((command as { cmd?: unknown }).cmd)}`);
  }
}

/** The longest command line a control socket reads; a client sending more is cut off. */
const MAX_COMMAND = 64 * 1024;

/** This process's user id, or `null` where there are none. */
function uid(): number | null {
  return typeof process.getuid === "function" ? process.getuid() : null;
}

/**
 * Refuses a control socket in a directory that other users may write: one of them could put a socket of their own
 * at its name first, which the server would refuse to replace and `forkyard ctl` would talk to.
 */
export function checkControlDir(path: string): void {
  const dir = dirname(resolve(path));
  const info = statSync(dir);
  if ((info.mode & 0o022) !== 0) {
    throw new Error(
      `the control socket's directory ${dir} is writable by other users (mode ${(info.mode & 0o777).toString(8)}): ` +
        "give --control a path in a private directory, or --no-control",
    );
  }
}

/** Refuses what is at `path` unless it is a socket of this user's. */
function checkSocketOwner(path: string): void {
  const info = lstatSync(path);
  if (!info.isSocket()) throw new Error(`${path} is not a socket (a stale file?): remove it, or see --control`);
  const me = uid();
  if (me !== null && info.uid !== me) {
    throw new Error(`the control socket ${path} belongs to user ${info.uid}, not to this user (${me}): see --control`);
  }
}

/**
 * Listens on `path`, in a directory no other user may write; a stale socket of this user's (nobody answers on it)
 * is replaced, a live one is an error naming it. Resolves with a function that stops listening and removes it.
 */
export async function listenControl(path: string, handle: ControlHandler): Promise<() => Promise<void>> {
  checkControlDir(path);
  if (existsSync(path)) {
    checkSocketOwner(path);
    if (await socketAnswers(path)) {
      throw new Error(
        `another server answers on the control socket ${path}: give this one --control PATH or --no-control`,
      );
    }
    unlinkSync(path);
  }
  const server: Server = createServer((socket) => {
    let input = "";
    socket.setEncoding("utf8");
    socket.on("error", () => {});
    socket.on("data", async (chunk: string) => {
      input += chunk;
      const end = input.indexOf("\n");
      if (end < 0) {
        if (input.length > MAX_COMMAND) socket.destroy();
        return;
      }
      let reply: unknown;
      try {
        reply = { ok: await handle(JSON.parse(input.slice(0, end)) as ControlCommand) };
      } catch (error) {
        reply = { error: error instanceof Error ? error.message : String(error) };
      }
      socket.end(JSON.stringify(reply) + "\n");
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => resolve());
  });
  chmodSync(path, 0o600);
  return () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      try {
        unlinkSync(path);
      } catch {
        // gone already
      }
    });
}

/**
 * Opens the control socket at `path` for `target`; resolves with how to close it, or `null` when it cannot be opened
 * (logged, one line).
 */
export async function openControl(
  path: string,
  target: ControlTarget,
  log: {
    error(message: string, properties?: Record<string, unknown>): void;
    info(message: string, properties?: Record<string, unknown>): void;
  },
): Promise<(() => Promise<void>) | null> {
  try {
    return await listenControl(path, (command) => {
      // A resize leaves a line in the server's log, as a reload ("Reload done") and a stop ("Shutting down") do.
      if (command.cmd === "scale") {
        log.info("forkyard ctl: scaling pool {pool} to {each}{where}", {
          pool: command.pool,
          workers: command.workers,
          each: plural(command.workers, "worker"),
          where: command.host !== undefined ? ` on worker host ${command.host}` : "",
        });
      }
      return runCommand(command, target);
    });
  } catch (error) {
    log.error("Cannot open the control socket {path}: {reason}", { path, reason: firstLine(error) });
    return null;
  }
}

/** Sends one command to the socket at `path`; rejects with a one-line message when nobody answers. */
export function sendControl(path: string, command: ControlCommand): Promise<unknown> {
  return new Promise((resolve, reject) => {
    if (!existsSync(path)) {
      reject(new Error(`no control socket at ${path} (is forkyard serve running there? see --control)`));
      return;
    }
    try {
      checkSocketOwner(path);
    } catch (error) {
      reject(error);
      return;
    }
    const socket = connect(path);
    let output = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => (output += chunk));
    socket.once("error", (error: NodeJS.ErrnoException) => {
      reject(
        new Error(
          error.code === "ECONNREFUSED"
            ? `the control socket ${path} refuses connections: its server is gone (a stale socket)`
            : `cannot reach the control socket ${path}: ${error.message}`,
        ),
      );
    });
    socket.once("connect", () => socket.write(JSON.stringify(command) + "\n"));
    socket.once("end", () => {
      try {
        const reply = JSON.parse(output) as { ok?: unknown; error?: string };
        if (reply.error !== undefined) reject(new Error(reply.error));
        else resolve(reply.ok);
      } catch {
        reject(new Error(`the control socket ${path} answered something else than forkyard would`));
      }
    });
  });
}
