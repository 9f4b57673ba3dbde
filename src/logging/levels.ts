/**
 * LogTape's log levels, lowest first, without loading LogTape.
 *
 * @module
 */

import type { LogLevel } from "@logtape/logtape";

/** The log levels, lowest first. */
export const LOG_LEVELS: readonly LogLevel[] = ["trace", "debug", "info", "warning", "error", "fatal"];

/** Checks a `logLevel` option value. */
export function isLogLevel(value: unknown): value is LogLevel {
  return typeof value === "string" && (LOG_LEVELS as readonly string[]).includes(value);
}

/** Numeric order of the levels, for "this level or above" checks. */
export const LEVEL_RANK: Readonly<Record<LogLevel, number>> = {
  trace: 0,
  debug: 1,
  info: 2,
  warning: 3,
  error: 4,
  fatal: 5,
};
