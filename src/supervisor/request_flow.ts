/**
 * The requests of a pool on their way: accepted, queued, handed to the least
 * busy worker, answered, timed out, failed when their worker dies. The
 * supervisor owns the processes; this part owns the requests.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import type { PoolRequest, WorkerPool } from "../pool.ts";
import { type CancelReason, type EndHeader, F, type ResponseHeader, type StartHeader } from "../protocol/frames.ts";
import { type Answers, failure } from "./answers.ts";
import type { Clock } from "./clock.ts";
import { collectExpired, deadlineFor, NO_DEADLINE } from "./deadlines.ts";
import { detachedRequest } from "./detached.ts";
import type { PoolHost } from "./host.ts";
import { type ClientRequest, Pending } from "./pending.ts";
import { RequestQueue } from "./request_queue.ts";
import { chooseWorker } from "./worker_choice.ts";
import { isServing, type Slot, type WorkerProcess } from "./worker_process.ts";

/** What the request flow needs from its supervisor. */
export interface FlowContext {
  host: PoolHost;
  log: Logger;
  clock: Clock;
  answers: Answers;
  /** The pool's slots now. */
  slots(): readonly Slot[];
  /** Processes replaced or removed, finishing their requests. */
  draining(): Iterable<WorkerProcess>;
  /** Whether the pool is shutting down. */
  stopping(): boolean;
  /** `worker` was handed its `maxRequests`-th request. */
  atLimit(worker: WorkerProcess): void;
  /** `worker` answered a request (it may be due for recycling). */
  answeredBy(worker: WorkerProcess): void;
  /** A WebSocket pinned to `worker` closed. */
  socketClosed(worker: WorkerProcess): void;
}

/** Whether `w` may take a new request now. */
function takesRequests(w: WorkerProcess): boolean {
  return w.state === "ready" && !w.paused;
}

/** A pool's requests: the queue, the choice of worker, answers, deadlines and failures. */
export class RequestFlow {
  readonly #pool: WorkerPool;
  readonly #context: FlowContext;
  #queue = new RequestQueue<Pending<WorkerProcess>>();
  #queueWarned = false;
  #rotor = 0;
  #nextDetachedId = -1;

  constructor(pool: WorkerPool, context: FlowContext) {
    this.#pool = pool;
    this.#context = context;
  }

  /** The request waiting longest, if any. */
  oldestQueued(): Pending<WorkerProcess> | undefined {
    return this.#queue.peek();
  }

  /** An id for a request no client waits for (fire-and-forget, health checks): negative, never reused. */
  nextDetachedId(): number {
    return this.#nextDetachedId--;
  }

