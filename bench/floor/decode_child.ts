// A child for the floor forwarders (CHILD=decode, with PROTOCOL=1) that does a worker's minimum and no more, over
// the channel a worker of that runtime uses (the adapter's parentChannel(): on Node stdin and a pipe of its own, on
// Bun stdin and stdout, on Deno a Unix socket): it decodes every frame (a spilled body is read from its file into
// bytes of its own, as a worker must hand its handler the body), and sends the frame back with the same header and
// body (a large body through a spill file of its own). No routing, no handler, no JSON result, no supervision. Run
// by bench/run.mjs as the "decoding" floor: how much of the gap between forkyard and the echo floor a worker's own
// work explains.
//   CHILD=decode PROTOCOL=1 node bench/probe.mjs node bench/floor/node_forward.ts /echo
import { loadRuntime } from "../../src/detect.ts";
import { F, FrameDecoder, FrameWriter, SPILL_THRESHOLD, spillPrefix } from "../../src/framing.ts";

const runtime = await loadRuntime();
const channel = runtime.parentChannel();
const files = runtime.spill();
const writer = new FrameWriter(
  (bytes) => channel.write(bytes),
  files === null ? undefined : { files, prefix: spillPrefix(runtime.pid), threshold: SPILL_THRESHOLD },
);
const decoder = new FrameDecoder(
  (type, header, body) => {
    if (type === F.RELEASE) writer.release(header.p);
    else writer.send(type, header, body);
  },
  files,
  (path) => writer.send(F.RELEASED, { p: path }),
);
channel.start((chunk) => decoder.push(chunk), () => runtime.exit(0));
