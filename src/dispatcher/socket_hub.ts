/**
 * The dispatcher's WebSockets: each accepted socket stays pinned to the worker
 * that accepted its handshake, and messages cross the channel as frames both
 * ways. Topics and their subscribers live here, across every pool, so that a
 * message published by one worker reaches sockets pinned to any other.
 *
 * @module
 */

import { F, type FrameHeaders } from "../protocol/frames.ts";
import type { ServerWebSocket, WebSocketEvents } from "../runtime.ts";
import { CLOSE } from "../protocol/close_codes.ts";
import type { SocketChannel, SocketLink } from "../requests/socket_link.ts";

/** The hub's limits (see the `wsMaxMessageSize` and `wsMaxBuffered` options), and where publications go on to. */
export interface HubOptions {
  /** Largest message a client may send, in bytes. */
  maxMessageSize: number;
  /**
   * Bytes that may wait to be written to one client before it is closed as too slow, and to one worker's channel
   * before a client sending to it is closed.
   */
  maxBuffered: number;
  /**
   * With several dispatchers: passes what is published here on to the others (their own publications arrive by
   * {@linkcode SocketHub.deliver}); `null` for one dispatcher.
   */
  relay: ((topic: string, data: string | Uint8Array) => void) | null;
}

/** One accepted socket. */
interface HubSocket {
  readonly id: number;
  readonly link: SocketLink;
  /** The runtime's socket, once the handshake completed. */
  server: ServerWebSocket | null;
  /** Messages the worker sent before the handshake completed. */
  early: (string | Uint8Array)[] | null;
  topics: Set<string> | null;
  closed: boolean;
}

/** What the hub gives back for an accepted socket. */
export interface Accepted {
  /** For the adapter. */
  events: WebSocketEvents;
  /** Closes the socket from the dispatcher's side; `tell` says whether its worker hears of it. */
  close(code: number, reason: string, tell: boolean): void;
}

const decoder = new TextDecoder();

/** Every open WebSocket of one dispatcher, and the topics they subscribed to. */
export class SocketHub {
  readonly #sockets = new Map<number, HubSocket>();
  readonly #topics = new Map<string, Set<HubSocket>>();
  readonly #limits: HubOptions;

  constructor(limits: HubOptions) {
    this.#limits = limits;
  }

  /** Open sockets. */
  get size(): number {
    return this.#sockets.size;
  }

