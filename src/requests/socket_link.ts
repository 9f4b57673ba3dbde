/**
 * What links a WebSocket the dispatcher holds to the worker it is pinned to:
 * the worker's side, and how the dispatcher accepts and closes a socket.
 *
 * @module
 */

import type { FrameHeaders, ResponseHeader } from "../protocol/frames.ts";

/**
 * What a socket's side needs of the channel to its worker: a local worker's frame writer, or a worker host's
 * messages over NATS.
 */
export interface SocketChannel {
  /** Queues a frame for the worker (as {@linkcode FrameWriter.send} does). */
  send<T extends keyof FrameHeaders & number>(frame: T, header?: FrameHeaders[T], body?: Uint8Array | string): void;
  /** Message bytes sent that the worker's side has not taken yet: past the limit, a socket closes with 1013. */
  readonly queued: number;
  /** Resolves once what is queued now has gone to the worker. */
  drain(): Promise<void>;
}

/** The worker a WebSocket is pinned to, as the dispatcher's socket hub sees it. */
export interface SocketLink {
  /** The worker's channel. */
  readonly writer: SocketChannel;
  /** Socket `id` closed: its worker serves one socket fewer. */
  closed(id: number): void;
}

/** Closes a socket from the dispatcher's side; `tell`: whether its worker hears of it. */
export type CloseSocket = (code: number, reason: string, tell: boolean) => void;

/** Accepts a WebSocket handshake its worker answered with 101; returns how to close the socket, or `null`. */
export type AcceptSocket = (link: SocketLink, answer: ResponseHeader) => CloseSocket | null;
