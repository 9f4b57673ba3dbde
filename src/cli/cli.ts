/**
 * The `forkyard` command line: serve a module (a `Dispatcher`, a `Worker`
 * class or a web-standard fetch app) or a `forkyard.json` config file.
 *
 * @module
 */

import { existsSync, readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { adoptNextRun } from "../dispatcher/adoption.ts";
import { Dispatcher, type DispatcherOptions, type ListenInfo } from "../dispatcher/dispatcher.ts";
import { loadFailure } from "../dispatcher/startup_errors.ts";
import { firstLine } from "../error_text.ts";
import { AppPool, type PoolStatus, WorkerPool, type WorkerPoolOptions } from "../pool.ts";
import { loadRuntime } from "../detect.ts";
import { DISPATCHER_SCHEMA, parseAdmin } from "../dispatcher/options.ts";
import { type ControlCommand, sendControl } from "../dispatcher/control.ts";
import { configKeys, type OptionSpec, plainConfigKeys, resolveOption } from "../options.ts";
import { POOL_SCHEMA } from "../pool_options.ts";
import type { Runtime } from "../runtime.ts";
import { Worker, type WorkerClass } from "../worker/worker.ts";

/** The version printed by `forkyard --version`. */
export const VERSION = "0.1.0";

/** The flags of the options that have one, from the Dispatcher's and the pools' schemas. */
const FLAGS: readonly { flags: readonly string[]; owner: "dispatcher" | "pool"; name: string; spec: OptionSpec }[] = [
  ...Object.entries(DISPATCHER_SCHEMA).map(([name, spec]) => ({ owner: "dispatcher" as const, name, spec })),
  ...Object.entries(POOL_SCHEMA).map(([name, spec]) => ({ owner: "pool" as const, name, spec })),
].filter((f) => f.spec.flags !== undefined).map((f) => ({ ...f, flags: f.spec.flags! }));

function helpText(): string {
  const options = FLAGS.map(({ flags, owner, spec }) => {
    const value = spec.type === "integer" ? " <n>" : spec.type === "string" ? " <value>" : "";
    const usage = `  ${flags[0]}${value}`.padEnd(22);
    const scope = owner === "pool" ? "; for every pool" : "";
    return `${usage}${spec.doc}${scope} (default ${JSON.stringify(spec.default)}, or the config's)`;
  });
  return `forkyard ${VERSION}: run HTTP handlers across a supervised pool of worker processes

Usage:
  forkyard serve <module>[:export] [options]   serve a module: a Dispatcher, a Worker class,
                                               or an app with fetch(request) (e.g. a Hono app)
  forkyard serve <config.json> [options]       serve pools and apps described in a config file
  forkyard ctl [--control PATH] [--json] status | reload [POOL] | scale POOL N | stop
                                               ask a running server (its control socket, forkyard.ctl)
  forkyard --help | --version

Options:
${options.join("\n")}
  --watch             serve: reload the workers when files under the module's directory change

Runs as: deno run -A jsr:@forkyard/forkyard/cli | bunx forkyard | npx forkyard
Config file and options reference: docs/options.md.`;
}

/** A usage or configuration error: printed as one line, exit status 2. */
export class UsageError extends Error {
  /**
   * Creates the error.
   *
   * @param message What is wrong, naming the key, option or path.
   */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Parsed command line. */
export interface CliArgs {
  /** `serve`, `ctl`, `help` or `version`. */
  command: "serve" | "ctl" | "help" | "version";
  /** For `serve`: `--watch`, reload the workers when files under the served module's directory change. */
  watch?: boolean;
  /** For `ctl`: what to ask, and `--json`. */
  ctl?: { command: ControlCommand; json: boolean };
  /** What to serve. */
  target?: string;
  /** Dispatcher options given as flags (`--port`, `--host`). */
  dispatcher: Record<string, unknown>;
  /** Pool options given as flags, for every pool (`--workers`). */
  pool: Record<string, unknown>;
}

/** A flag's value as its option takes it; throws {@linkcode UsageError} naming the flag. */
function flagValue(flag: string, name: string, spec: OptionSpec, value: string | undefined): unknown {
  if (spec.type === "integer") {
    const parsed = value !== undefined && /^\d+$/.test(value) ? Number(value) : NaN;
    try {
      return resolveOption("", name, spec, Number.isNaN(parsed) ? value ?? "" : parsed);
    } catch {
      const min = typeof spec.min === "number" ? spec.min : 0;
      const range = typeof spec.max === "number" ? `from ${min} to ${spec.max}` : `>= ${min}`;
      throw new UsageError(`${flag} needs an integer ${range}, got ${JSON.stringify(value ?? "")}`);
    }
  }
  if (spec.type === "boolean" && value !== undefined && typeof value === "string") {
    if (value !== "true" && value !== "false") throw new UsageError(`${flag} takes true or false, got "${value}"`);
    return value === "true";
  }
  if (value === undefined || value === "") throw new UsageError(`${flag} needs a value`);
  if (spec.choices !== undefined && !spec.choices.includes(value)) {
    throw new UsageError(`${flag} takes ${spec.choices.join(", ")}, got "${value}"`);
  }
  return value;
}

/** Parses `forkyard` arguments; throws {@linkcode UsageError}. */
export function parseArgs(argv: string[]): CliArgs {
  const out: CliArgs = { command: "help", dispatcher: {}, pool: {} };
  const rest: string[] = [];
  let json = false;
  let watch = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const eq = arg.indexOf("=");
    const [flag, inline] = arg.startsWith("--") && eq > 0 ? [arg.slice(0, eq), arg.slice(eq + 1)] : [arg, undefined];
    if (flag === "-h" || flag === "--help") return { ...out, command: "help" };
    if (flag === "--json") {
      json = true;
      continue;
    }
    if (flag === "--watch") {
      watch = true;
      continue;
    }
    if (flag === "-v" || flag === "--version") return { ...out, command: "version" };
    const negated = flag.startsWith("--no-") ? FLAGS.find((f) => f.flags.includes(`--${flag.slice(5)}`)) : undefined;
    const option = negated ?? FLAGS.find((f) => f.flags.includes(flag));
    if (
      option !== undefined &&
      (negated === undefined || option.spec.flagDefault !== undefined || option.spec.negatable === true)
    ) {
      let value: unknown;
      if (negated !== undefined) value = false;
      else if (option.spec.flagDefault !== undefined && inline === undefined) value = option.spec.flagDefault;
      else value = flagValue(flag, option.name, option.spec, inline ?? argv[++i]);
      if (option.spec.flagDefault !== undefined && inline !== undefined && option.spec.type !== "boolean") {
        const allowed = option.name === "accessLog" ? ["combined", "json"] : [];
        if (!allowed.includes(inline)) throw new UsageError(`${flag} takes ${allowed.join(" or ")}, got "${inline}"`);
      }
      if (option.name === "admin") {
        try {
          value = parseAdmin(value);
        } catch {
          throw new UsageError(`${flag} needs [HOST:]PORT, got ${JSON.stringify(value)}`);
        }
      }
      out[option.owner][option.name] = value;
    } else if (arg.startsWith("-")) {
      throw new UsageError(`unknown option ${arg} (see forkyard --help)`);
    } else {
      rest.push(arg);
    }
  }
  if (rest.length === 0) return out;
  if (rest[0] === "ctl") return { ...out, command: "ctl", ctl: { command: ctlCommand(rest.slice(1)), json } };
  if (json) throw new UsageError("--json goes with ctl");
  if (watch && rest[0] !== "serve") throw new UsageError("--watch goes with serve");
  if (rest[0] !== "serve") throw new UsageError(`unknown command "${rest[0]}" (see forkyard --help)`);
  if (rest.length !== 2) throw new UsageError(`serve takes one module or config file, got ${rest.length - 1}`);
  return { ...out, command: "serve", target: rest[1], ...(watch ? { watch } : {}) };
}

/** How long the watcher waits after a change for more before it reloads: an editor or `git checkout` writes many. */
const WATCH_DEBOUNCE_MS = 200;

/** Whether a changed path is one `--watch` ignores: under `node_modules` or a dot folder, or a dot file. */
function ignoredChange(path: string, root: string): boolean {
  const relative = path.startsWith(root) ? path.slice(root.length) : path;
  return relative.split(/[\\/]/).some((part) => part === "node_modules" || part.startsWith("."));
}

/**
 * `--watch`: a rolling reload of the workers once files under `root` stop changing; returns what stops watching.
 * The dispatcher's own code (its `@sync` routes, `doCheck`, options) changes only with a restart.
 */
function watchAndReload(runtime: Runtime, root: string, dispatcher: Dispatcher, control: unknown): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let changed = "";
  const socket = typeof control === "string" ? resolve(control) : "";
  return runtime.watchFiles(root, (path) => {
    if (ignoredChange(path, root) || resolve(path) === socket) return;
    changed = path;
    clearTimeout(timer);
    timer = setTimeout(() => {
      runtime.writeStderr(`forkyard: ${changed.slice(root.length + 1) || changed} changed; reloading the workers\n`);
      void dispatcher.reload();
    }, WATCH_DEBOUNCE_MS);
  });
}

