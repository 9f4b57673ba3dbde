/**
 * Turning log messages into text without LogTape itself: printf-style
 * formatting, `{placeholder}` templates, and the dispatcher's line format.
 *
 * @module
 */

import type { LogLevel, LogRecord } from "@logtape/logtape";
import type { Runtime } from "../runtime.ts";

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

function renderValue(value: unknown, inspect: Inspect): string {
  if (typeof value === "string") return value;
  if (value instanceof Error) return value.stack ?? `${value.name}: ${value.message}`;
  return inspect(value);
}

/** Renders a LogTape record's message parts to text. */
export function renderMessage(parts: readonly unknown[], inspect: Inspect): string {
  let m = "";
  for (let i = 0; i < parts.length; i++) m += i % 2 === 0 ? String(parts[i]) : renderValue(parts[i], inspect);
  return m;
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

/** How the dispatcher's default sink writes a line. */
export type LogStyle = "colour" | "syslog" | "plain";

/** Picks the style: syslog prefixes under systemd or when stderr is not a terminal, colour on one. */
export function pickLogStyle(runtime: Runtime): LogStyle {
  if (runtime.env("JOURNAL_STREAM")) return "syslog";
  return runtime.stderrIsTerminal() ? "colour" : "syslog";
}

/** Formats one record as a single line of text in the given style. */
export function formatRecord(record: LogRecord, style: LogStyle, inspect: Inspect): string {
  const message = renderMessage(record.message, inspect);
  const { requestId, host } = record.properties;
  // A remote pool's worker records name the worker host they come from.
  const category = record.category.join(".") + (typeof host === "string" ? `@${host}` : "") +
    (typeof requestId === "string" ? ` [${requestId}]` : "");
  if (style === "syslog") {
    if (!message.includes("\n")) return `${SYSLOG[record.level]}${category}: ${message}\n`;
    return message.split("\n").map((line) => `${SYSLOG[record.level]}${category}: ${line}`).join("\n") + "\n";
  }
  const time = new Date(record.timestamp).toISOString();
  const line = `${time} ${LABEL[record.level]} ${category}: ${message}`;
  if (style === "plain") return line + "\n";
  const [on, off] = COLOUR[record.level];
  return `${on}${line}${off}\n`;
}
