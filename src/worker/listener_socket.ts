/**
 * The connection a request-listener app sees on `req.socket`: the client's address as the dispatcher saw it, whether
 * it came over TLS, and a socket's usual methods, which do nothing here (the dispatcher owns the real connection).
 *
 * @module
 */

import { EventEmitter } from "node:events";

/** A stand-in for the `net.Socket` of one request. */
export class ListenerSocket extends EventEmitter {
  /** The client's IP address. */
  remoteAddress: string | undefined;
  /** `"IPv4"` or `"IPv6"`. */
  remoteFamily: string | undefined;
  /** Unknown here: the dispatcher keeps the client's port. */
  remotePort: number | undefined = undefined;
  /** `true` when the client reached the dispatcher over TLS (Express's `req.secure`, Koa's `ctx.secure`). */
  encrypted: boolean | undefined;
  readable = true;
  writable = true;
  destroyed = false;
  bytesRead = 0;
  bytesWritten = 0;

  readonly #onDestroy: () => void;

  /** `onDestroy`: the app destroyed the connection (its answer, unfinished, is abandoned). */
  constructor(address: string | undefined, tls: boolean, onDestroy: () => void) {
    super();
    this.#onDestroy = onDestroy;
    this.remoteAddress = address;
    this.remoteFamily = address === undefined ? undefined : address.includes(":") ? "IPv6" : "IPv4";
    if (tls) this.encrypted = true;
  }

  /** The request is over: the connection "closes" for those who listen to it. */
  close(hadError: boolean): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.readable = false;
    this.writable = false;
    this.emit("close", hadError);
  }

  destroy(): this {
    if (!this.destroyed) this.#onDestroy();
    return this;
  }
  end(): this {
    return this;
  }
  write(): boolean {
    return false;
  }
  setTimeout(): this {
    return this;
  }
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }
  address(): Record<string, never> {
    return {};
  }
}