/** `status`, `reload [POOL]`, `scale POOL N` or `stop` as a control command; throws {@linkcode UsageError}. */
function ctlCommand(words: string[]): ControlCommand {
  const [action, ...args] = words;
  if (action === "status" && args.length === 0) return { cmd: "status" };
  if (action === "stop" && args.length === 0) return { cmd: "stop" };
  if (action === "reload" && args.length <= 1) {
    return args.length === 0 ? { cmd: "reload" } : { cmd: "reload", pool: args[0] };
  }
  if (action === "scale" && args.length === 2) {
    const workers = flagValue("scale", "workers", POOL_SCHEMA.workers, args[1]) as number;
    return { cmd: "scale", pool: args[0], workers };
  }
  throw new UsageError(
    `ctl takes status, reload [POOL], scale POOL N or stop, got ${JSON.stringify(words.join(" "))}`,
  );
}

/** The default control socket of the command line: `forkyard.ctl` in the working directory. */
export const DEFAULT_CONTROL = "forkyard.ctl";

/** Seconds as `1h02m`, `3m05s` or `12s`. */
function duration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s >= 3600) return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, "0")}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${s}s`;
}

/** `forkyard ctl status` as a table: one row per worker. */
export function statusTable(status: { pid: number; port: number; pending: number; pools: PoolStatus[] }): string {
  const rows = [["POOL", "WORKER", "PID", "STATE", "UPTIME", "RSS", "SERVED", "IN FLIGHT", "RESTARTS"]];
  for (const pool of status.pools) {
    for (const w of pool.workers) {
      rows.push([
        pool.name,
        String(w.id),
        String(w.pid ?? "-"),
        w.state,
        duration(w.uptime),
        `${(w.rss / 1048576).toFixed(1)} MiB`,
        String(w.served),
        String(w.inflight),
        String(w.restarts),
      ]);
    }
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const lines = rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i])).join("  ").trimEnd());
  const pools = status.pools.map((p) => `${p.name}: ${p.queueSize} queued${p.degraded ? ", DEGRADED" : ""}`);
  return [`dispatcher pid ${status.pid}, port ${status.port}, ${status.pending} pending; ${pools.join("; ")}`, ...lines]
    .join("\n");
}

/**
 * `PORT` and `HOST` from the environment, for the dispatcher options no flag set (as Heroku-style platforms and
 * containers hand them over); throws {@linkcode UsageError} for a bad value.
 */
export function applyEnvironment(args: CliArgs, env: (name: string) => string | undefined): CliArgs {
  const dispatcher = { ...args.dispatcher };
  const port = env("PORT");
  if (port !== undefined && port !== "" && dispatcher.port === undefined) {
    dispatcher.port = flagValue("PORT", "port", DISPATCHER_SCHEMA.port, port);
  }
  const host = env("HOST");
  if (host !== undefined && host !== "" && dispatcher.hostname === undefined) dispatcher.hostname = host;
  return { ...args, dispatcher };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The config file's top-level keys: the Dispatcher's options, and `apps` beside `pools`. */
const CONFIG_KEYS = [...configKeys(DISPATCHER_SCHEMA), "apps"];
/** The keys passed to the Dispatcher as they are (it checks their values). */
const PLAIN_KEYS = plainConfigKeys(DISPATCHER_SCHEMA);

/**
 * Builds a dispatcher from a `forkyard.json` object. Paths are relative to
 * `baseDir`. Throws {@linkcode UsageError} naming the bad key.
 */
export function dispatcherFromConfig(config: unknown, baseDir: string, source = "config"): Dispatcher {
  const at = (key: string, message: string) => new UsageError(`${source}: ${key}: ${message}`);
  if (!isObject(config)) throw new UsageError(`${source}: expected a JSON object`);
  for (const key of Object.keys(config)) {
    if (!CONFIG_KEYS.includes(key)) throw at(key, `unknown key (expected one of ${CONFIG_KEYS.join(", ")})`);
  }
  const path = (key: string, value: unknown): string => {
    if (typeof value !== "string" || value === "") throw at(key, "expected a path");
    const full = isAbsolute(value) ? value : resolve(baseDir, value);
    if (!existsSync(full)) throw at(key, `cannot find "${value}"`);
    return full;
  };
  const pools: WorkerPool[] = [];
  const poolList = (key: "pools" | "apps") => {
    const list = config[key] ?? [];
    if (!Array.isArray(list)) throw at(key, "expected an array");
    return list.map((item, i) => {
      if (!isObject(item)) throw at(`${key}[${i}]`, "expected an object");
      return [`${key}[${i}]`, item] as const;
    });
  };
  for (const [key, item] of poolList("pools")) {
    const { module, export: name, ...options } = item;
    const file = path(`${key}.module`, module);
    if (typeof name !== "string" || name === "") {
      throw at(`${key}.export`, "expected the name of the Worker class export");
    }
    try {
      pools.push(new WorkerPool(name, { ...options as WorkerPoolOptions, module: pathToFileURL(file) }));
    } catch (error) {
      throw at(key, (error as Error).message);
    }
  }
  for (const [key, item] of poolList("apps")) {
    const { mount, module, ...options } = item;
    const file = path(`${key}.module`, module);
    try {
      pools.push(new AppPool(mount as string, pathToFileURL(file), options as WorkerPoolOptions));
    } catch (error) {
      throw at(key, (error as Error).message);
    }
  }
  const options: DispatcherOptions = { pools };
  for (const key of PLAIN_KEYS) {
    if (config[key] !== undefined) (options as Record<string, unknown>)[key] = config[key];
  }
  if (config.staticRoutes !== undefined) {
    if (!isObject(config.staticRoutes)) throw at("staticRoutes", 'expected an object of "/prefix/": "directory"');
    options.staticRoutes = Object.fromEntries(
      Object.entries(config.staticRoutes).map(([prefix, dir]) => [prefix, path(`staticRoutes["${prefix}"]`, dir)]),
    );
  }
  if (config.tls !== undefined) {
    const tls = config.tls;
    if (!isObject(tls)) throw at("tls", "expected { cert, key } file paths");
    for (const k of Object.keys(tls)) if (k !== "cert" && k !== "key") throw at(`tls.${k}`, "unknown key");
    options.tls = {
      cert: readFileSync(path("tls.cert", tls.cert), "utf8"),
      key: readFileSync(path("tls.key", tls.key), "utf8"),
    };
  }
  try {
    return new Dispatcher(options);
  } catch (error) {
    throw new UsageError(`${source}: ${(error as Error).message}`);
  }
}

/** Imports every pool's module once so that a missing export stops the start with a clear error. */
async function checkExports(dispatcher: Dispatcher, source: string): Promise<void> {
  for (const [i, pool] of dispatcher.pools.entries()) {
    const { module, export: name } = pool.options;
    if (module === null) continue;
    const mod = await import(module) as Record<string, unknown>;
    const value = mod[name];
    const key = pool.mount !== null ? `apps (mount "${pool.mount || "/"}")` : `pools[${i}]`;
    if (pool.mount !== null) {
      if (
        value === null || (typeof value !== "object" && typeof value !== "function") ||
        typeof (value as { fetch?: unknown }).fetch !== "function"
      ) {
        throw new UsageError(`${source}: ${key}: "${module}" has no export "${name}" with a fetch(request) method`);
      }
    } else if (typeof value !== "function" || !(value.prototype instanceof Worker)) {
      throw new UsageError(`${source}: ${key}.export: "${module}" has no Worker class export "${name}"`);
    }
  }
}

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
): Promise<{ mod: Record<string, unknown> } | { running: RunningDispatcher }> {
  let adopted!: (running: RunningDispatcher) => void;
  const adoption = new Promise<{ running: RunningDispatcher }>((
    resolve,
  ) => (adopted = (running) => resolve({ running })));
  const release = adoptNextRun((dispatcher: Dispatcher, finished) => {
    applyArgs(dispatcher, args);
    adopted({ dispatcher, finished });
  });
  try {
    return await Promise.race([import(href).then((mod) => ({ mod: mod as Record<string, unknown> })), adoption]);
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
    Object.assign(dispatcher.options, { control: DEFAULT_CONTROL });
  }
  Object.assign(dispatcher.options, args.dispatcher);
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
  const lines = [`forkyard ${VERSION}: ${info.protocol}://${info.hostname}:${info.port}`];
  for (const pool of dispatcher.pools) {
    const n = pool.options.workers;
    const workers = `${n} worker${n === 1 ? "" : "s"}`;
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
    const loaded = await importModule(url.href, modulePath, args);
    if ("running" in loaded) return loaded.running;
    const mod = loaded.mod;
    const found = exportName !== undefined
      ? mod[exportName]
      : mod.default ?? Object.values(mod).find((v) => v instanceof Dispatcher);
    if (found === undefined) {
      throw new UsageError(`module "${modulePath}" has no ${exportName ? `export "${exportName}"` : "default export"}`);
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
    } else if (
      (typeof found === "object" || typeof found === "function") &&
      typeof (found as { fetch?: unknown }).fetch === "function"
    ) {
      dispatcher = new Dispatcher({
        pools: [
          new AppPool("/", url, { export: exportName ?? "default", workers: args.pool.workers as number | undefined }),
        ],
      });
    } else {
      throw new UsageError(
        `module "${modulePath}" exports neither a Dispatcher, a Worker class nor an app with fetch(request)`,
      );
    }
  }
  applyArgs(dispatcher, args);
  return dispatcher;
}

