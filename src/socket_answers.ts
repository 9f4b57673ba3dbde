/**
 * Whether a server answers on a Unix socket: how a stale socket (its server gone) is told from a live one, for the
 * control socket and for a dispatcher listening on a Unix socket.
 *
 * @module
 */

import { connect } from "node:net";

/** Whether something answers on the Unix socket at `path`. */
export function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}
