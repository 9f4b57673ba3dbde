/**
 * Publish/subscribe across workers: `subscribe(ws, topic)` and
 * `unsubscribe(ws, topic)` tell the dispatcher, which keeps every pool's
 * subscribers; `publish(topic, data)` goes to it once and reaches each
 * subscribed socket on every worker, in the order one publisher sent.
 *
 * @module
 */

import { bytesOf, TOPIC, WorkerSocket } from "./socket.ts";

/** Where `publish` goes in this process: the worker's channel, or the dispatcher's sockets. */
export interface PubSub {
  /** Delivers `data` to the topic's subscribers. */
  publish(topic: string, data: string | Uint8Array): void;
}

let current: PubSub | null = null;

/** Sets where `publish` goes in this process (the worker loop and the dispatcher do, as they start). */
export function setPubSub(pubsub: PubSub): void {
  current = pubsub;
}

/** A socket: a `WorkerSocket`, or Hono's `WSContext` around one (app pools). */
export type AnySocket = WorkerSocket | { raw?: unknown };

function workerSocket(ws: AnySocket): WorkerSocket {
  if (ws instanceof WorkerSocket) return ws;
  if (ws !== null && typeof ws === "object" && ws.raw instanceof WorkerSocket) return ws.raw;
  throw new TypeError("Expected a forkyard WebSocket (the socket a @ws handler or upgradeWebSocket() gives)");
}

/**
 * Subscribes a socket to `topic`: it gets every message published to the topic from now on, from any worker of
 * any pool, until it leaves or closes.
 *
 * @param ws The socket a `@ws` handler got, or the `WSContext` an app's `upgradeWebSocket` handler got.
 * @param topic Any string.
 */
export function subscribe(ws: AnySocket, topic: string): void {
  workerSocket(ws)[TOPIC](String(topic), true);
}

/**
 * Leaves `topic`.
 *
 * @param ws The socket.
 * @param topic The topic it subscribed to.
 */
export function unsubscribe(ws: AnySocket, topic: string): void {
  workerSocket(ws)[TOPIC](String(topic), false);
}

/**
 * Sends `data` to every socket subscribed to `topic`, on every worker of every pool (the publishing socket
 * included, when it subscribed). Messages from one publisher arrive in the order they were published. Works in
 * worker processes and in the dispatcher (for `@sync` handlers, `onIdle`, ...).
 *
 * @param topic The topic.
 * @param data A string is sent as text, bytes as a binary message.
 */
export function publish(topic: string, data: string | ArrayBuffer | ArrayBufferView): void {
  if (current === null) throw new Error("publish() works in a forkyard worker or a running dispatcher");
  current.publish(String(topic), typeof data === "string" ? data : bytesOf(data));
}