/** Runs the command line; resolves with the exit status. */
export async function main(argv: string[], runtime: Runtime): Promise<number> {
  try {
    const args = parseArgs(argv);
    if (args.command === "help") {
      console.log(helpText());
      return 0;
    }
    if (args.command === "version") {
      console.log(VERSION);
      return 0;
    }
    if (args.command === "ctl") {
      const control = args.dispatcher.control;
      const path = typeof control === "string" ? control : DEFAULT_CONTROL;
      let reply: unknown;
      try {
        reply = await sendControl(path, args.ctl!.command);
      } catch (error) {
        runtime.writeStderr(`forkyard: ${firstLine(error)}\n`);
        return 1;
      }
      if (args.ctl!.json) console.log(JSON.stringify(reply, null, 2));
      else if (args.ctl!.command.cmd === "status") console.log(statusTable(reply as Parameters<typeof statusTable>[0]));
      else console.log(JSON.stringify(reply));
      return 0;
    }
    const served = await dispatcherFor(args.target!, applyEnvironment(args, (name) => runtime.env(name)));
    const dispatcher = served instanceof Dispatcher ? served : served.dispatcher;
    const unwatch = args.watch
      ? watchAndReload(
        runtime,
        dirname(resolve(args.target!.replace(/:[^/:]*$/, ""))),
        dispatcher,
        dispatcher.options.control,
      )
      : undefined;
    try {
      if (served instanceof Dispatcher) await served.run();
      else await served.finished;
    } finally {
      unwatch?.();
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
