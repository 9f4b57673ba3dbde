/**
 * A worker host (`forkyard worker --nats URL module:Export`): runs a pool's
 * workers under the same local supervision as a dispatcher's (heartbeats,
 * restarts, recycling), and takes the pool's requests from NATS while it has
 * a free slot. It joins the pool subject's queue group only then, so that the
 * NATS server hands each request to one host with room; it says every
 * heartbeat what it runs and how much room it has, and passes its workers' log
 * records on to the dispatchers.
 *
 * @module
 */

import type { Logger, LogRecord } from "@logtape/logtape";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import type { WorkerPool } from "../pool.ts";
import { toWire } from "../protocol/log_record.ts";
import { plural } from "../logging/plural.ts";
import type { Runtime } from "../runtime.ts";
import type { Pending, RelaySink } from "../requests/pending.ts";
import type { Supervisor } from "../supervisor/supervisor.ts";
import type { CancelReason, ResponseHeader, StartHeader } from "../protocol/frames.ts";
import {
  ackToken,
  decode,
  DEFAULT_MAX_PAYLOAD,
  encode,
  type HostBeat,
  type HostLog,
  isDirect,
  isRemoteRequest,
  isSocketIn,
  isSteer,
  jsonMessage,
  M,
  parseJsonMessage,
  QUEUE,
  type RemoteAnswer,
  type RemoteRequest,
  splitBody,
  type SteerAnswer,
} from "./messages.ts";
import { connectNats } from "./nats.ts";
import { DroppedMessages } from "./dropped_messages.ts";
import { HostSockets } from "./host_sockets.ts";
import { IncomingBody } from "./upload.ts";
import { BOOT_FAILURE_STATUS, RunningPools, settledWithin, stopGrace } from "../running_pools.ts";
import type { ResolvedRemote } from "../remote_options.ts";
import { onServingSignals } from "../process_signals.ts";
import { removeSpillDir, removeStaleSpills } from "../protocol/spill.ts";

/** What a worker host needs. */
export interface WorkerHostOptions {
  runtime: Runtime;
  /** The pool it runs (its `remote` option unused here). */
  pool: WorkerPool;
  /** The NATS server and the pool's subject. */
  remote: ResolvedRemote;
  /** The host's name in the dispatchers' status and logs. */
  name: string;
  /** Time in-flight requests get to finish on SIGTERM. */
  shutdownTimeout: number;
  /** A control socket to open (`forkyard worker --control PATH`): `forkyard ctl` then steers this host. */
  control?: string;
}

/** A request this host took, until its answer is sent. */
interface Taken {
  /** The token this host's acknowledgement gave the dispatcher: every message about the request carries it. */
  token: string;
  /** Its request, while its body is still arriving in parts, until its timeout. */
  partial: { header: RemoteRequest; body: IncomingBody; timer: ReturnType<typeof setTimeout> } | null;
  /** The local pending request, once submitted. */
  p: Pending | null;
}

