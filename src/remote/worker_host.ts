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
import { flattenHeaders } from "../protocol/results.ts";
import { toWire } from "../protocol/log_record.ts";
import type { Runtime } from "../runtime.ts";
import type { Pending } from "../supervisor/pending.ts";
import type { Supervisor } from "../supervisor/supervisor.ts";
import type { CancelReason } from "../protocol/frames.ts";
import {
  BodyParts,
  decode,
  encode,
  type HostBeat,
  type HostLog,
  jsonMessage,
  M,
  parseJsonMessage,
  QUEUE,
  type RemoteAnswer,
  type RemoteRequest,
  splitBody,
} from "./messages.ts";
import { connectNats } from "./nats.ts";
import type { ResolvedRemote } from "./remote_options.ts";

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
}

/** A request this host took, until its answer is sent. */
interface Taken {
  /** Its request, while its body is still arriving in parts. */
  partial: { header: RemoteRequest; parts: BodyParts } | null;
  /** The local pending request, once submitted. */
  p: Pending | null;
  /** The reader of a streamed answer's body, while it streams. */
  reader: ReadableStreamDefaultReader<Uint8Array> | null;
}

const TICK_MS = 100;
/** Exit status when no worker of the pool can start. */
const BOOT_FAILURE_STATUS = 3;

/** Runs one worker host until SIGTERM or SIGINT. */
export class WorkerHost {
  readonly #o: WorkerHostOptions;
  readonly #id: string;
  #log!: Logger;
  #supervisor!: Supervisor;
  #nc: NatsConnection | null = null;
  /** The queue-group subscription, while the host has room. */
  #sub: Subscription | null = null;
  /** By reply subject. */
  readonly #taken = new Map<string, Taken>();
  /** The reply subject of each local pending request. */
  readonly #replies = new WeakMap<Pending, string>();
  /** Requests taken and not yet answered (or given up). */
  #busy = 0;
  #nextId = 1;
  #stopping = false;
  #lastFree = 0;
  /** While shutting down: called once no request is in progress. */
  #idle: (() => void) | null = null;

