/**
 * A worker process: its end of the channel, its console and logging routed to
 * the dispatcher, its INIT, and the loop that serves once its class is loaded.
 *
 * @module
 */

import { AsyncLocalStorage } from "node:async_hooks";
import type { LogLevel } from "@logtape/logtape";
import { loadRuntime } from "../detect.ts";
import { format, renderMessage } from "../logging/format.ts";
import { programUsesLogTape, workerLogger } from "../logging/worker_logger.ts";
import { FrameDecoder, FrameWriter } from "../protocol/codec.ts";
import { F, type InitHeader, type SpillHeader } from "../protocol/frames.ts";
import { toWire, type WireRecord, wireRecord } from "../protocol/log_record.ts";
import { SPILL_THRESHOLD, spillPrefix } from "../protocol/spill.ts";
import type { ParentChannel, Runtime } from "../runtime.ts";
import { type FetchApp, WorkerLoop } from "./loop.ts";
import type { WorkerClass } from "./worker.ts";
import type { ListenerApp } from "./listener_app.ts";
import { appKind, appOf } from "../app_kind.ts";

/**
 * Imports a `module` pool's worker class (or, for app pools, its app: a `fetch` app, or a request-listener app found in
 * the export), with an error naming the module and the export.
 */
export async function importWorkerClass(init: InitHeader): Promise<WorkerClass | FetchApp | ListenerApp> {
  if (!init.module || !init.export) throw new Error(`Pool "${init.pool}" has no worker module`);
  if (init.mount !== undefined) {
    // An app that calls listen() itself is served through the server it made (src/listen_capture.ts).
    const { importCapturing } = await import("../listen_capture.ts");
    const { value: mod, captured } = await importCapturing(init.module);
    const cls = appOf(mod[init.export], captured?.server ?? null);
    const what = `module "${init.module}" ${init.export === "default" ? "default export" : `export "${init.export}"`}`;
    const kind = appKind(cls);
    if (kind === "fetch") return cls as FetchApp;
    if (kind === "listener") return (await import("./listener_app.ts")).listenerApp(cls, what);
    throw new Error(
      `Cannot start app "${init.pool}": ${what} is neither an app with a fetch(request) method nor a request ` +
        `listener (an Express app, a node:http Server, a Koa or Fastify app)`,
    );
  }
  const cls = (await import(init.module) as Record<string, unknown>)[init.export];
  if (typeof cls !== "function") {
    throw new Error(
      `Cannot start pool "${init.pool}": worker module "${init.module}" does not export "${init.export}"`,
    );
  }
  return cls as WorkerClass;
}

/**
 * A worker process's end of the channel to its dispatcher: frames go out through `writer` (large bodies through
 * spill files), frames come in to `onFrame`, except the dispatcher's word that it read a spill file, which the writer
 * takes. Garbage on the channel exits the process with 70; the channel's end (the dispatcher is gone, so nobody can
 * read the answers) exits it with 0.
 */
export function openWorkerChannel(
  runtime: Runtime,
  onFrame: (type: number, header: unknown, body: Uint8Array) => void,
): { channel: ParentChannel; writer: FrameWriter } {
  const channel = runtime.parentChannel();
  const files = runtime.spill();
  const writer = new FrameWriter(
    (data) => channel.write(data),
    files === null ? undefined : { files, prefix: spillPrefix(runtime.pid), threshold: SPILL_THRESHOLD },
  );
  const decoder = new FrameDecoder(
    (type, header, body) => {
      if (type === F.RELEASE) writer.release((header as SpillHeader).p);
      else onFrame(type, header, body);
    },
    files,
    (path) => writer.send(F.RELEASED, { p: path }),
  );
  channel.start(
    (chunk) => {
      try {
        decoder.push(chunk);
      } catch {
        runtime.exit(70);
      }
    },
    () => runtime.exit(0),
  );
  return { channel, writer };
}

/**
 * Runs this process as a worker: waits for the dispatcher's init frame, loads
 * the worker class, and serves until told to stop or until stdin closes (the
 * dispatcher is gone). Never returns.
 */
