/**
 * A handler's `Response`, relayed to the dispatcher: in one `RESPONSE` frame when its body is complete within a
 * turn of the event loop, else as `START`, `CHUNK`s and `END` while the body is produced.
 *
 * @module
 */

import type { FrameWriter } from "../protocol/codec.ts";
import { F, KIND, STREAM_WINDOW } from "../protocol/frames.ts";
import { flattenHeaders } from "../protocol/results.ts";
import type { WorkerLogger } from "../logging/worker_logger.ts";
import type { WorkerRequest } from "./request.ts";

/** A request in progress in a worker, and the reader of its streamed answer once there is one (a cancel stops it). */
export interface Inflight {
  request: WorkerRequest;
  reader?: ReadableStreamDefaultReader<Uint8Array>;
  /** A streamed answer's bytes its reader has taken (`CREDIT` frames), and the relay waiting for more, if it is. */
  credited?: number;
  wake?: (() => void) | null;
  /**
   * What else a cancel ends: a request-listener app's response (its `aborted` and `close`); true when none of its
   * answer had been sent.
   */
  cancel?: () => boolean;
  /** Its client left (a `left` cancel): told once. */
  left?: boolean;
}

/** Credit came for `entry`'s streamed answer, or it was cancelled: a relay waiting for either goes on. */
export function wakeRelay(entry: Inflight): void {
  const wake = entry.wake;
  entry.wake = null;
  wake?.();
}

/** What a relay asks of its worker. */
export interface RelayHooks {
  /** Whether the request still waits for its answer (it was not cancelled). */
  live(): boolean;
  log: WorkerLogger;
  /** Called once the answer has been sent, or abandoned because the request was cancelled. */
  done(): void;
}

const TICK = Symbol("tick");

/** Sends `response` as the answer to request `id`; never rejects. */
export async function relayResponse(
  writer: FrameWriter,
  id: number,
  entry: Inflight,
  response: Response,
  { live, log, done }: RelayHooks,
): Promise<void> {
  const head = { i: id, s: response.status, k: KIND.HEADERS, h: flattenHeaders(response.headers) };
  if (response.body === null) {
    writer.send(F.RESPONSE, head);
    done();
    return;
  }
  const reader = response.body.getReader();
  entry.reader = reader;
  try {
    const first = await reader.read();
    if (first.done) {
      if (live()) writer.send(F.RESPONSE, head);
      done();
      return;
    }
    let next: Promise<ReadableStreamReadResult<Uint8Array>> | undefined = reader.read();
    // A body that is already complete finishes within this turn's microtasks: wait one turn, not a timer.
    const second = await Promise.race([next, new Promise<typeof TICK>((r) => setImmediate(r, TICK))]);
    if (second !== TICK && second.done) {
      if (live()) writer.send(F.RESPONSE, head, first.value);
      done();
      return;
    }
    if (!live()) return done();
    writer.send(F.START, head);
    writer.send(F.CHUNK, { i: id }, first.value);
    entry.credited = 0;
    let sent = first.value.length;
    if (second !== TICK) {
      writer.send(F.CHUNK, { i: id }, second.value);
      sent += second.value.length;
      next = undefined;
    }
    for (;;) {
      // No more than a window ahead of what the client took: a slow client slows this stream, not the dispatcher.
      while (sent - entry.credited > STREAM_WINDOW && live()) await new Promise<void>((r) => (entry.wake = r));
      const chunk = await (next ?? reader.read());
      next = undefined;
      if (!live()) return done();
      if (chunk.done) break;
      writer.send(F.CHUNK, { i: id }, chunk.value);
      sent += chunk.value.length;
    }
    writer.send(F.END, { i: id });
  } catch (error) {
    if (!live()) return done();
    log.error("Response body of {method} {path} failed: {error}", {
      method: entry.request.method,
      path: entry.request.path,
      error,
    });
    writer.send(F.END, { i: id, e: 1 });
  }
  done();
}
