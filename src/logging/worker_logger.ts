/**
 * The `this.log` of workers: LogTape-style messages written as wire records
 * to the channel, without loading LogTape itself (an idle worker does not carry
 * it; `logtape.ts` is loaded only when the program uses LogTape).
 *
 * @module
 */

import type { LogLevel } from "@logtape/logtape";
import { type WireRecord, wireRecord } from "../protocol/log_record.ts";
import { format, type Inspect, renderTemplate } from "./format.ts";
import { LEVEL_RANK } from "./levels.ts";

/**
 * A worker's logger. Messages take LogTape placeholders with a properties
 * object (`log.info("item {id}", { id })`) or printf-style arguments
 * (`log.info("item %d", id)`).
 */
export interface WorkerLogger {
  /** Logs at debug level. */
  debug(message: string, ...args: unknown[]): void;
  /** Logs at info level. */
  info(message: string, ...args: unknown[]): void;
  /** Logs at warning level. */
  warning(message: string, ...args: unknown[]): void;
  /** Logs at error level. */
  error(message: string, ...args: unknown[]): void;
  /** Logs at fatal level (the seed's CRITICAL). */
  fatal(message: string, ...args: unknown[]): void;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== "object") return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * A worker's logger, writing wire records through `send`. `context` returns the
 * properties of the current request (its `requestId`) or `undefined`.
 */
export function workerLogger(
  category: readonly string[],
  lowest: LogLevel,
  send: (record: WireRecord) => void,
  context: () => Record<string, unknown> | undefined,
  inspect: Inspect,
): WorkerLogger {
  const at = (level: LogLevel) => {
    if (LEVEL_RANK[level] < LEVEL_RANK[lowest]) return () => {};
    return (message: string, ...args: unknown[]) => {
      let m: string;
      let p: Record<string, unknown>;
      if (args.length === 1 && isPlainObject(args[0]) && !message.includes("%")) {
        p = args[0];
        m = renderTemplate(message, p, inspect);
      } else {
        m = args.length === 0 ? message : format(inspect, [message, ...args]);
        p = {};
      }
      send(wireRecord(category, level, m, p, context()));
    };
  };
  return {
    debug: at("debug"),
    info: at("info"),
    warning: at("warning"),
    error: at("error"),
    fatal: at("fatal"),
  };
}

/** Where LogTape keeps its root logger: present once a program has made any logger. */
const ROOT_LOGGER = Symbol.for("logtape.rootLogger");

/** Whether LogTape is loaded and has made a logger in this process (without loading it: that is what `logtape.ts` is for). */
export function programUsesLogTape(): boolean {
  return ROOT_LOGGER in globalThis;
}

/** Something that carries per-request properties across `await`s (an AsyncLocalStorage). */
export interface ContextStorage {
  /** The current properties, if any. */
  getStore(): Record<string, unknown> | undefined;
  /** Runs `callback` with `store` as the current properties. */
  run<T>(store: Record<string, unknown>, callback: () => T): T;
}