export async function runWorkerProcess(
  resolveClass: (
    init: InitHeader,
  ) => WorkerClass | FetchApp | ListenerApp | Promise<WorkerClass | FetchApp | ListenerApp>,
): Promise<never> {
  const runtime = await loadRuntime();
  let loop: WorkerLoop | undefined;
  const early: [number, unknown, Uint8Array][] = [];
  let gotInit!: (init: InitHeader) => void;
  const initReceived = new Promise<InitHeader>((resolve) => (gotInit = resolve));
  const { channel, writer } = openWorkerChannel(runtime, (type, header, body) => {
    if (type === F.INIT) gotInit(header as InitHeader);
    else if (loop) loop.onFrame(type, header, body);
    else early.push([type, header, body.slice()]);
  });
  // Ctrl+C reaches the whole process group, systemd's stop sends SIGTERM to every process of the service, and SIGHUP
  // means "reload" to the dispatcher: a worker ignores all three and waits for its supervisor's word (a STOP frame
  // once its requests are done, or SIGKILL), so that a stop loses no request.
  runtime.onSignal("SIGINT", () => {});
  runtime.onSignal("SIGTERM", () => {});
  runtime.onSignal("SIGHUP", () => {});
  const init = await initReceived;
  const category = ["forkyard", "worker", init.pool];
  const inspect = (value: unknown) => runtime.inspect(value);
  const send = (record: WireRecord) => writer.send(F.LOG, record);
  // Log records made while handling a request carry its trace id (and LogTape's withContext properties).
  const context = new AsyncLocalStorage<Record<string, unknown>>();
  const current = () => context.getStore();
  // console.* and stdout are not filtered by logLevel: they are the program's plain output.
  const emit = (level: LogLevel, text: string, source: string) =>
    send(wireRecord([...category, source], level, text, {}, current()));
  captureConsole((level, args) => emit(level, format(inspect, args), "console"));
  channel.redirectStdout((text) => emit("info", text.replace(/\n$/, ""), "stdout"));
  const log = workerLogger(category, init.logLevel, send, current, inspect);
  const bridge = logTapeBridge(init.logLevel, send, context, inspect);
  try {
    const target = await resolveClass(init);
    await bridge();
    loop = new WorkerLoop(runtime, writer, init, log, context);
    const started = loop.start(target);
    for (const [type, header, body] of early) loop.onFrame(type, header, body);
    await started;
    await bridge();
  } catch (error) {
    log.fatal("Worker {id} of pool {pool} failed to start: {error}", { id: init.id, pool: init.pool, error });
    await writer.drain();
    runtime.exit(1);
  }
  return new Promise<never>(() => {});
}

/**
 * Forwards the program's own LogTape records, as the worker's are: LogTape is
 * loaded and configured only once the program has made a LogTape logger, which
 * is checked after the worker's module is loaded, after `setup()`, and then
 * every few seconds (records made before that are LogTape's to drop).
 */
function logTapeBridge(
  lowest: LogLevel,
  send: (record: WireRecord) => void,
  context: AsyncLocalStorage<Record<string, unknown>>,
  inspect: (value: unknown) => string,
): () => Promise<void> {
  let done = false;
  const check = async () => {
    if (done || !programUsesLogTape()) return;
    done = true;
    clearInterval(timer);
    const { configureWorkerLogging } = await import("../logging/logtape.ts");
    configureWorkerLogging((record) => send(toWire(record, renderMessage(record.message, inspect))), lowest, context);
  };
  const timer = setInterval(check, 2000);
  return check;
}

function captureConsole(emit: (level: LogLevel, args: unknown[]) => void) {
  const levels: [string, LogLevel][] = [
    ["log", "info"],
    ["info", "info"],
    ["debug", "debug"],
    ["trace", "debug"],
    ["warn", "warning"],
    ["error", "error"],
  ];
  const target = console as unknown as Record<string, (...args: unknown[]) => void>;
  for (const [name, level] of levels) target[name] = (...args: unknown[]) => emit(level, args);
}
