// The floor of a remote pool's hop: one NATS request-reply round trip with nothing else, the official client on this
// runtime at both ends. ROLE=responder answers every message on the subject with its bytes (and prints "ready"); the
// requester sends 64-byte requests one after another and prints {"p50": ms, "p99": ms}. Run by bench/run.mjs, which
// starts both (NATS_URL).
import process from "node:process";
import { connect } from "@nats-io/transport-node";

const url = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const subject = `floor.${process.env.SUBJECT ?? "echo"}`;
const nc = await connect({ servers: url.replace("nats://", "") });

if (process.env.ROLE === "responder") {
  nc.subscribe(subject, {
    queue: "floor",
    callback: (_e, msg) => {
      msg.respond(msg.data);
    },
  });
  await nc.flush();
  console.log("ready");
} else {
  const payload = new Uint8Array(64);
  const times: number[] = [];
  for (let i = 0; i < 3000; i++) {
    const t0 = performance.now();
    await nc.request(subject, payload, { timeout: 5000 });
    if (i >= 500) times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  console.log(
    JSON.stringify({ p50: times[Math.floor(times.length / 2)], p99: times[Math.floor(times.length * 0.99)] }),
  );
  await nc.close();
  process.exit(0);
}
