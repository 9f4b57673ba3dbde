/**
 * A request's life in a pool, the same for local worker processes and for a
 * remote pool's worker hosts:
 *
 * 1. **admitted** with a deadline (`timeout` from now), or refused at once (a remote pool without NATS: 503);
 * 2. **queued** until a server can take it (requests whose client left meanwhile are settled with 499);
 * 3. **sent** to a server ({@linkcode Servers.offer});
 * 4. **answered** whole, or **streaming** (no deadline from then on) until its end;
 * 5. or **timed out** (504, its server told to cancel), **lost** with its server (502, or, with
 *    `retryIdempotent`, a GET or HEAD back to the queue's front for another), **cancelled** (nobody waits any
 *    more), or **aborted** at shutdown.
 *
 * A client's answer becomes a `Response` here, once; a worker host relays its
 * worker's frames unmade ({@linkcode RelaySink}). What serves requests (`S`)
 * is the backend's: the lifecycle reaches it through {@linkcode Servers}.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import type { Runtime } from "../runtime.ts";
import type { PoolRequest, WorkerPool } from "../pool.ts";
import { recycleBody } from "../protocol/codec.ts";
import { errorBody } from "../protocol/results.ts";
import { type CancelReason, KIND, type ResponseHeader, type StartHeader } from "../protocol/frames.ts";
import { answerWhole, failure, openStream, resolveWith } from "./answers.ts";
import type { Clock } from "./clock.ts";
import { collectExpired, deadlineFor, NO_DEADLINE } from "./deadlines.ts";
import { detachedRequest } from "./detached.ts";
import { type ClientOrigin, type ClientRequest, Pending } from "./pending.ts";
import { RequestQueue } from "./request_queue.ts";

const encoder = new TextEncoder();

/** What serves a pool's requests, as the lifecycle reaches it. */
export interface Servers<S> {
  /** Hands `p` to a server that can take it now (setting `p.servedBy` once it is known); false when none can. */
  offer(p: Pending<S>): boolean;
  /**
   * `p` is no longer wanted from its server (`why`): the server is told, and its books let go of `p`; for `left`,
   * they keep it until the server answers.
   */
  withdraw(p: Pending<S>, why: CancelReason): void;
  /** The client of `p`'s streamed answer took `bytes` more of it: its server may send as many more. */
  credit(p: Pending<S>, bytes: number): void;
  /** Every request its servers hold (sent or streaming): the books are theirs, kept per server. */
  inflight(): Iterable<Pending<S>>;
}

/** An answer of the pool's own: a status and the message of its JSON error body. */
export interface Refusal {
  status: number;
  message: string;
}

/** What the lifecycle needs around it. */
export interface LifecycleContext {
  pool: WorkerPool;
  runtime: Runtime;
  /** A request left the pool (answered, failed or dropped): the process's count of pending requests. */
  finished(pending: Pending): void;
  log: Logger;
  clock: Clock;
}

/** The requests of one pool, from admission to answer. */
export class RequestLifecycle<S> {
  readonly #pool: WorkerPool;
  readonly #runtime: Runtime;
  readonly #finished: (pending: Pending) => void;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #servers: Servers<S>;
  readonly #queue = new RequestQueue<Pending<S>>();
  #queueWarned = false;
  #nextDetached = -1;
  /** Set once the pool stops: lost requests are no longer retried. */
  stopping = false;

  /** `servers` makes what serves the requests, given the lifecycle (each reaches the other). */
  constructor(context: LifecycleContext, servers: (requests: RequestLifecycle<S>) => Servers<S>) {
    this.#pool = context.pool;
    this.#runtime = context.runtime;
    this.#finished = context.finished;
    this.#log = context.log;
    this.#clock = context.clock;
    this.#servers = servers(this);
  }

  /** Requests waiting for a server. */
  get queued(): number {
    return this.#queue.size;
  }

  /** The request waiting longest, if any. */
  oldestQueued(): Pending<S> | undefined {
    return this.#queue.peek();
  }

  /** An id for a request no client waits for (fire-and-forget, health checks): negative, never reused. */
  nextDetachedId(): number {
    return this.#nextDetached--;
  }

  /** Admits a request (or answers it with `refusal` at once); returns it pending, to follow it. */
  admit(request: ClientRequest, refusal: Refusal | null = null): Pending<S> {
    const p = new Pending<S>(request, this.#pool);
    if (refusal !== null) this.fail(p, refusal.status, refusal.message);
    else {
      this.#submit(p);
      if (p.origin.kind === "client") this.#watchClient(p, p.origin);
    }
    return p;
  }

  /**
   * A client that leaves takes its request with it: queued, it is never sent; streaming, it is cancelled; sent, see
   * {@linkcode RequestLifecycle.clientLeft}.
   */
  #watchClient(p: Pending<S>, origin: ClientOrigin) {
    const gone = () => {
      if (p.state === "queued") this.fail(p, 499, "Client closed request");
      else if (p.state === "streaming") this.cancel(p, "disconnect");
      else this.clientLeft(p);
    };
    if (origin.adapter.onClose !== undefined) origin.adapter.onClose(gone);
    else origin.request.signal.addEventListener("abort", gone, { once: true });
  }

