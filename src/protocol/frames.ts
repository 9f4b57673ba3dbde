/**
 * The frames that cross the channel between the dispatcher and a worker, and
 * the header each one carries. The codec (`codec.ts`) writes and reads them;
 * this module says what they mean.
 *
 * @module
 */

import type { LogLevel } from "@logtape/logtape";
import type { WireRecord } from "./log_record.ts";

/** Frame types. Dispatcher to worker below 32, worker to dispatcher from 32. */
export const F = {
  /** The worker's assignment: {@linkcode InitHeader}. The first frame a worker gets. */
  INIT: 1,
  /** A request: {@linkcode RequestHeader}, the body as the frame's body. */
  REQUEST: 2,
  /** `Worker.onConfig`'s argument: {@linkcode ConfigHeader}. */
  CONFIG: 3,
  /** Stop working on a request: {@linkcode CancelHeader}. */
  CANCEL: 4,
  /** Finish the requests in flight, then exit. No header. */
  STOP: 5,
  /** The dispatcher read one of the worker's spill files: {@linkcode SpillHeader}; the worker may write it again. */
  RELEASE: 6,
  /** The client of an accepted WebSocket is connected: {@linkcode IdHeader}. */
  WS_OPEN: 7,
  /** A client's WebSocket message: {@linkcode MessageHeader}, the bytes (text as UTF-8) as the frame's body. */
  WS_MESSAGE: 8,
  /** A WebSocket closed, whoever closed it: {@linkcode CloseHeader}. The worker hears nothing more of it. */
  WS_CLOSED: 9,
  /** The reader of a streamed answer took `n` more of its bytes: {@linkcode CreditHeader}; the worker may send as many. */
  CREDIT: 10,
  /** `setup()` finished: the worker takes requests. No header. */
  READY: 32,
  /** Sent every `heartbeatInterval`: {@linkcode HeartbeatHeader}. */
  HEARTBEAT: 33,
  /** A whole answer: {@linkcode ResponseHeader}, the body as the frame's body. */
  RESPONSE: 34,
  /** A streamed answer begins: {@linkcode StartHeader}; `CHUNK`s and an `END` follow. */
  START: 35,
  /** Bytes of a streamed answer: {@linkcode IdHeader}. */
  CHUNK: 36,
  /** A streamed answer ends: {@linkcode EndHeader}. */
  END: 37,
  /** A log record: {@linkcode WireRecord}. */
  LOG: 38,
  /** `Worker.keepAlive()`: the deadlines of the worker's requests start again. No header. */
  KEEPALIVE: 39,
  /** The worker asks for no new requests for now. No header. */
  PAUSE: 40,
  /** The worker takes requests again. No header. */
  RESUME: 41,
  /** The worker read one of the dispatcher's spill files: {@linkcode SpillHeader}. */
  RELEASED: 42,
  /** A message to a WebSocket's client: {@linkcode MessageHeader}, the bytes as the frame's body. */
  WS_SEND: 43,
  /** The worker closes a WebSocket: {@linkcode CloseHeader}. */
  WS_CLOSE: 44,
  /** A WebSocket subscribes to a topic: {@linkcode TopicHeader}. */
  SUBSCRIBE: 45,
  /** A WebSocket leaves a topic: {@linkcode TopicHeader}. */
  UNSUBSCRIBE: 46,
  /** A message for every WebSocket subscribed to a topic: {@linkcode PublishHeader}, the bytes as the body. */
  PUBLISH: 47,
} as const;

/** A frame type: one of the values of {@linkcode F}. */
export type FrameType = typeof F[keyof typeof F];

/** How the dispatcher sets `Content-Type` for a {@linkcode ResponseHeader} (the default is `JSON`). */
export const KIND = { JSON: 0, TEXT: 1, BINARY: 2, HEADERS: 3 } as const;

/** One of the values of {@linkcode KIND}. */
export type Kind = typeof KIND[keyof typeof KIND];

/** `INIT`: the pool and slot a started process serves, and how. */
export interface InitHeader {
  /** Pool name. */
  pool: string;
  /** Worker slot id. */
  id: number;
  /** The pool's kwargs. */
  kwargs: Record<string, unknown>;
  /** Lowest level the worker forwards. */
  logLevel: LogLevel;
  /** Milliseconds between heartbeats. */
  heartbeatInterval: number;
  /** For pools with a `module` option: the module URL to import. */
  module?: string;
  /** For pools with a `module` option: the export holding the worker class (or app). */
  export?: string;
  /** For app pools: the mount prefix to strip. */
  mount?: string;
}

