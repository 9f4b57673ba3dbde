/**
 * Spill files: large bodies cross the channel as a file in a memory-backed
 * directory (one copy in, one out) instead of through a 64 KiB pipe. The codec
 * writes and reads them; this module names them and cleans up after writers
 * that died.
 *
 * @module
 */

import type { SpillFiles } from "../runtime.ts";

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

/** File name prefix of the spill files `pid` writes (for `to`, when given). */
export function spillPrefix(pid: number, to?: number): string {
  return to === undefined ? `forkyard-${pid}-` : `forkyard-${pid}-${to}-`;
}

/**
 * Removes spill files whose writer no longer runs: a dispatcher killed with
 * SIGKILL cannot remove its own and its workers' (up to 4 kept files of up to
 * 8 MiB per direction and worker, in memory-backed /dev/shm). Returns how many
 * writers' files were removed.
 */
export function removeOrphanSpills(files: SpillFiles, alive: (pid: number) => boolean): number {
  const dead = new Set<number>();
  for (const name of files.list()) {
    const pid = Number(/^forkyard-(\d+)-/.exec(name)?.[1]);
    if (pid > 0 && !alive(pid)) dead.add(pid);
  }
  if (dead.size > 0) removeSpills(files, [...dead].map((pid) => spillPrefix(pid)));
  return dead.size;
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