  /** Admits a request nobody waits for (`WorkerPool.send`). */
  admitDetached(request: PoolRequest, refusal: Refusal | null = null): void {
    const id = this.nextDetachedId();
    const { wire, body } = detachedRequest(id, request);
    this.admit({ kind: "detached", id, wire, body, resolve: null }, refusal);
  }

  #submit(p: Pending<S>) {
    p.deadline = deadlineFor(this.#clock.now(), this.#pool.options.timeout);
    if (this.#queue.size === 0 && this.#servers.offer(p)) {
      p.state = "sent";
      return;
    }
    this.#queue.push(p);
    const warnAt = this.#pool.options.queueWarning;
    if (warnAt > 0 && !this.#queueWarned && this.#queue.size > warnAt) {
      this.#queueWarned = true;
      this.#log.warning("Pool {pool} has {size} requests waiting (queueWarning {limit})", {
        pool: this.#pool.name,
        size: this.#queue.size,
        limit: warnAt,
      });
    }
  }

  /** `p` was sent to a server past the queue (a health check): it is followed for its deadline and answer. */
  sentDirectly(p: Pending<S>): void {
    p.state = "sent";
  }

  /** Offers waiting requests to the servers while they take them. */
  pump(): void {
    for (let p = this.#queue.peek(); p !== undefined; p = this.#queue.peek()) {
      if (p.state !== "queued" || this.#abandoned(p)) {
        this.#queue.shift();
        continue;
      }
      if (!this.#servers.offer(p)) break;
      this.#queue.shift();
      p.state = "sent";
    }
    if (this.#queueWarned && this.#queue.size <= this.#pool.options.queueWarning) this.#queueWarned = false;
  }

  /**
   * Whether queued `p`'s client left: then it is settled with 499 (nginx's code for a client that closed the
   * request) instead of being sent, so that no server holds an answer that would never be read.
   */
  #abandoned(p: Pending<S>): boolean {
    if (p.origin.kind !== "client" || !p.origin.request.signal.aborted) return false;
    this.fail(p, 499, "Client closed request");
    return true;
  }

  /** `p` went to no server after all (the one it reached was full): back to the queue's front, not as a retry. */
  requeue(p: Pending<S>): void {
    if (p.state !== "sent") return;
    p.state = "queued";
    p.servedBy = null;
    this.#queue.pushFront([p]);
  }

  /**
   * The server of `lost` is gone (the backend has let go of them): each fails with 502, or, with
   * `retryIdempotent`, a GET or HEAD goes back to the queue's front for another server.
   */
  lost(lost: Iterable<Pending<S>>): void {
    const retry = this.#pool.options.retryIdempotent && !this.stopping;
    const again: Pending<S>[] = [];
    for (const p of lost) {
      if (p.state === "done" || p.state === "queued") continue;
      if (retry && p.retryable) {
        p.retried = true;
        p.servedBy = null;
        p.state = "queued";
        again.push(p);
      } else {
        this.fail(p, 502, "Worker failed");
      }
    }
    if (again.length > 0) {
      this.#queue.pushFront(again);
      this.pump();
    }
  }

  /** `p`'s whole answer; `lent` bytes are given back once sent. */
  complete(p: Pending<S>, h: ResponseHeader, body: Uint8Array, lent: boolean): void {
    if (p.state === "done") return;
    p.deadline = NO_DEADLINE;
    if (p.origin.kind === "relayed") {
      p.origin.sink.whole(h, body);
      if (lent) recycleBody(body, this.#runtime.spill());
    } else {
      answerWhole(p, h, body, lent, this.#runtime);
    }
    this.#finish(p);
  }

  /** `p`'s streamed answer begins; `cancelled` runs when its client goes away mid-stream. */
  startStream(p: Pending<S>, h: StartHeader, cancelled: () => void): void {
    if (p.state !== "sent") return;
    p.state = "streaming";
    p.deadline = NO_DEADLINE;
    if (p.origin.kind === "relayed") p.origin.sink.start(h);
    else openStream(p, h, (bytes) => this.credit(p, bytes), cancelled, !this.#runtime.setHeaderAfter);
  }

  /** `p`'s reader took `bytes` more of its streamed answer (a relayed one's, as its dispatcher says): its server is told. */
  credit(p: Pending<S>, bytes: number): void {
    if (p.state === "streaming") this.#servers.credit(p, bytes);
  }

  /** A part of `p`'s streamed answer. */
  chunk(p: Pending<S>, body: Uint8Array): void {
    if (p.state !== "streaming") return;
    if (p.origin.kind === "relayed") {
      p.origin.sink.chunk(body);
      return;
    }
    p.stream?.push(body);
  }

  /** `p`'s streamed answer ended, or `failed` in the worker. */
  endStream(p: Pending<S>, failed: boolean): void {
    if (p.state !== "streaming") return;
    if (p.origin.kind === "relayed") p.origin.sink.end(failed);
    else p.stream?.end(failed);
    this.#finish(p);
  }

  /** `p`'s worker called `keepAlive()`: its timeout starts again (not once it streams). */
  keepAlive(p: Pending<S>): void {
    if (p.state !== "sent") return;
    p.deadline = deadlineFor(this.#clock.now(), this.#pool.options.timeout);
    if (p.origin.kind === "relayed") p.origin.sink.keptAlive();
  }

  /** `p` was a WebSocket handshake its server accepted: the socket lives on, the request is done. */
  upgraded(p: Pending<S>): void {
    p.resolve = null;
    this.#finish(p);
  }

  /**
   * Nobody waits for `p` any more (the dispatcher that sent it to this worker host gave it up, or a streamed
   * answer's client left): its server is told, and `p` leaves without an answer.
   */
  cancel(p: Pending<S>, why: CancelReason): void {
    if (why === "left") return this.clientLeft(p);
    if (p.state === "done") return;
    p.resolve = null;
    if (p.state !== "queued") this.#servers.withdraw(p, why);
    // a queued one is dropped by pump()
    this.#finish(p);
  }

  /**
   * `p`'s client left while its server works on it: the server is told (a worker's `req.signal` aborts,
   * `onDisconnect(requestId)` runs) and `p` keeps its slot until the answer, which goes nowhere, or its deadline; a
   * handler that ignores it would otherwise share its worker with the next request while another worker idles.
   */
  clientLeft(p: Pending<S>): void {
    if (p.state === "sent") this.#servers.withdraw(p, "left");
  }

  /** Times out the requests whose deadline has passed, queued or sent. */
  expire(now: number): void {
    const expired = collectExpired(this.#queue, now, []);
    collectExpired(this.#servers.inflight(), now, expired);
    for (const p of expired) this.#timeout(p);
  }

  #timeout(p: Pending<S>) {
    if (p.state === "done") return;
    if (p.state === "sent") this.#servers.withdraw(p, "timeout");
    // A health check's timeout is the check's to report; a relayed request's, its dispatcher's.
    if (p.origin.kind === "client" || p.origin.kind === "detached") {
      this.#log.warning("Request {id} {method} {path} timed out after {timeout} ms", {
        requestId: p.wire.x,
        id: p.requestId,
        method: p.wire.m,
        path: p.wire.p,
        timeout: this.#pool.options.timeout,
      });
    }
    this.fail(p, 504, "Request timeout");
  }

  /** Answers every waiting request with `status` (a degraded pool: 503). */
  failQueued(status: number, message: string): void {
    for (const p of this.#queue.takeAll()) this.fail(p, status, message);
  }

  /** Answers every sent request with `status` (the backend has let go of them: its link is down). */
  failSent(status: number, message: string): void {
    for (const p of [...this.#servers.inflight()]) this.fail(p, status, message);
  }

  /** Answers every waiting and sent request with `status` (shutdown); servers are told to cancel. */
  abortAll(status: number, message: string): void {
    this.stopping = true;
    this.failQueued(status, message);
    for (const p of [...this.#servers.inflight()]) {
      if (p.state === "sent" || p.state === "streaming") this.#servers.withdraw(p, "shutdown");
      this.fail(p, status, message);
    }
  }

  /** `p` ends without its answer: `status` to whoever waits, or a stream broken off. */
  fail(p: Pending<S>, status: number, message: string) {
    if (p.state === "done") return;
    if (p.state === "streaming") {
      if (p.origin.kind === "relayed") p.origin.sink.end(true);
      else p.stream?.end(true);
    } else if (p.origin.kind === "relayed") {
      p.origin.sink.whole({ i: p.requestId, s: status, k: KIND.JSON }, encoder.encode(errorBody(message)));
    } else if (p.resolve !== null) {
      resolveWith(p, failure(p, status, message));
    }
    this.#finish(p);
  }

  /** `p` is done: it leaves the books, and the dispatcher's count. */
  #finish(p: Pending<S>) {
    p.state = "done";
    p.deadline = NO_DEADLINE;
    this.#finished(p);
  }
}
