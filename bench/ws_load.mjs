#!/usr/bin/env node
// WebSocket load for the benchmarks: CONNS connections, each sending a message and waiting for its echo before the
// next (closed loop), for SECONDS; prints {"messages", "rate", "p50", "p99"} (ms). With IDLE=n it opens n sockets,
// prints {"open": n} and holds them until its stdin ends.
//   node bench/ws_load.mjs ws://127.0.0.1:8080/ws [CONNS=32] [SECONDS=3] [SIZE=64]
import { WebSocket } from "ws";

const [url, conns = "32", seconds = "3", size = "64"] = process.argv.slice(2);
const idle = Number(process.env.IDLE ?? 0);

function connect() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
  });
}

if (idle > 0) {
  const sockets = [];
  // In batches: a burst of 10,000 handshakes at once overflows the listen backlog.
  for (let i = 0; i < idle; i += 200) {
    const batch = await Promise.all(Array.from({ length: Math.min(200, idle - i) }, connect));
    sockets.push(...batch);
  }
  console.log(JSON.stringify({ open: sockets.length }));
  process.stdin.resume();
  process.stdin.on("end", () => process.exit(0));
} else {
  const message = "x".repeat(Number(size));
  const sockets = await Promise.all(Array.from({ length: Number(conns) }, connect));
  const latencies = [];
  let running = true;
  const end = Date.now() + Number(seconds) * 1000;
  const started = performance.now();
  await Promise.all(sockets.map((ws) =>
    new Promise((done) => {
      let sentAt = 0;
      const send = () => {
        if (!running || Date.now() >= end) {
          running = false;
          done();
          return;
        }
        sentAt = performance.now();
        ws.send(message);
      };
      ws.on("message", () => {
        latencies.push(performance.now() - sentAt);
        send();
      });
      send();
    })
  ));
  const took = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
  console.log(
    JSON.stringify({ messages: latencies.length, rate: latencies.length / took, p50: at(0.5), p99: at(0.99) }),
  );
  for (const ws of sockets) ws.terminate();
  process.exit(0);
}
