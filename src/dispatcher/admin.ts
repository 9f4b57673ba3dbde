/**
 * The admin listener's answers, apart from the public port: `/metrics`
 * (Prometheus), `/status` (JSON), `/ready` (readiness, from the pools' state),
 * the live status page at `/` and its event stream `/events`.
 *
 * @module
 */

import type { PoolStatus } from "../pool.ts";
import { errorResponse } from "../protocol/results.ts";
import { Metrics, type PoolSnapshot, type Second } from "./metrics.ts";
import { type Snapshot, snapshotEvent, STATUS_PAGE } from "./status_page.ts";

const encoder = new TextEncoder();

/** What the admin listener reads from its dispatcher. */
export interface AdminSource {
  /** The dispatcher's pid. */
  pid: number;
  /** Requests waiting for or being served by workers. */
  pending(): number;
  /** Each pool's status and replacement counts. */
  pools(): PoolSnapshot[];
}

/** The admin listener: counts answers (`metrics`) and serves what it knows. */
export class AdminListener {
  /** What `/metrics` reports; the dispatcher records each answer in it. */
  readonly metrics: Metrics = new Metrics();
  readonly #source: AdminSource;
  /** The status pages listening to `/events`. */
  readonly #streams = new Set<ReadableStreamDefaultController<Uint8Array>>();

  constructor(source: AdminSource) {
    this.#source = source;
  }

  #snapshot(seconds: Second[]): Snapshot {
    const pools: PoolStatus[] = this.#source.pools().map((p) => p.status);
    return { pid: this.#source.pid, pending: this.#source.pending(), pools, seconds };
  }

  /** Once a second: closes the metrics' second and sends the status pages their snapshot. */
  second(now: number): void {
    const second = this.metrics.roll(now);
    if (this.#streams.size === 0) return;
    const bytes = encoder.encode(snapshotEvent(this.#snapshot([second])));
    for (const stream of this.#streams) {
      try {
        stream.enqueue(bytes);
      } catch {
        this.#streams.delete(stream);
      }
    }
  }

  /** Ends the status pages' event streams (on shutdown, so that the listener can close). */
  closeStreams(): void {
    for (const stream of this.#streams) {
      try {
        stream.close();
      } catch {
        // the page went away
      }
    }
    this.#streams.clear();
  }

  /** Answers one request to the admin listener. */
  answer(request: Request): Response {
    const path = new URL(request.url).pathname;
    if (request.method !== "GET" && request.method !== "HEAD") return errorResponse(405, "Method not allowed");
    switch (path) {
      case "/metrics":
        return new Response(this.metrics.render(this.#source.pools(), this.#source.pending()), {
          headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
        });
      case "/status":
        return Response.json({ pending: this.#source.pending(), pools: this.#source.pools().map((p) => p.status) });
      case "/ready": {
        // Ready when every pool can serve: a worker up (a host, for remote pools) and not degraded.
        const pools = this.#source.pools().map(({ status }) => ({
          name: status.name,
          workers: status.workers.filter((w) => w.alive).length,
          degraded: status.degraded,
        }));
        const ready = pools.every((p) => p.workers > 0 && !p.degraded);
        return Response.json({ ready, pools }, { status: ready ? 200 : 503 });
      }
      case "/":
        return new Response(STATUS_PAGE, { headers: { "content-type": "text/html; charset=utf-8" } });
      case "/events": {
        let self!: ReadableStreamDefaultController<Uint8Array>;
        const stream = new ReadableStream<Uint8Array>({
          start: (controller) => {
            self = controller;
            this.#streams.add(controller);
            controller.enqueue(encoder.encode(snapshotEvent(this.#snapshot(this.metrics.history))));
          },
          cancel: () => void this.#streams.delete(self),
        });
        return new Response(stream, { headers: { "content-type": "text/event-stream", "cache-control": "no-store" } });
      }
      default:
        return errorResponse(404, "Not found");
    }
  }
}
