/**
 * Starting worker processes, and keeping `spares` of them started ahead of
 * need: a spare waits, with its runtime and program loaded, for the INIT that
 * makes it a worker. Also where a process's stdout and stderr lines become log
 * records.
 *
 * @module
 */

import { firstLine } from "../error_text.ts";
import { fileURLToPath } from "node:url";
import type { Logger } from "@logtape/logtape";
import { MAX_RESTART_DELAY, type WorkerPool } from "../pool.ts";
import { type ChannelError, FrameDecoder, FrameWriter } from "../protocol/codec.ts";
import { F, type InitHeader } from "../protocol/frames.ts";
import { SPILL_DIR_ENV, SPILL_THRESHOLD, spillPrefix } from "../protocol/spill.ts";
import type { ChildProcess, ExitStatus, Runtime } from "../runtime.ts";
import { APP_ENV, MODULE_ENV, WORKER_ENV } from "../worker/entry.ts";
import type { Clock } from "../requests/clock.ts";
import { Backoff } from "./restart_policy.ts";
import { type Slot, WorkerProcess } from "./worker_process.ts";

/** The `INIT` frame of a process for slot `id` of `pool`. */
export function initHeader(pool: WorkerPool, id: number): InitHeader {
  const opts = pool.options;
  return {
    pool: pool.name,
    id,
    kwargs: opts.kwargs,
    logLevel: opts.logLevel,
    heartbeatInterval: opts.heartbeatInterval,
    ...(opts.module !== null ? { module: opts.module, export: opts.export } : {}),
    ...(pool.mount !== null ? { mount: pool.mount } : {}),
  };
}

/** Where a worker process of a `module` pool starts: the worker entry, without the dispatcher's program. */
const MODULE_MAIN = new URL(
  import.meta.url.endsWith(".js") ? "../worker/module_main.js" : "../worker/module_main.ts",
  import.meta.url,
);

/** A line of an uncaught error as runtimes print it (`Error: ...`, `error: Uncaught Error: ...`, `TypeError: ...`). */
const ERROR_LINE = /^(error: |\w*Error\b[^:]*: )/;

/** A started process before and after it is given a slot. */
export interface Launched {
  child: ChildProcess;
  /** The worker it became; `null` while it is a spare. */
  worker: WorkerProcess | null;
}

/** What the launcher reports about the processes it started. */
export interface LaunchEvents {
  /** A frame from a worker. */
  frame(worker: WorkerProcess, type: number, header: unknown, body: Uint8Array, lent: boolean): void;
  /** A worker wrote bytes that are not frames. */
  garbage(worker: WorkerProcess, message: string): void;
  /** A worker exited. */
  exit(worker: WorkerProcess, status: ExitStatus): void;
}

/** Starts a pool's processes and keeps its spares. */
export class Launcher {
  readonly #pool: WorkerPool;
  readonly #runtime: Runtime;
  readonly #log: Logger;
  readonly #events: LaunchEvents;
  readonly #clock: Clock;
  /** Processes started ahead of need, oldest first. */
  #spares: Launched[] = [];
  /** Wait before replacing a spare that died unused; reset when a worker gets ready. */
  readonly #spareBackoff: Backoff;
  #exits = new Set<Promise<unknown>>();
  #timers = new Set<ReturnType<typeof setTimeout>>();
  #stopping = false;

  constructor(pool: WorkerPool, runtime: Runtime, log: Logger, events: LaunchEvents, clock: Clock) {
    this.#pool = pool;
    this.#runtime = runtime;
    this.#log = log;
    this.#events = events;
    this.#clock = clock;
    this.#spareBackoff = new Backoff(Math.max(pool.options.restartDelay, 1), MAX_RESTART_DELAY);
  }