  /** Accepts socket `id`, pinned to the worker behind `link`. */
  accept(id: number, link: SocketLink): Accepted {
    const s: HubSocket = { id, link, server: null, early: null, topics: null, closed: false };
    this.#sockets.set(id, s);
    const writer = link.writer;
    return {
      events: {
        open: (server) => {
          if (s.closed) {
            server.close(CLOSE.GOING_AWAY, "Closed");
            return;
          }
          s.server = server;
          writer.send(F.WS_OPEN, { i: id });
          const early = s.early;
          s.early = null;
          if (early !== null) { for (const data of early) this.#send(s, data); }
        },
        message: (data) => {
          if (s.closed) return;
          // Text is measured in UTF-16 units here; Bun and `ws` on Node measure bytes before it arrives.
          if (data.length > this.#limits.maxMessageSize) {
            this.#close(s, CLOSE.TOO_BIG, "Message too big", true);
            return;
          }
          // A worker that reads slower than its clients send would make the channel hold everything meanwhile.
          if (writer.queued > this.#limits.maxBuffered) {
            this.#close(s, CLOSE.TRY_AGAIN_LATER, "Worker overloaded", true);
            return;
          }
          if (typeof data === "string") writer.send(F.WS_MESSAGE, { i: id }, data);
          else writer.send(F.WS_MESSAGE, { i: id, b: 1 }, data);
        },
        close: (code, reason) => this.#gone(s, code, reason, true),
      },
      close: (code, reason, tell) => this.#close(s, code, reason, tell),
    };
  }

  /**
   * A frame about sockets from the worker whose channel is `from`. A worker reaches only the sockets pinned to it
   * (socket ids are sequential, easy to guess); publishing reaches every subscriber, as documented. `lent` bodies
   * are copied before a socket may keep them.
   */
  fromWorker(from: SocketChannel, type: number, header: unknown, body: Uint8Array, lent: boolean): void {
    switch (type) {
      case F.WS_SEND: {
        const h = header as FrameHeaders[typeof F.WS_SEND];
        const s = this.#own(from, h.i);
        if (s !== undefined) this.#send(s, h.b === 1 ? (lent ? body.slice() : body) : decoder.decode(body));
        return;
      }
      case F.WS_CLOSE: {
        const h = header as FrameHeaders[typeof F.WS_CLOSE];
        const s = this.#own(from, h.i);
        if (s !== undefined) this.#close(s, h.c, h.r, true);
        return;
      }
      case F.SUBSCRIBE: {
        const h = header as FrameHeaders[typeof F.SUBSCRIBE];
        const s = this.#own(from, h.i);
        if (s === undefined) return;
        (s.topics ??= new Set()).add(h.t);
        let members = this.#topics.get(h.t);
        if (members === undefined) this.#topics.set(h.t, members = new Set());
        members.add(s);
        return;
      }
      case F.UNSUBSCRIBE: {
        const h = header as FrameHeaders[typeof F.UNSUBSCRIBE];
        const s = this.#own(from, h.i);
        if (s !== undefined) this.#leave(s, h.t);
        return;
      }
      case F.PUBLISH: {
        const h = header as FrameHeaders[typeof F.PUBLISH];
        this.publish(h.t, h.b === 1 ? (lent ? body.slice() : body) : decoder.decode(body));
        return;
      }
    }
  }

  /** Socket `id`, when it is pinned to the worker whose channel is `from`. */
  #own(from: SocketChannel, id: number): HubSocket | undefined {
    const s = this.#sockets.get(id);
    return s !== undefined && s.link.writer === from ? s : undefined;
  }

  /** Sends `data` to every socket subscribed to `topic`, here and in the other dispatchers; returns how many here. */
  publish(topic: string, data: string | Uint8Array): number {
    this.#limits.relay?.(topic, data);
    return this.deliver(topic, data);
  }

  /** Sends `data` to every socket of this dispatcher subscribed to `topic`; returns how many. */
  deliver(topic: string, data: string | Uint8Array): number {
    const members = this.#topics.get(topic);
    if (members === undefined) return 0;
    for (const s of [...members]) this.#send(s, data);
    return members.size;
  }

  /** Closes every socket (graceful shutdown), telling their workers. */
  closeAll(code: number, reason: string): void {
    for (const s of [...this.#sockets.values()]) this.#close(s, code, reason, true);
  }

  #send(s: HubSocket, data: string | Uint8Array) {
    if (s.closed) return;
    const server = s.server;
    if (server === null) {
      (s.early ??= []).push(data);
      return;
    }
    server.send(data);
    // A client that does not read would make the dispatcher hold everything sent to it.
    if (server.bufferedAmount() > this.#limits.maxBuffered) this.#close(s, CLOSE.POLICY, "Client too slow", true);
  }

  #leave(s: HubSocket, topic: string) {
    s.topics?.delete(topic);
    const members = this.#topics.get(topic);
    if (members === undefined) return;
    members.delete(s);
    if (members.size === 0) this.#topics.delete(topic);
  }

  #close(s: HubSocket, code: number, reason: string, tell: boolean) {
    if (s.closed) return;
    s.server?.close(code, reason);
    this.#gone(s, code, reason, tell);
  }

  /** The socket is closed: forgotten here, and its worker told (once) unless it is gone. */
  #gone(s: HubSocket, code: number, reason: string, tell: boolean) {
    if (s.closed) return;
    s.closed = true;
    s.early = null;
    this.#sockets.delete(s.id);
    if (s.topics !== null) { for (const topic of [...s.topics]) this.#leave(s, topic); }
    if (tell) s.link.writer.send(F.WS_CLOSED, { i: s.id, c: code, r: reason });
    s.link.closed(s.id);
  }
}
