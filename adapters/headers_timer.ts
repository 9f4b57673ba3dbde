/**
 * `headersTimeout` for a connection that has not sent a whole request yet, on the `node:http` server of every
 * runtime. Node's own `headersTimeout` starts at a request's first byte, so a connection that sends nothing is left
 * open; and Deno's and Bun's `node:http` emit no "data" on the connection's socket. So the connection is timed
 * from its start, and its first request (or WebSocket upgrade) stops the clock: a connection still without one
 * when the time is up is closed. Nothing per connection but a timer: the listeners take the socket as `this`.
 *
 * @module
 */

import type { Server } from "node:http";
import type { Socket } from "node:net";

const TIMER = Symbol("forkyard.headersTimer");

interface Timed {
  [TIMER]?: ReturnType<typeof setTimeout>;
}

/** Closes each new connection of `server` that has sent no whole request within `timeout` ms. */
export function timeHeaders(server: Server, timeout: number): void {
  server.on("connection", (socket: Socket & Timed) => {
    socket[TIMER] = setTimeout(expire, timeout, socket);
    socket.once("close", forget);
  });
}

/** A request (or an upgrade) arrived on `socket`: its clock stops. */
export function headersArrived(socket: Socket & Timed): void {
  const timer = socket[TIMER];
  if (timer === undefined) return;
  clearTimeout(timer);
  socket[TIMER] = undefined;
  socket.off("close", forget);
}

function expire(socket: Socket & Timed): void {
  socket[TIMER] = undefined;
  socket.destroy();
}

function forget(this: Socket & Timed): void {
  clearTimeout(this[TIMER]);
  this[TIMER] = undefined;
}
