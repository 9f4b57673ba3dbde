/**
 * What a primary and the dispatchers it starts (option `dispatchers`) share:
 * the environment variable that makes a process one of them, each one's share
 * of the workers, and the frames on the channel between them: commands one
 * way, readiness, statuses, results and WebSocket publications the other.
 *
 * @module
 */

import type { PoolRequest, PoolStatus } from "../pool.ts";
import type { Runtime } from "../runtime.ts";
import type { MetricsDelta } from "./metrics.ts";

/** Set in a dispatcher process the primary started: `index/count:port`. */
export const DISPATCHER_ENV = "FORKYARD_DISPATCHER";

/** Frames between the primary and its dispatchers. */
export const P = {
  /** Primary to dispatcher: {@linkcode Command}. */
  COMMAND: 1,
  /** Dispatcher to primary: listening, `{ port }`. */
  READY: 32,
  /** Dispatcher to primary, once a second: a {@linkcode Report}. */
  STATUS: 33,
  /** Dispatcher to primary: a command's result, `{ id, r }` or `{ id, e }`. */
  DONE: 34,
  /** Both ways: a WebSocket message published to a topic, {@linkcode Published}, the message as body. */
  PUBLISH: 35,
} as const;

/** What a dispatcher reports to the primary once a second. */
export interface Report {
  /** Its pools' status. */
  pools: PoolStatus[];
  /** Per pool, in the same order: workers replaced so far, by why. */
  replaced: Record<string, number>[];
  /** Its pending requests. */
  pending: number;
  /** With the `admin` option: the answers it counted since its last report. */
  metrics?: MetricsDelta;
}

/** The header of a {@linkcode P.PUBLISH} frame: the topic, and whether the message is binary (1) or text (0). */
export interface Published {
  t: string;
  b: 0 | 1;
}

/** What the primary asks a dispatcher to do. */
export type CommandBody =
  | { c: "reload"; pool?: string }
  | { c: "scale"; pool: string; n: number }
  | { c: "config"; pool: string; config: unknown }
  | { c: "send"; pool: string; request: PoolRequest }
  | { c: "stop" };

/** A command with its id, which the dispatcher's answer names. */
export type Command = CommandBody & { id: number };

/** Where a dispatcher process stands among its siblings. */
export interface DispatcherSlot {
  /** From 0. */
  index: number;
  /** How many dispatchers there are. */
  count: number;
  /** The port they share. */
  port: number;
}

/** The slot of this process when a primary started it, else `null`. */
export function dispatcherSlot(runtime: Runtime): DispatcherSlot | null {
  const spec = runtime.env(DISPATCHER_ENV);
  const m = spec ? /^(\d+)\/(\d+):(\d+)$/.exec(spec) : null;
  return m ? { index: Number(m[1]), count: Number(m[2]), port: Number(m[3]) } : null;
}

/**
 * Dispatcher `index`'s share of `total` workers among `count` dispatchers: the total divided, the first ones taking
 * one more when it does not divide, and at least one each.
 */
export function share(total: number, index: number, count: number): number {
  return Math.max(1, Math.floor(total / count) + (index < total % count ? 1 : 0));
}
