/**
 * What runs a pool needs from the process it runs in (a dispatcher, a worker
 * host), and what that process needs from whatever runs a pool: a
 * {@linkcode Supervisor} of local processes, or a remote pool's link to its
 * worker hosts.
 *
 * @module
 */

import type { Logger, LogRecord } from "@logtape/logtape";
import type { PoolRunner, WorkerPool } from "./pool.ts";
import type { Runtime } from "./runtime.ts";
import type { Clock } from "./requests/clock.ts";
import type { ClientRequest, Pending, ServedBy } from "./requests/pending.ts";
import type { SocketChannel } from "./requests/socket_link.ts";

/** What a pool needs from the process it runs in. */
export interface PoolHost {
  runtime: Runtime;
  /** A request left the pool (answered, failed or dropped). */
  finished(pending: Pending): void;
  /** A worker's log record. */
  log(record: LogRecord): void;
  /** The pool's own logger (LogTape is the dispatcher's to load). */
  logger: Logger;
  /** Where frames about WebSockets go (sends, closes, topics), with the channel of the worker that sent them. */
  sockets?: {
    fromWorker(from: SocketChannel, type: number, header: unknown, body: Uint8Array, lent: boolean): void;
    /** Sends `data` to this process's sockets subscribed to `topic` (a remote worker published it). */
    deliver?(topic: string, data: string | Uint8Array): number;
  };
  /**
   * Whether this process steers a remote pool's worker hosts (`scale`, `reload`, config): of several dispatchers,
   * the first alone does, so that each host hears a command once. True when absent.
   */
  steers?: boolean;
  /** The supervisor's time; the system clock when absent. */
  clock?: Clock;
}

/** What runs a pool for its process: its workers' supervision and its requests. */
export interface PoolBackend extends PoolRunner {
  readonly pool: WorkerPool;
  /** Starts the pool's workers (or its connection). */
  start(): void;
  /** Resolves once the first workers are ready or failed. */
  settled(): Promise<void>;
  /** Why no worker could start, or `null`. */
  bootFailure(): string | null;
  /** Whether the pool answers 503 for now. */
  readonly degraded: boolean;
  /** Admits a request; its answer goes to `request.resolve` (or its relay). */
  request(request: ClientRequest): Pending<ServedBy>;
  /** Workers replaced so far, by why. */
  replacements(): ReadonlyMap<string, number>;
  /** Messages from outside dropped as malformed (a remote pool's, from NATS). */
  dropped?(): number;
  /** Called every tick with the time. */
  tick(now: number): void;
  /** Answers every waiting and in-flight request with `status` (shutdown). */
  abortAll(status: number, message: string): void;
  /** Stops the workers, killing those not gone after `grace` ms. */
  stop(grace: number): Promise<void>;
}
