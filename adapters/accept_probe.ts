/**
 * A check that a listener still accepts connections. Deno's (`node:http` and `Deno.serve`) may stop accepting for
 * good once an accept failed (EMFILE: every descriptor in use) and say nothing; this notices it so that the server
 * can listen again.
 *
 * @module
 */

import { connect } from "node:net";

/** Time between two checks while no connection arrives by itself. */
export const PROBE_INTERVAL_MS = 2000;
/** How long the server has to see the probe's connection once the kernel took it. */
const PROBE_WAIT_MS = 1000;
/** Probes in a row the server must miss before it counts as no longer accepting (one may miss under load). */
const MISSES = 2;

/**
 * Connects to `port` every {@linkcode PROBE_INTERVAL_MS} in which no connection or request arrived (`accepted()`
 * tells it of each), and calls `onStalled` once {@linkcode MISSES} probes in a row were taken by the kernel but never
 * answered. A probe that cannot connect (no descriptor free here either, or refused) tells nothing and counts as no
 * miss. Returns how to stop probing.
 */
export function probeAccepting(
  port: number,
  hostname: string,
  onStalled: () => void,
): { accepted(): void; stop(): void } {
  const host = hostname === "0.0.0.0" ? "127.0.0.1" : hostname === "::" ? "::1" : hostname;
  let seen = false;
  let misses = 0;
  let stopped = false;
  const probe = () => {
    if (seen) {
      seen = false;
      misses = 0;
      return;
    }
    const socket = connect(port, host);
    // Not HTTP: every server answers 400 and closes, which shows it accepted; a server at its maxConnections closes
    // the connection at once without telling (Deno emits no "drop"), which shows it too.
    let answered = false;
    const answer = () => (answered = true);
    socket.on("error", answer).once("data", answer).once("end", answer);
    socket.once("connect", () => {
      socket.write("PROBE\r\n\r\n");
      const timer = setTimeout(() => {
        socket.destroy();
        if (stopped || seen || answered) {
          misses = 0;
          return;
        }
        if (++misses >= MISSES) {
          misses = 0;
          onStalled();
        }
      }, PROBE_WAIT_MS);
      timer.unref?.();
    });
  };
  const interval = setInterval(probe, PROBE_INTERVAL_MS);
  (interval as { unref?: () => void }).unref?.();
  return {
    accepted: () => (seen = true),
    stop: () => {
      stopped = true;
      clearInterval(interval);
    },
  };
}