  constructor(options: WorkerHostOptions) {
    this.#o = options;
    this.#id = `${options.name.replace(/[\s.*>]/g, "_")}-${options.runtime.pid}-${
      Math.floor(Math.random() * 1e9).toString(36)
    }`;
  }

  /** Starts the workers, connects, and serves until stopped; resolves with the exit status. */
  async run(): Promise<number> {
    const { runtime, pool } = this.#o;
    const [logtape, { Supervisor }] = await Promise.all([
      import("../logging/logtape.ts"),
      import("../supervisor/supervisor.ts"),
    ]);
    logtape.configureDefaultLogging(runtime);
    this.#log = logtape.getLogger(["forkyard", "host"]);
    const supervisor = new Supervisor(pool, {
      runtime,
      finished: () => this.#finished(),
      keptAlive: (p) => {
        const reply = this.#replies.get(p);
        if (reply !== undefined) this.#nc?.publish(reply, encode(M.KEEPALIVE, {}));
      },
      log: (record) => this.#onLog(record),
      logger: logtape.getLogger(["forkyard", "pool", pool.name]),
    });
    this.#supervisor = supervisor;
    pool.attach(supervisor);
    supervisor.start();
    const ticker = setInterval(() => {
      try {
        supervisor.tick(Date.now());
      } catch (error) {
        this.#log.error("Supervising pool {pool} failed: {error}", { pool: pool.name, error });
      }
      this.#updateSubscription();
    }, TICK_MS);
    let stop!: () => void;
    const stopped = new Promise<void>((resolve) => (stop = resolve));
    const unlisten = [
      runtime.onSignal("SIGTERM", stop),
      runtime.onSignal("SIGINT", stop),
      runtime.onSignal("SIGHUP", () => void pool.reload()),
    ];
    try {
      await supervisor.settled();
      const failure = supervisor.bootFailure();
      if (failure !== null) {
        this.#log.error('Cannot start pool "{pool}": its workers failed to boot ({reason})', {
          pool: pool.name,
          reason: failure,
        });
        await supervisor.stop(1000);
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
        await supervisor.stop(1000);
        throw error;
      }
      if (nc === null) {
        // stopped before NATS was reached
        await supervisor.stop(1000);
        return 0;
      }
      this.#nc = nc;
      nc.subscribe(`${remote.subject}.host.${this.#id}`, {
        callback: (_e, msg) => this.#onDirect(msg.data),
      });
      // A dispatcher that just connected asks for a heartbeat rather than wait for the next.
      nc.subscribe(`${remote.subject}.hello`, { callback: () => this.#beat() });
      nc.subscribe(`${remote.subject}.config`, {
        callback: (_e, msg) => {
          const config = parseJsonMessage<unknown>(msg.data);
          if (config !== undefined) supervisor.broadcastConfig(config);
        },
      });
      const beats = setInterval(() => this.#beat(), pool.options.heartbeatInterval);
      this.#updateSubscription();
      this.#beat();
      this.#log.info("Worker host {name} takes requests for pool {pool} on {subject}", {
        name: this.#o.name,
        pool: pool.name,
        subject: remote.subject,
      });
      console.log(JSON.stringify({ host: this.#id, name: this.#o.name, subject: remote.subject }));
      await stopped;
      clearInterval(beats);
      await this.#shutdown(nc);
      return 0;
    } finally {
      clearInterval(ticker);
      for (const off of unlisten) off();
    }
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
    if (message === null || message.type !== M.REQUEST || reply === undefined) return;
    const header = message.header as RemoteRequest;
    if (this.#free() <= 0 || this.#stopping) {
      // Full: it left the queue group as it filled up, but this request was already on its way.
      this.#nc?.publish(reply, encode(M.BUSY, {}));
      return;
    }
    this.#nc?.publish(reply, encode(M.ACK, { h: this.#id, n: this.#o.name }));
    this.#busy++;
    const taken: Taken = { partial: null, p: null, reader: null };
    this.#taken.set(reply, taken);
    if (message.body.length < header.n) {
      taken.partial = { header, parts: new BodyParts(header.n) };
      taken.partial.parts.add(message.body);
    } else {
      this.#submit(reply, taken, header, message.body.slice());
    }
    this.#updateSubscription();
  }

  /** A message for this host alone: the next part of a request's body, or a cancel. */
  #onDirect(data: Uint8Array) {
    const message = decode(data);
    if (message === null) return;
    const { k, w } = message.header as { k: string; w?: CancelReason };
    const taken = this.#taken.get(k);
    if (taken === undefined) return;
    if (message.type === M.BODY && taken.partial !== null) {
      const { header, parts } = taken.partial;
      const body = parts.add(message.body);
      if (body !== null) {
        taken.partial = null;
        this.#submit(k, taken, header, body);
      }
    } else if (message.type === M.CANCEL) {
      this.#taken.delete(k);
      if (taken.reader !== null) void taken.reader.cancel().catch(() => {});
      else if (taken.p !== null) this.#supervisor.cancel(taken.p as Pending<never>, w ?? "disconnect");
      else this.#finished();
    }
  }

  #submit(reply: string, taken: Taken, header: RemoteRequest, body: Uint8Array) {
    // Ids are this host's: requests from several dispatchers meet here.
    const id = this.#nextId++;
    taken.p = this.#supervisor.request({
      id,
      client: null,
      // Answered even when the dispatcher's caller waits for nothing (`n`): the dispatcher drops the answer.
      wire: { ...header.w, i: id, n: undefined },
      body,
      resolve: (response) => void this.#answer(reply, taken, response),
      adapter: null,
      upgrade: null,
    });
    this.#replies.set(taken.p, reply);
  }

  /** Sends `response` back to the dispatcher: whole, in parts if large, or as a stream. */
  async #answer(reply: string, taken: Taken, response: Response) {
    const nc = this.#nc;
    if (nc === null || !this.#taken.has(reply)) {
      void response.body?.cancel().catch(() => {});
      return;
    }
    const maxPayload = nc.info?.max_payload ?? 1024 * 1024;
    // The trace id travels with the request; the dispatcher adds it to the answer itself.
    const headers = flattenHeaders(response.headers).filter((_, i, all) => all[i - (i % 2)] !== "x-request-id");
    const publish = (type: number, header: unknown, body?: Uint8Array) => {
      if (!nc.isClosed()) nc.publish(reply, encode(type, header, body));
    };
    if (taken.p?.stream == null) {
      const body = new Uint8Array(await response.arrayBuffer());
      this.#taken.delete(reply);
      const head: RemoteAnswer = { s: response.status, h: headers, n: body.length };
      const [first, rest] = splitBody(body, maxPayload, head);
      publish(M.ANSWER, head, first);
      for (const part of rest) publish(M.CHUNK, {}, part);
      return;
    }
    publish(M.ANSWER, { s: response.status, h: headers, n: "stream" });
    const reader = response.body!.getReader();
    taken.reader = reader;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        for (const part of splitBody(value, maxPayload)[1]) publish(M.CHUNK, {}, part);
      }
      publish(M.END, {});
    } catch {
      publish(M.END, { e: 1 });
    } finally {
      this.#taken.delete(reply);
    }
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
    if (this.#busy > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#idle = resolve;
        timer = setTimeout(resolve, this.#o.shutdownTimeout);
      });
      clearTimeout(timer);
    }
    this.#supervisor.abortAll(() => new Response(null, { status: 503 }));
    await this.#supervisor.stop(Math.max(1000, Math.min(this.#o.shutdownTimeout, 5000)));
    await nc.drain().catch(() => nc.close());
  }
}
