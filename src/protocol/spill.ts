/**
 * Spill files: large bodies cross the channel as a file in a memory-backed
 * directory (one copy in, one out) instead of through a 64 KiB pipe. The codec
 * writes and reads them; this module names them and cleans up after writers
 * that died.
 *
 * @module
 */

import type { Runtime, SpillFiles } from "../runtime.ts";

/** Bodies from this size on go through a spill file when the runtime offers a directory. */
export const SPILL_THRESHOLD = 256 * 1024;

/**
 * Where a {@linkcode FrameWriter} may put large bodies: a file in a memory-backed
 * directory is one copy in and one out, where a 64 KiB pipe needs many round trips.
 * The reader tells the writer when it has read a file ({@linkcode FrameWriter.release}),
 * and the writer writes it again for a later body.
 */
export interface SpillOptions {
  /** The runtime's spill files (see {@linkcode SpillFiles}). */
  files: SpillFiles;
  /** File name prefix; names must be unique per writer. */
  prefix: string;
  /** Bodies from this many bytes on go through a file. */
  threshold: number;
}

/** The variable that gives a worker its dispatcher's spill directory. */
export const SPILL_DIR_ENV = "FORKYARD_SPILL_DIR";

/** What choosing a spill directory needs of the file system. */
export interface SpillDirFs {
  /** Makes a directory with `mode`; throws when anything is at `path` already. */
  mkdir(path: string, mode: number): void;
  /** What is at `path` (links not followed), or `null`. */
  lstat(path: string): { directory: boolean; uid: number; mode: number } | null;
  /** This process's user id, or `null` where there are none. */
  uid: number | null;
}

/**
 * This process's spill directory: for a worker, the one its dispatcher made (`given`, from {@linkcode SPILL_DIR_ENV}),
 * used only when it is a directory of this user's alone; for a dispatcher, a new one in `root` with a name nobody
 * can guess, made with mode 0700, so that no other user can read the bodies in it or plant a file or link at a name
 * it will write. `null` when there is none to be had (the channel carries every body then).
 */
export function privateSpillDir(root: string, given: string | undefined, pid: number, fs: SpillDirFs): string | null {
  const isPrivate = (path: string) => {
    const info = fs.lstat(path);
    return info !== null && info.directory && (fs.uid === null || info.uid === fs.uid) && (info.mode & 0o077) === 0;
  };
  if (given !== undefined && given !== "") {
    return given.startsWith(`${root}/forkyard-`) && isPrivate(given) ? given : null;
  }
  for (let attempt = 0; attempt < 3; attempt++) {
    const random = Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, "0"));
    const dir = `${root}/forkyard-${pid}-${random.join("")}`;
    try {
      fs.mkdir(dir, 0o700);
    } catch {
      continue;
    }
    if (isPrivate(dir)) return dir;
  }
  return null;
}

/** File name prefix of the spill files `pid` writes (for `to`, when given). */
export function spillPrefix(pid: number, to?: number): string {
  return to === undefined ? `forkyard-${pid}-` : `forkyard-${pid}-${to}-`;
}

/**
 * Removes the spill directories (and files of older versions) whose dispatcher no longer runs: one killed with
 * SIGKILL cannot remove its own and its workers' (up to 4 kept files of up to 8 MiB per direction and worker, in
 * memory-backed /dev/shm). Returns how many dispatchers' were removed.
 */
export function removeOrphanSpills(files: SpillFiles, alive: (pid: number) => boolean): number {
  const dead = new Set<number>();
  for (const name of files.listRoot()) {
    const pid = Number(/^forkyard-(\d+)-/.exec(name)?.[1]);
    if (pid > 0 && !alive(pid)) {
      dead.add(pid);
      files.unlink(`${files.root}/${name}`);
    }
  }
  return dead.size;
}

/** The logger methods {@linkcode removeStaleSpills} uses. */
interface SpillLog {
  info(message: string, properties?: Record<string, unknown>): void;
  error(message: string, properties?: Record<string, unknown>): void;
}

/**
 * At a dispatcher's or worker host's start: removes the spill files (memory, in /dev/shm) that one killed with
 * SIGKILL, and its workers, left behind.
 */
export function removeStaleSpills(runtime: Pick<Runtime, "spill" | "alive">, log: SpillLog): void {
  const files = runtime.spill();
  if (files === null) return;
  try {
    const count = removeOrphanSpills(files, (pid) => runtime.alive(pid));
    if (count > 0) log.info("Removed the spill files of {count} processes that no longer run", { count });
  } catch (error) {
    log.error("Could not look for stale spill files in {dir}: {error}", { dir: files.dir, error });
  }
}

/**
 * Removes this process's spill directory and the files kept in it, once its workers have stopped: a graceful exit
 * leaves nothing in memory-backed /dev/shm for the next start to find.
 */
export function removeSpillDir(files: SpillFiles | null): void {
  try {
    files?.unlink(files.dir);
  } catch {
    // removed already, or never made
  }
}

/** Removes the spill files whose names start with one of `prefixes`. */
export function removeSpills(files: SpillFiles, prefixes: readonly string[]): void {
  for (const name of files.list()) {
    if (prefixes.some((p) => name.startsWith(p))) files.unlink(`${files.dir}/${name}`);
  }
}

/** Removes the spill files a dead worker `workerPid` wrote, and those its dispatcher wrote for it and it never read. */
export function removeWorkerSpills(files: SpillFiles | null, dispatcherPid: number, workerPid: number): void {
  if (files === null) return;
  try {
    removeSpills(files, [spillPrefix(dispatcherPid, workerPid), spillPrefix(workerPid)]);
  } catch {
    // nothing to clean
  }
}
