/**
 * Logging: the `this.log` of workers, the wire form of log records, and the
 * dispatcher's default LogTape sink (colour on a terminal, syslog priority
 * prefixes otherwise).
 *
 * @module
 */

import { AsyncLocalStorage } from "node:async_hooks";
import { format } from "node:util";
import {
  configureSync,
  getConfig,
  getLogger,
  type Logger,
  type LogLevel,
  type LogRecord,
  type Sink,
} from "@logtape/logtape";
import type { Runtime } from "./runtime.ts";

/** The log levels, lowest first. */
export const LOG_LEVELS: readonly LogLevel[] = ["trace", "debug", "info", "warning", "error", "fatal"];

/** Checks a `logLevel` option value. */
export function isLogLevel(value: unknown): value is LogLevel {
  return typeof value === "string" && (LOG_LEVELS as readonly string[]).includes(value);
}

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

/** Wraps a LogTape logger with the seed's two message styles. */
export function workerLogger(logger: Logger): WorkerLogger {
  const at = (level: LogLevel) => (message: string, ...args: unknown[]) => {
    if (!logger.isEnabledFor(level)) return;
    if (args.length === 1 && isPlainObject(args[0]) && !message.includes("%")) {
      logger[level === "warning" ? "warn" : level](message, args[0]);
      return;
    }
    const text = args.length === 0 ? message : format(message, ...args);
    logger.emit({ level, message: [text], rawMessage: text, timestamp: Date.now(), properties: {} });
  };
  return {
    debug: at("debug"),
    info: at("info"),
    warning: at("warning"),
    error: at("error"),
    fatal: at("fatal"),
  };
}

/** A log record as it crosses the channel from a worker. */
export interface WireRecord {
  /** Category. */
  c: readonly string[];
  /** Level. */
  l: LogLevel;
  /** Rendered message. */
  m: string;
  /** Timestamp, ms since the epoch. */
  t: number;
  /** JSON-safe properties. */
  p: Record<string, unknown>;
}

function renderValue(value: unknown): string {
  if (typeof value === "string") return value;
  if (value instanceof Error) return value.stack ?? `${value.name}: ${value.message}`;
  return format("%o", value);
}

function jsonSafe(value: unknown, depth = 0): unknown {
  if (value === null || typeof value === "number" || typeof value === "boolean" || typeof value === "string") {
    return value;
  }
  if (value instanceof Error) return { name: value.name, message: value.message, stack: value.stack };
  if (typeof value === "bigint") return value.toString();
  if (value === undefined || typeof value === "function" || typeof value === "symbol") return String(value);
  if (depth > 6) return "[too deep]";
  if (Array.isArray(value)) return value.map((v) => jsonSafe(v, depth + 1));
  if (value instanceof Uint8Array) return `[${value.length} bytes]`;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) out[k] = jsonSafe(v, depth + 1);
  return out;
}

/** Turns a LogTape record into its wire form. */
export function toWire(record: LogRecord): WireRecord {
  let m = "";
  const parts = record.message;
  for (let i = 0; i < parts.length; i++) m += i % 2 === 0 ? String(parts[i]) : renderValue(parts[i]);
  return {
    c: record.category,
    l: record.level,
    m,
    t: record.timestamp,
    p: jsonSafe(record.properties) as Record<string, unknown>,
  };
}

/** Turns a wire record back into a LogTape record, adding `extra` properties. */
export function fromWire(wire: WireRecord, extra: Record<string, unknown>): LogRecord {
  return {
    category: wire.c,
    level: wire.l,
    message: [wire.m],
    rawMessage: wire.m,
    timestamp: wire.t,
    properties: { ...wire.p, ...extra },
  };
}

/** Routes every LogTape record of this (worker) process to `sink`, from `lowestLevel` up. */
export function configureWorkerLogging(sink: Sink, lowestLevel: LogLevel): void {
  configureSync({
    reset: true,
    contextLocalStorage: new AsyncLocalStorage(),
    sinks: { channel: sink },
    loggers: [
      { category: [], lowestLevel, sinks: ["channel"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["channel"], parentSinks: "override" },
    ],
  });
}

const SYSLOG: Record<LogLevel, string> = {
  trace: "<7>",
  debug: "<7>",
  info: "<6>",
  warning: "<4>",
  error: "<3>",
  fatal: "<2>",
};
const LABEL: Record<LogLevel, string> = {
  trace: "TRC",
  debug: "DBG",
  info: "INF",
  warning: "WRN",
  error: "ERR",
  fatal: "FTL",
};
const COLOUR: Record<LogLevel, [string, string]> = {
  trace: ["\x1b[2m", "\x1b[0m"],
  debug: ["\x1b[2m", "\x1b[0m"],
  info: ["", ""],
  warning: ["\x1b[33m", "\x1b[0m"],
  error: ["\x1b[31m", "\x1b[0m"],
  fatal: ["\x1b[1;31m", "\x1b[0m"],
};

/** How {@linkcode defaultSink} writes a line. */
export type LogStyle = "colour" | "syslog" | "plain";

/** Picks the style: syslog prefixes under systemd or when stderr is not a terminal, colour on one. */
export function pickLogStyle(runtime: Runtime): LogStyle {
  if (runtime.env("JOURNAL_STREAM")) return "syslog";
  return runtime.stderrIsTerminal() ? "colour" : "syslog";
}

/** Formats one record as a single line of text in the given style. */
export function formatRecord(record: LogRecord, style: LogStyle): string {
  let message = "";
  const parts = record.message;
  for (let i = 0; i < parts.length; i++) message += i % 2 === 0 ? String(parts[i]) : renderValue(parts[i]);
  const requestId = record.properties.requestId;
  const category = record.category.join(".") + (typeof requestId === "string" ? ` [${requestId}]` : "");
  if (style === "syslog") {
    return message.split("\n").map((line) => `${SYSLOG[record.level]}${category}: ${line}`).join("\n") + "\n";
  }
  const time = new Date(record.timestamp).toISOString();
  const line = `${time} ${LABEL[record.level]} ${category}: ${message}`;
  if (style === "plain") return line + "\n";
  const [on, off] = COLOUR[record.level];
  return `${on}${line}${off}\n`;
}

/** The dispatcher's default sink: one line per record on stderr. */
export function defaultSink(runtime: Runtime): Sink {
  const style = pickLogStyle(runtime);
  return (record) => runtime.writeStderr(formatRecord(record, style));
}

/**
 * Configures LogTape for the dispatcher process unless the application has
 * configured it already. Returns whether it did.
 */
export function configureDefaultLogging(runtime: Runtime): boolean {
  if (getConfig() !== null) return false;
  configureSync({
    sinks: { forkyard: defaultSink(runtime) },
    loggers: [
      { category: ["forkyard"], lowestLevel: "info", sinks: ["forkyard"] },
      { category: ["forkyard", "worker"], lowestLevel: "trace", sinks: ["forkyard"], parentSinks: "override" },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["forkyard"] },
    ],
  });
  return true;
}

export { getLogger };
export type { LogLevel, LogRecord };
