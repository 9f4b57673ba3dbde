/**
 * The WebSockets a worker serves: accepting a handshake (the 101 answer), then
 * the dispatcher's frames about each socket (open, messages, closed) calling
 * its handlers, in order.
 *
 * @module
 */

import { CLOSE } from "../protocol/close_codes.ts";
import type { FrameWriter } from "../protocol/codec.ts";
import { type CloseHeader, F, type IdHeader, type MessageHeader } from "../protocol/frames.ts";
import type { WorkerLogger } from "../logging/worker_logger.ts";
import type { WorkerRequest } from "./request.ts";
import { CLOSED, OPENED, type WebSocketHandler, WorkerSocket } from "./socket.ts";

interface Entry {
  socket: WorkerSocket;
  handler: WebSocketHandler;
  request: WorkerRequest;
}

const decoder = new TextDecoder();

/** The sockets of one worker process, by id. */
export class WorkerSockets {
  readonly #open = new Map<number, Entry>();
  readonly #writer: FrameWriter;
  readonly #log: WorkerLogger;

  constructor(writer: FrameWriter, log: WorkerLogger) {
    this.#writer = writer;
    this.#log = log;
  }

  /** Sockets accepted and not yet closed. */
  get size(): number {
    return this.#open.size;
  }

  /** Accepts the handshake `request` (its id becomes the socket's): answers 101, and `handler` serves the socket. */
  accept(request: WorkerRequest, handler: WebSocketHandler, protocol: string | null): WorkerSocket {
    const id = request.requestId;
    const socket = new WorkerSocket(id, request, protocol, this.#writer);
    this.#open.set(id, { socket, handler, request });
    this.#writer.send(F.RESPONSE, {
      i: id,
      s: 101,
      ...(protocol !== null ? { h: ["sec-websocket-protocol", protocol] } : {}),
    });
    return socket;
  }

  /** A frame about a socket: `WS_OPEN`, `WS_MESSAGE` or `WS_CLOSED`. */
  onFrame(type: number, header: unknown, body: Uint8Array): void {
    const entry = this.#open.get((header as IdHeader).i);
    if (entry === undefined) return;
    const { socket, handler } = entry;
    if (type === F.WS_OPEN) {
      socket[OPENED]();
      if (handler.onOpen) this.#call(entry, "onOpen", () => handler.onOpen!(socket, entry.request));
    } else if (type === F.WS_MESSAGE) {
      const data = (header as MessageHeader).b === 1 ? body : decoder.decode(body);
      if (handler.onMessage) this.#call(entry, "onMessage", () => handler.onMessage!(socket, data));
    } else if (type === F.WS_CLOSED) {
      const { c, r } = header as CloseHeader;
      this.#open.delete(socket.id);
      socket[CLOSED]();
      if (handler.onClose) this.#call(entry, "onClose", () => handler.onClose!(socket, c, r));
    }
  }

  /** Runs one of a socket's handlers; one that throws or rejects is logged, and the socket closed with 1011. */
  #call(entry: Entry, name: string, run: () => void | Promise<void>) {
    const failed = (error: unknown) => {
      this.#log.error("WebSocket {name}() for {path} failed: {error}", { name, path: entry.socket.path, error });
      if (name !== "onClose") entry.socket.close(CLOSE.WORKER_FAILED, "Internal error");
    };
    try {
      const done = run();
      if (done instanceof Promise) done.catch(failed);
    } catch (error) {
      failed(error);
    }
  }
}
