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
import { LogOutput } from "./log_output.ts";
import { firstLine } from "../error_text.ts";
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

/** Files the dispatcher's lines go to instead of stderr (the `logFile` and `accessLogFile` options). */
export interface LogFiles {
  logFile: string | null;
  accessLogFile: string | null;
}

/**
 * A writer of lines to `path` (stderr for `null`): the lines of one event-loop turn written together, off the event
 * loop, dropped and counted when the reader is behind (see {@linkcode LogOutput}).
 */
function lineOutput(runtime: Runtime, path: string | null): { write: (text: string) => void; output: LogOutput } {
  const output = new LogOutput(
    () => runtime.openLog(path),
    (count) =>
      getLogger(["forkyard", "log"]).warning("Dropped {count} log lines while {where} was not taking them", {
        count,
        where: path ?? "stderr",
      }),
  );
  const lines = new LineBuffer((text, n) => output.write(text, n));
  return { write: (text) => lines.write(text), output };
}

/**
 * Configures LogTape for the dispatcher process unless the application has
 * configured it already: forkyard's own records from `FORKYARD_LOG_LEVEL` up (default `info`), every worker record
 * that reaches the dispatcher (the pools' `logLevel` filters those), to stderr or `files.logFile`, and the access log
 * to `files.accessLogFile` when given; files are reopened on SIGUSR1. Returns whether it did.
 */
export function configureDefaultLogging(
  runtime: Runtime,
  files: LogFiles = { logFile: null, accessLogFile: null },
): boolean {
  if (getConfig() !== null) return false;
  // A file that cannot be opened fails the start, naming its option, rather than losing every line unseen.
  const named = [[files.logFile, "logFile", "--log-file"], [files.accessLogFile, "accessLogFile", "--access-log-file"]];
  for (const [path, option, flag] of named) {
    if (path === null) continue;
    try {
      runtime.openLog(path).close();
    } catch (error) {
      throw new Error(`Cannot open ${path} (option "${option}" or ${flag}): ${firstLine(error)}`);
    }
  }
  const wanted = runtime.env("FORKYARD_LOG_LEVEL");
  const lowestLevel = isLogLevel(wanted) ? wanted : "info";
  const inspect: Inspect = (value) => runtime.inspect(value);
  const style = files.logFile !== null ? "plain" : pickLogStyle(runtime);
  const main = lineOutput(runtime, files.logFile);
  const sink: Sink = (record) => main.write(formatRecord(record, style, inspect));
  const access = files.accessLogFile === null ? null : lineOutput(runtime, files.accessLogFile);
  configureSync({
    sinks: { forkyard: sink },
    loggers: [
      { category: ["forkyard"], lowestLevel, sinks: ["forkyard"] },
      { category: ["forkyard", "worker"], lowestLevel: "trace", sinks: ["forkyard"], parentSinks: "override" },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["forkyard"] },
    ],
  });
  defaultRoute = {
    sink,
    line: (text) => main.write(`${text}\n`),
    access: access === null ? null : (text) => access.write(`${text}\n`),
    lowest: LEVEL_RANK[lowestLevel],
    config: getConfig(),
  };
  if (files.logFile !== null || access !== null) {
    runtime.onSignal("SIGUSR1", () => {
      main.output.reopen();
      access?.output.reopen();
    });
  }
  return true;
}

/**
 * forkyard's own configuration, while it is LogTape's: its sink, its writer of bare lines, and its lowest level for
 * `["forkyard", ...]`.
 */
let defaultRoute:
  | {
    sink: Sink;
    line: (text: string) => void;
    access: ((text: string) => void) | null;
    lowest: number;
    config: unknown;
  }
  | undefined;

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
    // `bare`: the message is its own line (a JSON access record), without the level and category before it; so is
    // every access record in a file of their own.
    const raw = typeof record.rawMessage === "string" ? record.rawMessage : null;
    if (raw !== null && route.access !== null && category[1] === "access") route.access(raw);
    else if (bare && raw !== null) route.line(raw);
    else route.sink({ ...record, category });
  };
}

export { getLogger };