/** `REQUEST`: one request's head; its body is the frame's body. */
export interface RequestHeader {
  /** Request id, unique among the requests in flight on one dispatcher. */
  i: number;
  /** Method. */
  m: string;
  /** Decoded path. */
  p: string;
  /** Raw query string without `?`, or "". */
  q: string;
  /** Header names (lower case) and values, flattened: `[name, value, name, value, ...]`. */
  h: string[];
  /** Content type, when the request has one. */
  t?: string;
  /** Set for fire-and-forget requests: nobody waits for the answer. */
  n?: 1;
  /** Raw (percent-encoded) path, when it differs from `p`. */
  r?: string;
  /** The request's trace id (`X-Request-ID`); it travels here, not in `h`. */
  x?: string;
  /**
   * Set for a WebSocket handshake: a `RESPONSE` with status 101 accepts it (its `h` may name the subprotocol in
   * `sec-websocket-protocol`), and the request id becomes the socket's id; any other answer refuses it.
   */
  u?: 1;
  /** App pools: the client's IP address, for a request-listener app's `req.socket.remoteAddress`. */
  a?: string;
  /** App pools: set when the client reached the dispatcher over TLS. */
  e?: 1;
}

/**
 * Why a request is cancelled. `left`: its client left before the answer; the worker is told (`req.signal` aborts,
 * `onDisconnect` runs) and still answers, which frees its slot: a handler that goes on working keeps it.
 */
export type CancelReason = "timeout" | "disconnect" | "shutdown" | "left";

/** `CANCEL`. */
export interface CancelHeader {
  /** Request id. */
  i: number;
  /** Why. */
  w: CancelReason;
}

/** `CONFIG`. */
export interface ConfigHeader {
  /** The value given to `sendConfig`. */
  c: unknown;
}

/** `RELEASE` and `RELEASED`: a spill file the reader is done with. */
export interface SpillHeader {
  /** The file's path. */
  p: string;
}

/** `HEARTBEAT`. */
export interface HeartbeatHeader {
  /** The worker's resident memory in bytes. */
  r: number;
}

/** `RESPONSE`. */
export interface ResponseHeader {
  /** Request id. */
  i: number;
  /** HTTP status. */
  s: number;
  /** Body kind; `HEADERS` means `h` carries every header. Absent: JSON. */
  k?: Kind;
  /** Headers, flattened, with kind `HEADERS`. */
  h?: string[];
}

/** `START`: the head of a streamed answer. */
export interface StartHeader {
  /** Request id. */
  i: number;
  /** HTTP status. */
  s: number;
  /** Headers, flattened. */
  h: string[];
}

/** `CHUNK`. */
export interface IdHeader {
  /** Request id. */
  i: number;
}

/** `CREDIT`. */
export interface CreditHeader {
  /** Request id. */
  i: number;
  /** Bytes of the streamed answer its reader took since the last `CREDIT`. */
  n: number;
}

/**
 * How many bytes of a streamed answer a worker may send beyond what its reader has taken: the dispatcher holds at most
 * this much of each stream, however slowly its client reads.
 */
export const STREAM_WINDOW = 1024 * 1024;

/** `END`. */
export interface EndHeader {
  /** Request id. */
  i: number;
  /** Set when the stream failed in the worker. */
  e?: 1;
}

/** `WS_MESSAGE` and `WS_SEND`. */
export interface MessageHeader {
  /** Socket id (the handshake's request id). */
  i: number;
  /** Set for a binary message; else the body is UTF-8 text. */
  b?: 1;
}

/** `WS_CLOSE` and `WS_CLOSED`. */
export interface CloseHeader {
  /** Socket id. */
  i: number;
  /** Close code. */
  c: number;
  /** Close reason. */
  r: string;
}

/** `SUBSCRIBE` and `UNSUBSCRIBE`. */
export interface TopicHeader {
  /** Socket id. */
  i: number;
  /** Topic. */
  t: string;
}

/** `PUBLISH`. */
export interface PublishHeader {
  /** Topic. */
  t: string;
  /** Set for a binary message. */
  b?: 1;
}

/** The header each frame type carries (`undefined`: none). */
export interface FrameHeaders {
  [F.INIT]: InitHeader;
  [F.REQUEST]: RequestHeader;
  [F.CONFIG]: ConfigHeader;
  [F.CANCEL]: CancelHeader;
  [F.CREDIT]: CreditHeader;
  [F.STOP]: undefined;
  [F.RELEASE]: SpillHeader;
  [F.WS_OPEN]: IdHeader;
  [F.WS_MESSAGE]: MessageHeader;
  [F.WS_CLOSED]: CloseHeader;
  [F.READY]: undefined;
  [F.HEARTBEAT]: HeartbeatHeader;
  [F.RESPONSE]: ResponseHeader;
  [F.START]: StartHeader;
  [F.CHUNK]: IdHeader;
  [F.END]: EndHeader;
  [F.LOG]: WireRecord;
  [F.KEEPALIVE]: undefined;
  [F.PAUSE]: undefined;
  [F.RESUME]: undefined;
  [F.RELEASED]: SpillHeader;
  [F.WS_SEND]: MessageHeader;
  [F.WS_CLOSE]: CloseHeader;
  [F.SUBSCRIBE]: TopicHeader;
  [F.UNSUBSCRIBE]: TopicHeader;
  [F.PUBLISH]: PublishHeader;
}
