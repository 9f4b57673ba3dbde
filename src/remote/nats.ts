/**
 * The connection to a NATS server, for remote pools: the official client
 * (`@nats-io/transport-node`, which runs on Deno and Bun through their
 * `node:net`), loaded only by processes that use one. Credentials may come in
 * the URL (`nats://user:pass@host:4222`, `nats://token@host:4222`) or as
 * options; `tls://` asks for TLS.
 *
 * @module
 */

import process from "node:process";
import type { NatsConnection } from "@nats-io/transport-node";
import { connectOptions, hasCredentials, isLoopback, type NatsOptions } from "../remote_options.ts";

/** A NATS server beyond loopback let this process in without credentials (protected mode, as Redis's). */
export class UnprotectedNatsError extends Error {
  constructor(server: string) {
    super(
      `the NATS server at ${server} let this process in without credentials, so anyone who reaches it can read and ` +
        `answer every request: give it authentication (see docs/remote.md), or opt out with insecure: true in the ` +
        `remote option (forkyard worker --nats-insecure)`,
    );
    this.name = "UnprotectedNatsError";
  }
}

/**
 * Deno's `node:net` reports the reset of a socket the client has already destroyed (a server refusing the
 * credentials closes at once) as an error with no listener left, which would end the process before the refusal
 * is told in one line: that error alone is swallowed while a connection is attempted, and for `end(ms)` after.
 */
function ignoreStrayReset(): { end(afterMs: number): void } {
  const onError = (error: Error & { code?: string; syscall?: string }) => {
    if (error?.code === "ECONNRESET" && error.syscall === "read") return;
    // Anything else is as uncaught as it was.
    process.removeListener("uncaughtException", onError);
    console.error(error);
    process.exit(1);
  };
  process.on("uncaughtException", onError);
  return {
    end(afterMs) {
      if (afterMs === 0) process.removeListener("uncaughtException", onError);
      else setTimeout(() => process.removeListener("uncaughtException", onError), afterMs).unref?.();
    },
  };
}

/**
 * Connects to NATS, trying every 250 ms until it is reached or `signal` aborts (then resolves with `null`), and
 * reconnecting forever after a loss; `onStatus` hears of each loss and return of the connection. A server beyond
 * loopback that takes no credentials is refused ({@linkcode UnprotectedNatsError}) unless `options.insecure`.
 */
export async function connectNats(
  options: NatsOptions,
  name: string,
  onStatus: (connected: boolean) => void,
  signal: AbortSignal,
): Promise<NatsConnection | null> {
  const { connect } = await import("@nats-io/transport-node");
  const unprotected = options.insecure !== true && !hasCredentials(options);
  const settings = {
    ...connectOptions(options, name),
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    reconnectJitter: 100,
    // Without credentials, only the servers given: one a cluster announces may be beyond loopback, and the check
    // below runs once, at the first connection.
    ...(unprotected ? { ignoreClusterUpdates: true } : {}),
  };
  let nc: NatsConnection | undefined;
  while (nc === undefined) {
    if (signal.aborted) return null;
    const stray = ignoreStrayReset();
    try {
      nc = await connect(settings);
      stray.end(0);
    } catch (error) {
      stray.end(1000);
      // Not there yet, or refused: a wrong password or a bad TLS setting would only fail again.
      if (/authoriz|auth|tls|certificate/i.test(String(error))) throw error;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 250);
        signal.addEventListener("abort", () => {
          clearTimeout(timer);
          resolve();
        }, { once: true });
      });
    }
  }
  const server = nc.getServer();
  if (unprotected && !isLoopback(server)) {
    await nc.close().catch(() => {});
    throw new UnprotectedNatsError(server);
  }
  (async () => {
    for await (const status of nc.status()) {
      if (status.type === "disconnect") onStatus(false);
      else if (status.type === "reconnect") onStatus(true);
    }
  })().catch(() => {});
  return nc;
}

export type { NatsConnection };
