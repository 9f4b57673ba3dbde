/**
 * The `forkyard` command line: serve a module (a `Dispatcher`, a `Worker`
 * class or a web-standard fetch app) or a `forkyard.json` config file, or ask a
 * running server (`forkyard ctl`). Arguments are in `args.ts`, the config file
 * in `config_file.ts`, `ctl` in `ctl.ts`, `--watch` in `watch.ts`.
 *
 * @module
 */

import { existsSync, readFileSync } from "node:fs";
import { basename, dirname, relative, resolve } from "node:path";
import process from "node:process";
import { pathToFileURL } from "node:url";
import { adoptNextRun } from "../dispatcher/adoption.ts";
import { resolveAdmin } from "../dispatcher/admin_address.ts";
import { DISPATCHER_ENV } from "../dispatcher/primary_protocol.ts";
import { Dispatcher, type ListenInfo } from "../dispatcher/dispatcher.ts";
import { loadFailure } from "../dispatcher/startup_errors.ts";
import { loadRuntime } from "../detect.ts";
import { firstLine } from "../error_text.ts";
import { plural } from "../logging/plural.ts";
import { AppPool, WorkerPool } from "../pool.ts";
import { appOf } from "../app_kind.ts";
import { type CapturedServer, importCapturing } from "../listen_capture.ts";
import type { Runtime } from "../runtime.ts";
import { isWorkerProcess } from "../worker/entry.ts";
import { Worker, type WorkerClass } from "../worker/worker.ts";
import { applyEnvironment, type CliArgs, helpText, parseArgs, VERSION } from "./args.ts";
import { checkExports, dispatcherFromConfig } from "./config_file.ts";
import { runCtl } from "./ctl.ts";
import { declaredExports, exportList, foreignSubclass } from "./module_exports.ts";
import { defaultControlPath } from "./control_path.ts";
import { claimPidFile, registerControl } from "./pid_file.ts";
import { UsageError } from "./usage_error.ts";
import { resolveRunAs } from "../dispatcher/run_as.ts";
import { watchAndReload } from "./watch.ts";
import { withoutWarning } from "./quiet_warning.ts";

export { applyEnvironment, type CliArgs, dispatcherFromConfig, parseArgs, UsageError, VERSION };

/** A dispatcher the served module started itself while being imported, with the promise of its end. */
export interface RunningDispatcher {
  /** The dispatcher, with the command line's flags applied. */
  dispatcher: Dispatcher;
  /** Resolves when it has shut down. */
  finished: Promise<void>;
}

/**
 * Imports the module `forkyard serve` names. A module that runs its own dispatcher at import (`await new
 * MyDispatcher(...).run()` at top level) is adopted: the command line's flags apply to that dispatcher, which is
 * then the one running. A module that fails to load is a {@linkcode UsageError} of one line.
 */
async function importModule(
  href: string,
  modulePath: string,
  args: CliArgs,
): Promise<{ mod: Record<string, unknown>; captured: CapturedServer | null } | { running: RunningDispatcher }> {
  let adopted!: (running: RunningDispatcher) => void;
  const adoption = new Promise<{ running: RunningDispatcher }>((
    resolve,
  ) => (adopted = (running) => resolve({ running })));
  const release = adoptNextRun((dispatcher: Dispatcher, finished) => {
    applyArgs(dispatcher, args);
    adopted({ dispatcher, finished });
  });
  try {
    // A module that calls app.listen() itself: its server is kept, not bound (src/listen_capture.ts).
    const imported = withoutWarning(/^Failed to load the ES module/, () => importCapturing(href));
    const loaded = imported.then(({ value, captured }) => ({ mod: value, captured }));
    return await Promise.race([loaded, adoption]);
  } catch (error) {
    throw new UsageError(loadFailure(error, modulePath, (await loadRuntime()).loadHint(error, modulePath)));
  } finally {
    release();
  }
}

/**
 * The command line's flags, applied to a dispatcher that has not started (they win over the module and config); the
 * access log on unless `--no-access-log`; and the start-up banner.
 */
