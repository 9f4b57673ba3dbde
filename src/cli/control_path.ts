/**
 * Where the command line's control socket lives when `--control` does not
 * say: a directory of this user's alone (`$XDG_RUNTIME_DIR/forkyard`, else
 * `forkyard-<uid>` in the temporary directory, made with mode 0700), one
 * socket per working directory. A directory another user could write would
 * let them put their own socket at the name first.
 *
 * @module
 */

import { lstatSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import process from "node:process";

/** FNV-1a of `text`, as 8 hex digits: tells working directories apart in a socket's name. */
function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, "0");
}

/** This user's private directory for control sockets, made when missing; throws when it is not private. */
export function privateControlDir(env: (name: string) => string | undefined): string {
  const uid = typeof process.getuid === "function" ? process.getuid() : null;
  const runtimeDir = env("XDG_RUNTIME_DIR");
  const dir = runtimeDir ? join(runtimeDir, "forkyard") : join(tmpdir(), `forkyard-${uid ?? "user"}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const info = lstatSync(dir);
  if (!info.isDirectory() || (uid !== null && info.uid !== uid) || (info.mode & 0o077) !== 0) {
    throw new Error(
      `${dir} is not a directory of this user's alone (owner ${info.uid}, mode ${(info.mode & 0o777).toString(8)}): ` +
        "pass --control PATH in a private directory, or --no-control",
    );
  }
  return dir;
}

/** The default control socket for a server run in `cwd`. */
export function defaultControlPath(
  cwd: string = process.cwd(),
  env: (name: string) => string | undefined = (name) => process.env[name],
): string {
  // Unix socket paths are short (108 bytes): the directory's name is cut, the hash keeps it apart.
  const name = (basename(cwd) || "root").replace(/[^A-Za-z0-9._-]/g, "_").slice(0, 32);
  return join(privateControlDir(env), `${name}-${fnv1a(cwd)}.sock`);
}
