/**
 * Everything that needs LogTape itself, loaded on demand: by the dispatcher
 * when it starts, and by a worker only when the program uses LogTape (so that
 * an idle worker does not carry it).
 *
 * @module
 */

import { configureSync, getConfig, getLogger, type LogLevel, type Sink } from "@logtape/logtape";
import { formatRecord, type Inspect, pickLogStyle } from "./format.ts";
import { isLogLevel } from "./levels.ts";
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

/** The dispatcher's default sink: one line per record on stderr. */
export function defaultSink(runtime: Runtime, inspect: Inspect): Sink {
  const style = pickLogStyle(runtime);
  return (record) => runtime.writeStderr(formatRecord(record, style, inspect));
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
  configureSync({
    sinks: { forkyard: defaultSink(runtime, (value) => runtime.inspect(value)) },
    loggers: [
      { category: ["forkyard"], lowestLevel, sinks: ["forkyard"] },
      { category: ["forkyard", "worker"], lowestLevel: "trace", sinks: ["forkyard"], parentSinks: "override" },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["forkyard"] },
    ],
  });
  return true;
}

export { getLogger };