function applyArgs(dispatcher: Dispatcher, args: CliArgs): void {
  if (dispatcher.options.accessLog === false && args.dispatcher.accessLog === undefined) {
    Object.assign(dispatcher.options, { accessLog: "combined" });
  }
  if (dispatcher.options.control === false && args.dispatcher.control === undefined) {
    let control: string;
    try {
      control = defaultControlPath();
    } catch (error) {
      throw new UsageError(firstLine(error));
    }
    Object.assign(dispatcher.options, { control });
  }
  const { admin, adminToken, ...flags } = args.dispatcher;
  Object.assign(dispatcher.options, flags);
  const { user, group, dispatchers } = dispatcher.options;
  try {
    resolveRunAs(user, group);
  } catch (error) {
    throw new UsageError(firstLine(error));
  }
  if ((user !== null || group !== null) && dispatchers !== 1) {
    throw new UsageError("--user and --group need --dispatchers 1");
  }
  const current = dispatcher.options.admin;
  if (admin !== undefined || (adminToken !== undefined && current !== null)) {
    // The resolved option is an address object: the flag's text is resolved as the constructor would.
    const address = current === null
      ? ""
      : `${current.hostname.includes(":") ? `[${current.hostname}]` : current.hostname}:${current.port}`;
    try {
      const spec = { address: admin ?? address, hosts: current?.hosts ?? [] };
      Object.assign(dispatcher.options, { admin: resolveAdmin(spec, adminToken ?? current?.token ?? undefined) });
    } catch (error) {
      throw new UsageError(`--admin: ${firstLine(error).replace(/^Invalid Dispatcher option "admin": /, "")}`);
    }
  }
  const listened = dispatcher.onListen.bind(dispatcher);
  dispatcher.onListen = (info) => {
    listened(info);
    console.log(banner(dispatcher, info));
  };
  for (const pool of dispatcher.pools) {
    for (const [name, value] of Object.entries(args.pool)) {
      if (name === "workers") pool.scale(value as number);
      else Object.assign(pool.options, { [name]: value });
    }
  }
}

/** What the command line prints once the server listens: the URL, then one line per pool. */
function banner(dispatcher: Dispatcher, info: ListenInfo): string {
  const address = info.path !== undefined ? `unix:${info.path}` : `${info.protocol}://${info.hostname}:${info.port}`;
  const lines = [`forkyard ${VERSION}: ${address}`];
  for (const pool of dispatcher.pools) {
    const remote = pool.options.remote;
    const workers = remote
      ? `workers on the hosts of ${remote.subject} (NATS)`
      : plural(pool.options.workers, "worker");
    const serves = pool.mount !== null
      ? `app at ${pool.mount || "/"}`
      : pool.options.routes?.join(", ") ?? "everything no other pool serves";
    lines.push(`  pool ${pool.name}: ${workers}, ${serves}`);
  }
  return lines.join("\n");
}

/**
 * Loads what `forkyard serve <target>` names: the dispatcher to run, or, for a module that ran its own at import,
 * that one already running.
 */
export async function dispatcherFor(
  target: string,
  args: CliArgs,
): Promise<Dispatcher | RunningDispatcher> {
  let dispatcher: Dispatcher;
  if (target.endsWith(".json")) {
    const file = resolve(target);
    if (!existsSync(file)) throw new UsageError(`cannot find config file "${target}"`);
    let config: unknown;
    try {
      config = JSON.parse(readFileSync(file, "utf8"));
    } catch (error) {
      throw new UsageError(`${target}: invalid JSON (${(error as Error).message})`);
    }
    dispatcher = dispatcherFromConfig(config, dirname(file), target);
    await checkExports(dispatcher, target);
  } else {
    // "./app.ts" or "./app.ts:exportName"
    const colon = target.lastIndexOf(":");
    const hasExport = colon > 1 && !target.slice(colon).includes("/");
    const modulePath = hasExport ? target.slice(0, colon) : target;
    const exportName = hasExport ? target.slice(colon + 1) : undefined;
    const file = resolve(modulePath);
    if (!existsSync(file)) throw new UsageError(`cannot find module "${modulePath}"`);
    const url = pathToFileURL(file);
    const missing = (names: readonly string[]) =>
      new UsageError(
        `module "${modulePath}" has no ${exportName ? `export "${exportName}"` : "default export"} (${
          exportList(names)
        })`,
      );
    // A module that runs its own dispatcher when imported never finishes importing: its text says what it exports.
    const declared = exportName === undefined ? null : declaredExports(readFileSync(file, "utf8"));
    if (declared !== null && !declared.includes(exportName!)) throw missing(declared);
    const loaded = await importModule(url.href, modulePath, args);
    if ("running" in loaded) return loaded.running;
    const { mod, captured } = loaded;
    const found = exportName !== undefined
      ? mod[exportName]
      : mod.default ?? Object.values(mod).find((v) => v instanceof Dispatcher);
    const app = found instanceof Dispatcher ? null : appOf(found, captured?.server ?? null);
    if (found === undefined && app === null) throw missing(Object.keys(mod));
    if (foreignSubclass(found, "Worker", Worker) || foreignSubclass(found, "Dispatcher", Dispatcher)) {
      throw new UsageError(
        `module "${modulePath}" uses another copy of forkyard than this command line: on Node, a TypeScript or ` +
          `.js module outside a package with "type": "module" is loaded as CommonJS; add "type": "module" to its ` +
          `package.json (or name it .mts / .mjs)`,
      );
    }
    if (found instanceof Dispatcher) {
      dispatcher = found;
    } else if (typeof found === "function" && found.prototype instanceof Worker) {
      const name = exportName ?? (Object.entries(mod).find(([, v]) => v === found)?.[0] ?? "default");
      dispatcher = new Dispatcher({
        pools: [
          new WorkerPool((found as WorkerClass).name, {
            module: url,
            export: name,
            workers: args.pool.workers as number | undefined,
          }),
        ],
      });
    } else if (app !== null) {
      // A fetch app, or a request listener (Express, Koa, Fastify, a node:http Server): an app pool at /. One that
      // listens itself (app.listen(3000)) is served on the port it asked for, unless --port or PORT says.
      const asked = captured !== null && app === captured.server ? captured.port : null;
      const port = asked === null ? {} : { port: asked };
      dispatcher = new Dispatcher({
        ...port,
        pools: [
          new AppPool("/", url, { export: exportName ?? "default", workers: args.pool.workers as number | undefined }),
        ],
      });
    } else {
      throw new UsageError(
        `module "${modulePath}" exports neither a Dispatcher, a Worker class, an app with fetch(request) nor a ` +
          `request listener`,
      );
    }
  }
  applyArgs(dispatcher, args);
  return dispatcher;
}

