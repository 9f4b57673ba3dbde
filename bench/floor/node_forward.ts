// The floor for a dispatcher on Node: @hono/node-server (as forkyard's dispatcher serves on Node)
// forwards a 16-byte message per request to a child that echoes it back over its stdin and a pipe
// of its own (fd 3, as forkyard's Node workers write), batched once per event-loop turn, no parsing;
// with PROTOCOL=1, forkyard's frames instead (see forwarder.ts), and TRACE_HEADER=0 answers those
// without the x-request-id header; CHILD=decode runs decode_child.ts, a child that does a worker's minimum.
// REUSE_PORT=1 binds with SO_REUSEPORT, so that two of these share one port.
// Prints {"port": N} when listening. Run by bench/run.mjs.
import { spawn } from "node:child_process";
import process from "node:process";
import type { Readable } from "node:stream";
import { runtime } from "../../adapters/node.ts";
import { CHANNEL_FD_ENV } from "../../adapters/node_like.ts";
import { forwarder, protocolForwarder } from "./forwarder.ts";
import { serveNodeHttp } from "./node_http.ts";

const decode = process.env.CHILD === "decode";
const child = spawn(
  process.execPath,
  [...process.execArgv, new URL(decode ? "./decode_child.ts" : "./node_echo_child.ts", import.meta.url).pathname],
  // The decoding child finds its channel pipe as a worker does.
  {
    stdio: ["pipe", "inherit", "inherit", "pipe"],
    env: decode ? { ...process.env, [CHANNEL_FD_ENV]: "3" } : undefined,
  },
);
const write = (bytes: Uint8Array) => void child.stdin!.write(bytes);
const f = process.env.PROTOCOL ? protocolForwarder(write, process.env.TRACE_HEADER !== "0", runtime) : forwarder(write);
(child.stdio[3] as Readable).on("data", (chunk: Uint8Array) => f.onChunk(chunk));
serveNodeHttp(f, () => child.kill());