/** Runs one worker host until SIGTERM or SIGINT. */
export class WorkerHost {
  readonly #o: WorkerHostOptions;
  readonly #id: string;
  #log!: Logger;
  #pools!: RunningPools;
  #supervisor!: Supervisor;
  #nc: NatsConnection | null = null;
  /** The queue-group subscription, while the host has room. */
  #sub: Subscription | null = null;
  /** By reply subject. */
  readonly #taken = new Map<string, Taken>();
  /** Requests taken and not yet answered (or given up). */
  #busy = 0;
  #nextId = 1;
  #stopping = false;
  #lastFree = 0;
  /** While shutting down: called once no request is in progress. */
  #idle: (() => void) | null = null;
  /** The sockets its workers accepted, held by dispatchers. */
  readonly #sockets: HostSockets;
  /** Messages from NATS dropped as malformed; the first is logged. */
  readonly #dropped = new DroppedMessages((what) =>
    this.#log.warning("Dropped a malformed {what} from NATS; further ones are counted, not logged", { what })
  );

  constructor(options: WorkerHostOptions) {
    this.#o = options;
    this.#sockets = new HostSockets((subject, message) => {
      const nc = this.#nc;
      if (nc !== null && !nc.isClosed()) nc.publish(subject, message);
    }, options.remote.subject);
    this.#id = `${options.name.replace(/[\s.*>]/g, "_")}-${options.runtime.pid}-${
      Math.floor(Math.random() * 1e9).toString(36)
    }`;
  }

  /** Starts the workers, connects, and serves until stopped; resolves with the exit status. */
  async run(): Promise<number> {
    const { runtime, pool } = this.#o;
    const logtape = await import("../logging/logtape.ts");
    logtape.configureDefaultLogging(runtime);
    this.#log = logtape.getLogger(["forkyard", "host"]);
    removeStaleSpills(runtime, this.#log);
    const { Supervisor } = await import("../supervisor/supervisor.ts");
    // The pool runs here as a dispatcher's local pool does, whatever its `remote` option says.
    const supervisor = new Supervisor(pool, {
      runtime,
      finished: (p) => {
        if (p.bodyFile !== undefined) runtime.spill()?.unlink(p.bodyFile.path);
        if (p.origin.kind === "relayed") this.#finished();
      },
      log: (record) => this.#onLog(record),
      logger: logtape.getLogger(["forkyard", "pool", pool.name]),
      sockets: this.#sockets,
    });
    pool.attach(supervisor);
    const pools = RunningPools.start([supervisor], this.#log, () => this.#updateSubscription());
    this.#pools = pools;
    this.#supervisor = supervisor;
    let stop!: () => void;
    const stopped = new Promise<void>((resolve) => (stop = resolve));
    const unlisten = onServingSignals(runtime, { pools: [pool], stop, reload: () => pool.reload() }, true, this.#log);
    try {
      await pools.settled();
      const failure = pools.bootFailure();
      if (failure !== null) {
        this.#log.error('Cannot start pool "{pool}": its workers failed to boot ({reason})', failure);
        await pools.stop(1000);
        return BOOT_FAILURE_STATUS;
      }
      const remote = this.#o.remote;
      const giveUp = new AbortController();
      void stopped.then(() => giveUp.abort());
      let nc: NatsConnection | null;
      try {
        nc = await connectNats(remote, `forkyard worker host ${this.#o.name}`, (up) => {
          if (up) this.#log.info("NATS connection back");
          else this.#log.warning("NATS connection lost; answers in flight are lost with it");
        }, giveUp.signal);
      } catch (error) {
        // Refused (credentials, TLS): trying again would not help.
        await pools.stop(1000);
        throw error;
      }
      if (nc === null) {
        // stopped before NATS was reached
        await pools.stop(1000);
        return 0;
      }
      this.#nc = nc;
      // Its heartbeat before its first acknowledgement: dispatchers take those only from hosts they know.
      this.#beat();
      nc.subscribe(`${remote.subject}.host.${this.#id}`, {
        callback: (_e, msg) => this.#onDirect(msg.data),
      });
      // A dispatcher that just connected asks for a heartbeat rather than wait for the next.
      nc.subscribe(`${remote.subject}.hello`, { callback: () => this.#beat() });
      nc.subscribe(`${remote.subject}.ctl`, { callback: (_e, msg) => void this.#onSteer(msg.data, msg.reply) });
      nc.subscribe(`${remote.subject}.config`, {
        callback: (_e, msg) => {
          const config = parseJsonMessage<unknown>(msg.data);
          if (config !== undefined) supervisor.broadcastConfig(config);
        },
      });
      const beats = setInterval(() => this.#beat(), pool.options.heartbeatInterval);
      const closeControl = await this.#openControl(stop);
      if (closeControl === null) {
        clearInterval(beats);
        await this.#shutdown(nc);
        return 1;
      }
      this.#updateSubscription();
      this.#log.info("Worker host {name} takes requests for pool {pool} on {subject}", {
        name: this.#o.name,
        pool: pool.name,
        subject: remote.subject,
      });
      console.log(JSON.stringify({ host: this.#id, name: this.#o.name, subject: remote.subject }));
      await stopped;
      clearInterval(beats);
      await this.#shutdown(nc);
      await closeControl();
      return 0;
    } finally {
      for (const off of unlisten) off();
      removeSpillDir(runtime.spill());
    }
  }

  /** Opens the control socket, if asked for: a no-op closer when not, `null` when it cannot (one line says why). */
  async #openControl(stop: () => void): Promise<(() => Promise<void>) | null> {
    const path = this.#o.control;
    if (path === undefined) return () => Promise.resolve();
    const { openControl } = await import("../control_socket.ts");
    const { pool, runtime } = this.#o;
    return await openControl(path, {
      pid: runtime.pid,
      port: 0,
      pending: () => this.#busy,
      pools: [pool],
      statuses: () => [this.#supervisor.status()],
      reload: () => pool.reload(),
      stop: () => Promise.resolve(stop()),
    }, this.#log);
  }

  /** Requests the host can take now: its ready workers' slots, less those taken. */
  #free(): number {
    return this.#supervisor.serving * this.#o.pool.options.concurrency - this.#busy;
  }

  /** Joins the queue group while the host has room, leaves it when full; says at once when room comes back. */
  #updateSubscription() {
    const nc = this.#nc;
    if (nc === null || this.#stopping) return;
    const free = this.#free();
    if (free > 0 && this.#sub === null) {
      this.#sub = nc.subscribe(this.#o.remote.subject, {
        queue: QUEUE,
        callback: (_e, msg) => this.#onRequest(msg.data, msg.reply),
      });
    } else if (free <= 0 && this.#sub !== null) {
      // Drained, not dropped: requests already on their way to this host still get an answer (BUSY).
      void this.#sub.drain().catch(() => {});
      this.#sub = null;
    }
    if (free > 0 && this.#lastFree <= 0) this.#beat();
    this.#lastFree = free;
  }

  #beat(bye = false) {
    const nc = this.#nc;
    if (nc === null || nc.isClosed()) return;
    const status = this.#supervisor.status();
    const ready = this.#supervisor.serving;
    const beat: HostBeat = {
      id: this.#id,
      name: this.#o.name,
      pid: this.#o.runtime.pid,
      free: bye ? 0 : Math.max(0, this.#free()),
      slots: bye ? 0 : ready * this.#o.pool.options.concurrency,
      every: this.#o.pool.options.heartbeatInterval,
      workers: status.workers,
      queue: status.queueSize,
      ...(bye ? { bye: 1 as const } : {}),
    };
    nc.publish(`${this.#o.remote.subject}.hb`, jsonMessage(beat));
  }

  #onRequest(data: Uint8Array, reply: string | undefined) {
    const message = decode(data);
    if (message === null || message.type !== M.REQUEST || reply === undefined || reply.length > 256) {
      return this.#dropped.drop("request");
    }
    const header = message.header;
    if (!isRemoteRequest(header) || this.#taken.has(reply)) return this.#dropped.drop("request");
    if (this.#free() <= 0 || this.#stopping) {
      // Full: it left the queue group as it filled up, but this request was already on its way.
      this.#nc?.publish(reply, encode(M.BUSY, {}));
      return;
    }
    const token = ackToken();
    this.#nc?.publish(reply, encode(M.ACK, { h: this.#id, n: this.#o.name, a: token }));
    this.#busy++;
    const taken: Taken = { token, partial: null, p: null };
    this.#taken.set(reply, taken);
    const body = new IncomingBody(header.n, this.#o.runtime);
    body.add(message.body);
    if (body.complete) this.#submit(reply, taken, header, body);
    else {
      // A dispatcher that dies while sending the body sends no cancel: the request's timeout ends the wait.
      const timer = setTimeout(() => this.#cancel(reply, taken, "timeout"), header.t);
      taken.partial = { header, body, timer };
    }
    this.#updateSubscription();
  }

  /** A message for this host alone: the next part of a request's body, or a cancel. */
  #onDirect(data: Uint8Array) {
    const message = decode(data);
    if (message?.type === M.WS && isSocketIn(message.header)) {
      return this.#sockets.fromDispatcher(message.header, message.body);
    }
    if (message === null || !isDirect(message.header)) return this.#dropped.drop("message to this host");
    const { k, w, n } = message.header;
    const taken = this.#taken.get(k);
    if (taken === undefined) return;
    const partial = taken.partial;
    if (message.type === M.BODY && partial !== null) {
      const written = partial.body.add(message.body);
      // Written away: the dispatcher may send as many more bytes.
      if (written > 0) this.#nc?.publish(k, encode(M.CREDIT, { n: written, a: taken.token }));
      if (partial.body.complete) {
        clearTimeout(partial.timer);
        taken.partial = null;
        this.#submit(k, taken, partial.header, partial.body);
      }
    } else if (message.type === M.CREDIT && n !== undefined) {
      if (taken.p !== null) this.#supervisor.credit(taken.p as Pending<never>, n);
    } else if (message.type === M.CANCEL && w === "left") {
      if (taken.p !== null) this.#supervisor.cancel(taken.p as Pending<never>, "left");
    } else if (message.type === M.CANCEL) {
      this.#cancel(k, taken, w ?? "disconnect");
    }
  }

  /** Nobody waits for the request with reply subject `reply` any more: its body or its worker's work is dropped. */
  #cancel(reply: string, taken: Taken, why: CancelReason) {
    if (this.#taken.get(reply) !== taken) return;
    this.#taken.delete(reply);
    if (taken.partial !== null) {
      clearTimeout(taken.partial.timer);
      taken.partial.body.discard();
    }
    if (taken.p !== null) this.#supervisor.cancel(taken.p as Pending<never>, why);
    else this.#finished();
  }

  #submit(reply: string, taken: Taken, header: RemoteRequest, body: IncomingBody) {
    if (body.lost) {
      // Neither written away nor read back (the spill directory went full, then unreadable): the request fails.
      this.#nc?.publish(reply, encode(M.ANSWER, { s: 503, h: [], n: 0, a: taken.token }));
      return this.#cancel(reply, taken, "disconnect");
    }
    // Ids are this host's: requests from several dispatchers meet here.
    const id = this.#nextId++;
    taken.p = this.#supervisor.request({
      kind: "relayed",
      sink: this.#relay(reply, taken.token, header.w.u === 1),
      id,
      // Answered even when the dispatcher's caller waits for nothing (`n`): the dispatcher drops the answer.
      wire: { ...header.w, i: id, n: undefined },
      ...body.take(),
      resolve: null,
    });
  }

  /** Where the answer to the request with reply subject `reply` goes: its worker's frames, as messages. */
  #relay(reply: string, token: string, handshake: boolean): RelaySink {
    const publish = (type: number, header: Record<string, unknown>, body?: Uint8Array) => {
      const nc = this.#nc;
      if (nc !== null && !nc.isClosed() && this.#taken.has(reply)) {
        nc.publish(reply, encode(type, { ...header, a: token }, body));
      }
    };
    const maxPayload = () => this.#nc?.info?.max_payload ?? DEFAULT_MAX_PAYLOAD;
    // A handshake its worker accepts: the dispatcher hears 101, and the socket's frames cross as WS messages.
    const upgrade = handshake
      ? this.#sockets.upgrade(reply, token, ({ k, h }) => {
        publish(M.ANSWER, { s: 101, ...(k !== undefined ? { k } : {}), h: h ?? [], n: 0 });
        this.#taken.delete(reply);
      })
      : undefined;
    return {
      ...(upgrade !== undefined ? { upgrade } : {}),
      whole: ({ s, k, h }: ResponseHeader, body: Uint8Array) => {
        const head: RemoteAnswer = {
          s,
          ...(k !== undefined ? { k } : {}),
          ...(h !== undefined ? { h } : {}),
          n: body.length,
        };
        const [first, rest] = splitBody(body, maxPayload(), head);
        publish(M.ANSWER, { ...head }, first);
        for (const part of rest) publish(M.CHUNK, {}, part);
        this.#taken.delete(reply);
      },
      start: ({ s, h }: StartHeader) => publish(M.ANSWER, { s, h, n: "stream" }),
      chunk: (body: Uint8Array) => {
        for (const part of splitBody(body, maxPayload())[1]) publish(M.CHUNK, {}, part);
      },
      end: (failed: boolean) => {
        publish(M.END, failed ? { e: 1 } : {});
        this.#taken.delete(reply);
      },
      keptAlive: () => publish(M.KEEPALIVE, {}),
    };
  }

  /** A dispatcher's `scale` or `reload`, for every host or for this one by name; answered once done. */
  async #onSteer(data: Uint8Array, reply: string | undefined) {
    const steer = parseJsonMessage<unknown>(data);
    if (!isSteer(steer)) return this.#dropped.drop("scale or reload");
    const { name, pool } = this.#o;
    if (steer.host !== undefined && steer.host !== name) return;
    let answer: SteerAnswer;
    if (steer.op === "scale") {
      this.#log.info("Scaling pool {pool} to {each}, as a dispatcher asked", {
        pool: pool.name,
        workers: steer.workers,
        each: plural(steer.workers, "worker"),
      });
      pool.scale(steer.workers);
      answer = { host: name, workers: steer.workers };
    } else {
      this.#log.info("Reloading pool {pool}, as a dispatcher asked", { pool: pool.name });
      answer = { host: name, replaced: await pool.reload() };
    }
    const nc = this.#nc;
    if (reply !== undefined && nc !== null && !nc.isClosed()) nc.publish(reply, jsonMessage(answer));
  }

  /** A request left the local pool (answered, failed, cancelled). */
  #finished() {
    this.#busy = Math.max(0, this.#busy - 1);
    if (this.#busy === 0) this.#idle?.();
    this.#updateSubscription();
  }

  #onLog(record: LogRecord) {
    const nc = this.#nc;
    const message = typeof record.rawMessage === "string" ? record.rawMessage : record.message.join("");
    if (nc === null || nc.isClosed()) {
      // Before NATS is reached (a worker failing to start): written here.
      this.#log.emit(record);
      return;
    }
    const log: HostLog = { host: this.#o.name, r: toWire(record, message) };
    nc.publish(`${this.#o.remote.subject}.log`, jsonMessage(log));
  }

  /** Leaves the queue group, says goodbye, lets taken requests finish (up to `shutdownTimeout`), stops. */
  async #shutdown(nc: NatsConnection) {
    this.#stopping = true;
    this.#log.info("Shutting down: {busy} requests in progress", { busy: this.#busy });
    await this.#sub?.drain().catch(() => {});
    this.#sub = null;
    this.#beat(true);
    if (this.#busy > 0) await settledWithin(new Promise((idle) => (this.#idle = idle)), this.#o.shutdownTimeout);
    await this.#pools.stop(stopGrace(this.#o.shutdownTimeout), 503, "Service unavailable");
    await nc.drain().catch(() => nc.close());
  }
}
