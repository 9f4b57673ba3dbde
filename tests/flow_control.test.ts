// Streamed answers under flow control: a client that reads slowly slows its worker (local, or on a worker host over
// NATS) instead of growing the dispatcher's memory. The worker makes 200 MiB on demand; the client reads about 1 MiB/s
// for a few seconds; what the worker made stays within a few windows of what the client read, and the dispatcher's
// resident memory grows by less than 50 MiB.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { runtime, sleep } from "./helpers.ts";
import { startDispatcher, startHost } from "./remote_hosts.ts";
import { startNats } from "./nats_server.ts";

const MiB = 1024 * 1024;

/** A process's resident memory, in bytes (Linux). */
function rss(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith("VmRSS:"))!;
  return Number(line.replace(/\D+/g, "")) * 1024;
}

/**
 * Reads `url` at about `perSecond` bytes a second for `seconds`, then leaves; returns the bytes read, what the worker
 * says it made by then, and the dispatcher's RSS growth: what it still held in the last second (the smallest sample
 * then, less the first), so that garbage not yet collected on a busy machine does not count as held.
 */
async function readSlowly(base: string, pid: number, perSecond: number, seconds: number) {
  // Warm: the first answers load and compile what every later one uses.
  for (let i = 0; i < 5; i++) {
    await (await fetch(`${base}/render/bytes/2000000`)).arrayBuffer();
    await (await fetch(`${base}/render/sse`)).text();
  }
  const before = rss(pid);
  let peak = before;
  const samples: [number, number][] = [];
  const res = await fetch(`${base}/render/flood/200`);
  assert.equal(res.status, 200);
  const reader = res.body!.getReader();
  let read = 0;
  const t0 = Date.now();
  while (Date.now() - t0 < seconds * 1000) {
    const { done, value } = await reader.read();
    if (done) break;
    read += value.length;
    const now = rss(pid);
    peak = Math.max(peak, now);
    samples.push([Date.now(), now]);
    // Ahead of the pace: wait until it catches up.
    const ahead = read / perSecond * 1000 - (Date.now() - t0);
    if (ahead > 0) await sleep(ahead);
  }
  const produced = (await (await fetch(`${base}/render/produced`)).json()).produced as number;
  await reader.cancel();
  const last = samples.filter(([t]) => t >= samples.at(-1)![0] - 1000).map(([, v]) => v);
  const held = Math.min(...last) - before;
  const mib = (n: number) => (n / MiB).toFixed(1);
  console.log(
    `[${runtime.name}] slow reader: read ${mib(read)} MiB, made ${mib(produced)}, ` +
      `dispatcher +${mib(held)} held (+${mib(peak - before)} at its peak)`,
  );
  return { read, growth: held, produced };
}

describe(`streamed answers under flow control (${runtime.name})`, () => {
  test("a local worker's 200 MiB stream to a client reading 1 MiB/s: the worker waits, the dispatcher holds little", async () => {
    const app = await startDispatcher("nats://unused:4222", { LOCAL: "1" });
    try {
      const { read, growth, produced } = await readSlowly(app.url, app.pid, MiB, 4);
      assert.ok(read >= 2 * MiB && read < 8 * MiB, `read ${read}`);
      // The window (1 MiB), the dispatcher's queue, the kernel's socket buffers and the client's own: far from the
      // 200 MiB it would make.
      assert.ok(produced - read < 48 * MiB, `made ${produced} for ${read} read`);
      assert.ok(growth < 50 * MiB, `the dispatcher grew ${growth / MiB} MiB`);
      // Still serving, the stream's worker free again.
      assert.equal((await fetch(`${app.url}/render/who`)).status, 200);
    } finally {
      assert.equal((await app.stop()).code, 0);
    }
  });

  test("the same through a worker host over NATS: the host's worker waits for the dispatcher's credit", async () => {
    const nats = await startNats();
    const host = await startHost(nats.url, "host-flow", ["--concurrency", "2"]);
    const app = await startDispatcher(nats.url);
    try {
      const { read, growth, produced } = await readSlowly(app.url, app.pid, MiB, 4);
      assert.ok(read >= 2 * MiB && read < 8 * MiB, `read ${read}`);
      assert.ok(produced - read < 48 * MiB, `made ${produced} for ${read} read`);
      assert.ok(growth < 50 * MiB, `the dispatcher grew ${growth / MiB} MiB`);
      assert.equal((await fetch(`${app.url}/render/who`)).status, 200);
    } finally {
      assert.equal((await app.stop()).code, 0);
      assert.equal((await host.stop()).code, 0);
      await nats.kill();
    }
  });
});
