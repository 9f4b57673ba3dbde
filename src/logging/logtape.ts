/**
 * Everything that needs LogTape itself, loaded on demand: by the dispatcher
 * when it starts, and by a worker only when the program uses LogTape (so that
 * an idle worker does not carry it).
 *
 * @module
 */

import { configureSync, getConfig, getLogger, type LogLevel, type LogRecord, type Sink } from "@logtape/logtape";
import { formatRecord, type Inspect, pickLogStyle } from "./format.ts";
import { LineBuffer } from "./line_buffer.ts";
import { isLogLevel, LEVEL_RANK } from "./levels.ts";
import type { ContextStorage } from "./worker_logger.ts";
import type { Runtime } from "../runtime.ts";

/** Routes every LogTape record of this (worker) process to `sink`, from `lowestLevel` up. */
export function configureWorkerLogging(sink: Sink, lowestLevel: LogLevel, context: ContextStorage): void {
  configureSync({
    reset: true,
    contextLocalStorage: context,
    sinks: { channel: sink },
    loggers: [
      { category: [], lowestLevel, sinks: ["channel"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["channel"], parentSinks: "override" },
    ],
  });
}

/**
 * The dispatcher's default sink: one line per record on stderr, the lines of one event-loop turn written together
 * (one write per turn, not one per record, which a busy access log would otherwise pay on every request).
 */
export function defaultSink(runtime: Runtime, inspect: Inspect): { sink: Sink; line: (text: string) => void } {
  const style = pickLogStyle(runtime);
  const lines = new LineBuffer((text) => runtime.writeStderr(text));
  return {
    sink: (record) => lines.write(formatRecord(record, style, inspect)),
    line: (text) => lines.write(`${text}\n`),
  };
}

/**
 * Configures LogTape for the dispatcher process unless the application has
 * configured it already: forkyard's own records from `FORKYARD_LOG_LEVEL` up (default `info`), every worker record
 * that reaches the dispatcher (the pools' `logLevel` filters those). Returns whether it did.
 */
export function configureDefaultLogging(runtime: Runtime): boolean {
  if (getConfig() !== null) return false;
  const wanted = runtime.env("FORKYARD_LOG_LEVEL");
  const lowestLevel = isLogLevel(wanted) ? wanted : "info";
  const { sink, line } = defaultSink(runtime, (value) => runtime.inspect(value));
  configureSync({
    sinks: { forkyard: sink },
    loggers: [
      { category: ["forkyard"], lowestLevel, sinks: ["forkyard"] },
      { category: ["forkyard", "worker"], lowestLevel: "trace", sinks: ["forkyard"], parentSinks: "override" },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["forkyard"] },
    ],
  });
  defaultRoute = { sink, line, lowest: LEVEL_RANK[lowestLevel], config: getConfig() };
  return true;
}

/**
 * forkyard's own configuration, while it is LogTape's: its sink, its writer of bare lines, and its lowest level for
 * `["forkyard", ...]`.
 */
let defaultRoute: { sink: Sink; line: (text: string) => void; lowest: number; config: unknown } | undefined;

/**
 * A writer of records under `category` (below `["forkyard"]`): straight into forkyard's default sink while LogTape
 * runs forkyard's default configuration, where going through LogTape's dispatch would reach the same sink at several
 * times the cost (the access log writes a record per request); through LogTape once the application configured it.
 */
export function recordWriter(
  category: readonly string[],
  bare = false,
): (record: Omit<LogRecord, "category">) => void {
  const logger = getLogger(category);
  return (record) => {
    const route = defaultRoute;
    if (route === undefined || getConfig() !== route.config) {
      logger.emit(record);
      return;
    }
    if (LEVEL_RANK[record.level] < route.lowest) return;
    // `bare`: the message is its own line (a JSON access record), without the level and category before it.
    if (bare && typeof record.rawMessage === "string") route.line(record.rawMessage);
    else route.sink({ ...record, category });
  };
}

export { getLogger };
