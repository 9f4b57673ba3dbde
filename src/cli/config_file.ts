/**
 * `forkyard serve forkyard.json`: a dispatcher from a config file, whose keys come from the options schemas.
 *
 * @module
 */

import { existsSync, readFileSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { Dispatcher, type DispatcherOptions } from "../dispatcher/dispatcher.ts";
import { DISPATCHER_SCHEMA } from "../dispatcher/options.ts";
import { configKeys, plainConfigKeys } from "../options.ts";
import { AppPool, WorkerPool, type WorkerPoolOptions } from "../pool.ts";
import { Worker } from "../worker/worker.ts";
import { UsageError } from "./usage_error.ts";

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
export async function checkExports(dispatcher: Dispatcher, source: string): Promise<void> {
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
