/**
 * WebSockets whose worker runs on a worker host: the dispatcher holds the socket (its socket hub, as for a local
 * worker), and the frames between the hub and the worker cross NATS. Each host is one "channel" to the hub: socket
 * frames from a host reach only the sockets its workers accepted, and carry the token of the handshake's
 * acknowledgement. A host that is lost closes its sockets with 1011.
 *
 * @module
 */

import type { NatsConnection } from "@nats-io/transport-node";
import type { PoolHost } from "../pool_backend.ts";
import { CLOSE } from "../protocol/close_codes.ts";
import { F, type FrameHeaders } from "../protocol/frames.ts";
import type { CloseSocket, SocketChannel } from "../requests/socket_link.ts";
import { decode, encode, isCredit, isPublication, isSocketOut, M, type RemoteAnswer, tokenOf } from "./messages.ts";
import type { KnownHost, Sent } from "./sent_requests.ts";

/** A socket pinned to a worker on a host. */
interface RemoteSocket {
  /** The dispatcher's socket id (the handshake's request id). */
  id: number;
  host: KnownHost;
  token: string;
  close: CloseSocket;
  /** Message bytes sent to its host that the host has not yet passed to its worker. */
  unacked: number;
}

/** A host, as the socket hub sees it: a channel whose backlog is what the host has not passed to its workers yet. */
interface HostChannel extends SocketChannel {
  queued: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The WebSockets of one remote pool. */
export class RemoteSockets {
  readonly #owner: PoolHost;
  readonly #subject: string;
  readonly #nc: () => NatsConnection | null;
  /** By the handshake's reply subject, and its reply subject by socket id. */
  readonly #sockets = new Map<string, RemoteSocket>();
  readonly #replies = new Map<number, string>();
  /** Each host's channel, as the socket hub sees it: one object per host, so that pinning holds. */
  readonly #channels = new Map<KnownHost, HostChannel>();

  /** `subject`: the pool's; `nc`: the connection, while there is one. */
  constructor(owner: PoolHost, subject: string, nc: () => NatsConnection | null) {
    this.#owner = owner;
    this.#subject = subject;
    this.#nc = nc;
  }

  /**
   * The host's worker accepted `sent`'s handshake (`head`, status 101): the client's socket is upgraded and pinned to
   * that host. False when it cannot be (no handshake, or the runtime refused it).
   */
  accept(sent: Sent, head: RemoteAnswer): boolean {
    const { p, host, token, reply } = sent;
    const origin = p.origin;
    if (origin.kind !== "client" || origin.upgrade === null || host === null || token === null) return false;
    this.#replies.set(p.requestId, reply);
    const link = { writer: this.#writerFor(host), closed: (id: number) => this.#forget(id) };
    const close = origin.upgrade(link, {
      i: p.requestId,
      s: 101,
      ...(head.k !== undefined ? { k: head.k } : {}),
      h: head.h,
    });
    if (close === null) {
      this.#replies.delete(p.requestId);
      return false;
    }
    this.#sockets.set(reply, { id: p.requestId, host, token, close, unacked: 0 });
    return true;
  }

  /** Whether `subject` is a socket's (its handshake's reply subject). */
  owns(subject: string): boolean {
    return this.#sockets.has(subject);
  }

  /** A frame of the host's worker about the socket of `subject`; false when it is malformed or not from its host. */
  receive(subject: string, data: Uint8Array): boolean {
    const socket = this.#sockets.get(subject)!;
    const message = decode(data);
    if (message?.type === M.CREDIT && isCredit(message.header)) {
      if (tokenOf(message.header) !== socket.token) return false;
      // The host passed these bytes to its worker: the hub may send as many more before it counts a backlog.
      this.#acked(socket, Math.min(message.header.n, socket.unacked));
      return true;
    }
    if (message === null || message.type !== M.WS_OUT || !isSocketOut(message.header)) return false;
    const { a, f, b, c, r, t } = message.header;
    if (a !== socket.token) return false;
    const header = { i: socket.id, ...(b !== undefined ? { b } : {}), ...(c !== undefined ? { c, r: r ?? "" } : {}) };
    // Lent: a binary message is copied before the hub may queue it (the body is a view into NATS's read buffer).
    this.#owner.sockets?.fromWorker(
      this.#writerFor(socket.host),
      f,
      t !== undefined ? { ...header, t } : header,
      message.body,
      true,
    );
    return true;
  }

  /** What a host's worker published to a topic (`S.pub`): delivered to this dispatcher's subscribers. */
  published(data: Uint8Array): boolean {
    const message = decode(data);
    if (message === null || message.type !== M.PUBLISH || !isPublication(message.header)) return false;
    const { t, b } = message.header;
    const payload = b === 1 ? message.body.slice() : decoder.decode(message.body);
    this.#owner.sockets?.deliver?.(t, payload);
    return true;
  }

  /** `host` is gone: its sockets close with 1011, nothing to tell it. */
  hostLost(host: KnownHost): void {
    for (const socket of [...this.#sockets.values()]) {
      if (socket.host === host) socket.close(CLOSE.WORKER_FAILED, "Worker host lost", false);
    }
    this.#channels.delete(host);
  }

  /** The NATS connection is lost: every socket closes with 1011. */
  closeAll(): void {
    for (const socket of [...this.#sockets.values()]) {
      socket.close(CLOSE.WORKER_FAILED, "Worker host unreachable", false);
    }
    this.#channels.clear();
  }

  #forget(id: number) {
    const reply = this.#replies.get(id);
    this.#replies.delete(id);
    if (reply === undefined) return;
    const socket = this.#sockets.get(reply);
    this.#sockets.delete(reply);
    if (socket !== undefined) this.#acked(socket, socket.unacked);
  }

  #acked(socket: RemoteSocket, bytes: number) {
    socket.unacked -= bytes;
    const channel = this.#channels.get(socket.host);
    if (channel !== undefined) channel.queued -= bytes;
  }

  /**
   * `host`'s channel for the socket hub: its frames about a socket go to the host, named by the reply subject, and
   * its backlog (`queued`) is the message bytes its host has not yet passed to its workers, as a local worker's is its
   * pipe's: a client that sends faster than they take gets 1013.
   */
  #writerFor(host: KnownHost): SocketChannel {
    let channel = this.#channels.get(host);
    if (channel !== undefined) return channel;
    const sockets = this.#sockets;
    const replies = this.#replies;
    const publish = (message: Uint8Array) => this.#nc()?.publish(`${this.#subject}.host.${host.beat.id}`, message);
    channel = {
      queued: 0,
      // Sent on at once: NATS holds what is in flight, and the host's credit says when its worker took it.
      drain: () => Promise.resolve(),
      send<T extends keyof FrameHeaders & number>(type: T, header?: FrameHeaders[T], body?: Uint8Array | string) {
        const { i, ...rest } = header as { i: number; b?: 1; c?: number; r?: string };
        const k = replies.get(i);
        if (k === undefined) return;
        const bytes = typeof body === "string" ? encoder.encode(body) : body;
        const socket = sockets.get(k);
        if (type === F.WS_MESSAGE && bytes !== undefined && socket !== undefined) {
          socket.unacked += bytes.length;
          this.queued += bytes.length;
        }
        publish(encode(M.WS, { k, f: type, ...rest }, bytes));
      },
    };
    this.#channels.set(host, channel);
    return channel;
  }
}