  /** The command that starts a worker process. */
  #command(): string[] {
    const runtime = this.#runtime;
    if (this.#pool.options.module !== null) {
      const main = MODULE_MAIN.protocol === "file:" ? fileURLToPath(MODULE_MAIN) : MODULE_MAIN.href;
      return runtime.selfCommand(main);
    }
    // Workers re-run the main module with the same arguments, as node:cluster does.
    return [...runtime.selfCommand(runtime.mainModule()), ...runtime.args()];
  }

  /** Starts a process; it becomes a worker once {@linkcode Launcher.assign} gives it a slot. Throws when it cannot. */
  #launch(): Launched {
    const module = this.#pool.options.module;
    const decoder = new FrameDecoder(
      (type, header, body, lent) => this.#events.frame(launched.worker!, type, header, body, lent),
      this.#runtime.spill(),
      (path) => launched.worker!.writer.send(F.RELEASE, { p: path }),
    );
    // The worker writes its large bodies in this process's private spill directory, and reads ours from it.
    const spillDir = this.#runtime.spill()?.dir;
    const env: Record<string, string> = {
      ...this.#pool.options.env,
      [WORKER_ENV]: "1",
      [SPILL_DIR_ENV]: spillDir ?? "",
    };
    // A `module` pool's module is named at spawn, so that a process (a spare above all) loads it before its INIT.
    if (module !== null) env[MODULE_ENV] = module;
    if (module !== null && this.#pool.mount !== null) env[APP_ENV] = "1";
    // The callbacks run only after spawn() returned, when `launched` exists.
    const child: ChildProcess = this.#runtime.spawn({
      cmd: this.#command(),
      env,
      onStdout: (chunk) => {
        const worker = launched.worker;
        if (worker === null) {
          // A spare has nothing to say before its INIT.
          this.#dropSpare(launched, "wrote to its channel before it was given work");
          return;
        }
        if (worker.state === "down") return;
        try {
          decoder.push(chunk);
        } catch (error) {
          this.#events.garbage(worker, `wrote garbage to its channel (${(error as ChannelError).message})`);
        }
      },
      onStderr: (chunk) => this.#output(launched, chunk, "stderr"),
      onText: (chunk) => this.#output(launched, chunk, "stdout"),
    });
    const launched: Launched = { child, worker: null };
    const exit = child.exited.then((status) => {
      if (launched.worker !== null) this.#events.exit(launched.worker, status);
      else this.#dropSpare(launched, status.signal ? `signal ${status.signal}` : `code ${status.code}`);
    });
    this.#exits.add(exit);
    exit.finally(() => this.#exits.delete(exit));
    return launched;
  }

  /**
   * A process for `slot`: a spare if one waits, else a new one; `null` when none can be started (logged). The caller
   * sends its INIT.
   */
  assign(slot: Slot): WorkerProcess | null {
    let launched: Launched;
    try {
      launched = this.#spares.shift() ?? this.#launch();
    } catch (error) {
      // EMFILE, EAGAIN: the system's state, not a bug here; one line without a stack, and the slot's backoff retries.
      this.#log.error("Cannot start worker {id} of pool {pool} ({reason})", {
        id: slot.id,
        pool: this.#pool.name,
        reason: firstLine(error),
      });
      return null;
    }
    const child = launched.child;
    const files = this.#runtime.spill();
    const spill = files === null
      ? undefined
      : { files, prefix: spillPrefix(this.#runtime.pid, child.pid), threshold: SPILL_THRESHOLD };
    const worker = new WorkerProcess(
      slot,
      child,
      new FrameWriter((data) => child.write(data), spill),
      this.#clock.now(),
    );
    launched.worker = worker;
    return worker;
  }

  /** A worker became ready: the program starts, so spares are worth keeping; start those missing. */
  workerReady(): void {
    this.#spareBackoff.reset();
    this.#topUpSpares();
  }

  /** Keeps `spares` processes waiting. */
  #topUpSpares() {
    while (!this.#stopping && this.#spares.length < this.#pool.options.spares) {
      try {
        this.#spares.push(this.#launch());
      } catch (error) {
        this.#log.error("Cannot start a spare process for pool {pool} ({reason})", {
          pool: this.#pool.name,
          reason: firstLine(error),
        });
        return;
      }
    }
  }

  #dropSpare(launched: Launched, reason: string) {
    const i = this.#spares.indexOf(launched);
    if (i < 0) return;
    this.#spares.splice(i, 1);
    launched.child.kill("SIGKILL");
    if (this.#stopping) return;
    const delay = this.#spareBackoff.next();
    this.#log.warning(
      "A spare process of pool {pool} (pid {pid}) ended before it was needed: {reason}; another in {delay} ms",
      { pool: this.#pool.name, pid: launched.child.pid, reason, delay },
    );
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      this.#topUpSpares();
    }, delay);
    this.#timers.add(timer);
  }

  /** Lines a process wrote to stderr (logged as errors), or to stdout when its channel has its own pipe (info). */
  #output(launched: Launched, chunk: Uint8Array, stream: "stderr" | "stdout") {
    const worker = launched.worker;
    if (worker === null) {
      const line = new TextDecoder().decode(chunk).trimEnd();
      if (stream === "stderr") this.#log.error("{line}", { line, pid: launched.child.pid });
      else this.#log.info("{line}", { line, pid: launched.child.pid });
      return;
    }
    const text = worker.tails[stream] + new TextDecoder().decode(chunk);
    const lines = text.split("\n");
    worker.tails[stream] = lines.pop() ?? "";
    for (const line of lines) {
      if (line.trim() === "") continue;
      // A program that throws while it loads says why on stderr: the line naming the error is its boot error.
      if (
        stream === "stderr" && worker.state === "starting" && worker.slot.bootError === null && ERROR_LINE.test(line)
      ) {
        worker.slot.bootError = line.replace(/^error: (Uncaught (\(in promise\) )?)?/, "").trim();
      }
      const properties = { line, workerId: worker.slot.id, pid: worker.child.pid, stream };
      if (stream === "stderr") this.#log.error("{line}", properties);
      else this.#log.info("{line}", properties);
    }
  }

  /** Process ids of the spares. */
  sparePids(): number[] {
    return this.#spares.map((s) => s.child.pid);
  }

  /**
   * Starts no more processes and stops those started: `workers` are asked to (STOP), spares lose their channel
   * (which ends them); whatever has not exited after `graceMs` is killed. Resolves once every one has exited.
   */
  async stop(workers: readonly WorkerProcess[], graceMs: number): Promise<void> {
    this.#stopping = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    for (const w of workers) w.writer.send(F.STOP);
    const spares = this.#spares.splice(0).map((s) => s.child);
    for (const c of spares) c.closeStdin();
    const all = Promise.all([...this.#exits]);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(resolve, graceMs, true)));
    if (await Promise.race([all.then(() => false), timedOut])) {
      for (const w of workers) w.child.kill("SIGKILL");
      for (const c of spares) c.kill("SIGKILL");
      await all;
    }
    clearTimeout(timer);
    for (const w of workers) w.child.closeStdin();
  }
}
