/**
 * A remote pool, on the dispatcher: the pool's requests go over NATS to the
 * worker hosts that run its workers (`forkyard worker --nats URL ...`), in
 * place of local processes. The requests wait in this dispatcher's queue until
 * some host has a free slot; each goes to one host (NATS queue group), whose
 * answer comes back on this dispatcher's inbox. Hosts say every heartbeat
 * what they can take; one that misses three is gone, and its requests fail as
 * a dead worker's do.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import type { PoolRequest, PoolStatus, WorkerPool } from "../pool.ts";
import { bodyLength, joinBody } from "../protocol/body.ts";
import { fromWire } from "../protocol/log_record.ts";
import { firstLine } from "../error_text.ts";
import { Answers, failure } from "../supervisor/answers.ts";
import { deadlineFor, NO_DEADLINE } from "../supervisor/deadlines.ts";
import { detachedRequest } from "../supervisor/detached.ts";
import type { PoolBackend, PoolHost } from "../supervisor/host.ts";
import { type ClientRequest, Pending } from "../supervisor/pending.ts";
import { RequestQueue } from "../supervisor/request_queue.ts";
import {
  BodyParts,
  decode,
  encode,
  type HostBeat,
  type HostLog,
  jsonMessage,
  M,
  parseJsonMessage,
  type RemoteAnswer,
  type RemoteRequest,
  splitBody,
} from "./messages.ts";
import { connectNats } from "./nats.ts";
import type { ResolvedRemote } from "./remote_options.ts";
import { MISSED_BEATS, type RemoteHost, RemoteHosts } from "./remote_hosts.ts";

/** A worker host, with the requests this dispatcher sent it. */
type Host = RemoteHost<Sent>;

/** A request sent to the pool's subject, until its answer ends. */
interface Sent {
  p: Pending<Host>;
  /** The host that took it, once it said so. */
  host: Host | null;
  /** Clock time it was sent. */
  at: number;
  /** Body parts still to send once a host took it. */
  rest: Uint8Array[];
  /** A whole answer's head and its body so far, while it arrives in parts. */
  answer: { head: RemoteAnswer; parts: BodyParts } | null;
}

/** Runs a pool whose workers are on other hosts, reached over NATS. */
export class RemotePool implements PoolBackend {
  readonly pool: WorkerPool;
  readonly #host: PoolHost;
  readonly #remote: ResolvedRemote;
  readonly #log: Logger;
  readonly #answers: Answers;
  readonly #queue = new RequestQueue<Pending<Host>>();
  readonly #hosts = new RemoteHosts<Sent>();
  readonly #sent = new Map<number, Sent>();
  /** Hosts gone, by why: counted as the `replacements()` of a local pool. */
  readonly #lost = new Map<string, number>();
  #nc: NatsConnection | null = null;
  #connected = false;
  /**
   * Clock time before which nothing is sent: set when a request found no host with room (no subscriber, or the one
   * it reached was full); a heartbeat with a free slot clears it.
   */
  #pausedUntil = 0;
  readonly #inbox = `_INBOX.forkyard.${crypto.randomUUID()}`;
  readonly #subs: Subscription[] = [];
  #started: Promise<void> | null = null;
  #nextDetached = -1;
  #stopping = false;
  #bootError: string | null = null;
  /** Ends the first connection's attempts when the pool stops before NATS was ever reached. */
  readonly #stop = new AbortController();

  constructor(pool: WorkerPool, host: PoolHost, remote: ResolvedRemote) {
    this.pool = pool;
    this.#host = host;
    this.#remote = remote;
    this.#log = host.logger;
    this.#answers = new Answers(host);
  }

