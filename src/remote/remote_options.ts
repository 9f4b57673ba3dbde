/**
 * The `remote` pool option: the pool's workers run on worker hosts reached
 * over NATS (`forkyard worker --nats URL module:Export`).
 *
 * @module
 */

import { connectOptions, type NatsOptions } from "./nats.ts";

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
  const { nats, subject = defaultSubject(name), token, user, pass, tls, ...rest } = value as Record<string, unknown>;
  const unknown = Object.keys(rest);
  if (unknown.length > 0) throw bad(`unknown key "${unknown[0]}" (expected nats, subject, token, user, pass, tls)`);
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
