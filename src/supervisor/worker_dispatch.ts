/**
 * The local side of a request's life: which worker process takes it, each
 * worker's books (requests in flight, how busy it is, how many it served), and
 * the frames that carry requests out and answers back. The life itself (queue,
 * deadlines, retries, answers) is the pool's {@linkcode RequestLifecycle}.
 *
 * @module
 */

import type { WorkerPool } from "../pool.ts";
import {
  type CancelReason,
  type EndHeader,
  F,
  type IdHeader,
  type RequestHeader,
  type ResponseHeader,
  type StartHeader,
} from "../protocol/frames.ts";
import { CLOSE } from "../protocol/close_codes.ts";
import { recycleBody } from "../protocol/codec.ts";
import type { Runtime } from "../runtime.ts";
import type { Clock } from "../requests/clock.ts";
import { deadlineFor } from "../requests/deadlines.ts";
import { Pending } from "../requests/pending.ts";
import type { RequestLifecycle, Servers } from "../requests/request_lifecycle.ts";
import { checked, type HealthState } from "./health_check.ts";
import { chooseWorker } from "./worker_choice.ts";
import { isServing, type Slot, type WorkerProcess } from "./worker_process.ts";

/** What the dispatch needs from its supervisor. */
export interface DispatchContext {
  runtime: Runtime;
  clock: Clock;
  /** The pool's slots now. */
  slots(): readonly Slot[];
  /** Processes replaced or removed, finishing their requests. */
  draining(): Iterable<WorkerProcess>;
  /** `worker` was handed its `maxRequests`-th request. */
  atLimit(worker: WorkerProcess): void;
  /** `worker` answered a request (it may be due for recycling). */
  answeredBy(worker: WorkerProcess): void;
}

const EMPTY: Uint8Array = new Uint8Array(0);

/** Whether `w` may take a new request now. */
function takesRequests(w: WorkerProcess): boolean {
  return w.state === "ready" && !w.paused;
}

/** Whether `w` is draining and has nothing left to finish: it may be told to stop. */
function doneDraining(w: WorkerProcess): boolean {
  return w.state === "draining" && w.inflight.size === 0 && w.sockets.size === 0;
}

/** Hands a pool's requests to its worker processes and takes their answers. */
export class WorkerDispatch implements Servers<WorkerProcess> {
  readonly #pool: WorkerPool;
  readonly #requests: RequestLifecycle<WorkerProcess>;
  readonly #context: DispatchContext;
  #rotor = 0;

  constructor(pool: WorkerPool, requests: RequestLifecycle<WorkerProcess>, context: DispatchContext) {
    this.#pool = pool;
    this.#requests = requests;
    this.#context = context;
  }

