// Streamed answers under flow control: a client that reads slowly slows its worker (local, or on a worker host over
// NATS) instead of growing the dispatcher's memory. The worker makes 200 MiB on demand; the client reads about 1 MiB/s
// for six seconds; what the worker made stays within a few windows of what the client read, and the dispatcher's
// resident memory stays flat once warm.
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
 * Reads `url` at about `perSecond` bytes a second for `seconds`, then leaves. Returns the bytes read, what the worker
 * says it made by then, and the dispatcher's RSS as held (the smallest sample in a second, so that garbage not yet
 * collected does not count): its growth by the second second (`early`, the heap's own warm-up), by the last (`late`),
 * and between them (`plateau`), which flow control keeps near zero where buffering would grow it by every byte made.
 */
async function readSlowly(base: string, pid: number, perSecond: number, seconds: number) {
  // Warm: the first answers load and compile what every later one uses.
  for (let i = 0; i < 5; i++) {
    await (await fetch(`${base}/render/bytes/2000000`)).arrayBuffer();
    await (await fetch(`${base}/render/sse`)).text();
  }
  const before = rss(pid);
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
    samples.push([Date.now() - t0, rss(pid)]);
    // Ahead of the pace: wait until it catches up.
    const ahead = read / perSecond * 1000 - (Date.now() - t0);
    if (ahead > 0) await sleep(ahead);
  }
  const produced = (await (await fetch(`${base}/render/produced`)).json()).produced as number;
  await reader.cancel();
  const held = (from: number, to: number) =>
    Math.min(...samples.filter(([t]) => t >= from && t < to).map(([, v]) => v)) - before;
  const early = held(1000, 2000);
  const late = held((seconds - 1) * 1000, seconds * 1000);
  const mib = (n: number) => (n / MiB).toFixed(1);
  console.log(
    `[${runtime.name}] slow reader: read ${mib(read)} MiB, made ${mib(produced)}; dispatcher held +${mib(early)} MiB ` +
      `after 2 s, +${mib(late)} after ${seconds} s`,
  );
  return { read, produced, late, plateau: late - early };
}

/** What a slow reader's stream must leave: the worker a few windows ahead, the dispatcher's memory flat. */
function assertFlowControlled({ read, produced, late, plateau }: Awaited<ReturnType<typeof readSlowly>>) {
  assert.ok(read >= 4 * MiB && read < 10 * MiB, `read ${read}`);
  // The window (1 MiB), the dispatcher's queue, the kernel's socket buffers and the client's own: far from the
  // 200 MiB the worker would make unchecked (and the dispatcher hold: 240-280 MiB before flow control).
  assert.ok(produced - read < 48 * MiB, `made ${produced} for ${read} read`);
  // Flat once warm: 4 s more of the stream hold no more than a few MiB more.
  assert.ok(plateau < 16 * MiB, `the dispatcher grew ${plateau / MiB} MiB more between 2 s and the end`);
  assert.ok(late < 120 * MiB, `the dispatcher grew ${late / MiB} MiB`);
}

describe(`streamed answers under flow control (${runtime.name})`, () => {
  test("a local worker's 200 MiB stream to a client reading 1 MiB/s: the worker waits, the dispatcher holds little", async () => {
    const app = await startDispatcher("nats://unused:4222", { LOCAL: "1" });
    try {
      assertFlowControlled(await readSlowly(app.url, app.pid, MiB, 6));
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
      assertFlowControlled(await readSlowly(app.url, app.pid, MiB, 6));
      assert.equal((await fetch(`${app.url}/render/who`)).status, 200);
    } finally {
      assert.equal((await app.stop()).code, 0);
      assert.equal((await host.stop()).code, 0);
      await nats.kill();
    }
  });
});
