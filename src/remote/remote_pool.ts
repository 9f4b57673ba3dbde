/**
 * A remote pool, on the dispatcher: the pool's requests go over NATS to the worker hosts that run its workers
 * (`forkyard worker --nats URL ...`), in place of local processes. The requests wait in this dispatcher's queue until
 * some host has a free slot; each goes to one host (NATS queue group), whose answer comes back on this dispatcher's
 * inbox. Hosts say every heartbeat what they can take; one that misses three is gone, its requests failed as a dead
 * worker's are.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import type { PoolRequest, PoolStatus, WorkerPool } from "../pool.ts";
import type { PoolBackend, PoolHost } from "../pool_backend.ts";
import { bodyLength } from "../protocol/body.ts";
import type { CancelReason } from "../protocol/frames.ts";
import { fromWire, workerCategory } from "../protocol/log_record.ts";
import { firstLine } from "../error_text.ts";
import type { ClientRequest, Pending } from "../requests/pending.ts";
import { type Refusal, RequestLifecycle, type Servers } from "../requests/request_lifecycle.ts";
import {
  belowMount,
  BodyParts,
  decode,
  DEFAULT_MAX_PAYLOAD,
  encode,
  firstPartSize,
  isAck,
  isCredit,
  isHostBeat,
  isHostLog,
  isRemoteAnswer,
  jsonMessage,
  M,
  parseJsonMessage,
  partSize,
  type RemoteAnswer,
  type RemoteRequest,
  tokenOf,
} from "./messages.ts";
import { connectNats } from "./nats.ts";
import type { ResolvedRemote } from "../remote_options.ts";
import { MISSED_BEATS, RemoteHosts } from "./remote_hosts.ts";
import { type KnownHost, type Sent, SentRequests } from "./sent_requests.ts";
import { HostSteering } from "./host_steering.ts";
import { RemoteSockets } from "./remote_sockets.ts";
import { DroppedMessages } from "./dropped_messages.ts";
import { OutgoingBody } from "./upload.ts";
import { plural } from "../logging/plural.ts";

/** How long the dispatcher's start waits for NATS before it listens anyway (requests get 503 meanwhile). */
const CONNECT_WAIT_MS = 2000;
/** A request no host acknowledged for this long is lost: the host that took it died at once, or the message was. */
const UNACKNOWLEDGED_MS = 3000;
/** Nothing is sent for this long after NATS said no host listens (all full, or none runs), unless a beat says one has room. */
const NO_HOST_PAUSE_MS = 1000;
/** Nothing is sent for this long after a host answered BUSY (it had just filled up). */
const BUSY_PAUSE_MS = 50;

/** Runs a pool whose workers are on other hosts, reached over NATS. */
export class RemotePool implements PoolBackend, Servers<KnownHost> {
  readonly pool: WorkerPool;
  /** The dispatcher this pool runs in. */
  readonly #owner: PoolHost;
  readonly #remote: ResolvedRemote;
  readonly #log: Logger;
  readonly #requests: RequestLifecycle<KnownHost>;
  readonly #hosts = new RemoteHosts<Sent>();
  /** Hosts gone, by why: counted as the `replacements()` of a local pool. */
  readonly #lost = new Map<string, number>();
  #nc: NatsConnection | null = null;
  #connected = false;
  /** Clock time before which nothing is sent: a request found no host with room; a beat with a free slot clears it. */
  #pausedUntil = 0;
  readonly #inbox = `_INBOX.forkyard.${crypto.randomUUID()}`;
  readonly #sent = new SentRequests(this.#inbox);
  readonly #steering: HostSteering;
  readonly #sockets: RemoteSockets;
  readonly #subs: Subscription[] = [];
  #started: Promise<void> | null = null;
  #stopping = false;
  readonly #dropped: DroppedMessages;
  #bootError: string | null = null;
  /** Ends the first connection's attempts when the pool stops before NATS was ever reached. */
  readonly #stop = new AbortController();

