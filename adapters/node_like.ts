/**
 * Pieces shared by the Node.js and Bun adapters: both run `node:child_process`
 * compatible spawning and expose `process.stdin`/`process.stdout`.
 *
 * @module
 */

import type { spawn as spawnProcess } from "node:child_process";
import type process from "node:process";
import type * as Fs from "node:fs";
import type { Readable } from "node:stream";
import type { ChildProcess, ExitStatus, LogTarget, ParentChannel, SpawnOptions, SpillFiles } from "../src/runtime.ts";
import { ReadBuffers, SPILL_BUFFERS } from "../src/protocol/read_buffers.ts";
import { privateSpillDir, SPILL_DIR_ENV, type SpillDirFs } from "../src/protocol/spill.ts";

type Process = typeof process;

/** `Runtime.watchFiles` through `node:fs`'s recursive `watch` (Node 20 and Bun on Linux). */
export function watchTree(fs: typeof Fs, dir: string, onChange: (path: string) => void): () => void {
  const watcher = fs.watch(dir, { recursive: true }, (_event, file) => {
    if (file !== null) onChange(`${dir}/${String(file)}`);
  });
  watcher.on("error", () => {});
  return () => watcher.close();
}

const NodeBuffer = (globalThis as unknown as { Buffer: { from(text: string): Uint8Array } }).Buffer;

/**
 * `Runtime.openLog` through `node:fs`: writes go to libuv's thread pool, so that a reader that stops reading blocks a
 * pool thread, not the event loop (one write at a time: `LogOutput` waits for each). A non-blocking descriptor that
 * is full is tried again shortly.
 */
export function fsLogTarget(fs: typeof Fs, path: string | null): LogTarget {
  const fd = path === null ? 2 : fs.openSync(path, "a", 0o640);
  const write = (data: Uint8Array, resolve: () => void, reject: (error: unknown) => void): void =>
    fs.write(fd, data, 0, data.length, null, (error, n) => {
      if (error !== null && (error as { code?: string }).code === "EAGAIN") {
        setTimeout(() => write(data, resolve, reject), 10);
      } else if (error !== null) reject(error);
      else if (n < data.length) write(data.subarray(n), resolve, reject);
      else resolve();
    });
  return {
    // Buffer.from, not TextEncoder: short batches come from Node's pooled slab.
    write: (text) => new Promise((resolve, reject) => write(NodeBuffer.from(text), resolve, reject)),
    close: () => {
      if (path !== null) fs.closeSync(fd);
    },
  };
}

