/**
 * A dispatcher steering the worker hosts of a remote pool: `scale` and
 * `reload` (from `pool.scale()`, `pool.reload()` or `forkyard ctl`) go to
 * every host, or to one by name, on the pool's `S.ctl` subject; each host
 * answers on the dispatcher's inbox, and the dispatcher waits for the hosts it
 * knows, for a while.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import type { NatsConnection } from "@nats-io/transport-node";
import { plural } from "../logging/plural.ts";
import { isSteerAnswer, jsonMessage, parseJsonMessage, type Steer, type SteerAnswer } from "./messages.ts";

/** How long `scale` waits for the hosts to say they did, and `reload` (one worker at a time on each). */
const SCALE_WAIT_MS = 5000;
const RELOAD_WAIT_MS = 120_000;

/** A steer waiting for its answers. */
interface Asked {
  expected: number;
  answers: SteerAnswer[];
  done(answers: SteerAnswer[]): void;
}

/** The steers of one remote pool, and the answers they wait for. */
export class HostSteering {
  readonly #prefix: string;
  readonly #subject: string;
  readonly #pool: string;
  readonly #hosts: () => string[];
  readonly #log: Logger;
  readonly #asked = new Map<string, Asked>();
  #next = 0;

  /**
   * `inbox`: this dispatcher's inbox (answers come below `<inbox>.ctl.`); `subject`: the pool's; `hosts`: the names of
   * the live hosts.
   */
  constructor(inbox: string, subject: string, pool: string, hosts: () => string[], log: Logger) {
    this.#prefix = `${inbox}.ctl.`;
    this.#subject = `${subject}.ctl`;
    this.#pool = pool;
    this.#hosts = hosts;
    this.#log = log;
  }

  /** Asks the hosts (all, or the one named `host`) to run `workers` workers each. */
  scale(nc: NatsConnection | null, workers: number, host: string | undefined): void {
    const expected = this.#named(host);
    this.#log.info("Pool {pool}: asking {which} to run {each}", {
      pool: this.#pool,
      which: host === undefined ? `its ${plural(expected, "worker host")}` : `worker host ${host}`,
      workers,
      each: plural(workers, "worker"),
    });
    const steer = { op: "scale" as const, workers, ...(host !== undefined ? { host } : {}) };
    if (nc !== null) void this.#send(nc, steer, expected, SCALE_WAIT_MS);
  }

  /** Asks the hosts (all, or the one named `host`) to reload; resolves with how many workers they replaced. */
  async reload(nc: NatsConnection | null, host: string | undefined): Promise<number> {
    const expected = this.#named(host);
    if (nc === null) return 0;
    const answers = await this.#send(
      nc,
      { op: "reload", ...(host !== undefined ? { host } : {}) },
      expected,
      RELOAD_WAIT_MS,
    );
    return answers.reduce((n, a) => n + (a.replaced ?? 0), 0);
  }

  /** How many live hosts are named `host` (all of them when it is not given); throws when none is. */
  #named(host: string | undefined): number {
    const names = this.#hosts();
    const n = host === undefined ? names.length : names.filter((name) => name === host).length;
    if (host !== undefined && n === 0) {
      throw new Error(
        `pool ${this.#pool} has no worker host named "${host}" (hosts: ${[...names].sort().join(", ") || "none"})`,
      );
    }
    return n;
  }

  /** Whether `subject` is where a steer's answers come. */
  owns(subject: string): boolean {
    return subject.startsWith(this.#prefix);
  }

  /** Publishes `steer`; resolves with the answers of the `expected` hosts it reaches, or those that came in `waitMs`. */
  #send(nc: NatsConnection, steer: Steer, expected: number, waitMs: number): Promise<SteerAnswer[]> {
    if (expected === 0) return Promise.resolve([]);
    const reply = `${this.#prefix}${++this.#next}`;
    return new Promise((resolve) => {
      const timer = setTimeout(() => finish(), waitMs);
      const finish = () => {
        clearTimeout(timer);
        const asked = this.#asked.get(reply);
        this.#asked.delete(reply);
        resolve(asked?.answers ?? []);
      };
      this.#asked.set(reply, { expected, answers: [], done: finish });
      nc.publish(this.#subject, jsonMessage(steer), { reply });
    });
  }

  /** A host's answer; `false` when it is not one (dropped as malformed by the caller). */
  receive(subject: string, data: Uint8Array): boolean {
    const answer = parseJsonMessage<unknown>(data);
    if (!isSteerAnswer(answer)) return false;
    const asked = this.#asked.get(subject);
    if (asked === undefined) return true;
    asked.answers.push(answer);
    if (asked.answers.length >= asked.expected) asked.done(asked.answers);
    return true;
  }
}
