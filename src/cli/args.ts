/**
 * The command line's arguments: commands, and the flags, which come from the options schemas.
 *
 * @module
 */

import type { ControlCommand } from "../control_socket.ts";
import { DISPATCHER_SCHEMA } from "../dispatcher/options.ts";
import { type OptionSpec, resolveOption } from "../options.ts";
import { POOL_SCHEMA } from "../pool_options.ts";
import { UsageError } from "./usage_error.ts";
import { WATCHED_EXTENSIONS } from "./watch.ts";

/** The version printed by `forkyard --version`. */
export const VERSION = "0.1.0";

/** The flags of the options that have one, from the Dispatcher's and the pools' schemas. */
const FLAGS: readonly { flags: readonly string[]; owner: "dispatcher" | "pool"; name: string; spec: OptionSpec }[] = [
  ...Object.entries(DISPATCHER_SCHEMA).map(([name, spec]) => ({ owner: "dispatcher" as const, name, spec })),
  ...Object.entries(POOL_SCHEMA).map(([name, spec]) => ({ owner: "pool" as const, name, spec })),
].filter((f) => f.spec.flags !== undefined).map((f) => ({ ...f, flags: f.spec.flags! }));

/** A flag's default as `--help` says it: the command line's own, else the option's, without Markdown. */
function defaultText(spec: OptionSpec): string {
  if (spec.cliDefault !== undefined) return spec.cliDefault;
  if (spec.default !== undefined && spec.default !== null) return JSON.stringify(spec.default);
  return (spec.defaultDoc ?? "none").replace(/`/g, "").replace(/ \(the command line: .*\)$/, "");
}

/** Rows of a two-column list, the second column aligned after the widest first one. */
function columns(rows: readonly (readonly [string, string])[]): string {
  const width = Math.max(...rows.map(([left]) => left.length)) + 2;
  return rows.map(([left, right]) => `  ${left.padEnd(width)}${right}`.trimEnd()).join("\n");
}

/** What `forkyard --help` prints; `runsAs`: how this process was started (`node dist/cli.js`). */
export function helpText(runsAs: string): string {
  const options: [string, string][] = FLAGS.map(({ flags, owner, spec }) => {
    const value = spec.type === "boolean"
      ? ""
      : spec.flagDefault !== undefined
      ? "[=<value>]"
      : spec.type === "integer"
      ? " <n>"
      : " <value>";
    const scope = owner === "pool" ? "; for every pool" : "";
    return [`${flags[0]}${value}`, `${spec.doc.replace(/`/g, "")}${scope} (default: ${defaultText(spec)})`];
  });
  return `forkyard ${VERSION}: run HTTP handlers across a supervised pool of worker processes

Usage:
${
    columns([
      ["forkyard serve <module>[:export] [options]", "serve a module: a Dispatcher, a Worker class,"],
      ["", "or an app: fetch(request) (e.g. Hono), or a request listener"],
      ["", "(an Express, Koa or Fastify app, a node:http Server)"],
      ["forkyard serve <config.json> [options]", "serve pools and apps described in a config file"],
      ["forkyard ctl [--json] <command>", "ask a running server through its control socket:"],
      ["", "status | reload [POOL [HOST]] | scale POOL N [HOST] | stop"],
      ["", "(HOST: one worker host of a remote pool); the socket: --control PATH,"],
      ["", "the server of --pid-file PATH, $FORKYARD_CONTROL, or this folder's"],
      ["forkyard worker --nats URL <module>[:export] [options]", "run a remote pool's workers on this host, taking"],
      ["", "requests over NATS (docs/remote.md)"],
      ["forkyard --help | --version", ""],
    ])
  }

Options:
${
    columns([
      ...options,
      ["--pid-file <path>", "serve: write the server's pid there; ctl: ask the server whose pid it holds"],
      ["--watch", "serve: reload the workers when source files under the module's directory change"],
      ["", `(${WATCHED_EXTENSIONS.join(" ")}; not node_modules, dot files or dot folders)`],
      ["--watch-path <path>", "serve: watch this file or folder instead (repeatable; implies --watch)"],
      ["--watch-ignore <glob>", 'serve: ignore paths that match, e.g. "generated/**" (repeatable; implies --watch)'],
      ["--nats <url>", "worker: the NATS server (nats://[user:pass@]host:4222, tls://...)"],
      ["--subject <s>", "worker: the pool's subject (default: \"forkyard.\" + the pool's name)"],
      ["--name <name>", "worker: this host's name in status and logs (default: the hostname)"],
      ["--nats-ca <file>", "worker: the CA certificate (PEM) that signed the NATS server's, for tls://"],
      ["--nats-insecure", "worker: connect to a NATS server beyond loopback that takes no credentials"],
    ])
  }

Runs as: ${runsAs} (also: npx forkyard, bunx forkyard)
Config file and options reference: docs/options.md.`;
}

