/**
 * What a pool's supervisor needs from its dispatcher.
 *
 * @module
 */

import type { Logger, LogRecord } from "@logtape/logtape";
import type { WorkerResponse } from "../pool.ts";
import type { Runtime } from "../runtime.ts";
import type { Clock } from "./clock.ts";
import type { Pending } from "./pending.ts";

/** What a pool needs from its dispatcher. */
export interface PoolHost {
  runtime: Runtime;
  /** A request left the pending set (answered, failed or dropped). */
  finished(pending: Pending): void;
  /** A worker answered; calls `onResponse` when the application has one. */
  answered?: (response: WorkerResponse, pending: Pending) => void;
  /** A worker's log record. */
  log(record: LogRecord): void;
  /** The pool's own logger (LogTape is the dispatcher's to load). */
  logger: Logger;
  /** Where frames about WebSockets go (sends, closes, topics); without it they are dropped. */
  sockets?: { fromWorker(type: number, header: unknown, body: Uint8Array, lent: boolean): void };
  /** The supervisor's time; the system clock when absent. */
  clock?: Clock;
}