  /** A worker's whole answer. */
  answered(worker: WorkerProcess, h: ResponseHeader, body: Uint8Array, lent: boolean) {
    const p = worker.inflight.get(h.i);
    if (p === undefined) {
      // timed out or cancelled: the client has its answer
      this.#context.answers.discard(body, lent);
      if (h.s === 101) worker.writer.send(F.WS_CLOSED, { i: h.i, c: 1006, r: "" });
      return;
    }
    worker.inflight.delete(h.i);
    worker.busy--;
    worker.served++;
    if (h.s === 101) this.#accepted(worker, p, h);
    else this.#context.answers.complete(p, h, body, lent);
    this.#context.answeredBy(worker);
    this.next(worker);
  }
  /** A WebSocket handshake its worker accepted: the socket stays pinned to `worker`. */
  #accepted(worker: WorkerProcess, p: Pending<WorkerProcess>, h: ResponseHeader) {
    if (p.upgrade === null) {
      // 101 to a request that was no handshake: the worker is confused.
      this.#context.answers.fail(p, failure(p, 502, "Worker failed"));
      return;
    }
    // The handshake's answer is the runtime's (the upgrade), given by p.upgrade.
    const close = p.upgrade({
      writer: worker.writer,
      closed: (id) => {
        if (worker.sockets.delete(id)) this.#context.socketClosed(worker);
      },
    }, h);
    if (close !== null) worker.sockets.set(p.requestId, close);
    p.resolve = null;
    this.#context.host.finished(p);
  }

  /** A worker's streamed answer begins. */
  started(worker: WorkerProcess, h: StartHeader) {
    const p = worker.inflight.get(h.i);
    if (p === undefined) return;
    worker.busy--;
    this.#context.answers.startStream(p, h, () => {
      // The client went away mid-stream.
      if (worker.inflight.delete(p.requestId)) {
        worker.writer.send(F.CANCEL, { i: p.requestId, w: "disconnect" });
        this.#context.host.finished(p);
      }
    });
    this.next(worker);
  }
  /** A worker's streamed answer ends. */
  ended(worker: WorkerProcess, h: EndHeader) {
    const p = worker.inflight.get(h.i);
    if (p === undefined) return;
    worker.inflight.delete(h.i);
    worker.served++;
    this.#context.answers.endStream(p, h.e === 1);
    this.#context.answeredBy(worker);
    this.next(worker);
  }
  /** Accepts a request from a client; its answer goes to `request.resolve`. Returns it pending, to follow it. */
  request(request: ClientRequest): Pending<WorkerProcess> {
    const { id, client, wire, body, resolve, adapter } = request;
    const p = new Pending<WorkerProcess>(id, client, this.#pool, wire, body, resolve, adapter);
    p.upgrade = request.upgrade;
    this.#submit(p);
    return p;
  }
  #submit(p: Pending<WorkerProcess>) {
    p.deadline = deadlineFor(this.#context.clock.now(), this.#pool.options.timeout);
    const worker = this.#queue.size === 0 ? this.#pick() : undefined;
    if (worker !== undefined) this.#dispatch(p, worker);
    else this.#enqueue(p);
  }
  /** Sends a request nobody waits for (`WorkerPool.send`). */
  sendDetached(request: PoolRequest): void {
    const id = this.nextDetachedId();
    const { wire, body } = detachedRequest(id, request);
    this.#submit(new Pending<WorkerProcess>(id, null, this.#pool, wire, body, null));
  }
  #enqueue(p: Pending<WorkerProcess>) {
    this.#queue.push(p);
    const warnAt = this.#pool.options.queueWarning;
    if (warnAt > 0 && !this.#queueWarned && this.#queue.size > warnAt) {
      this.#queueWarned = true;
      this.#context.log.warning("Pool {pool} has {size} requests waiting (queueWarning {limit})", {
        pool: this.#pool.name,
        size: this.#queue.size,
        limit: warnAt,
      });
    }
  }
  /** Requests waiting for a worker. */
  get queueSize(): number {
    return this.#queue.size;
  }
  #pick(): WorkerProcess | undefined {
    const n = this.#context.slots().length;
    if (n === 0) return undefined;
    this.#rotor = (this.#rotor + 1) % n;
    return chooseWorker(this.#context.slots(), this.#rotor, this.#pool.options.concurrency, takesRequests);
  }
  #dispatch(p: Pending<WorkerProcess>, worker: WorkerProcess) {
    worker.idleSince = 0;
    p.worker = worker;
    worker.inflight.set(p.requestId, p);
    worker.busy++;
    worker.writer.send(F.REQUEST, p.wire, p.body);
    if (++worker.assigned === worker.maxServed) this.#context.atLimit(worker);
  }
  /** A request left `worker`: give it the next one, or stop it when it is draining and idle. */
  next(worker: WorkerProcess) {
    if (worker.inflight.size === 0) worker.idleSince = this.#context.clock.now();
    if (isServing(worker.state)) {
      if (this.#queue.size > 0) this.drain();
    } else if (worker.state === "draining" && worker.inflight.size === 0 && worker.sockets.size === 0) {
      worker.writer.send(F.STOP);
    }
  }
  /** Hands waiting requests to workers while some can take them. */
  drain() {
    for (let p = this.#queue.peek(); p !== undefined; p = this.#queue.peek()) {
      if (p.deadline === NO_DEADLINE) {
        // answered already (timed out)
        this.#queue.shift();
        continue;
      }
      if (this.#context.answers.abandoned(p)) {
        this.#queue.shift();
        continue;
      }
      const worker = this.#pick();
      if (worker === undefined) break;
      this.#queue.shift();
      this.#dispatch(p, worker);
    }
    if (this.#queueWarned && this.#queue.size <= this.#pool.options.queueWarning) this.#queueWarned = false;
  }
  /** `worker` is gone: its requests fail with 502, or, with `retryIdempotent`, GET and HEAD go to another. */
  failInflight(worker: WorkerProcess) {
    if (worker.inflight.size === 0) return;
    const retry = this.#pool.options.retryIdempotent && !this.#context.stopping();
    const requeue: Pending<WorkerProcess>[] = [];
    for (const p of worker.inflight.values()) {
      if (retry && p.retryable) {
        p.retried = true;
        p.worker = null;
        requeue.push(p);
      } else {
        this.#context.answers.fail(p, failure(p, 502, "Worker failed"));
      }
    }
    worker.inflight.clear();
    worker.busy = 0;
    if (requeue.length > 0) {
      this.#queue.pushFront(requeue);
      this.drain();
    }
  }
  /** Answers every waiting request with `response()`. */
  failQueued(response: () => Response) {
    for (const p of this.#queue.takeAll()) {
      if (p.resolve !== null || p.client === null) this.#context.answers.fail(p, response());
    }
  }
  /** Times out the requests whose deadline has passed, queued or in flight. */
  expire(now: number) {
    const expired = collectExpired(this.#queue, now, []);
    for (const slot of this.#context.slots()) {
      if (slot.worker !== null && slot.worker.inflight.size > 0) {
        collectExpired(slot.worker.inflight.values(), now, expired);
      }
      if (slot.standby !== null && slot.standby.inflight.size > 0) {
        collectExpired(slot.standby.inflight.values(), now, expired);
      }
    }
    for (const w of this.#context.draining()) {
      if (w.inflight.size > 0) collectExpired(w.inflight.values(), now, expired);
    }
    for (const p of expired) this.#timeout(p);
  }
  #timeout(p: Pending<WorkerProcess>) {
    p.deadline = NO_DEADLINE;
    const worker = p.worker;
    if (worker !== null) {
      if (!worker.inflight.delete(p.requestId)) return;
      worker.busy--;
      worker.writer.send(F.CANCEL, { i: p.requestId, w: "timeout" });
    }
    // A health check's timeout is the check's to report.
    if (p.client !== null || p.resolve === null) {
      this.#context.log.warning("Request {id} {method} {path} timed out after {timeout} ms", {
        requestId: p.wire.x,
        id: p.requestId,
        method: p.wire.m,
        path: p.wire.p,
        timeout: this.#pool.options.timeout,
      });
    }
    if (p.client === null && p.resolve === null) {
      this.#context.host.finished(p);
    } else {
      this.#context.answers.deliver(p, failure(p, 504, "Request timeout"));
    }
    if (worker !== null) this.next(worker);
  }
  /**
   * Nobody waits for `p` any more (a remote dispatcher gave it up): its worker, if it has one, is told, and `p`
   * leaves without an answer. A stream is ended by cancelling its body instead.
   */
  cancel(p: Pending<WorkerProcess>, why: CancelReason) {
    if (p.stream !== null || p.deadline === NO_DEADLINE) return;
    p.deadline = NO_DEADLINE;
    p.resolve = null;
    const worker = p.worker;
    if (worker === null) {
      // queued: drain() drops it
      this.#context.host.finished(p);
      return;
    }
    if (!worker.inflight.delete(p.requestId)) return;
    worker.busy--;
    worker.writer.send(F.CANCEL, { i: p.requestId, w: why });
    this.#context.host.finished(p);
    this.next(worker);
  }
  /** Answers every waiting and in-flight request with `response()`. */
  abortAll(response: () => Response): void {
    this.failQueued(response);
    for (const slot of this.#context.slots()) {
      const w = slot.worker;
      if (w === null) continue;
      for (const p of w.inflight.values()) {
        w.writer.send(F.CANCEL, { i: p.requestId, w: "shutdown" });
        this.#context.answers.fail(p, response());
      }
      w.inflight.clear();
      w.busy = 0;
    }
  }
}