/** Writes `chunks` from byte `from` of the spill file `path`, created 0600, never through a link. */
export function writeSpillFile(fs: typeof Fs, path: string, chunks: readonly Uint8Array[], from = 0): void {
  // Never through a link: the directory is private, and a link in it would still be no file of ours.
  const fd = fs.openSync(path, fs.constants.O_WRONLY | fs.constants.O_CREAT | (fs.constants.O_NOFOLLOW ?? 0), 0o600);
  try {
    let at = from;
    for (const data of chunks) {
      for (let off = 0; off < data.length;) off += fs.writeSync(fd, data, off, data.length - off, at + off);
      at += data.length;
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** Reads the first `length` bytes of the spill file `path` into `data`, never through a link. */
export function readSpillFile(fs: typeof Fs, path: string, data: Uint8Array, length: number): Uint8Array {
  const fd = fs.openSync(path, fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW ?? 0));
  try {
    for (let off = 0; off < length;) {
      const n = fs.readSync(fd, data, off, length - off, off);
      if (n === 0) throw new Error(`${path} ends after ${off} of ${length} bytes`);
      off += n;
    }
    return data;
  } finally {
    fs.closeSync(fd);
  }
}

/** Spill files in `dir` through `node:fs`, which `fs()` returns (Bun loads it only once a body spills). */
export function fsSpill(root: string, fs: () => typeof Fs, env: Record<string, string | undefined>): SpillFiles | null {
  const dirFs: SpillDirFs = {
    mkdir: (path, mode) => fs().mkdirSync(path, { mode }),
    lstat: (path) => {
      try {
        const info = fs().lstatSync(path);
        return { directory: info.isDirectory(), uid: info.uid, mode: info.mode };
      } catch {
        return null;
      }
    },
    uid: typeof globalThis.process.getuid === "function" ? globalThis.process.getuid() : null,
  };
  // A worker checks its dispatcher's directory when it first spills (node:fs costs a Bun process memory); a
  // dispatcher makes its own now, to hand it to its workers.
  const given = env[SPILL_DIR_ENV];
  const dir = given !== undefined ? given || null : privateSpillDir(root, undefined, globalThis.process.pid, dirFs);
  if (dir === null) return null;
  let checked = given === undefined;
  const check = () => {
    if (checked) return;
    if (privateSpillDir(root, given, globalThis.process.pid, dirFs) === null) {
      throw new Error(`${given} is not a spill directory of this user's alone`);
    }
    checked = true;
  };
  // Not zero-filled: every byte is read over, and zeroing large buffers shows in a dispatcher's profile.
  const Buffer = (globalThis as unknown as { Buffer: { allocUnsafeSlow(n: number): Uint8Array } }).Buffer;
  const buffers = new ReadBuffers((length) => Buffer.allocUnsafeSlow(length).buffer as ArrayBuffer, SPILL_BUFFERS);
  return {
    dir,
    root,
    write: (path, chunks, at) => {
      check();
      writeSpillFile(fs(), path, chunks, at);
    },
    read: (path, length) => {
      check();
      return readSpillFile(fs(), path, buffers.take(length), length);
    },
    recycle: (data) => void buffers.give(data),
    unlink: (path) => fs().rmSync(path, { force: true, recursive: true }),
    list: () => fs().readdirSync(dir),
    // Only this user's: removing a directory another user made would follow what they put in it.
    listRoot: () =>
      fs().readdirSync(root).filter((name) =>
        name.startsWith("forkyard-") && (dirFs.uid === null || dirFs.lstat(`${root}/${name}`)?.uid === dirFs.uid)
      ),
  };
}

/** Whether process `pid` exists: signal 0 checks without sending anything (EPERM: it exists, not ours). */
export function processAlive(proc: Process, pid: number): boolean {
  try {
    proc.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code === "EPERM";
  }
}

/** Node's and Bun's user switch: the user's groups (initgroups), then the group, then the user, as gunicorn does. */
export function dropProcessPrivileges(proc: Process, to: { uid: number; gid: number; name: string | null }) {
  const groups = proc as Process & { initgroups?(user: string, extraGroup: number): void };
  if (to.name !== null) groups.initgroups!(to.name, to.gid);
  else proc.setgroups!([to.gid]);
  proc.setgid!(to.gid);
  proc.setuid!(to.uid);
}

/** The environment for a child: ours, plus `extra`, minus the test runner's markers. */
export function childEnv(env: Record<string, string | undefined>, extra?: Record<string, string>) {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    if (v !== undefined && k !== "NODE_TEST_CONTEXT") out[k] = v;
  }
  return Object.assign(out, extra);
}

/**
 * Set in a child's environment: the file descriptor of the pipe its frames go
 * out on. A spawner that takes stdout as text (`SpawnOptions.onText`, as the
 * supervisor does) gives the child this fourth pipe, so that its stdout stays a
 * plain stream: writes that bypass `process.stdout` (native code, `--trace-gc`)
 * cannot break the channel, and nothing needs patching.
 */
export const CHANNEL_FD_ENV = "FORKYARD_CHANNEL_FD";
/** The channel pipe's descriptor in a child spawned with `onText`. */
export const CHANNEL_FD = 3;

/** The environment for a child of `options`: ours, its extra variables, and the channel pipe's descriptor. */
export function spawnEnv(options: SpawnOptions): Record<string, string> {
  const extra = options.onText ? { ...options.env, [CHANNEL_FD_ENV]: String(CHANNEL_FD) } : options.env;
  return childEnv(globalThis.process.env, extra);
}

/** The channel pipe this process was given, if any. Single use: it is not for this process's own children. */
export function takeChannelFd(proc: Process): number | null {
  const fd = Number(proc.env[CHANNEL_FD_ENV]);
  delete proc.env[CHANNEL_FD_ENV];
  return fd > 2 ? fd : null;
}

/** Spawns a child with `node:child_process.spawn` and all stdio piped (plus the channel pipe with `onText`). */
export function spawnNodeLike(spawn: typeof spawnProcess, options: SpawnOptions): ChildProcess {
  const [command, ...args] = options.cmd;
  const { onText } = options;
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: spawnEnv(options),
    stdio: onText ? ["pipe", "pipe", "pipe", "pipe"] : ["pipe", "pipe", "pipe"],
  });
  const exited = new Promise<ExitStatus>((resolve) => {
    child.once("error", (error) => {
      options.onStderr(new TextEncoder().encode(`Cannot start ${command}: ${error.message}\n`));
      resolve({ code: 127, signal: null });
    });
    // "close": the process exited and every pipe, the channel's too, has been read to its end.
    child.once("close", (code, signal) => resolve({ code: signal ? null : code, signal }));
  });
  if (child.pid === undefined) {
    // The system refused to start it (no free descriptor, EMFILE; no process slot, EAGAIN): "error" follows, and
    // the supervisor treats it as a process that died at once, restarting it with backoff.
    return { pid: -1, write: () => undefined, closeStdin() {}, kill() {}, exited };
  }
  if (onText) {
    (child.stdio[CHANNEL_FD] as Readable).on("data", options.onStdout);
    child.stdout!.on("data", onText);
  } else child.stdout!.on("data", options.onStdout);
  child.stderr!.on("data", options.onStderr);
  // A write after the child died raises EPIPE on the stream; exit handling reports the death.
  child.stdin!.on("error", () => {});
  // One wait for "drain" however many writes find the pipe full: a listener pair per blocked write piled up
  // past Node's limit of 10 (MaxListenersExceededWarning) when a flush handed over many large bodies at once.
  let drained: Promise<void> | null = null;
  return {
    pid: child.pid ?? -1,
    write(data) {
      if (child.stdin!.write(data)) return undefined;
      return drained ??= new Promise<void>((resolve) => {
        const done = () => {
          child.stdin!.off("close", done);
          child.stdin!.off("drain", done);
          drained = null;
          resolve();
        };
        child.stdin!.once("drain", done);
        child.stdin!.once("close", done);
      });
    },
    closeStdin: () => void child.stdin!.end(),
    kill(signal = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
    exited,
  };
}

