// A child for node_forward.ts (CHILD=decode, with PROTOCOL=1) that does a worker's minimum and no more: it
// decodes every frame (a spilled body is read from its file into bytes of its own, as a worker must hand its
// handler the body), and sends the frame back with the same header and body (a large body through a spill file
// of its own). No routing, no handler, no JSON result. Not run by bench/run.mjs: it measures how much of the
// gap between forkyard and the echo floor a worker's own work explains.
//   CHILD=decode PROTOCOL=1 node bench/probe.mjs node bench/floor/node_forward.ts /echo
import { Socket } from "node:net";
import process from "node:process";
import { runtime } from "../../adapters/node.ts";
import { F, FrameDecoder, FrameWriter, SPILL_THRESHOLD, spillPrefix } from "../../src/framing.ts";

const out = new Socket({ fd: 3, readable: false, writable: true });
const files = runtime.spill();
const writer = new FrameWriter(
  (bytes) => void out.write(bytes),
  files === null ? undefined : { files, prefix: spillPrefix(process.pid), threshold: SPILL_THRESHOLD },
);
const decoder = new FrameDecoder(
  (type, header, body) => {
    if (type === F.RELEASE) writer.release(header.p);
    else writer.send(type, header, body);
  },
  files,
  (path) => writer.send(F.RELEASED, { p: path }),
);
process.stdin.on("data", (chunk: Uint8Array) => decoder.push(chunk));
process.stdin.on("end", () => process.exit(0));
