/**
 * `user` and `group` (`--user`, `--group`): started as root to bind a low port, the dispatcher drops to that user once
 * its sockets are open, before any worker starts, so that the workers and the dispatcher's HTTP parsing run without
 * root, as gunicorn's workers and nginx's do. Names are read from /etc/passwd and /etc/group; numbers are taken as ids.
 *
 * @module
 */

import { lchownSync, lstatSync, readFileSync } from "node:fs";
import type { Runtime } from "../runtime.ts";
import { firstLine } from "../error_text.ts";

/** Who the dispatcher becomes: its user id, group id, and the user's name for its supplementary groups. */
export interface RunAs {
  uid: number;
  gid: number;
  /** The user's name (its groups in /etc/group join `gid`), or `null` for a bare id (`gid` alone). */
  name: string | null;
}

/** The entries of a colon-separated database (/etc/passwd, /etc/group): fields per line, comments and blanks out. */
function entries(path: string): string[][] {
  let text = "";
  try {
    text = readFileSync(path, "utf8");
  } catch {
    // No such database (not Linux or a bare container): only ids are understood.
  }
  return text.split("\n").filter((line) => line !== "" && !line.startsWith("#")).map((line) => line.split(":"));
}

const isId = (value: string | number) => typeof value === "number" || /^\d+$/.test(value);

/**
 * Resolves the `user` and `group` options; `null` when neither is set. Throws a message naming the option when a name
 * is unknown.
 */
export function resolveRunAs(user: string | number | null, group: string | number | null): RunAs | null {
  if (user === null && group === null) return null;
  let uid: number | null = null;
  let gid: number | null = null;
  let name: string | null = null;
  if (user !== null) {
    const passwd = entries("/etc/passwd");
    const entry = isId(user) ? passwd.find((e) => e[2] === String(user)) : passwd.find((e) => e[0] === user);
    if (entry === undefined && !isId(user)) {
      throw new TypeError(`Invalid Dispatcher option "user": no user named ${JSON.stringify(user)} in /etc/passwd`);
    }
    uid = Number(entry?.[2] ?? user);
    gid = entry === undefined ? null : Number(entry[3]);
    name = entry?.[0] ?? null;
  }
  if (group !== null) {
    const entry = isId(group) ? undefined : entries("/etc/group").find((e) => e[0] === group);
    if (entry === undefined && !isId(group)) {
      throw new TypeError(`Invalid Dispatcher option "group": no group named ${JSON.stringify(group)} in /etc/group`);
    }
    gid = Number(entry?.[2] ?? group);
  }
  return { uid: uid ?? -1, gid: gid ?? -1, name };
}

/**
 * Becomes `to` after handing it `files` (the Unix socket the proxy connects to, the log files reopened on SIGUSR1,
 * the spill directory):
 * throws, with the reason, when this process may not (it is not root). Ids of -1 keep this process's own.
 */
export function dropPrivileges(runtime: Runtime, to: RunAs, files: readonly string[]): void {
  const now = runtime.ids();
  const target = { ...to, uid: to.uid === -1 ? now.uid : to.uid, gid: to.gid === -1 ? now.gid : to.gid };
  if (now.uid === target.uid && now.gid === target.gid) return;
  if (now.uid !== 0) {
    throw new Error(`user and group need the server to start as root (it runs as uid ${now.uid})`);
  }
  // Not through a link: one another user planted at a log file's path would have root hand its target (say
  // /etc/shadow) to the user. lchown changes no target even if a link replaces the file after this check.
  for (const file of files) {
    if (lstatSync(file).isSymbolicLink()) throw new Error(`${file} is a symbolic link: give the file itself`);
  }
  for (const file of files) lchownSync(file, target.uid, target.gid);
  runtime.dropPrivileges(target);
}

/** What {@linkcode switchUser} reads of the dispatcher's options. */
export interface RunAsOptions {
  readonly user: string | number | null;
  readonly group: string | number | null;
  readonly unixSocket: string | null;
  readonly logFile: string | null;
  readonly accessLogFile: string | null;
}

/**
 * Drops to the `user` and `group` options, when set, once the sockets are open; false when it cannot (one line says
 * why).
 */
export function switchUser(
  runtime: Runtime,
  options: RunAsOptions,
  log: {
    info(message: string, properties: Record<string, unknown>): void;
    error(message: string, properties: Record<string, unknown>): void;
  },
): boolean {
  const to = resolveRunAs(options.user, options.group);
  if (to === null) return true;
  // The spill directory too: made by root (0700), the user's dispatcher and workers could neither use nor remove it.
  const spill = runtime.spill()?.dir ?? null;
  const files = [options.unixSocket, options.logFile, options.accessLogFile, spill].filter((f) => f !== null);
  try {
    dropPrivileges(runtime, to, files);
  } catch (error) {
    log.error("Cannot run as user {user}, group {group}: {reason}", {
      user: options.user ?? "(this one)",
      group: options.group ?? "(the user's)",
      reason: firstLine(error),
    });
    return false;
  }
  const { uid, gid } = runtime.ids();
  log.info("Running as uid {uid}, gid {gid}", { uid, gid });
  return true;
}
