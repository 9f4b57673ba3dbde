/**
 * Metrics in the Prometheus text exposition format (version 0.0.4), served at
 * the admin listener's `/metrics`: requests by pool and status class, a latency
 * histogram per pool, and the pools' state read from their status at scrape
 * time. Written by hand: the format is a few lines of text, and the client
 * libraries are Node-specific or pull in more than forkyard needs.
 *
 * @module
 */

import type { PoolStatus } from "../pool.ts";
import { logLinesDropped } from "../logging/log_output.ts";

/** Upper bounds of the latency histogram's buckets, in seconds. */
export const BUCKETS: readonly number[] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Requests answered for one pool (or by the dispatcher itself). */
interface PoolCounts {
  /** By status class: `2xx`, `4xx`, ... */
  byClass: Map<string, number>;
  /** Histogram bucket counts (not cumulative), one more for +Inf. */
  buckets: number[];
  /** Sum of durations in seconds. */
  sum: number;
  /** Requests observed. */
  count: number;
}

/** What the scrape reads from the supervisors beside the pools' status. */
export interface PoolSnapshot {
  /** The pool's status (workers, queue, degraded). */
  status: PoolStatus;
  /** Workers replaced, by why: `crash`, `stuck`, `startup`, `garbage` (restarts); `max_requests`, `max_memory`, `reload` (recycles). */
  replaced: ReadonlyMap<string, number>;
  /** Messages from NATS dropped as malformed or from no host that took the request (remote pools). */
  dropped?: number;
}