  /** Connects to NATS; requests wait in the queue meanwhile. */
  start(): void {
    this.#started = this.#connect().catch((error) => {
      // Refused (credentials, TLS): the dispatcher does not start, as when a local pool's workers cannot.
      this.#bootError = `NATS at ${this.#remote.nats} refused the connection: ${firstLine(error)}`;
    });
  }

  async #connect() {
    const nc = await connectNats(this.#remote, `forkyard dispatcher ${this.#host.runtime.pid}`, (up) => {
      this.#connected = up;
      if (up) {
        this.#log.info("Pool {pool}: NATS connection back", { pool: this.pool.name });
        this.#pump();
      } else {
        this.#log.warning("Pool {pool}: NATS connection lost; its requests fail until it is back", {
          pool: this.pool.name,
        });
        this.#failAll(502, "Worker failed", 503, "Service unavailable");
      }
    }, this.#stop.signal);
    if (nc === null) return;
    if (this.#stopping) {
      await nc.close();
      return;
    }
    this.#nc = nc;
    this.#connected = true;
    const subject = this.#remote.subject;
    this.#subs.push(
      nc.subscribe(`${this.#inbox}.*`, { callback: (_e, msg) => this.#onReply(msg.subject, msg.data, msg.headers) }),
      nc.subscribe(`${subject}.hb`, { callback: (_e, msg) => this.#onBeat(msg.data) }),
      nc.subscribe(`${subject}.log`, { callback: (_e, msg) => this.#onLog(msg.data) }),
    );
    // The hosts' next heartbeat may be a second away: ask them for one now.
    nc.publish(`${subject}.hello`);
    this.#pump();
  }

  /** Resolves once connected, or after 2 s of trying (it keeps trying; requests get 503 meanwhile). */
  settled(): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const waited = new Promise<void>((resolve) => (timer = setTimeout(resolve, 2000)));
    return Promise.race([this.#started ?? Promise.resolve(), waited]).finally(() => clearTimeout(timer));
  }

  /** Why the pool cannot start: the NATS server refused it. No host yet is no failure: hosts may come later. */
  bootFailure(): string | null {
    return this.#bootError;
  }

  /** Never degraded: a pool without hosts queues its requests until their timeout. */
  get degraded(): boolean {
    return false;
  }

  /** Hosts lost, by why (`missed_heartbeats`, `nats`). */
  replacements(): ReadonlyMap<string, number> {
    return this.#lost;
  }

  /** Requests waiting for a host. */
  get queueSize(): number {
    return this.#queue.size;
  }

  /** Accepts a request from a client; its answer goes to `request.resolve`. */
  request(request: ClientRequest): Pending<Host> {
    const { id, client, wire, body, resolve, adapter } = request;
    const p = new Pending<Host>(id, client, this.pool, wire, body, resolve, adapter);
    if (request.upgrade !== null) {
      this.#answers.deliver(p, failure(p, 501, "WebSockets are not served by remote pools"));
      return p;
    }
    this.#submit(p);
    return p;
  }

  /** Sends a request nobody waits for. */
  sendDetached(request: PoolRequest): void {
    const id = this.#nextDetached--;
    const { wire, body } = detachedRequest(id, request);
    this.#submit(new Pending<Host>(id, null, this.pool, wire, body, null));
  }

  #submit(p: Pending<Host>) {
    p.deadline = deadlineFor(Date.now(), this.pool.options.timeout);
    if (!this.#connected) {
      this.#fail(p, 503, "Service unavailable");
      return;
    }
    this.#queue.push(p);
    this.#pump();
  }

  /** Requests any host may take now: every live host's slots, less what this dispatcher has sent. */
  #room(): number {
    // Before any heartbeat: one at a time, to find out.
    return Math.max(1, this.#hosts.slots()) - this.#sent.size;
  }

  /** Sends waiting requests while hosts have room. */
  #pump() {
    const nc = this.#nc;
    if (nc === null || !this.#connected || this.#stopping) return;
    let room = Date.now() < this.#pausedUntil ? 0 : this.#room();
    while (room > 0 && this.#queue.size > 0) {
      const p = this.#queue.shift()!;
      if (p.deadline === NO_DEADLINE) continue;
      if (this.#answers.abandoned(p)) continue;
      this.#send(nc, p);
      room--;
    }
  }

  #send(nc: NatsConnection, p: Pending<Host>) {
    const maxPayload = nc.info?.max_payload ?? 1024 * 1024;
    // An app pool's mount is the dispatcher's: the host's app sees the path below it, as a local app worker does.
    const mount = this.pool.mount ?? "";
    const wire = mount === "" ? p.wire : {
      ...p.wire,
      p: p.wire.p.slice(mount.length) || "/",
      ...(p.wire.r !== undefined ? { r: p.wire.r.slice(mount.length) || "/" } : {}),
    };
    const header: RemoteRequest = { w: wire, n: bodyLength(p.body), t: Math.max(1, p.deadline - Date.now()) };
    const [first, rest] = splitBody(joinBody(p.body), maxPayload, header);
    const sent: Sent = { p, host: null, at: Date.now(), rest, answer: null };
    this.#sent.set(p.requestId, sent);
    try {
      nc.publish(this.#remote.subject, encode(M.REQUEST, header, first), {
        reply: `${this.#inbox}.${p.requestId}`,
      });
    } catch (error) {
      this.#sent.delete(p.requestId);
      this.#log.warning("Pool {pool}: cannot send a request over NATS: {error}", { pool: this.pool.name, error });
      this.#fail(p, 503, "Service unavailable");
    }
  }

  #onReply(subject: string, data: Uint8Array, headers: { code: number } | undefined) {
    const id = Number(subject.slice(this.#inbox.length + 1));
    const sent = this.#sent.get(id);
    if (sent === undefined) return;
    const p = sent.p;
    if (headers !== undefined && headers.code === 503 && data.length === 0) {
      // No host subscribed: all are full, or none runs. Back to the queue's front until a host has room.
      this.#sendAgain(sent, 1000);
      return;
    }
    const message = decode(data);
    if (message === null) return;
    const { type, header, body } = message;
    if (type === M.BUSY) {
      // The host had just filled up (it leaves the queue group, but this one was on its way): soon to another.
      this.#sendAgain(sent, 50);
    } else if (type === M.ACK) {
      const { h: hostId, n: name } = header as { h: string; n?: string };
      const host = this.#hosts.acknowledged(hostId, name, Date.now());
      sent.host = host;
      p.worker = host;
      host.inflight.add(sent);
      for (const part of sent.rest) {
        this.#nc?.publish(`${this.#remote.subject}.host.${hostId}`, encode(M.BODY, { k: this.#replyOf(id) }, part));
      }
      sent.rest = [];
    } else if (type === M.ANSWER) {
      const head = header as RemoteAnswer;
      if (head.n === "stream") {
        this.#answers.startStream(p, { i: id, s: head.s, h: head.h }, () => this.#cancel(sent, "disconnect"));
      } else {
        sent.answer = { head, parts: new BodyParts(head.n) };
        const whole = sent.answer.parts.add(body);
        if (whole !== null) this.#complete(sent, head, whole);
      }
    } else if (type === M.CHUNK) {
      if (sent.answer !== null) {
        const whole = sent.answer.parts.add(body);
        if (whole !== null) this.#complete(sent, sent.answer.head, whole);
      } else if (p.stream !== null) {
        try {
          p.stream.enqueue(body.slice());
        } catch {
          // the client went away; the host hears of it from the stream's cancel
        }
      }
    } else if (type === M.KEEPALIVE) {
      if (p.deadline !== NO_DEADLINE) p.deadline = deadlineFor(Date.now(), this.pool.options.timeout);
    } else if (type === M.END) {
      this.#done(sent);
      this.#answers.endStream(p, (header as { e?: 1 }).e === 1);
      this.#pump();
    }
  }

  /** `sent` found no host with room: back to the queue's front, and nothing sent for `pauseMs`. */
  #sendAgain(sent: Sent, pauseMs: number) {
    this.#sent.delete(sent.p.requestId);
    this.#pausedUntil = Math.max(this.#pausedUntil, Date.now() + pauseMs);
    if (sent.p.deadline !== NO_DEADLINE) this.#queue.pushFront([sent.p]);
  }

  #complete(sent: Sent, head: RemoteAnswer, body: Uint8Array) {
    this.#done(sent);
    this.#answers.complete(sent.p, { i: sent.p.requestId, s: head.s, h: head.h }, body, false);
    this.#pump();
  }

  /** `sent` is answered (or given up): it leaves the books. */
  #done(sent: Sent) {
    this.#sent.delete(sent.p.requestId);
    sent.host?.inflight.delete(sent);
  }

  #replyOf(id: number): string {
    return `${this.#inbox}.${id}`;
  }

  /** Tells the host that took `sent` that nobody waits for it any more. */
  #cancel(sent: Sent, why: "timeout" | "disconnect" | "shutdown") {
    const host = sent.host;
    this.#done(sent);
    if (host !== null) {
      this.#nc?.publish(
        `${this.#remote.subject}.host.${host.beat.id}`,
        encode(M.CANCEL, { k: this.#replyOf(sent.p.requestId), w: why }),
      );
    }
    if (why === "disconnect") this.#host.finished(sent.p);
    this.#pump();
  }

  #onBeat(data: Uint8Array) {
    const beat = parseJsonMessage<HostBeat>(data);
    if (beat === undefined || beat === null) return;
    if (this.#hosts.beat(beat, Date.now()) !== null) {
      this.#log.info("Pool {pool}: worker host {name} (pid {pid}) joined with {workers} workers", {
        pool: this.pool.name,
        name: beat.name,
        pid: beat.pid,
        workers: beat.workers.length,
      });
    }
    if (beat.free > 0) this.#pausedUntil = 0;
    this.#pump();
  }

  #onLog(data: Uint8Array) {
    const log = parseJsonMessage<HostLog>(data);
    if (typeof log === "object" && log !== null && log.r !== undefined) {
      this.#host.log(fromWire(log.r, { host: log.host }));
    }
  }

  /** Once per tick: timeouts, hosts that went quiet, and a retry after hosts were full. */
  tick(now: number): void {
    // One timeout for all, in arrival order (retried ones, older, at the front): the expired are at the front.
    for (let p = this.#queue.peek(); p !== undefined && p.deadline <= now; p = this.#queue.peek()) {
      this.#queue.shift();
      if (p.deadline !== NO_DEADLINE) this.#timeout(p, null);
    }
    for (const sent of [...this.#sent.values()]) {
      if (sent.p.deadline <= now) this.#timeout(sent.p, sent);
      else if (sent.host === null && now - sent.at > 3000) {
        // Taken by no host that said so: one that took it died at once, or the message was lost.
        this.#sent.delete(sent.p.requestId);
        this.#lostRequest(sent);
      }
    }
    for (const host of this.#hosts.expire(now)) {
      this.#lost.set("missed_heartbeats", (this.#lost.get("missed_heartbeats") ?? 0) + 1);
      this.#log.error("Pool {pool}: worker host {name} missed {n} heartbeats; its {count} requests fail", {
        pool: this.pool.name,
        name: host.beat.name,
        n: MISSED_BEATS,
        count: host.inflight.size,
      });
      for (const sent of [...host.inflight]) {
        this.#sent.delete(sent.p.requestId);
        this.#lostRequest(sent);
      }
      host.inflight.clear();
    }
    this.#pump();
  }

  /** A request whose host is gone: 502, or, with `retryIdempotent`, a GET or HEAD goes to the queue's front again. */
  #lostRequest(sent: Sent) {
    const p = sent.p;
    sent.host?.inflight.delete(sent);
    if (this.pool.options.retryIdempotent && p.retryable) {
      p.retried = true;
      p.worker = null;
      this.#queue.pushFront([p]);
      return;
    }
    this.#fail(p, 502, "Worker failed");
  }

  #timeout(p: Pending<Host>, sent: Sent | null) {
    if (sent !== null) this.#cancel(sent, "timeout");
    p.deadline = NO_DEADLINE;
    this.#log.warning("Request {id} {method} {path} timed out after {timeout} ms", {
      requestId: p.wire.x,
      id: p.requestId,
      method: p.wire.m,
      path: p.wire.p,
      timeout: this.pool.options.timeout,
    });
    if (p.client === null && p.resolve === null) this.#host.finished(p);
    else this.#answers.deliver(p, failure(p, 504, "Request timeout"));
  }

  #fail(p: Pending<Host>, status: number, message: string) {
    this.#answers.fail(p, failure(p, status, message));
  }

  /** The NATS connection is lost: requests sent fail with `sentStatus`, queued ones with `queuedStatus`. */
  #failAll(sentStatus: number, sentMessage: string, queuedStatus: number, queuedMessage: string) {
    for (const sent of [...this.#sent.values()]) {
      this.#done(sent);
      this.#fail(sent.p, sentStatus, sentMessage);
    }
    for (const p of this.#queue.takeAll()) if (p.deadline !== NO_DEADLINE) this.#fail(p, queuedStatus, queuedMessage);
    if (this.#hosts.size > 0) this.#lost.set("nats", (this.#lost.get("nats") ?? 0) + 1);
    this.#hosts.clear();
  }

  /** Answers every waiting and sent request with `response()` (shutdown). */
  abortAll(response: () => Response): void {
    for (const sent of [...this.#sent.values()]) {
      this.#cancel(sent, "shutdown");
      this.#answers.fail(sent.p, response());
    }
    for (const p of this.#queue.takeAll()) if (p.deadline !== NO_DEADLINE) this.#answers.fail(p, response());
  }

  /** Closes the NATS connection. */
  async stop(_grace: number): Promise<void> {
    this.#stopping = true;
    this.#stop.abort();
    await this.#started;
    const nc = this.#nc;
    this.#nc = null;
    if (nc !== null) await nc.drain().catch(() => nc.close());
  }

  /** Every host's workers; `id`s numbered across hosts, `host` naming each one's host. */
  status(): PoolStatus {
    const { workers, queued } = this.#hosts.workers();
    return { name: this.pool.name, workers, queueSize: this.#queue.size + queued, degraded: false, spares: [] };
  }

  /** Config goes to every host, which passes it to its workers. */
  broadcastConfig(config: unknown): void {
    this.#nc?.publish(`${this.#remote.subject}.config`, jsonMessage(config ?? null));
  }

  /** Hosts decide their own size (`forkyard worker --workers N`). */
  scale(_workers: number): void {
    this.#log.warning("Pool {pool} is remote: its size is each worker host's --workers", { pool: this.pool.name });
  }

  /** Hosts reload on their own (SIGHUP to `forkyard worker`). */
  reload(): Promise<number> {
    return Promise.resolve(0);
  }
}