  /** Sends `p` to the least busy worker that takes requests, if one does. */
  offer(p: Pending<WorkerProcess>): boolean {
    const slots = this.#context.slots();
    if (slots.length === 0) return false;
    this.#rotor = (this.#rotor + 1) % slots.length;
    const worker = chooseWorker(slots, this.#rotor, this.#pool.options.concurrency, takesRequests);
    if (worker === undefined) return false;
    worker.idleSince = 0;
    p.servedBy = worker;
    worker.inflight.set(p.requestId, p);
    worker.busy++;
    const file = p.bodyFile;
    if (file === undefined) worker.writer.send(F.REQUEST, p.wire, p.body);
    else worker.writer.sendSpilled(F.REQUEST, p.wire, file.path, file.length);
    if (++worker.assigned === worker.maxServed) this.#context.atLimit(worker);
    return true;
  }

  /** `p`'s worker is told to stop working on it (timeout, a client gone, shutdown). */
  withdraw(p: Pending<WorkerProcess>, why: CancelReason): void {
    const worker = p.servedBy;
    if (worker === null || !worker.inflight.has(p.requestId)) return;
    worker.writer.send(F.CANCEL, { i: p.requestId, w: why });
    // `left`: the worker still answers, and its answer frees the slot.
    if (why === "left") return;
    worker.inflight.delete(p.requestId);
    if (p.state === "sent") worker.busy--;
    this.next(worker);
  }

  /** `p`'s reader took `bytes` more of its streamed answer: its worker may send as many more. */
  credit(p: Pending<WorkerProcess>, bytes: number): void {
    const worker = p.servedBy;
    if (worker !== null && worker.inflight.has(p.requestId)) worker.writer.send(F.CREDIT, { i: p.requestId, n: bytes });
  }

  /** Every request the pool's processes hold: their own books. */
  *inflight(): Iterable<Pending<WorkerProcess>> {
    for (const slot of this.#context.slots()) {
      if (slot.worker !== null) yield* slot.worker.inflight.values();
      if (slot.standby !== null) yield* slot.standby.inflight.values();
    }
    for (const worker of this.#context.draining()) yield* worker.inflight.values();
  }

  /** A worker's whole answer. */
  answered(worker: WorkerProcess, h: ResponseHeader, body: Uint8Array, lent: boolean): void {
    const p = worker.inflight.get(h.i);
    if (p === undefined) {
      // timed out or cancelled: the client has its answer
      if (lent) recycleBody(body, this.#context.runtime.spill());
      if (h.s === 101) worker.writer.send(F.WS_CLOSED, { i: h.i, c: CLOSE.ABNORMAL, r: "" });
      return;
    }
    worker.inflight.delete(h.i);
    worker.busy--;
    worker.served++;
    if (h.s === 101) this.#accepted(worker, p, h);
    else this.#requests.complete(p, h, body, lent);
    this.#context.answeredBy(worker);
    this.next(worker);
  }

  /** A WebSocket handshake its worker accepted: the socket stays pinned to `worker`. */
  #accepted(worker: WorkerProcess, p: Pending<WorkerProcess>, h: ResponseHeader) {
    const origin = p.origin;
    // A client's handshake, or one a worker host relays for its dispatcher.
    const accept = origin.kind === "client" ? origin.upgrade : origin.kind === "relayed" ? origin.sink.upgrade : null;
    if (accept === null || accept === undefined) {
      // 101 to a request that was no handshake: the worker is confused.
      this.#requests.fail(p, 502, "Worker failed");
      return;
    }
    // The handshake's answer is the runtime's (the upgrade), given by the origin.
    const close = accept({
      writer: worker.writer,
      closed: (id) => {
        if (worker.sockets.delete(id) && doneDraining(worker)) worker.writer.send(F.STOP);
      },
    }, h);
    if (close !== null) worker.sockets.set(p.requestId, close);
    this.#requests.upgraded(p);
  }

  /** A worker's streamed answer begins. */
  started(worker: WorkerProcess, h: StartHeader): void {
    const p = worker.inflight.get(h.i);
    if (p === undefined) return;
    worker.busy--;
    this.#requests.startStream(p, h, () => this.#requests.cancel(p, "disconnect"));
    this.next(worker);
  }

  /** A part of a worker's streamed answer. */
  chunk(worker: WorkerProcess, h: IdHeader, body: Uint8Array): void {
    const p = worker.inflight.get(h.i);
    if (p !== undefined) this.#requests.chunk(p, body);
  }

  /** A worker's streamed answer ends. */
  ended(worker: WorkerProcess, h: EndHeader): void {
    const p = worker.inflight.get(h.i);
    if (p === undefined) return;
    worker.inflight.delete(h.i);
    worker.served++;
    this.#requests.endStream(p, h.e === 1);
    this.#context.answeredBy(worker);
    this.next(worker);
  }

  /** `worker` called `keepAlive()`: its requests' timeouts start again. */
  keptAlive(worker: WorkerProcess): void {
    for (const p of worker.inflight.values()) this.#requests.keepAlive(p);
  }

  /** A request left `worker`: give it the next one, or stop it when it is draining and idle. */
  next(worker: WorkerProcess): void {
    if (worker.inflight.size === 0) worker.idleSince = this.#context.clock.now();
    if (isServing(worker.state)) {
      if (this.#requests.queued > 0) this.#requests.pump();
    } else if (doneDraining(worker)) {
      worker.writer.send(F.STOP);
    }
  }

  /** `worker` is gone: its requests are lost with it (502, or another worker with `retryIdempotent`). */
  lost(worker: WorkerProcess): void {
    if (worker.inflight.size === 0) return;
    const lost = [...worker.inflight.values()];
    worker.inflight.clear();
    worker.busy = 0;
    this.#requests.lost(lost);
  }

  /**
   * Sends `worker` its health check: straight to it, beside its other requests, counted against nothing;
   * `failed` gets why, when its answer (504 when it timed out) says it is unhealthy.
   */
  checkHealth(worker: WorkerProcess, health: HealthState, now: number, failed: (reason: string) => void): void {
    const check = this.#pool.options.healthCheck!;
    health.checking = true;
    const id = this.#requests.nextDetachedId();
    const wire: RequestHeader = { i: id, m: "GET", p: (this.#pool.mount ?? "") + check.path, q: "", h: [], n: 1 };
    const p = new Pending<WorkerProcess>({
      kind: "check",
      id,
      wire,
      body: EMPTY,
      resolve: (response) => {
        void response.body?.cancel().catch(() => {});
        const reason = checked(health, check, response.status, this.#context.clock.now());
        if (reason !== null) failed(reason);
      },
    }, this.#pool);
    p.deadline = deadlineFor(now, check.timeout);
    p.servedBy = worker;
    worker.inflight.set(id, p);
    worker.busy++;
    this.#requests.sentDirectly(p);
    worker.writer.send(F.REQUEST, wire);
  }
}