/** What {@linkcode processChannel} writes frames to: `process.stdout`, or a socket on the channel pipe. */
export interface FrameOut {
  write(data: Uint8Array, cb?: (err?: Error | null) => void): boolean;
  on(event: "error", listener: () => void): unknown;
}

/**
 * `process.stdin` and `own` (a pipe of the channel's own, see {@linkcode CHANNEL_FD_ENV})
 * or else `process.stdout` as a {@linkcode ParentChannel}.
 */
export function processChannel(proc: Process, own?: FrameOut): ParentChannel {
  // Bound before redirectStdout() may replace process.stdout.write.
  const out: FrameOut = own ?? proc.stdout;
  const rawWrite = out.write.bind(out);
  let last: Promise<void> = Promise.resolve();
  out.on("error", () => {});
  return {
    start(onData, onEnd) {
      let ended = false;
      const end = () => {
        if (!ended) {
          ended = true;
          onEnd();
        }
      };
      proc.stdin.on("data", (chunk: Uint8Array) => onData(chunk));
      proc.stdin.on("end", end);
      proc.stdin.on("close", end);
      proc.stdin.on("error", end);
    },
    write(data) {
      let resolveWrite!: () => void;
      last = new Promise<void>((r) => (resolveWrite = r));
      const ok = rawWrite(data, () => resolveWrite());
      return ok ? undefined : last;
    },
    redirectStdout(onText) {
      // With its own pipe, the channel is safe from stdout, which the parent reads as text.
      if (own === undefined) redirectProcessStdout(proc, onText);
    },
  };
}

/** Replaces `process.stdout.write` so that stray writes become text for `onText`. */
export function redirectProcessStdout(proc: Process, onText: (text: string) => void): void {
  const decoder = new TextDecoder();
  proc.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    onText(typeof chunk === "string" ? chunk : decoder.decode(chunk));
    const cb = rest.find((r) => typeof r === "function") as (() => void) | undefined;
    if (cb) queueMicrotask(cb);
    return true;
  }) as typeof proc.stdout.write;
}
