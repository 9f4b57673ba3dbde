/**
 * A dispatcher's end of its channel to the primary that started it (option
 * `dispatchers`): it carries out the primary's commands, says when it listens,
 * reports its pools' status and the answers it counted once a second, and
 * passes WebSocket messages published here to the other dispatchers and theirs
 * to this one.
 *
 * @module
 */

import type { WorkerPool } from "../pool.ts";
import { type AnyFrames, FrameDecoder, FrameWriter } from "../protocol/codec.ts";
import type { Runtime } from "../runtime.ts";
import type { Metrics } from "./metrics.ts";
import { type Command, P, type Published, type Report } from "./primary_protocol.ts";
import type { SocketHub } from "./socket_hub.ts";

const decoder = new TextDecoder();

/** What a dispatcher started by a primary does for it. */
export interface DispatcherLinkHost {
  runtime: Runtime;
  pools: readonly WorkerPool[];
  pending(): number;
  /** Each pool's workers replaced so far, by why, in the order of `pools`. */
  replaced(): ReadonlyMap<string, number>[];
  /** Where answers are counted when the `admin` option is on (the primary serves them), else `null`. */
  metrics: Metrics | null;
  /** This dispatcher's sockets: what the other dispatchers' workers publish is delivered to them. */
  sockets: SocketHub;
  reload(): Promise<number>;
  stop(): Promise<void>;
}

/** A dispatcher's end of its channel to the primary. */
export class DispatcherLink {
  readonly #host: DispatcherLinkHost;
  readonly #writer: FrameWriter<AnyFrames>;
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(host: DispatcherLinkHost) {
    this.#host = host;
    const channel = host.runtime.parentChannel();
    this.#writer = new FrameWriter<AnyFrames>((bytes) => channel.write(bytes));
    const frames = new FrameDecoder((type, header, body, lent) => {
      if (type === P.COMMAND) void this.#run(header as Command);
      else if (type === P.PUBLISH) {
        const h = header as Published;
        host.sockets.deliver(h.t, h.b === 1 ? (lent ? body.slice() : body) : decoder.decode(body));
      }
    });
    // The primary gone (its end of the channel closed): this dispatcher stops too, leaving no orphan.
    channel.start((chunk) => frames.push(chunk), () => void host.stop());
  }

  /** Tells the primary this dispatcher listens, then reports its status once a second. */
  listening(port: number): void {
    this.#writer.send(P.READY, { port });
    this.#report();
    this.#timer = setInterval(() => this.#report(), 1000);
  }

  /** Passes a message published in this dispatcher to the others. */
  publish(topic: string, data: string | Uint8Array): void {
    this.#writer.send(P.PUBLISH, { t: topic, b: typeof data === "string" ? 0 : 1 } satisfies Published, data);
  }

  #report() {
    const host = this.#host;
    const report: Report = {
      pools: host.pools.map((p) => p.status()),
      replaced: host.replaced().map((r) => Object.fromEntries(r)),
      pending: host.pending(),
      metrics: host.metrics?.take(),
    };
    this.#writer.send(P.STATUS, report);
  }

  /** Stops reporting. */
  close(): void {
    clearInterval(this.#timer);
  }

  async #run(command: Command) {
    const pool = (name: string) => {
      const found = this.#host.pools.find((p) => p.name === name);
      if (found === undefined) throw new Error(`no pool named "${name}"`);
      return found;
    };
    try {
      let r: unknown;
      switch (command.c) {
        case "reload":
          r = command.pool === undefined ? await this.#host.reload() : await pool(command.pool).reload();
          break;
        case "scale":
          pool(command.pool).scale(command.n);
          break;
        case "config":
          pool(command.pool).sendConfig(command.config);
          break;
        case "send":
          pool(command.pool).send(command.request);
          break;
        case "stop":
          void this.#host.stop();
          break;
      }
      this.#report();
      this.#writer.send(P.DONE, { id: command.id, r });
    } catch (error) {
      this.#writer.send(P.DONE, { id: command.id, e: error instanceof Error ? error.message : String(error) });
    }
  }
}