/** Label value escaping of the exposition format. */
function label(value: string): string {
  return String(value).replace(/[\\"\n]/g, (c) => (c === "\n" ? "\\n" : "\\" + c));
}

/** A sample's value as Prometheus reads it: a number, whatever a remote host's heartbeat carried. */
function sample(value: unknown): string {
  const n = typeof value === "number" ? value : Number.NaN;
  return Number.isFinite(n) ? String(n) : "NaN";
}

/** One second of traffic, for the status page's charts. */
export interface Second {
  /** End of the second, ms since the epoch. */
  time: number;
  /** Requests answered in it. */
  requests: number;
  /** Median and 99th percentile latency of those, in milliseconds (0 when none). */
  p50: number;
  p99: number;
}

/**
 * Answers counted since the last {@linkcode Metrics.take}: what a dispatcher started by a primary (option
 * `dispatchers`) sends it once a second, for the primary's admin listener to answer for all of them.
 */
export interface MetricsDelta {
  /** Per pool (`""`: the dispatcher's own answers): counts by status class, histogram buckets, sum, count. */
  pools: [pool: string, byClass: [string, number][], buckets: number[], sum: number, count: number][];
  /** Durations sampled for the second's percentiles, in milliseconds. */
  samples: number[];
  /** Answers seen. */
  seen: number;
}

/** Seconds of history the status page shows. */
const HISTORY = 300;
/** Durations kept per second for its percentiles; beyond, every other one is dropped. */
const SAMPLES = 4096;

/** Counts answers and writes the exposition. */
export class Metrics {
  #pools = new Map<string, PoolCounts>();
  readonly #started = Date.now();
  #durations: number[] = [];
  #seen = 0;
  /** The last minutes, one entry per second, oldest first. */
  readonly history: Second[] = [];

  /** Closes the current second: its request count and latency percentiles join the history. */
  roll(now: number): Second {
    const sorted = this.#durations.sort((a, b) => a - b);
    const at = (q: number) =>
      sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
    const second = { time: now, requests: this.#seen, p50: at(0.5), p99: at(0.99) };
    this.#durations = [];
    this.#seen = 0;
    this.history.push(second);
    if (this.history.length > HISTORY) this.history.shift();
    return second;
  }

  /** The answers counted since the last call, which start again from zero. */
  take(): MetricsDelta {
    const pools: MetricsDelta["pools"] = [];
    for (const [pool, c] of this.#pools) pools.push([pool, [...c.byClass], c.buckets, c.sum, c.count]);
    const delta = { pools, samples: this.#durations.map((d) => Math.round(d * 100) / 100), seen: this.#seen };
    this.#pools = new Map();
    this.#durations = [];
    this.#seen = 0;
    return delta;
  }

  /** Adds answers another dispatcher counted (see {@linkcode Metrics.take}). */
  add(delta: MetricsDelta): void {
    for (const [pool, byClass, buckets, sum, count] of delta.pools) {
      const counts = this.#counts(pool);
      for (const [statusClass, n] of byClass) {
        counts.byClass.set(statusClass, (counts.byClass.get(statusClass) ?? 0) + n);
      }
      for (let i = 0; i < counts.buckets.length; i++) counts.buckets[i] += buckets[i] ?? 0;
      counts.sum += sum;
      counts.count += count;
    }
    this.#seen += delta.seen;
    for (const d of delta.samples) {
      if (this.#durations.length < SAMPLES) this.#durations.push(d);
      else this.#durations[Math.floor(Math.random() * SAMPLES)] = d;
    }
  }

  #counts(pool: string): PoolCounts {
    let counts = this.#pools.get(pool);
    if (counts === undefined) {
      counts = { byClass: new Map(), buckets: new Array(BUCKETS.length + 1).fill(0), sum: 0, count: 0 };
      this.#pools.set(pool, counts);
    }
    return counts;
  }

  /** One answered request: its pool (`null`: the dispatcher's own answer), status and duration in milliseconds. */
  observe(pool: string | null, status: number, durationMs: number): void {
    const counts = this.#counts(pool ?? "");
    const statusClass = `${Math.floor(status / 100)}xx`;
    counts.byClass.set(statusClass, (counts.byClass.get(statusClass) ?? 0) + 1);
    const seconds = durationMs / 1000;
    let i = 0;
    while (i < BUCKETS.length && seconds > BUCKETS[i]) i++;
    counts.buckets[i]++;
    counts.sum += seconds;
    counts.count++;
    this.#seen++;
    if (this.#durations.length < SAMPLES) this.#durations.push(durationMs);
    else if ((this.#seen & 1) === 0) this.#durations[this.#seen % SAMPLES] = durationMs;
  }

  /** The exposition text for the pools' snapshots and the dispatcher's pending count. */
  render(pools: readonly PoolSnapshot[], pending: number): string {
    const out: string[] = [];
    const metric = (name: string, type: string, help: string) =>
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    metric(
      "forkyard_requests_total",
      "counter",
      "Requests answered, by pool (empty: the dispatcher itself) and status class.",
    );
    for (const [pool, counts] of this.#pools) {
      for (const [code, n] of counts.byClass) {
        out.push(`forkyard_requests_total{pool="${label(pool)}",code="${code}"} ${n}`);
      }
    }
    metric("forkyard_request_duration_seconds", "histogram", "Time from a request's arrival to its answer's head.");
    for (const [pool, counts] of this.#pools) {
      let cumulative = 0;
      for (let i = 0; i <= BUCKETS.length; i++) {
        cumulative += counts.buckets[i];
        const le = i < BUCKETS.length ? String(BUCKETS[i]) : "+Inf";
        out.push(`forkyard_request_duration_seconds_bucket{pool="${label(pool)}",le="${le}"} ${cumulative}`);
      }
      out.push(`forkyard_request_duration_seconds_sum{pool="${label(pool)}"} ${counts.sum}`);
      out.push(`forkyard_request_duration_seconds_count{pool="${label(pool)}"} ${counts.count}`);
    }
    metric("forkyard_pending_requests", "gauge", "Requests waiting for or being served by workers, all pools.");
    out.push(`forkyard_pending_requests ${pending}`);
    const perPool = (name: string, type: string, help: string, value: (p: PoolSnapshot) => number) => {
      metric(name, type, help);
      for (const p of pools) out.push(`${name}{pool="${label(p.status.name)}"} ${sample(value(p))}`);
    };
    perPool("forkyard_queue_length", "gauge", "Requests waiting for a worker.", (p) => p.status.queueSize);
    perPool(
      "forkyard_requests_in_flight",
      "gauge",
      "Requests a worker is working on.",
      (p) => p.status.workers.reduce((n, w) => n + w.inflight, 0),
    );
    perPool(
      "forkyard_pool_degraded",
      "gauge",
      "1 while the pool answers 503 after too many restarts.",
      (p) => p.status.degraded ? 1 : 0,
    );
    perPool("forkyard_pool_workers", "gauge", "Worker slots.", (p) => p.status.workers.length);
    metric("forkyard_worker_replacements_total", "counter", "Workers replaced, by reason.");
    for (const p of pools) {
      for (const [reason, n] of p.replaced) {
        out.push(`forkyard_worker_replacements_total{pool="${label(p.status.name)}",reason="${reason}"} ${n}`);
      }
    }
    metric(
      "forkyard_log_dropped_total",
      "counter",
      "Log lines this process dropped because their reader (stderr, a log file) was behind.",
    );
    out.push(`forkyard_log_dropped_total ${logLinesDropped()}`);
    metric(
      "forkyard_nats_dropped_total",
      "counter",
      "Messages from NATS dropped unused: malformed, or not from the host that took the request.",
    );
    for (const p of pools) {
      if (p.dropped !== undefined) {
        out.push(`forkyard_nats_dropped_total{pool="${label(p.status.name)}"} ${sample(p.dropped)}`);
      }
    }
    const perWorker = (
      name: string,
      type: string,
      help: string,
      value: (w: PoolStatus["workers"][number]) => number,
    ) => {
      metric(name, type, help);
      for (const p of pools) {
        for (const w of p.status.workers) {
          out.push(`${name}{pool="${label(p.status.name)}",worker="${label(String(w.id))}"} ${sample(value(w))}`);
        }
      }
    };
    perWorker("forkyard_worker_up", "gauge", "1 while the worker serves.", (w) => (w.alive ? 1 : 0));
    perWorker("forkyard_worker_rss_bytes", "gauge", "Resident memory from the worker's last heartbeat.", (w) => w.rss);
    perWorker(
      "forkyard_worker_served_total",
      "counter",
      "Requests the worker's current process answered.",
      (w) => w.served,
    );
    perWorker(
      "forkyard_worker_websockets",
      "gauge",
      "WebSockets pinned to the worker's current process.",
      (w) => w.sockets,
    );
    perWorker(
      "forkyard_worker_restarts_total",
      "counter",
      "Times the slot's process crashed, stalled or failed to start.",
      (w) => w.restarts,
    );
    metric("forkyard_uptime_seconds", "gauge", "Seconds since the dispatcher started.");
    out.push(`forkyard_uptime_seconds ${(Date.now() - this.#started) / 1000}`);
    return out.join("\n") + "\n";
  }
}
