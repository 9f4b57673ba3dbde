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

/** Who may ask the admin listener: the names a `Host` may carry, and the bearer token, if any. */
export interface AdminAccess {
  /** The address it listens on. */
  hostname: string;
  /** Names besides the listen address and `localhost` that a `Host` header may carry. */
  hosts: readonly string[];
  /** Required as `Authorization: Bearer TOKEN` (or `?token=TOKEN`, for the status page), or `null`. */
  token: string | null;
}

/** Whether `a` and `b` are equal, in time that does not depend on where they differ. */
function sameSecret(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/** The host part of a `Host` header value, lower case, without its port or IPv6 brackets. */
function hostName(host: string): string {
  const name = host.startsWith("[") ? host.slice(1, host.indexOf("]")) : host.replace(/:\d*$/, "");
  return name.toLowerCase();
}

/** The admin listener: counts answers (`metrics`) and serves what it knows. */
export class AdminListener {
  /** What `/metrics` reports; the dispatcher records each answer in it. */
  readonly metrics: Metrics = new Metrics();
  readonly #source: AdminSource;
  readonly #names: ReadonlySet<string>;
  readonly #token: string | null;
  /** The status pages listening to `/events`. */
  readonly #streams = new Set<ReadableStreamDefaultController<Uint8Array>>();

  constructor(source: AdminSource, access: AdminAccess) {
    this.#source = source;
    // A page on another site that a DNS name made point here (DNS rebinding) carries that name as its Host.
    this.#names = new Set(
      ["localhost", "127.0.0.1", "::1", access.hostname, ...access.hosts].map((name) => hostName(name)),
    );
    this.#token = access.token;
  }

  /** 421 for a `Host` that is not this listener's, 401 without the token; `null` when the request may go on. */
  #refused(request: Request, url: URL): Response | null {
    const host = request.headers.get("host");
    if (host === null || !this.#names.has(hostName(host))) return errorResponse(421, "Misdirected request");
    if (this.#token === null) return null;
    const header = request.headers.get("authorization");
    const given = header?.startsWith("Bearer ") ? header.slice(7) : url.searchParams.get("token");
    if (given !== null && sameSecret(given, this.#token)) return null;
    return errorResponse(401, "Unauthorized", { "www-authenticate": 'Bearer realm="forkyard admin"' });
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
    const url = new URL(request.url);
    const refused = this.#refused(request, url);
    if (refused !== null) return refused;
    const path = url.pathname;
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
