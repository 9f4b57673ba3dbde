/**
 * The worker hosts of a remote pool, as one dispatcher knows them from their
 * heartbeats: what each runs and how much room it has, which requests each
 * took, and which went quiet (three heartbeats missed) or said goodbye.
 *
 * @module
 */

import type { WorkerStatus } from "../pool.ts";
import type { HostBeat } from "./messages.ts";

/** Heartbeats a host may miss before it counts as gone. */
export const MISSED_BEATS = 3;

/** A worker host; `T` is what this dispatcher sent it. */
export interface RemoteHost<T> {
  /** Its workers are not this dispatcher's: no local slot. */
  readonly slot: null;
  beat: HostBeat;
  /** Clock time of its last heartbeat. */
  lastSeen: number;
  /** Requests it took from this dispatcher and has not answered. */
  readonly inflight: Set<T>;
}

/** The hosts of one remote pool. */
export class RemoteHosts<T> {
  readonly #hosts = new Map<string, RemoteHost<T>>();

  /** How many are known. */
  get size(): number {
    return this.#hosts.size;
  }

  /** A heartbeat; returns the host when it is new (it just joined), else `null`. */
  beat(beat: HostBeat, now: number): RemoteHost<T> | null {
    const known = this.#hosts.get(beat.id);
    if (known !== undefined) {
      known.beat = beat;
      known.lastSeen = now;
      return null;
    }
    return beat.bye === 1 ? null : this.#add(beat, now);
  }

  /** The host with id `id`, when a heartbeat announced it. */
  known(id: string): RemoteHost<T> | null {
    return this.#hosts.get(id) ?? null;
  }

  #add(beat: HostBeat, now: number): RemoteHost<T> {
    const host: RemoteHost<T> = { slot: null, beat, lastSeen: now, inflight: new Set() };
    this.#hosts.set(beat.id, host);
    return host;
  }

  /** The names of the live hosts (not saying goodbye). */
  names(): string[] {
    const names: string[] = [];
    for (const h of this.#hosts.values()) if (h.beat.bye === undefined) names.push(h.beat.name);
    return names;
  }

  /** Requests the live hosts can take when idle. */
  slots(): number {
    let slots = 0;
    for (const h of this.#hosts.values()) if (h.beat.bye === undefined) slots += h.beat.slots;
    return slots;
  }

  /**
   * Forgets the hosts that missed {@linkcode MISSED_BEATS} heartbeats, and those that said goodbye once they hold
   * nothing of this dispatcher's; returns the former, whose requests are lost.
   */
  expire(now: number): RemoteHost<T>[] {
    const lost: RemoteHost<T>[] = [];
    for (const host of this.#hosts.values()) {
      const quiet = now - host.lastSeen > MISSED_BEATS * host.beat.every;
      if (!quiet && !(host.beat.bye === 1 && host.inflight.size === 0)) continue;
      this.#hosts.delete(host.beat.id);
      if (host.beat.bye !== 1) lost.push(host);
    }
    return lost;
  }

  /** Forgets every host (the NATS connection is lost; they say so again once it is back). */
  clear(): void {
    this.#hosts.clear();
  }

  /**
   * Every host's workers, `id`s numbered across hosts and `host` naming each one's (`name:pid` where several hosts
   * share a name: those started on one machine without `--name`); and requests queued on them.
   */
  workers(): { workers: WorkerStatus[]; queued: number } {
    const workers: WorkerStatus[] = [];
    const named = new Map<string, number>();
    for (const h of this.#hosts.values()) named.set(h.beat.name, (named.get(h.beat.name) ?? 0) + 1);
    let queued = 0;
    for (const h of this.#hosts.values()) {
      const host = named.get(h.beat.name)! > 1 ? `${h.beat.name}:${h.beat.pid}` : h.beat.name;
      for (const w of h.beat.workers) workers.push({ ...w, id: workers.length, host });
      queued += h.beat.queue;
    }
    return { workers, queued };
  }
}
