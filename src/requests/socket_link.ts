/**
 * What links a WebSocket the dispatcher holds to the worker it is pinned to:
 * the worker's side, and how the dispatcher accepts and closes a socket.
 *
 * @module
 */

import type { FrameWriter } from "../protocol/codec.ts";
import type { ResponseHeader } from "../protocol/frames.ts";

/** The worker a WebSocket is pinned to, as the dispatcher's socket hub sees it. */
export interface SocketLink {
  /** The worker's channel. */
  readonly writer: FrameWriter;
  /** Socket `id` closed: its worker serves one socket fewer. */
  closed(id: number): void;
}

/** Closes a socket from the dispatcher's side; `tell`: whether its worker hears of it. */
export type CloseSocket = (code: number, reason: string, tell: boolean) => void;

/** Accepts a WebSocket handshake its worker answered with 101; returns how to close the socket, or `null`. */
export type AcceptSocket = (link: SocketLink, answer: ResponseHeader) => CloseSocket | null;
