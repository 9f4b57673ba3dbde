/**
 * A log record as it crosses the channel from a worker (the header of a `LOG`
 * frame), and its conversions from and to LogTape's records.
 *
 * @module
 */

import type { LogLevel, LogRecord } from "@logtape/logtape";

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

/** Turns a LogTape record into its wire form, with its message rendered as `message`. */
export function toWire(record: LogRecord, message: string): WireRecord {
  return {
    c: record.category,
    l: record.level,
    m: message,
    t: record.timestamp,
    p: jsonSafe(record.properties) as Record<string, unknown>,
  };
}

/**
 * The category a record from a worker of pool `pool` is written under: always below `forkyard.worker.<pool>`, so that
 * a worker cannot write as the dispatcher (`forkyard.access`, `forkyard.dispatcher`) or as another pool's worker. A
 * worker's own records are there already; any other category is put below it.
 */
export function workerCategory(pool: string, category: readonly unknown[]): string[] {
  const own = ["forkyard", "worker", pool];
  const names = category.map(String);
  return own.every((name, i) => names[i] === name) ? names : [...own, ...names];
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
