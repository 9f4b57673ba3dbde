/**
 * A `Dispatcher`'s options checked, with their defaults applied: every mistake throws where the dispatcher is made,
 * naming the option.
 *
 * @module
 */

import { resolveRunAs } from "./run_as.ts";
import { resolveOptions } from "../options.ts";
import { defaultMaxConnections, localWorkers, openFilesLimit } from "./open_files.ts";
import { resolveAdmin } from "./admin_address.ts";
import { DISPATCHER_SCHEMA, type DispatcherOptions, type ResolvedDispatcherOptions } from "./options.ts";

/**
 * Query parameters whose values the access log writes as `REDACTED` (option `accessLogRedact`): a name matches when
 * it is one of these, or ends with one after `_`, `-` or `.` (`reset_token`, `x-api-key`), case aside.
 */
export const DEFAULT_REDACTED: readonly string[] = [
  "token",
  "secret",
  "password",
  "passwd",
  "pwd",
  "pass",
  "key",
  "apikey",
  "auth",
  "authorization",
  "signature",
  "sig",
  "code",
  "session",
  "sessionid",
  "sid",
  "jwt",
  "otp",
  "credential",
  "credentials",
];

/** Checks a `Dispatcher`'s options and applies the defaults; throws naming the option. */
export function resolveDispatcherOptions(options: DispatcherOptions): ResolvedDispatcherOptions {
  if (typeof options !== "object" || options === null) throw new TypeError("Dispatcher options must be an object");
  const scalars = resolveOptions("Dispatcher", DISPATCHER_SCHEMA, options as Record<string, unknown>);
  const pools = options.pools ?? [];
  if (!Array.isArray(pools)) {
    throw new TypeError(`Invalid Dispatcher option "pools": expected an array of WorkerPool`);
  }
  const names = new Set<string>();
  for (const [i, pool] of pools.entries()) {
    if (pool === null || typeof pool !== "object" || typeof pool.matches !== "function") {
      throw new TypeError(`Invalid Dispatcher option "pools": item ${i} is not a WorkerPool`);
    }
    if (names.has(pool.name)) {
      throw new TypeError(`Invalid Dispatcher option "pools": two pools are named "${pool.name}"`);
    }
    names.add(pool.name);
  }
  const staticRoutes = options.staticRoutes ?? {};
  if (typeof staticRoutes !== "object" || staticRoutes === null || Array.isArray(staticRoutes)) {
    throw new TypeError(`Invalid Dispatcher option "staticRoutes": expected an object of URL prefix to directory`);
  }
  for (const [prefix, dir] of Object.entries(staticRoutes)) {
    if (!prefix.startsWith("/") || typeof dir !== "string" || dir === "") {
      throw new TypeError(
        `Invalid Dispatcher option "staticRoutes": "${prefix}" -> ${
          JSON.stringify(dir)
        } (expected "/prefix/": "directory")`,
      );
    }
  }
  const accessLog = options.accessLog ?? false;
  if (accessLog !== false && accessLog !== "combined" && accessLog !== "json") {
    throw new TypeError(
      `Invalid Dispatcher option "accessLog": ${JSON.stringify(accessLog)} (expected false, "combined" or "json")`,
    );
  }
  const accessLogRedact = options.accessLogRedact ?? DEFAULT_REDACTED;
  if (!Array.isArray(accessLogRedact) || accessLogRedact.some((name) => typeof name !== "string" || name === "")) {
    throw new TypeError(
      `Invalid Dispatcher option "accessLogRedact": ${JSON.stringify(accessLogRedact)} (expected parameter names)`,
    );
  }
  const origins = options.origins ?? [];
  if (
    origins !== "*" &&
    (!Array.isArray(origins) || origins.some((o) => typeof o !== "string" || !/^[a-z][a-z0-9+.-]*:\/\/[^/]+$/i.test(o)))
  ) {
    throw new TypeError(
      `Invalid Dispatcher option "origins": ${
        JSON.stringify(origins)
      } (expected "*" or origins such as ["https://app.example"])`,
    );
  }
  const admin = options.admin === undefined ? null : resolveAdmin(options.admin, options.adminToken);
  const control = options.control ?? false;
  if (control !== false && (typeof control !== "string" || control === "")) {
    throw new TypeError(
      `Invalid Dispatcher option "control": ${JSON.stringify(control)} (expected a socket path or false)`,
    );
  }
  const [logFile, accessLogFile] = (["logFile", "accessLogFile"] as const).map((name) => {
    const value = options[name] ?? null;
    if (value !== null && (typeof value !== "string" || value === "")) {
      throw new TypeError(
        `Invalid Dispatcher option "${name}": ${JSON.stringify(value)} (expected a file path or null)`,
      );
    }
    return value;
  });
  const unixSocket = options.unixSocket ?? null;
  if (unixSocket !== null && (typeof unixSocket !== "string" || unixSocket === "")) {
    throw new TypeError(
      `Invalid Dispatcher option "unixSocket": ${JSON.stringify(unixSocket)} (expected a path or null)`,
    );
  }
  const unixSocketMode = options.unixSocketMode ?? 0o660;
  if (!Number.isInteger(unixSocketMode) || unixSocketMode < 0 || unixSocketMode > 0o777) {
    throw new TypeError(
      `Invalid Dispatcher option "unixSocketMode": ${
        JSON.stringify(unixSocketMode)
      } (expected permission bits, 0 to 0o777)`,
    );
  }
  if (unixSocket !== null && (scalars.httpServer !== "node" || scalars.dispatchers !== 1)) {
    throw new TypeError(
      `Invalid Dispatcher option "unixSocket": needs httpServer "node" and dispatchers 1 (got ${
        JSON.stringify(scalars.httpServer)
      } and ${scalars.dispatchers})`,
    );
  }
  const [user, group] = (["user", "group"] as const).map((name) => {
    const value = options[name] ?? null;
    const valid = value === null || (typeof value === "string" && value !== "" && !value.includes(":")) ||
      (Number.isInteger(value) && (value as number) >= 0);
    if (!valid) {
      throw new TypeError(
        `Invalid Dispatcher option "${name}": ${JSON.stringify(value)} (expected a name, an id or null)`,
      );
    }
    return value;
  });
  resolveRunAs(user, group);
  if ((user !== null || group !== null) && scalars.dispatchers !== 1) {
    throw new TypeError(`Invalid Dispatcher option "user": needs dispatchers 1 (got ${scalars.dispatchers})`);
  }
  const tls = options.tls ?? null;
  if (tls !== null && (typeof tls !== "object" || typeof tls.cert !== "string" || typeof tls.key !== "string")) {
    throw new TypeError(`Invalid Dispatcher option "tls": expected { cert, key } as PEM strings`);
  }
  return {
    ...scalars,
    maxConnections: scalars.maxConnections ?? defaultMaxConnections(openFilesLimit(), localWorkers(pools)),
    staticRoutes: { ...staticRoutes },
    tls,
    accessLog,
    accessLogRedact: [...accessLogRedact],
    origins: origins === "*" ? "*" : [...origins],
    admin,
    control,
    logFile,
    accessLogFile,
    unixSocket,
    unixSocketMode,
    user,
    group,
  } as unknown as ResolvedDispatcherOptions;
}
