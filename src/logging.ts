/**
 * Logging without LogTape itself: the `this.log` of workers, the wire form of
 * log records, printf-style formatting and the dispatcher's line format.
 * Worker processes load only this; LogTape is loaded by the dispatcher (see
 * `logtape.ts`) and by a worker only when the program uses it.
 *
 * @module
 */

import type { LogLevel, LogRecord } from "@logtape/logtape";
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

/** Renders one value of a log message (`inspect` is the runtime's, see {@linkcode Runtime.inspect}). */
export type Inspect = (value: unknown) => string;

/**
 * printf-style formatting as `console.log` does it: `%s %d %i %f %j %o %O %c %%`,
 * with the arguments left over appended, separated by spaces.
 */
export function format(inspect: Inspect, args: readonly unknown[]): string {
  if (args.length === 0) return "";
  const first = args[0];
  let out = "";
  let next = 1;
  if (typeof first === "string") {
    let last = 0;
    for (let i = first.indexOf("%"); i !== -1 && i + 1 < first.length; i = first.indexOf("%", i)) {
      const c = first[i + 1];
      let piece: string | undefined;
      if (c === "%") piece = "%";
      else if (next < args.length) {
        const arg = args[next];
        if (c === "s") {
          piece = typeof arg === "string" ? arg : typeof arg === "object" && arg !== null ? inspect(arg) : String(arg);
        } else if (c === "d" || c === "i") {
          piece = typeof arg === "bigint" ? `${arg}n` : String(c === "d" ? Number(arg) : parseInt(String(arg), 10));
        } else if (c === "f") piece = String(parseFloat(String(arg)));
        else if (c === "j") piece = safeJson(arg);
        else if (c === "o" || c === "O") piece = inspect(arg);
        else if (c === "c") piece = "";
        if (piece !== undefined && c !== "%") next++;
      }
      if (piece === undefined) {
        i += 1;
        continue;
      }
      out += first.slice(last, i) + piece;
      last = i += 2;
    }
    out += first.slice(last);
  } else {
    out = inspect(first);
  }
  for (; next < args.length; next++) {
    const arg = args[next];
    out += " " + (typeof arg === "string" ? arg : inspect(arg));
  }
  return out;
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? "undefined";
  } catch {
    return "[Circular]";
  }
}

/**
 * Renders a LogTape message template: `{name}` (or `{a.b}`) takes a property,
 * `{{` and `}}` are literal braces. An unknown property renders as `undefined`.
 */
export function renderTemplate(template: string, properties: Record<string, unknown>, inspect: Inspect): string {
  let out = "";
  let i = 0;
  while (i < template.length) {
    const open = template.indexOf("{", i);
    const close = template.indexOf("}", i);
    if (close !== -1 && (open === -1 || close < open)) {
      out += template.slice(i, close + 1);
      i = template[close + 1] === "}" ? close + 2 : close + 1;
      continue;
    }
    if (open === -1) break;
    out += template.slice(i, open);
    if (template[open + 1] === "{") {
      out += "{";
      i = open + 2;
      continue;
    }
    const end = template.indexOf("}", open);
    if (end === -1) {
      out += template.slice(open);
      return out;
    }
    const key = template.slice(open + 1, end).trim();
    let value: unknown = key in properties ? properties[key] : undefined;
    if (value === undefined && key.includes(".")) {
      value = properties;
      for (const part of key.split(".")) value = (value as Record<string, unknown> | undefined)?.[part];
    }
    out += renderValue(value, inspect);
    i = end + 1;
  }
  return out + template.slice(i);
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

/** A wire record made now; the request context's properties (`requestId`, ...) come first. */
export function wireRecord(
  category: readonly string[],
  level: LogLevel,
  message: string,
  properties: Record<string, unknown>,
  context: Record<string, unknown> | undefined,
): WireRecord {
  const p = context === undefined ? properties : { ...context, ...properties };
  return { c: category, l: level, m: message, t: Date.now(), p: jsonSafe(p) as Record<string, unknown> };
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

function renderValue(value: unknown, inspect: Inspect): string {
  if (typeof value === "string") return value;
  if (value instanceof Error) return value.stack ?? `${value.name}: ${value.message}`;
  return inspect(value);
}

/** A copy of `value` that JSON can carry (errors, bigints, bytes and deep objects turned into plain values). */
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

/** Renders a LogTape record's message parts to text. */
export function renderMessage(parts: readonly unknown[], inspect: Inspect): string {
  let m = "";
  for (let i = 0; i < parts.length; i++) m += i % 2 === 0 ? String(parts[i]) : renderValue(parts[i], inspect);
  return m;
}

/** Turns a LogTape record into its wire form. */
export function toWire(record: LogRecord, inspect: Inspect): WireRecord {
  const m = renderMessage(record.message, inspect);
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
export function formatRecord(record: LogRecord, style: LogStyle, inspect: Inspect): string {
  const message = renderMessage(record.message, inspect);
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

export type { LogLevel, LogRecord };
