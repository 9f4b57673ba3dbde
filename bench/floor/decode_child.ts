// A child for the floor forwarders (CHILD=decode, with PROTOCOL=1) that does a worker's minimum and no more: it opens
// the channel as a worker does (`openWorkerChannel()`: on Node stdin and a pipe of its own, on Bun stdin and stdout,
// on Deno a Unix socket), decodes every frame (a spilled body is read from its file into bytes of its own, as a
// worker must hand its handler the body), and sends the frame back with the same header and body (a large body
// through a spill file of its own). No routing, no handler, no JSON result, no supervision. Run by bench/run.mjs as
// the "decoding" floor: how much of the gap between forkyard and the echo floor a worker's own work explains.
//   CHILD=decode PROTOCOL=1 node bench/probe.mjs node bench/floor/node_forward.ts /echo
import { loadRuntime } from "../../src/detect.ts";
import { openWorkerChannel } from "../../src/worker/process.ts";

// Echo every frame the worker's channel hands over, with its header and body, as a response would go.
const { writer } = openWorkerChannel(
  await loadRuntime(),
  (type, header, body) => writer.send(type as never, header as never, body),
);
