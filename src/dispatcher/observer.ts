/**
 * Watching every answer the dispatcher gives, for the access log and the
 * metrics: a request's trail is filled in on its way (pool, worker, trace id),
 * and its answer recorded once. A pool's answer is recorded as it is delivered
 * (see {@linkcode AnswerObserver.forwarding}), without a promise layer more.
 *
 * @module
 */

import type { LogRecord } from "@logtape/logtape";
import type { AdapterRequest } from "../runtime.ts";
import { accessEntry, type AccessTrail, combinedLine, jsonLine, newTrail, redactQuery } from "./access_log.ts";
import type { Metrics } from "./metrics.ts";

/**
 * Where a request's trail is kept: on its adapter object, not in a `WeakMap`, whose entries cost the collector more
 * than the request itself at tens of thousands a second.
 */
const TRAIL = Symbol("forkyard.trail");
type Tracked = AdapterRequest & { [TRAIL]?: AccessTrail };

/** The dispatcher's request handler. */
export type RequestHandler = (request: Request, extras: AdapterRequest) => Response | Promise<Response>;

/** What the observer records answers in. */
export interface ObserverSinks {
  /** The access log's format and writer, or `null` for none. */
  accessLog: {
    format: "combined" | "json";
    /** Query parameters whose values are written as `REDACTED`, in the URL and the Referer. */
    redact: ReadonlySet<string>;
    emit: (record: Omit<LogRecord, "category">) => void;
  } | null;
  /** The admin listener's metrics, or `null`. */
  metrics: Metrics | null;
  /** Called when recording fails. */
  failed(error: unknown): void;
}

/** Records each answer in the access log and the metrics. */
export class AnswerObserver {
  readonly #sinks: ObserverSinks;

  constructor(sinks: ObserverSinks) {
    this.#sinks = sinks;
  }

  /**
   * The observer the `accessLog` option (`false` for none) and the admin listener's metrics ask for, or `null` when
   * neither does; `emit` makes the access log's writer.
   */
  static forOptions(
    accessLog: false | "combined" | "json",
    redact: readonly string[],
    metrics: Metrics | null,
    how: {
      emit: (format: "combined" | "json") => (record: Omit<LogRecord, "category">) => void;
      failed: (error: unknown) => void;
    },
  ): AnswerObserver | null {
    if (accessLog === false && metrics === null) return null;
    const names = new Set(redact.map((name) => name.toLowerCase()));
    return new AnswerObserver({
      accessLog: accessLog === false ? null : { format: accessLog, redact: names, emit: how.emit(accessLog) },
      metrics,
      failed: how.failed,
    });
  }

  /** `handle`, with its answers recorded. */
  wrap(handle: RequestHandler): RequestHandler {
    return (request, extras) => {
      const trail = newTrail();
      (extras as Tracked)[TRAIL] = trail;
      const answer = handle(request, extras);
      if (answer instanceof Response) {
        if (!trail.forwarded) this.#record(request, extras, answer, trail);
        return answer;
      }
      if (trail.forwarded) return answer;
      return answer.then((response) => {
        if (!trail.forwarded) this.#record(request, extras, response, trail);
        return response;
      });
    };
  }

  /** The trail of the request `extras` belongs to. */
  trail(extras: AdapterRequest): AccessTrail | undefined {
    return (extras as Tracked)[TRAIL];
  }

  /**
   * The request is handed to a pool: returns the `resolve` to give the pool, which records the answer as it
   * delivers it.
   */
  forwarding(
    request: Request,
    extras: AdapterRequest,
    trail: AccessTrail,
    resolve: (response: Response) => void,
  ): (response: Response) => void {
    trail.forwarded = true;
    return (response) => {
      resolve(response);
      this.#record(request, extras, response, trail);
    };
  }

  #record(request: Request, extras: AdapterRequest, response: Response, trail: AccessTrail) {
    try {
      const entry = accessEntry(request, extras.remoteAddress(), response, trail);
      this.#sinks.metrics?.observe(entry.pool, entry.status, entry.duration);
      const log = this.#sinks.accessLog;
      if (log === null) return;
      entry.url = redactQuery(entry.url, log.redact);
      if (entry.referer !== null) entry.referer = redactQuery(entry.referer, log.redact);
      const time = Date.now();
      const line = log.format === "json" ? jsonLine(entry, time) : combinedLine(entry, time);
      // The entry is this request's own: its properties, not a copy.
      log.emit({
        level: "info",
        message: [line],
        rawMessage: line,
        timestamp: time,
        properties: entry as unknown as Record<string, unknown>,
      });
    } catch (error) {
      this.#sinks.failed(error);
    }
  }
}
