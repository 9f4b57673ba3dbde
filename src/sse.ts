/**
 * Server-Sent Events from a worker: `sse()` returns a streaming `Response`
 * that the dispatcher relays to the client as events are produced.
 *
 * @module
 */

const encoder = new TextEncoder();

/** One Server-Sent Event. */
export interface SSEEvent {
  /** Event data; a non-string value is sent as JSON. Multi-line strings become several `data:` lines. */
  data?: unknown;
  /** Event type (`event:`). */
  event?: string;
  /** Event id (`id:`). */
  id?: string | number;
  /** Reconnection delay for the client in ms (`retry:`). */
  retry?: number;
  /** A comment line, e.g. to keep the connection open. */
  comment?: string;
}

/** The writer handed to the `sse()` callback. */
export interface SSEStream {
  /** Sends one event; returns false once the client is gone. */
  send(event: SSEEvent): boolean;
  /** Ends the stream (the `end` of the seed's event API). */
  close(): void;
  /** Whether the stream was closed or the client disconnected. */
  readonly closed: boolean;
  /** Aborted when the client disconnects. */
  readonly signal: AbortSignal;
}

function clean(value: string): string {
  return value.replace(/[\r\n]/g, " ");
}

/** Encodes one event in the `text/event-stream` format. */
export function encodeEvent(event: SSEEvent): string {
  let out = "";
  if (event.comment !== undefined) out += `: ${clean(event.comment)}\n`;
  if (event.event !== undefined) out += `event: ${clean(event.event)}\n`;
  if (event.id !== undefined) out += `id: ${clean(String(event.id))}\n`;
  if (event.retry !== undefined) out += `retry: ${Math.max(0, Math.floor(event.retry))}\n`;
  if (event.data !== undefined) {
    const text = typeof event.data === "string" ? event.data : JSON.stringify(event.data);
    for (const line of text.split(/\r\n|\r|\n/)) out += `data: ${line}\n`;
  }
  return out + "\n";
}

/**
 * Creates a Server-Sent Events response. `produce` receives a stream to send
 * events on; the response ends when `produce` calls `close()` or, if it
 * returns a promise, when that promise settles.
 *
 * @example
 * ```ts
 * import { api, sse, Worker } from "@forkyard/forkyard";
 *
 * class Clock extends Worker {
 *   @api("/ticks", "GET")
 *   ticks() {
 *     return sse(async (stream) => {
 *       for (let i = 0; i < 3 && !stream.closed; i++) {
 *         stream.send({ event: "tick", id: i, data: { i } });
 *         await new Promise((r) => setTimeout(r, 100));
 *       }
 *     });
 *   }
 * }
 * ```
 *
 * @param produce Writes the events.
 * @param headers Extra response headers.
 * @returns A `text/event-stream` response.
 */
export function sse(produce: (stream: SSEStream) => void | Promise<void>, headers?: HeadersInit): Response {
  const abort = new AbortController();
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let closed = false;
  const stream: SSEStream = {
    send(event) {
      if (closed) return false;
      controller.enqueue(encoder.encode(encodeEvent(event)));
      return true;
    },
    close() {
      if (closed) return;
      closed = true;
      controller.close();
    },
    get closed() {
      return closed;
    },
    signal: abort.signal,
  };
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
      queueMicrotask(async () => {
        try {
          await produce(stream);
          stream.close();
        } catch (error) {
          if (!closed) {
            closed = true;
            controller.error(error);
          }
        }
      });
    },
    cancel() {
      closed = true;
      abort.abort(new Error("Client disconnected"));
    },
  });
  const h = new Headers(headers);
  h.set("content-type", "text/event-stream");
  if (!h.has("cache-control")) h.set("cache-control", "no-cache");
  return new Response(body, { headers: h });
}