/** Parsed command line. */
export interface CliArgs {
  /** `serve`, `ctl`, `worker`, `help` or `version`. */
  command: "serve" | "ctl" | "worker" | "help" | "version";
  /** For `worker`: `--nats`, `--subject`, `--name`, `--nats-ca`. */
  worker?: { nats?: string; subject?: string; name?: string; ca?: string; insecure?: true };
  /**
   * For `serve`: `--watch`, reload the workers when source files change: under `paths` (`--watch-path`; none: the
   * served module's directory), less what matches `ignore` (`--watch-ignore`).
   */
  watch?: { paths: string[]; ignore: string[] };
  /** For `ctl`: what to ask, and `--json`. */
  ctl?: { command: ControlCommand; json: boolean };
  /** `--pid-file`: for `serve`, where to write its pid; for `ctl`, the pid file of the server to ask. */
  pidFile?: string;
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
  if (spec.fromFlag !== undefined) {
    try {
      return spec.fromFlag(value);
    } catch (error) {
      throw new UsageError(`${flag} ${(error as Error).message}, got ${JSON.stringify(value)}`);
    }
  }
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
  let watch: CliArgs["watch"];
  const worker: NonNullable<CliArgs["worker"]> = {};
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
      watch ??= { paths: [], ignore: [] };
      continue;
    }
    if (flag === "--watch-path" || flag === "--watch-ignore") {
      const value = inline ?? argv[++i];
      if (value === undefined || value === "") throw new UsageError(`${flag} needs a value`);
      watch ??= { paths: [], ignore: [] };
      watch[flag === "--watch-path" ? "paths" : "ignore"].push(value);
      continue;
    }
    if (flag === "--pid-file") {
      const value = inline ?? argv[++i];
      if (value === undefined || value === "") throw new UsageError(`${flag} needs a value`);
      out.pidFile = value;
      continue;
    }
    if (flag === "-v" || flag === "--version") return { ...out, command: "version" };
    if (flag === "--nats-insecure") {
      worker.insecure = true;
      continue;
    }
    if (flag === "--nats" || flag === "--subject" || flag === "--name" || flag === "--nats-ca") {
      const value = inline ?? argv[++i];
      if (value === undefined || value === "") throw new UsageError(`${flag} needs a value`);
      worker[flag === "--nats-ca" ? "ca" : flag.slice(2) as "nats" | "subject" | "name"] = value;
      continue;
    }
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
  if (rest[0] === "worker") {
    if (out.pidFile !== undefined) throw new UsageError("--pid-file goes with serve and ctl");
    if (worker.nats === undefined) throw new UsageError("worker needs --nats URL (the NATS server)");
    if (rest.length !== 2) throw new UsageError(`worker takes one module, got ${rest.length - 1}`);
    return { ...out, command: "worker", target: rest[1], worker };
  }
  if (Object.keys(worker).length > 0) {
    throw new UsageError("--nats, --subject, --name, --nats-ca and --nats-insecure go with worker");
  }
  if (watch !== undefined && rest[0] !== "serve") throw new UsageError("--watch goes with serve");
  if (rest[0] !== "serve") throw new UsageError(`unknown command "${rest[0]}" (see forkyard --help)`);
  if (rest.length !== 2) throw new UsageError(`serve takes one module or config file, got ${rest.length - 1}`);
  return { ...out, command: "serve", target: rest[1], ...(watch !== undefined ? { watch } : {}) };
}

/**
 * `status`, `reload [POOL [HOST]]`, `scale POOL N [HOST]` or `stop` as a control command (HOST: one worker host of a
 * remote pool); throws {@linkcode UsageError}.
 */
function ctlCommand(words: string[]): ControlCommand {
  const [action, ...args] = words;
  if (action === "status" && args.length === 0) return { cmd: "status" };
  if (action === "stop" && args.length === 0) return { cmd: "stop" };
  const host = (at: number) => args.length > at ? { host: args[at] } : {};
  if (action === "reload" && args.length <= 2) {
    return args.length === 0 ? { cmd: "reload" } : { cmd: "reload", pool: args[0], ...host(1) };
  }
  if (action === "scale" && (args.length === 2 || args.length === 3)) {
    const workers = flagValue("scale", "workers", POOL_SCHEMA.workers, args[1]) as number;
    return { cmd: "scale", pool: args[0], workers, ...host(2) };
  }
  throw new UsageError(
    `ctl takes status, reload [POOL [HOST]], scale POOL N [HOST] or stop, got ${JSON.stringify(words.join(" "))}`,
  );
}

/**
 * `PORT`, `HOST` and `FORKYARD_ADMIN_TOKEN` from the environment, for the dispatcher options no flag set (as
 * Heroku-style platforms and containers hand them over; a token in the environment stays out of `ps`); throws
 * {@linkcode UsageError} for a bad value.
 */
export function applyEnvironment(args: CliArgs, env: (name: string) => string | undefined): CliArgs {
  const dispatcher = { ...args.dispatcher };
  const port = env("PORT");
  if (port !== undefined && port !== "" && dispatcher.port === undefined) {
    dispatcher.port = flagValue("PORT", "port", DISPATCHER_SCHEMA.port, port);
  }
  const host = env("HOST");
  if (host !== undefined && host !== "" && dispatcher.hostname === undefined) dispatcher.hostname = host;
  const token = env("FORKYARD_ADMIN_TOKEN");
  if (token !== undefined && token !== "" && dispatcher.adminToken === undefined) dispatcher.adminToken = token;
  return { ...args, dispatcher };
}
