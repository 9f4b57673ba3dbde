/**
 * What a pool's supervisor does with each frame a worker process sends:
 * answers go to the request dispatch, heartbeats and log records to the
 * supervisor's books and the dispatcher's log, WebSocket frames to the
 * dispatcher's socket hub. A frame of no known type marks the process as
 * broken.
 *
 * @module
 */

import type { PoolHost } from "../pool_backend.ts";
import type { WorkerPool } from "../pool.ts";
import {
  type EndHeader,
  F,
  type HeartbeatHeader,
  type IdHeader,
  type ResponseHeader,
  type SpillHeader,
  type StartHeader,
} from "../protocol/frames.ts";
import { fromWire, type WireRecord, workerCategory } from "../protocol/log_record.ts";
import type { Clock } from "../requests/clock.ts";
import { dueByMemory } from "./recycling.ts";
import type { WorkerDispatch } from "./worker_dispatch.ts";
import type { WorkerProcess } from "./worker_process.ts";

/** What the frames reach in the supervisor. */
export interface FrameContext {
  pool: WorkerPool;
  host: PoolHost;
  clock: Clock;
  dispatch: WorkerDispatch;
  /** `worker` said it is ready. */
  ready(worker: WorkerProcess): void;
  /** `worker` is over `maxMemoryMb`: replaced once its replacement is ready. */
  overMemory(worker: WorkerProcess, reason: string): void;
  /** `worker` sent what no worker sends: killed. */
  garbage(worker: WorkerProcess, reason: string): void;
}

/** The first line of a fatal record's error (its `error` property, else its message). */
function bootErrorOf(wire: WireRecord): string {
  const error = wire.p.error as { name?: string; message?: string } | undefined;
  if (error?.message !== undefined) return `${error.name ?? "Error"}: ${error.message}`.split("\n")[0];
  return wire.m.split("\n")[0];
}

/** Handles one frame from `worker`. */
export function onWorkerFrame(
  context: FrameContext,
  worker: WorkerProcess,
  type: number,
  header: unknown,
  body: Uint8Array,
  lent: boolean,
): void {
  worker.lastSeen = context.clock.now();
  const dispatch = context.dispatch;
  switch (type) {
    case F.RESPONSE:
      dispatch.answered(worker, header as ResponseHeader, body, lent);
      return;
    case F.HEARTBEAT: {
      worker.rss = (header as HeartbeatHeader).r;
      const due = dueByMemory(worker.rss, context.pool.options);
      if (due !== null) context.overMemory(worker, due);
      return;
    }
    case F.LOG:
      relayLog(context, worker, header as WireRecord);
      return;
    case F.START:
      dispatch.started(worker, header as StartHeader);
      return;
    case F.CHUNK:
      dispatch.chunk(worker, header as IdHeader, body);
      return;
    case F.END:
      dispatch.ended(worker, header as EndHeader);
      return;
    case F.READY:
      context.ready(worker);
      return;
    case F.KEEPALIVE:
      dispatch.keptAlive(worker);
      return;
    case F.PAUSE:
      worker.paused = true;
      return;
    case F.RELEASED:
      worker.writer.release((header as SpillHeader).p);
      return;
    case F.RESUME:
      worker.paused = false;
      dispatch.next(worker);
      return;
    case F.WS_SEND:
    case F.WS_CLOSE:
    case F.SUBSCRIBE:
    case F.UNSUBSCRIBE:
    case F.PUBLISH:
      context.host.sockets?.fromWorker(worker.writer, type, header, body, lent);
      return;
    default:
      context.garbage(worker, `sent an unknown frame type ${type}`);
  }
}

/** A worker's log record, to the dispatcher's log under its pool and worker. */
function relayLog(context: FrameContext, worker: WorkerProcess, wire: WireRecord) {
  if (worker.state === "starting" && wire.l === "fatal") worker.slot.bootError = bootErrorOf(wire);
  const pool = context.pool.name;
  const c = workerCategory(pool, wire.c);
  context.host.log(fromWire({ ...wire, c }, { pool, workerId: worker.slot.id, pid: worker.child.pid }));
}
