/**
 * Starting a Deno worker process with `Deno.Command`: its channel (a socket,
 * or its pipes), its output, its exit.
 *
 * @module
 */

import type { ChildProcess, ExitStatus, SpawnOptions } from "../src/runtime.ts";
import { CHANNEL_ENV, channelListener, connWriter, hex, readConn, TOKEN_BYTES } from "./deno_channel.ts";
import { pump } from "./streams.ts";

export function spawn(options: SpawnOptions): ChildProcess {
  const [command, ...args] = options.cmd;
  const env: Record<string, string> = { ...options.env };
  const sockets = channelListener();
  let token = "";
  let connected: (conn: Deno.Conn | null) => void = () => {};
  const conn = new Promise<Deno.Conn | null>((resolve) => (connected = resolve));
  if (sockets !== null) {
    token = hex(crypto.getRandomValues(new Uint8Array(TOKEN_BYTES)));
    env[CHANNEL_ENV] = `${sockets.address.slice(1)}:${token}`;
    sockets.waiting.set(token, connected);
  } else {
    // Our own channel's address must not reach a child that uses the pipes.
    env[CHANNEL_ENV] = "";
  }
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(command, {
      args,
      cwd: options.cwd,
      env,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (error) {
    sockets?.waiting.delete(token);
    throw error;
  }
  let done = false;
  // On a socket channel, stdout carries no frames: a spawner taking it as text (onText) gets it so, and
  // writes that bypass Deno.stdout (a Node-API addon, V8 tracing) cannot break the channel.
  const onStdout = sockets !== null && options.onText ? options.onText : options.onStdout;
  const streams = Promise.all([pump(child.stdout, onStdout), pump(child.stderr, options.onStderr)]);
  const channelRead = sockets === null ? Promise.resolve() : conn.then((c) => c && readConn(c, options.onStdout));
  const exited = child.status.then((status) => {
    done = true;
    // A child that died before connecting never will.
    sockets?.waiting.delete(token);
    connected(null);
    return Promise.all([streams, channelRead]).then(async (): Promise<ExitStatus> => {
      // The child is gone: give back our end of its stdin and of its socket (each was a descriptor per worker).
      open = false;
      stdin.close().catch(() => {});
      const c = await conn;
      try {
        c?.close();
      } catch {
        // closed already
      }
      return status.signal ? { code: null, signal: status.signal } : { code: status.code, signal: null };
    });
  });
  const stdin = child.stdin.getWriter();
  let open = true;
  const socketWriter = sockets === null ? null : connWriter(conn);
  return {
    pid: child.pid,
    write(data) {
      if (!open) return undefined;
      if (socketWriter !== null) return socketWriter.write(data);
      const written = stdin.write(data).catch(() => {
        open = false;
      });
      return (stdin.desiredSize ?? 0) > 0 ? undefined : written;
    },
    closeStdin() {
      if (!open) return;
      open = false;
      stdin.close().catch(() => {});
      if (socketWriter !== null) {
        socketWriter.close();
        socketWriter.flushed().then(() => conn).then((c) => c?.closeWrite()).catch(() => {});
      }
    },
    kill(signal = "SIGTERM") {
      if (done) return;
      try {
        child.kill(signal);
      } catch {
        // it exited between the check and the kill
      }
    },
    exited,
  };
}