/**
 * Where others find the serving process: its pid file (`--pid-file`), and its control socket registered under its
 * pid for `forkyard ctl --pid-file`. Returns what removes them.
 */
function announce(args: CliArgs, dispatcher: Dispatcher, runtime: Runtime): (() => void)[] {
  const release: (() => void)[] = [];
  if (args.pidFile !== undefined) {
    try {
      release.push(claimPidFile(resolve(args.pidFile), runtime.pid, (pid) => runtime.alive(pid)));
    } catch (error) {
      throw new UsageError(firstLine(error));
    }
  }
  const control = dispatcher.options.control;
  if (typeof control === "string") {
    try {
      release.push(
        registerControl(runtime.pid, resolve(control), (name) => runtime.env(name), (pid) => runtime.alive(pid)),
      );
    } catch {
      // No private control directory: ctl --pid-file cannot find this server; --control still does.
    }
  }
  return release;
}

/** How this process was started, for `--help`: its runtime and script, as one would type them here. */
function startedAs(): string {
  const [exe = "node", script = ""] = process.argv;
  const runtime = basename(exe).replace(/\.exe$/, "");
  const path = relative(process.cwd(), script) || script;
  if (runtime === "deno") return `deno run -A ${path}`;
  const loader = process.execArgv.includes("tsx") ? " --import tsx" : "";
  return `${runtime}${loader} ${path}`;
}

/** Runs the command line; resolves with the exit status. */
export async function main(argv: string[], runtime: Runtime): Promise<number> {
  try {
    const args = parseArgs(argv);
    if (args.command === "help") {
      console.log(helpText(startedAs()));
      return 0;
    }
    if (args.command === "version") {
      console.log(VERSION);
      return 0;
    }
    if (args.command === "ctl") return await runCtl(args, runtime);
    if (args.command === "worker") return await (await import("./worker_command.ts")).runWorkerCommand(args, runtime);
    const served = await dispatcherFor(args.target!, applyEnvironment(args, (name) => runtime.env(name)));
    const dispatcher = served instanceof Dispatcher ? served : served.dispatcher;
    // Workers and the dispatchers a primary runs re-run this command line: the process that serves watches alone.
    const serving = !isWorkerProcess(runtime) && runtime.env(DISPATCHER_ENV) === undefined;
    const release = serving ? announce(args, dispatcher, runtime) : [];
    const unwatch = args.watch !== undefined && serving
      ? watchAndReload(runtime, dirname(resolve(args.target!.replace(/:[^/:]*$/, ""))), dispatcher, args.watch)
      : undefined;
    try {
      if (served instanceof Dispatcher) await served.run();
      else await served.finished;
    } finally {
      unwatch?.();
      for (const undo of release) undo();
    }
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      runtime.writeStderr(`forkyard: ${error.message}\n`);
      return 2;
    }
    runtime.writeStderr(`forkyard: ${firstLine(error)}\n`);
    return 1;
  }
}
