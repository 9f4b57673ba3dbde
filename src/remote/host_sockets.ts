/**
 * A worker host's side of the WebSockets its workers accepted: the dispatcher holds each socket, and the frames
 * between it and the worker cross NATS. To the host's supervisor this is the socket hub a dispatcher would be: frames
 * from a worker reach only the sockets that worker accepted; they go to the dispatcher on the handshake's reply
 * subject with the acknowledgement's token, and what workers publish to topics goes to every dispatcher (`S.pub`).
 *
 * @module
 */

import { F, type ResponseHeader } from "../protocol/frames.ts";
import type { AcceptSocket, SocketChannel, SocketLink } from "../requests/socket_link.ts";
import { encode, M, type SocketIn } from "./messages.ts";

/** A socket whose worker is on this host. */
interface HostSocket {
  /** The handshake's reply subject, and the token its messages carry. */
  reply: string;
  token: string;
  /** The host's request id of the handshake: the socket's id for the worker. */
  id: number;
  link: SocketLink;
  /** Message bytes passed to the worker's channel and not yet credited to the dispatcher; whether a drain waits. */
  untold: number;
  draining: boolean;
}

/** The WebSockets of one worker host's workers. */
export class HostSockets {
  readonly #publish: (subject: string, message: Uint8Array) => void;
  readonly #subject: string;
  readonly #byReply = new Map<string, HostSocket>();
  readonly #byId = new Map<number, HostSocket>();

  /** `publish`: to NATS, while connected; `subject`: the pool's. */
  constructor(publish: (subject: string, message: Uint8Array) => void, subject: string) {
    this.#publish = publish;
    this.#subject = subject;
  }

  /**
   * How the handshake relayed on `reply` is accepted once its worker answers 101: `answer` tells the dispatcher, and
   * the socket is this host's to relay until either side closes it.
   */
  upgrade(reply: string, token: string, answer: (head: ResponseHeader) => void): AcceptSocket {
    return (link, head) => {
      const socket: HostSocket = { reply, token, id: head.i, link, untold: 0, draining: false };
      this.#byReply.set(reply, socket);
      this.#byId.set(head.i, socket);
      answer(head);
      // Closed here (its worker died, the host stops): the dispatcher closes the client's socket.
      return (code, reason, tell) => {
        if (!this.#forget(socket)) return;
        this.#out(socket, { f: F.WS_CLOSE, c: code, r: reason });
        if (tell) link.writer.send(F.WS_CLOSED, { i: socket.id, c: code, r: reason });
        link.closed(socket.id);
      };
    };
  }

  /** A frame of a worker's about sockets (the supervisor passes them here, as to a dispatcher's hub). */
  fromWorker(from: SocketChannel, type: number, header: unknown, body: Uint8Array, lent: boolean): void {
    const h = header as { i?: number; b?: 1; c?: number; r?: string; t?: string };
    const bytes = lent ? body.slice() : body;
    if (type === F.PUBLISH) {
      this.#publish(`${this.#subject}.pub`, encode(M.PUBLISH, { t: h.t, ...(h.b === 1 ? { b: 1 } : {}) }, bytes));
      return;
    }
    if (type !== F.WS_SEND && type !== F.WS_CLOSE && type !== F.SUBSCRIBE && type !== F.UNSUBSCRIBE) return;
    const socket = this.#byId.get(h.i ?? -1);
    // A worker reaches only the sockets it accepted.
    if (socket === undefined || socket.link.writer !== from) return;
    const { i: _, ...rest } = h;
    this.#out(socket, { f: type, ...rest }, bytes);
  }

  /** A frame from the dispatcher for a socket here: passed on to its worker. */
  fromDispatcher(header: SocketIn, body: Uint8Array): void {
    const socket = this.#byReply.get(header.k);
    if (socket === undefined) return;
    const { link, id } = socket;
    if (header.f === F.WS_OPEN) {
      link.writer.send(F.WS_OPEN, { i: id });
    } else if (header.f === F.WS_MESSAGE) {
      link.writer.send(F.WS_MESSAGE, header.b === 1 ? { i: id, b: 1 } : { i: id }, body.slice());
      this.#credit(socket, body.length);
    } else if (this.#forget(socket)) {
      // WS_CLOSED: the client's socket is gone, whoever closed it.
      link.writer.send(F.WS_CLOSED, { i: id, c: header.c ?? 1005, r: header.r ?? "" });
      link.closed(id);
    }
  }

  /**
   * Tells the dispatcher once the worker's channel has taken `bytes` more of `socket`'s messages (credits gathered
   * while a drain waits): a worker that reads slowly holds the client back there, as a local worker's pipe does.
   */
  #credit(socket: HostSocket, bytes: number) {
    socket.untold += bytes;
    if (socket.draining) return;
    socket.draining = true;
    void socket.link.writer.drain().then(() => {
      socket.draining = false;
      if (!this.#byReply.has(socket.reply) || socket.untold === 0) return;
      this.#publish(socket.reply, encode(M.CREDIT, { n: socket.untold, a: socket.token }));
      socket.untold = 0;
    });
  }

  /** Whether `socket` was still known (and is not any more). */
  #forget(socket: HostSocket): boolean {
    this.#byId.delete(socket.id);
    return this.#byReply.delete(socket.reply);
  }

  #out(socket: HostSocket, header: Record<string, unknown>, body?: Uint8Array) {
    this.#publish(socket.reply, encode(M.WS_OUT, { a: socket.token, ...header }, body));
  }
}