  constructor(pool: WorkerPool, owner: PoolHost, remote: ResolvedRemote) {
    this.pool = pool;
    this.#owner = owner;
    this.#remote = remote;
    this.#log = owner.logger;
    this.#dropped = new DroppedMessages((what) =>
      this.#log.warning("Pool {pool}: dropped a malformed {what} from NATS; further ones are counted, not logged", {
        pool: pool.name,
        what,
      })
    );
    this.#sockets = new RemoteSockets(owner, remote.subject, () => this.#nc);
    this.#steering = new HostSteering(this.#inbox, remote.subject, pool.name, () => this.#hosts.names(), this.#log);
    const { runtime, finished } = owner;
    this.#requests = new RequestLifecycle(
      { pool, runtime, finished, log: this.#log, clock: { now: Date.now } },
      () => this,
    );
  }

  /** Connects to NATS; requests wait in the queue meanwhile. */
  start(): void {
    this.#started = this.#connect().catch((error) => {
      // Refused (credentials, TLS), or refused here: the dispatcher does not start, as when a local pool's workers cannot.
      this.#bootError = (error as Error)?.name === "UnprotectedNatsError"
        ? firstLine(error)
        : `NATS at ${this.#remote.nats} refused the connection: ${firstLine(error)}`;
    });
  }

  async #connect() {
    const nc = await connectNats(this.#remote, `forkyard dispatcher ${this.#owner.runtime.pid}`, (up) => {
      this.#connected = up;
      if (up) {
        this.#log.info("Pool {pool}: NATS connection back", { pool: this.pool.name });
        this.#requests.pump();
      } else {
        this.#log.warning("Pool {pool}: NATS connection lost; its requests fail until it is back", {
          pool: this.pool.name,
        });
        this.#linkLost();
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
      nc.subscribe(`${this.#inbox}.*.*`, { callback: (_e, msg) => this.#onReply(msg.subject, msg.data, msg.headers) }),
      nc.subscribe(`${subject}.hb`, { callback: (_e, msg) => this.#onBeat(msg.data) }),
      nc.subscribe(`${subject}.log`, { callback: (_e, msg) => this.#onLog(msg.data) }),
      nc.subscribe(`${subject}.pub`, {
        callback: (e, msg) =>
          void (e !== null || this.#sockets.published(msg.data) || this.#dropped.drop("publication")),
      }),
    );
    // The hosts' next heartbeat may be a second away: ask them for one now.
    nc.publish(`${subject}.hello`);
    this.#requests.pump();
  }

  /** Resolves once connected, or after `CONNECT_WAIT_MS` of trying (it keeps trying; requests get 503 meanwhile). */
  settled(): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const waited = new Promise<void>((resolve) => (timer = setTimeout(resolve, CONNECT_WAIT_MS)));
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

  /** Messages from NATS dropped unused so far. */
  dropped(): number {
    return this.#dropped.count;
  }

  /** Admits a request (a WebSocket handshake too); its answer goes to `request.resolve`. */
  request(request: ClientRequest): Pending<KnownHost> {
    return this.#requests.admit(request, this.#refusal());
  }

  /** Sends a request nobody waits for. */
  sendDetached(request: PoolRequest): void {
    this.#requests.admitDetached(request, this.#refusal());
  }

  /** Without NATS, requests are answered at once instead of waiting for their timeout. */
  #refusal(): Refusal | null {
    return this.#connected ? null : { status: 503, message: "Service unavailable" };
  }

  /**
   * Requests any host may take now: every live host's slots, less what this dispatcher has sent. Nothing goes before a
   * host's heartbeat: acknowledgements are taken only from hosts known by one.
   */
  #room(): number {
    return this.#hosts.slots() - this.#sent.size;
  }

  /** Publishes `p` to the pool's subject, for a host with a free slot, if hosts have room now. */
  offer(p: Pending<KnownHost>): boolean {
    const nc = this.#nc;
    if (nc === null || !this.#connected || this.#stopping) return false;
    if (Date.now() < this.#pausedUntil || this.#room() <= 0) return false;
    const maxPayload = nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD;
    const header: RemoteRequest = {
      w: belowMount(p.wire, this.pool.mount ?? ""),
      n: bodyLength(p.body),
      t: Math.max(1, p.deadline - Date.now()),
    };
    const body = new OutgoingBody(p.body);
    const first = body.take(firstPartSize(maxPayload, header));
    const reply = this.#sent.nextReply(p);
    try {
      nc.publish(this.#remote.subject, encode(M.REQUEST, header, first), { reply });
    } catch (error) {
      this.#log.warning("Pool {pool}: cannot send a request over NATS: {error}", { pool: this.pool.name, error });
      return false;
    }
    this.#sent.add(p, reply, body, Date.now());
    return true;
  }

  /** Every request sent to a host and not yet answered. */
  *inflight(): Iterable<Pending<KnownHost>> {
    for (const sent of this.#sent.values()) yield sent.p;
  }

  /** Tells the host that took `p` that nobody waits for it any more. */
  withdraw(p: Pending<KnownHost>, why: CancelReason): void {
    const sent = this.#sent.of(p);
    if (sent === undefined) return;
    const host = sent.host;
    if (why !== "left") this.#sent.done(sent); // left: the host still answers, and its answer ends `sent`
    if (host !== null) {
      this.#toHost(host.beat.id, encode(M.CANCEL, { k: sent.reply, w: why }));
    }
    queueMicrotask(() => this.#requests.pump());
  }

  /** `p`'s client took `bytes` more of its streamed answer: the host that streams it may send as many more. */
  credit(p: Pending<KnownHost>, bytes: number): void {
    const sent = this.#sent.of(p);
    if (sent !== undefined && sent.host !== null) {
      this.#toHost(sent.host.beat.id, encode(M.CREDIT, { k: sent.reply, n: bytes }));
    }
  }

  /** A message to the host with id `id` alone. */
  #toHost(id: string, message: Uint8Array) {
    this.#nc?.publish(`${this.#remote.subject}.host.${id}`, message);
  }

  #onReply(subject: string, data: Uint8Array, headers: { code: number } | undefined) {
    const side = this.#steering.owns(subject) ? this.#steering : this.#sockets.owns(subject) ? this.#sockets : null;
    if (side !== null) return void (side.receive(subject, data) || this.#dropped.drop("steering or WebSocket message"));
    const sent = this.#sent.bySubject(subject);
    // None, or an earlier attempt's (a host that sent it back, a late message): not this one's to answer.
    if (sent === undefined) return;
    const p = sent.p;
    if (headers !== undefined && headers.code === 503 && data.length === 0) {
      // No host subscribed: all are full, or none runs. Back to the queue's front until a host has room.
      this.#sendAgain(sent, NO_HOST_PAUSE_MS);
      return;
    }
    const message = decode(data);
    if (message === null) return this.#dropped.drop("message");
    const { type, header, body } = message;
    if (type === M.ACK) return this.#acknowledged(sent, header);
    if (type === M.BUSY) {
      // The host had just filled up (it leaves the queue group, but this one was on its way): soon to another.
      if (sent.host === null) this.#sendAgain(sent, BUSY_PAUSE_MS);
      return;
    }
    // The rest only from the host that took it: its token, which went to this inbox alone.
    if (sent.token === null || tokenOf(header) !== sent.token) {
      return this.#dropped.drop("answer from no host that took it");
    }
    if (type === M.ANSWER) {
      if (!isRemoteAnswer(header)) return this.#refused(sent);
      const head = header;
      if (head.s === 101) {
        if (!this.#sockets.accept(sent, head)) return this.#refused(sent, "WebSocket acceptance");
        this.#sent.done(sent);
        this.#requests.upgraded(p);
      } else if (head.n === "stream") {
        this.#requests.startStream(
          p,
          { i: p.requestId, s: head.s, h: head.h ?? [] },
          () => this.#requests.cancel(p, "disconnect"),
        );
      } else {
        sent.answer = { head, parts: new BodyParts(head.n) };
        const whole = sent.answer.parts.add(body);
        if (whole !== null) this.#complete(sent, head, whole);
      }
    } else if (type === M.CHUNK) {
      if (sent.answer !== null) {
        const whole = sent.answer.parts.add(body);
        if (whole !== null) this.#complete(sent, sent.answer.head, whole);
      } else {
        this.#requests.chunk(p, body.slice());
      }
    } else if (type === M.CREDIT) {
      if (!isCredit(header)) return this.#dropped.drop("credit");
      sent.body.grant(header.n);
      this.#sendBody(sent);
    } else if (type === M.KEEPALIVE) {
      this.#requests.keepAlive(p);
    } else if (type === M.END) {
      this.#sent.done(sent);
      this.#requests.endStream(p, (header as { e?: 1 }).e === 1);
      this.#requests.pump();
    }
  }

  /** A host took `sent`; one no heartbeat announced is dropped, a second one fails the request (two took it). */
  #acknowledged(sent: Sent, ack: unknown) {
    if (!isAck(ack)) return this.#dropped.drop("acknowledgement");
    if (sent.token === ack.a) return;
    const host = this.#hosts.known(ack.h);
    if (host === null) return this.#dropped.drop("acknowledgement from an unknown host");
    if (sent.token !== null) {
      this.#toHost(ack.h, encode(M.CANCEL, { k: sent.reply, w: "disconnect" }));
      return this.#refused(sent, "second acknowledgement");
    }
    this.#sent.bind(sent, host, ack.a);
    this.#sendBody(sent);
  }

  /** Sends what the host's credit allows of `sent`'s body. */
  #sendBody(sent: Sent) {
    const size = partSize(this.#nc?.info?.max_payload ?? DEFAULT_MAX_PAYLOAD);
    for (const part of sent.body.parts(size)) this.#toHost(sent.host!.beat.id, encode(M.BODY, { k: sent.reply }, part));
  }

  /** An answer no `Response` can be made of: the request fails as its host had died (one warning per pool). */
  #refused(sent: Sent, what = "answer") {
    this.#dropped.drop(`${what} (its request fails with 502)`);
    this.withdraw(sent.p, "disconnect");
    this.#requests.fail(sent.p, 502, "Worker failed");
  }

  /** `sent` found no host with room: back to the queue's front, and nothing sent for `pauseMs`. */
  #sendAgain(sent: Sent, pauseMs: number) {
    this.#sent.done(sent);
    this.#pausedUntil = Math.max(this.#pausedUntil, Date.now() + pauseMs);
    this.#requests.requeue(sent.p);
  }

  /** The whole answer: the worker's head and body, made a `Response` once, by the lifecycle. */
  #complete(sent: Sent, head: RemoteAnswer, body: Uint8Array) {
    this.#sent.done(sent);
    const { s, k, h } = head;
    this.#requests.complete(sent.p, { i: sent.p.requestId, s, ...(k !== undefined ? { k } : {}), h }, body, false);
    this.#requests.pump();
  }

  #onBeat(data: Uint8Array) {
    const beat = parseJsonMessage<unknown>(data);
    if (!isHostBeat(beat)) return this.#dropped.drop("heartbeat");
    if (this.#hosts.beat(beat, Date.now()) !== null) {
      this.#log.info("Pool {pool}: worker host {name} (pid {pid}) joined with {workers}", {
        pool: this.pool.name,
        name: beat.name,
        pid: beat.pid,
        workers: plural(beat.workers.length, "worker"),
      });
    }
    if (beat.free > 0) this.#pausedUntil = 0;
    this.#requests.pump();
  }

  #onLog(data: Uint8Array) {
    const log = parseJsonMessage<unknown>(data);
    if (!isHostLog(log)) return this.#dropped.drop("log record");
    // A host relays its workers' records: they stay below forkyard.worker.<pool>, whatever the message says.
    this.#owner.log(fromWire({ ...log.r, c: workerCategory(this.pool.name, log.r.c) }, { host: log.host }));
  }

  /** Once per tick: timeouts, hosts that went quiet, and a retry after hosts were full. */
  tick(now: number): void {
    this.#requests.expire(now);
    const lost = this.#sent.unacknowledged(now, UNACKNOWLEDGED_MS);
    for (const host of this.#hosts.expire(now)) {
      this.#lost.set("missed_heartbeats", (this.#lost.get("missed_heartbeats") ?? 0) + 1);
      this.#log.error("Pool {pool}: worker host {name} missed {n} heartbeats; its {count} requests fail", {
        pool: this.pool.name,
        name: host.beat.name,
        n: MISSED_BEATS,
        count: host.inflight.size,
      });
      for (const sent of host.inflight) lost.push(sent.p);
      this.#sockets.hostLost(host);
    }
    this.#sent.forget(lost);
    this.#requests.lost(lost);
    this.#requests.pump();
  }

  /** The NATS connection is lost: requests sent fail with 502, queued ones with 503; hosts are forgotten. */
  #linkLost() {
    const sent = [...this.#sent.values()];
    this.#requests.failSent(502, "Worker failed");
    for (const s of sent) this.#sent.done(s);
    this.#requests.failQueued(503, "Service unavailable");
    if (this.#hosts.size > 0) this.#lost.set("nats", (this.#lost.get("nats") ?? 0) + 1);
    this.#hosts.clear();
    this.#sockets.closeAll();
  }

  /** Answers every waiting and sent request with `status` (shutdown); hosts are told to cancel. */
  abortAll(status: number, message: string): void {
    this.#requests.abortAll(status, message);
  }

  /** Closes the NATS connection. */
  async stop(_grace: number): Promise<void> {
    this.#stopping = true;
    this.#requests.stopping = true;
    this.#stop.abort();
    await this.#started;
    const nc = this.#nc;
    this.#nc = null;
    if (nc !== null) await nc.drain().catch(() => nc.close());
  }

  /** Every host's workers; `id`s numbered across hosts, `host` naming each one's host. */
  status(): PoolStatus {
    const { workers, queued } = this.#hosts.workers();
    return { name: this.pool.name, workers, queueSize: this.#requests.queued + queued, degraded: false, spares: [] };
  }

  /** Config goes to every host, which passes it to its workers (from one dispatcher of several, see `steers`). */
  broadcastConfig(config: unknown): void {
    if (this.#owner.steers !== false) this.#nc?.publish(`${this.#remote.subject}.config`, jsonMessage(config ?? null));
  }

  /** Asks the worker hosts (all, or the one named `host`) to run `workers` workers each. */
  scale(workers: number, host?: string): void {
    if (this.#owner.steers !== false) this.#steering.scale(this.#nc, workers, host);
  }

  /** Asks the worker hosts (all, or the one named `host`) to reload; resolves with how many workers they replaced. */
  reload(host?: string): Promise<number> {
    return this.#owner.steers !== false ? this.#steering.reload(this.#nc, host) : Promise.resolve(0);
  }
}
