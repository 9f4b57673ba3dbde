// WebSocket clients for the tests: the runtime's own `WebSocket` with a message queue, and a raw TCP client that does
// the handshake by hand (to see refusals' status lines, and to play a client that never answers or never reads).
import { connect as tcpConnect, type Socket } from "node:net";
import { randomBytes } from "node:crypto";

/** A connected WebSocket whose messages queue up until read. */
export interface Conn {
  ws: WebSocket;
  /** The next message (text as a string, binary as bytes); rejects after `timeoutMs`. */
  next(timeoutMs?: number): Promise<string | Uint8Array>;
  /** The next message parsed as JSON. */
  json<T = Record<string, unknown>>(): Promise<T>;
  /** Resolves with the close code and reason. */
  closed: Promise<{ code: number; reason: string }>;
}

/** Opens a WebSocket; rejects when the handshake fails. */
export function open(url: string, timeoutMs = 10_000): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    const queue: (string | Uint8Array)[] = [];
    const waiters: ((m: string | Uint8Array) => void)[] = [];
    let closedWith: (v: { code: number; reason: string }) => void;
    const closed = new Promise<{ code: number; reason: string }>((r) => (closedWith = r));
    const timer = setTimeout(() => reject(new Error(`no handshake with ${url} in ${timeoutMs} ms`)), timeoutMs);
    ws.onmessage = (event) => {
      const data = typeof event.data === "string" ? event.data : new Uint8Array(event.data as ArrayBuffer);
      const waiter = waiters.shift();
      if (waiter) waiter(data);
      else queue.push(data);
    };
    ws.onclose = (event) => {
      clearTimeout(timer);
      closedWith({ code: event.code, reason: event.reason });
      reject(new Error(`${url} closed before it opened (${event.code})`));
    };
    ws.onopen = () => {
      clearTimeout(timer);
      const next = (wait = 10_000) =>
        queue.length > 0 ? Promise.resolve(queue.shift()!) : new Promise<string | Uint8Array>((res, rej) => {
          const waiter = (m: string | Uint8Array) => {
            clearTimeout(t);
            res(m);
          };
          // A waiter that timed out leaves: the next message goes to a later one, not nowhere.
          const t = setTimeout(() => {
            waiters.splice(waiters.indexOf(waiter), 1);
            rej(new Error(`no message on ${url} within ${wait} ms`));
          }, wait);
          waiters.push(waiter);
        });
      resolve({
        ws,
        next,
        json: async <T>() => JSON.parse(String(await next())) as T,
        closed,
      });
    };
  });
}

/** A raw connection after a hand-made handshake: the status line, the head, and the socket. */
export interface RawHandshake {
  status: number;
  head: string;
  socket: Socket;
}

/**
 * Sends a WebSocket handshake for `path` by hand and resolves once the answer's head has arrived; `headers` may
 * replace the `Host`.
 */
export function rawHandshake(port: number, path: string, headers: Record<string, string> = {}): Promise<RawHandshake> {
  return new Promise((resolve, reject) => {
    const socket = tcpConnect(port, "127.0.0.1");
    let head = "";
    socket.on("error", reject);
    socket.on("data", function onData(chunk: Uint8Array) {
      head += new TextDecoder().decode(chunk);
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) return;
      socket.off("data", onData);
      socket.pause();
      resolve({ status: Number(head.split(" ")[1]), head: head.slice(0, end), socket });
    });
    const lines = [
      `GET ${path} HTTP/1.1`,
      `Host: ${headers.Host ?? "127.0.0.1"}`,
      "Upgrade: websocket",
      "Connection: Upgrade",
      `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}`,
      "Sec-WebSocket-Version: 13",
      ...Object.entries(headers).filter(([k]) => k !== "Host").map(([k, v]) => `${k}: ${v}`),
    ];
    socket.write(lines.join("\r\n") + "\r\n\r\n");
  });
}

/** A masked text frame, as a client must send it. */
export function textFrame(text: string): Uint8Array {
  return maskedFrame(0x81, new TextEncoder().encode(text));
}

/** A masked close frame with `code`. */
export function closeFrame(code: number): Uint8Array {
  return maskedFrame(0x88, new Uint8Array([code >> 8, code & 255]));
}

/**
 * Closes a raw connection after a successful handshake the way a client should: a close frame, then the server's
 * close and end of the connection (a connection cut without one keeps Deno's idle timer, and the server process,
 * alive up to half of `wsIdleTimeout` after shutdown).
 */
export function closeRaw(raw: RawHandshake): Promise<void> {
  return new Promise((resolve) => {
    raw.socket.on("error", () => {});
    raw.socket.on("close", () => resolve());
    raw.socket.resume();
    raw.socket.write(closeFrame(1000));
    setTimeout(() => raw.socket.destroy(), 2000);
  });
}

function maskedFrame(first: number, payload: Uint8Array): Uint8Array {
  if (payload.length > 125) throw new Error("short frames only");
  const mask = randomBytes(4);
  const frame = new Uint8Array(6 + payload.length);
  frame[0] = first;
  frame[1] = 0x80 | payload.length;
  frame.set(mask, 2);
  for (let i = 0; i < payload.length; i++) frame[6 + i] = payload[i] ^ mask[i % 4];
  return frame;
}
