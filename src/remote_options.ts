/**
 * The `remote` pool option: the pool's workers run on worker hosts reached
 * over NATS (`forkyard worker --nats URL module:Export`). What a pool knows of
 * it: the NATS server, its credentials and the subject, checked when the pool
 * is made; `src/remote/` connects with it.
 *
 * @module
 */

/** How to reach the NATS server: the `remote` pool option's connection part, and `forkyard worker`'s. */
export interface NatsOptions {
  /** Server URL(s): `nats://host:4222`, with credentials if the server asks for them. */
  nats: string | string[];
  /** Token authentication (instead of one in the URL). */
  token?: string;
  /** User and password authentication (instead of ones in the URL). */
  user?: string;
  pass?: string;
  /** TLS: `{ caFile, certFile, keyFile }` or `{ ca, cert, key }` as PEM text (the client's TLS options). */
  tls?: { caFile?: string; certFile?: string; keyFile?: string; ca?: string; cert?: string; key?: string };
  /**
   * Connect to a NATS server beyond loopback that lets this process in without credentials. Refused by default:
   * whoever reaches such a server reads every request and may answer it.
   * @default {false}
   */
  insecure?: boolean;
}

/** Whether `options` give the server credentials: a token, a user, or a client certificate. */
export function hasCredentials(options: NatsOptions): boolean {
  const out = connectOptions(options, "check");
  return out.token !== undefined || out.user !== undefined || options.tls?.certFile !== undefined ||
    options.tls?.cert !== undefined;
}

/** Whether `server` (`host:port`, as the NATS client names it) is on this machine's loopback. */
export function isLoopback(server: string): boolean {
  // `host:port`, `[v6]:port`, or a bare address
  const bracketed = /^\[([^\]]*)\]/.exec(server);
  const host = (bracketed ? bracketed[1] : server.split(":").length === 2 ? server.split(":")[0] : server)
    .toLowerCase();
  return host === "localhost" || /^127\.\d+\.\d+\.\d+$/.test(host) || host === "::1" ||
    host === "0:0:0:0:0:0:0:1" || /^::ffff:127\./.test(host);
}

/** The client's connection options for `options`: credentials taken out of the URLs, which keep host and port. */
export function connectOptions(options: NatsOptions, name: string): Record<string, unknown> {
  const urls = Array.isArray(options.nats) ? options.nats : [options.nats];
  const out: Record<string, unknown> = { name, servers: [] as string[] };
  let tls = options.tls !== undefined;
  for (const raw of urls) {
    let url: URL;
    try {
      url = new URL(raw.includes("://") ? raw : `nats://${raw}`);
    } catch {
      throw new TypeError(`Invalid NATS URL ${JSON.stringify(raw)} (expected nats://host:port)`);
    }
    if (!["nats:", "tls:"].includes(url.protocol)) {
      throw new TypeError(`Invalid NATS URL ${JSON.stringify(raw)} (expected nats:// or tls://)`);
    }
    if (url.protocol === "tls:") tls = true;
    if (url.username !== "" && url.password !== "") {
      out.user = decodeURIComponent(url.username);
      out.pass = decodeURIComponent(url.password);
    } else if (url.username !== "") {
      out.token = decodeURIComponent(url.username);
    }
    (out.servers as string[]).push(`${url.hostname}:${url.port || "4222"}`);
  }
  if (options.token !== undefined) out.token = options.token;
  if (options.user !== undefined) out.user = options.user;
  if (options.pass !== undefined) out.pass = options.pass;
  if (tls) out.tls = options.tls ?? {};
  return out;
}

/** The `remote` option of a pool: where its worker hosts take requests from. */
export interface RemoteOptions extends NatsOptions {
  /** The subject the pool's requests go to; its worker hosts use the same. @default {"forkyard." + the pool's name} */
  subject?: string;
}

/** The `remote` option with its default subject. */
export interface ResolvedRemote extends NatsOptions {
  readonly subject: string;
}

/** Subject tokens: no spaces, wildcards or empty tokens. */
const SUBJECT = /^[^\s.*>]+(\.[^\s.*>]+)*$/;

/** The default subject of pool `name`. */
export function defaultSubject(name: string): string {
  return `forkyard.${name.replace(/[\s.*>]/g, "_")}`;
}

/** Checks the `remote` option of pool `name` and applies its default; throws naming what is wrong. */
export function resolveRemote(value: unknown, name: string, what = "WorkerPool"): ResolvedRemote {
  const bad = (why: string) => new TypeError(`Invalid ${what} option "remote": ${why}`);
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw bad("expected { nats, subject }");
  }
  const { nats, subject = defaultSubject(name), token, user, pass, tls, insecure, ...rest } = value as Record<
    string,
    unknown
  >;
  const unknown = Object.keys(rest);
  if (unknown.length > 0) {
    throw bad(`unknown key "${unknown[0]}" (expected nats, subject, token, user, pass, tls, insecure)`);
  }
  if (insecure !== undefined && typeof insecure !== "boolean") throw bad("insecure must be true or false");
  const urls = Array.isArray(nats) ? nats : [nats];
  if (urls.length === 0 || urls.some((u) => typeof u !== "string" || u === "")) {
    throw bad(`nats ${JSON.stringify(nats)} (expected a URL such as "nats://127.0.0.1:4222")`);
  }
  if (typeof subject !== "string" || !SUBJECT.test(subject)) {
    throw bad(`subject ${JSON.stringify(subject)} (expected dot-separated tokens without spaces or wildcards)`);
  }
  for (const [key, v] of Object.entries({ token, user, pass })) {
    if (v !== undefined && typeof v !== "string") throw bad(`${key} must be a string`);
  }
  if (tls !== undefined && (typeof tls !== "object" || tls === null)) throw bad("tls must be an object");
  const resolved = { ...(value as NatsOptions), subject } as ResolvedRemote;
  try {
    connectOptions(resolved, "check");
  } catch (error) {
    throw bad((error as Error).message);
  }
  return resolved;
}
