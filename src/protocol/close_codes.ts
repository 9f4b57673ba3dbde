/**
 * WebSocket close codes forkyard gives (RFC 6455, section 7.4.1), wherever a
 * socket is closed: the dispatcher's socket hub, a pool's supervisor, a worker.
 *
 * @module
 */

/** Close codes, by what they mean here. */
export const CLOSE = {
  /** Graceful shutdown. */
  GOING_AWAY: 1001,
  /** No close frame: the connection broke, or a handshake failed half-way. Never sent on the wire. */
  ABNORMAL: 1006,
  /** The client sent more than it may, or cannot keep up with what it is sent. */
  POLICY: 1008,
  /** A message over `wsMaxMessageSize`. */
  TOO_BIG: 1009,
  /** The worker serving the socket died, or its handler threw. */
  WORKER_FAILED: 1011,
  /** The worker was replaced (reload, recycling): reconnect. */
  RESTART: 1012,
  /** The socket's worker does not keep up with what its clients send. */
  TRY_AGAIN_LATER: 1013,
} as const;
