/**
 * `--pid-file`: the serving process's pid, written at start and removed at exit, as gunicorn and nginx write
 * theirs (for systemd's `PIDFile=`, `kill -HUP $(cat app.pid)`, logrotate). And how `forkyard ctl --pid-file` finds
 * the control socket of the process a pid file names: each server registers `pid-<pid>.sock`, a link to its control
 * socket, in this user's private control directory.
 *
 * @module
 */

import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync, readlinkSync, renameSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { privateControlDir } from "./control_path.ts";

/** Whether process `pid` exists (`Runtime.alive`). */
type Alive = (pid: number) => boolean;

/** The pid in the pid file at `path`; throws a one-line error naming the file when there is none. */
export function readPidFile(path: string): number {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    const code = (error as { code?: string }).code;
    throw new Error(code === "ENOENT" ? `no pid file at ${path} (is the server running?)` : `cannot read ${path}`);
  }
  const pid = /^\s*(\d+)\s*$/.exec(text)?.[1];
  if (pid === undefined || Number(pid) < 1) throw new Error(`${path} holds no pid`);
  return Number(pid);
}

/**
 * Writes `pid` to `path` (through a new file renamed over it: a link planted at `path` is replaced, not followed).
 * Throws when the file names another process that still runs. Returns what removes the file, if it is still ours.
 */
export function claimPidFile(path: string, pid: number, alive: Alive): () => void {
  let other: number | null = null;
  try {
    other = readPidFile(path);
  } catch {
    // None, or not a pid: a stale file to replace.
  }
  if (other !== null && other !== pid && alive(other)) {
    throw new Error(`--pid-file ${path}: process ${other} is running (another server?); stop it, or remove the file`);
  }
  const temporary = join(dirname(path), `.${randomBytes(6).toString("hex")}.pid`);
  writeFileSync(temporary, `${pid}\n`, { flag: "wx", mode: 0o644 });
  try {
    renameSync(temporary, path);
  } catch (error) {
    unlinkSync(temporary);
    throw error;
  }
  return () => {
    try {
      if (readPidFile(path) === pid) unlinkSync(path);
    } catch {
      // Gone already, or someone else's now.
    }
  };
}

/** The link to the control socket of process `pid`. */
function pidLink(pid: number, env: (name: string) => string | undefined): string {
  return join(privateControlDir(env), `pid-${pid}.sock`);
}

/**
 * The control socket of process `pid`, as it registered it (the link is read, not followed: the socket itself is
 * then checked as any control socket is); throws naming the pid when it registered none.
 */
export function pidControlPath(pid: number, env: (name: string) => string | undefined): string {
  try {
    return readlinkSync(pidLink(pid, env));
  } catch {
    throw new Error(`process ${pid} registered no control socket (not running, or started without one)`);
  }
}

/**
 * Registers `control` as the control socket of process `pid` (links whose process is gone are removed on the way);
 * returns what removes the link.
 */
export function registerControl(
  pid: number,
  control: string,
  env: (name: string) => string | undefined,
  alive: Alive,
): () => void {
  const dir = privateControlDir(env);
  for (const name of readdirSync(dir)) {
    const other = /^pid-(\d+)\.sock$/.exec(name)?.[1];
    if (other !== undefined && !alive(Number(other))) {
      try {
        unlinkSync(join(dir, name));
      } catch {
        // Removed by another server meanwhile.
      }
    }
  }
  const link = pidLink(pid, env);
  try {
    unlinkSync(link);
  } catch {
    // None yet.
  }
  symlinkSync(control, link);
  return () => {
    try {
      if (readlinkSync(link) === control) unlinkSync(link);
    } catch {
      // Gone already.
    }
  };
}
