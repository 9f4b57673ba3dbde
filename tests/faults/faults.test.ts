// Fault injection under steady load. Each case prints its accounting (sent, answered, by
// status) and asserts that every request got exactly one answer, and which answers.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { alive, eventually, getJson, load, poolWorkers, runtime, sleep, startApp } from "../helpers.ts";

const CONCURRENCY = 8;

function statuses(acc: { byStatus: Record<string, number> }): number[] {
  return Object.keys(acc.byStatus).map(Number).sort();
}

describe(`faults under load (${runtime.name})`, () => {
  for (const retry of [false, true]) {
    test(`kill -9 of a worker${retry ? " with retryIdempotent: nothing fails" : ": only its in-flight requests fail, with 502"}`, async () => {
      const app = await startApp("app.ts", retry ? { RETRY_IDEMPOTENT: "1" } : {});
      try {
        const run = load(app.url, CONCURRENCY, "/api/slow/30");
        await sleep(400);
        const [victim, other] = await poolWorkers(app.url);
        const killedAt = Date.now();
        process.kill(victim.pid, "SIGKILL");
        assert.ok(
          await eventually(async () => {
            const ws = await poolWorkers(app.url);
            return ws.every((w) => w.alive) && !ws.some((w) => w.pid === victim.pid);
          }, 3000),
          "no replacement",
        );
        const replacedIn = Date.now() - killedAt;
        console.log(`[${runtime.name}] kill -9 to replacement ready: ${replacedIn} ms`);
        await sleep(300);
        const acc = await run.stop(`kill -9${retry ? " (retryIdempotent)" : ""}`);
        assert.equal(acc.answered, acc.sent, "a request got no answer");
        const failed = acc.sent - (acc.byStatus[200] ?? 0);
        if (retry) {
          assert.deepEqual(statuses(acc), [200]);
        } else {
          assert.ok(statuses(acc).every((s) => s === 200 || s === 502), JSON.stringify(acc.byStatus));
          assert.ok(failed <= CONCURRENCY, `${failed} failed, more than were in flight`);
        }
        assert.ok((await poolWorkers(app.url)).some((w) => w.pid === other.pid), "the other worker was replaced too");
        assert.ok(replacedIn < 2000, `replacement took ${replacedIn} ms`);
      } finally {
        assert.equal((await app.stop()).code, 0);
      }
    });
  }

  test("a handler that busy-loops: 504 at the timeout, worker replaced after stuckTimeout, others keep serving", async () => {
    const app = await startApp("app.ts");
    try {
      const before = (await poolWorkers(app.url)).map((w) => w.pid);
      const run = load(app.url, CONCURRENCY - 2, "/api/slow/20");
      await sleep(200);
      const spin = await getJson(`${app.url}/api/spin`);
      assert.equal(spin.status, 504);
      await app.waitStderr(/stuck: no heartbeat/, 10_000);
      assert.ok(
        await eventually(async () => {
          const ws = await poolWorkers(app.url);
          return ws.every((w) => w.alive) && ws.filter((w) => before.includes(w.pid)).length === 1;
        }, 5000),
        "stuck worker not replaced",
      );
      const replacedAt = run.elapsed();
      await sleep(300);
      const acc = await run.stop("busy loop");
      assert.equal(acc.answered, acc.sent);
      assert.ok(statuses(acc).every((s) => s === 200 || s === 504 || s === 502), JSON.stringify(acc.byStatus));
      // Only requests that reached the blocked worker before it was seen as late can fail.
      assert.ok(acc.sent - (acc.byStatus[200] ?? 0) <= CONCURRENCY, JSON.stringify(acc.byStatus));
      const afterwards = acc.log.filter((r) => r.t > replacedAt);
      assert.ok(afterwards.length > 0 && afterwards.every((r) => r.status === 200), "failures after the replacement");
    } finally {
      await app.stop();
    }
  });

  test("setup() that always throws: fatal log, degraded after maxRestarts, immediate 503, other pools fine, recovery", async () => {
    const marker = join(mkdtempSync(join(tmpdir(), "forkyard-")), "fixed");
    const app = await startApp("faulty.ts", { FIXED_MARKER: marker });
    try {
      const healthy = load(app.url, 4, "/healthy/ping");
      await app.waitStderr(/<2>forkyard\.worker\.BrokenWorker[^\n]*database unreachable/);
      await app.waitStderr(/at .*setup/);
      await app.waitStderr(/Pool BrokenWorker is degraded/, 10_000);
      // exponential backoff per slot: restartDelay 20, then doubling
      const delays = [...app.stderr().matchAll(/BrokenWorker \(pid \d+\) [^\n]*restarting in (\d+) ms/g)].map((m) =>
        Number(m[1])
      );
      assert.deepEqual(delays.slice(0, 3), [20, 40, 80]);
      const t0 = Date.now();
      const res = await getJson(`${app.url}/broken/hello`);
      assert.equal(res.status, 503);
      assert.deepEqual(res.body, { error: "Service unavailable" });
      assert.ok(Date.now() - t0 < 200, "503 was not immediate");
      writeFileSync(marker, "ok");
      assert.ok(
        await eventually(async () => (await getJson(`${app.url}/broken/hello`)).status === 200, 40_000),
        "the pool did not recover",
      );
      await app.waitStderr(/Pool BrokenWorker recovered/);
      const acc = await healthy.stop("setup() throws (healthy pool)");
      assert.equal(acc.answered, acc.sent);
      assert.deepEqual(statuses(acc), [200]);
    } finally {
      await app.stop();
    }
  });

  test("SIGHUP under load: every worker replaced, zero non-2xx", async () => {
    const app = await startApp("app.ts");
    try {
      const before = (await poolWorkers(app.url)).map((w) => w.pid);
      const run = load(app.url, CONCURRENCY, "/api/slow/20");
      await sleep(300);
      app.child.kill("SIGHUP");
      await app.waitStderr(/Reload done: 4 workers replaced/, 20_000);
      await sleep(200);
      const acc = await run.stop("SIGHUP");
      assert.equal(acc.answered, acc.sent);
      assert.deepEqual(statuses(acc), [200]);
      const after = (await poolWorkers(app.url)).map((w) => w.pid);
      assert.equal(after.length, 2);
      assert.ok(after.every((pid) => !before.includes(pid)), "a worker was not replaced");
      assert.ok(before.every((pid) => !alive(pid)), "an old worker is still running");
    } finally {
      await app.stop();
    }
  });

  test("maxRequests recycling under load: zero non-2xx", async () => {
    const app = await startApp("app.ts", { MAX_REQUESTS: "40", MAX_REQUESTS_JITTER: "10" });
    try {
      const before = (await poolWorkers(app.url)).map((w) => w.pid);
      const run = load(app.url, CONCURRENCY, "/api/slow/5");
      await app.waitStderr(/Replacing worker \d of pool main[^\n]*maxRequests/, 20_000);
      assert.ok(
        await eventually(async () => (await poolWorkers(app.url)).every((w) => !before.includes(w.pid)), 20_000),
        "workers were not recycled",
      );
      const acc = await run.stop("maxRequests");
      assert.equal(acc.answered, acc.sent);
      assert.deepEqual(statuses(acc), [200]);
      const ws = await poolWorkers(app.url);
      assert.ok(ws.every((w) => w.restarts === 0), "recycling counted as a crash");
    } finally {
      await app.stop();
    }
  });

  test("maxRequests recycling under heavy keep-alive load: 15,000 tiny requests on 8 connections, none lost", async () => {
    const app = await startApp("app.ts", { MAX_REQUESTS: "200", MAX_REQUESTS_JITTER: "20" });
    try {
      const run = load(app.url, CONCURRENCY, "/api/text");
      assert.ok(await eventually(() => run.acc.sent >= 15_000, 60_000), `only ${run.acc.sent} requests sent`);
      const acc = await run.stop("keep-alive recycling");
      assert.equal(acc.refused, 0, "a client saw its connection closed");
      assert.equal(acc.answered, acc.sent);
      assert.deepEqual(statuses(acc), [200]);
      assert.ok((app.stderr().match(/maxRequests/g)?.length ?? 0) >= 50, "workers were recycled");
    } finally {
      await app.stop();
    }
  });

  test("maxRequests is never overshot: no process answers more than maxRequests + maxRequestsJitter", async () => {
    const app = await startApp("app.ts", { MAX_REQUESTS: "30", MAX_REQUESTS_JITTER: "5" });
    try {
      const byPid = new Map<number, number>();
      let failed = 0;
      const loop = async () => {
        for (let i = 0; i < 60; i++) {
          const res = await getJson(`${app.url}/api/slow/1`);
          if (res.status !== 200) failed++;
          else byPid.set(res.body.pid, (byPid.get(res.body.pid) ?? 0) + 1);
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, loop));
      const counts = [...byPid.values()];
      console.log(`[${runtime.name}] 480 requests served by ${byPid.size} processes: ${counts.join(" ")}`);
      assert.equal(failed, 0);
      assert.ok(Math.max(...counts) <= 35, `a process answered ${Math.max(...counts)} requests, limit 30 + 5`);
      assert.ok(byPid.size >= 480 / 35, `only ${byPid.size} processes for 480 requests`);
    } finally {
      await app.stop();
    }
  });

  test("maxMemoryMb: a worker over the limit takes no new request while its replacement starts", async () => {
    const app = await startApp("app.ts", { MAX_MEMORY_MB: "300", SETUP_DELAY_MS: "1500" });
    try {
      const hog = await getJson(`${app.url}/api/hog/320`);
      assert.equal(hog.status, 200);
      await app.waitStderr(new RegExp(`Replacing worker \\d of pool main \\(pid ${hog.body.pid}\\): memory`));
      const pids: number[] = [];
      for (let i = 0; i < 20; i++) pids.push((await getJson(`${app.url}/api/pid`)).body.pid);
      assert.ok(
        !pids.includes(hog.body.pid),
        `the worker over the limit answered ${pids.filter((p) => p === hog.body.pid).length} of 20`,
      );
    } finally {
      await app.stop();
    }
  });

  test("maxMemoryMb: a worker over the limit is replaced gracefully, zero non-2xx", async () => {
    const app = await startApp("app.ts", { MAX_MEMORY_MB: "300" });
    try {
      const run = load(app.url, CONCURRENCY - 2, "/api/slow/10");
      const hog = await getJson(`${app.url}/api/hog/320`);
      assert.equal(hog.status, 200);
      await app.waitStderr(
        new RegExp(`Replacing worker \\d of pool main \\(pid ${hog.body.pid}\\): memory \\d+ MiB over maxMemoryMb`),
      );
      assert.ok(
        await eventually(async () => !(await poolWorkers(app.url)).some((w) => w.pid === hog.body.pid), 10_000),
        "the worker over the limit was not replaced",
      );
      assert.ok(await eventually(() => !alive(hog.body.pid), 5000), "the old worker did not stop");
      const acc = await run.stop("maxMemoryMb");
      assert.equal(acc.answered, acc.sent);
      assert.deepEqual(statuses(acc), [200]);
      assert.ok((await poolWorkers(app.url)).every((w) => w.alive && w.restarts === 0));
    } finally {
      await app.stop();
    }
  });

  test("a worker writing garbage on its channel: replaced, nothing else affected", async () => {
    // Deno: over pipes; no write of a program reaches its socket channel.
    const app = await startApp("app.ts", {}, { pipes: true });
    try {
      const run = load(app.url, CONCURRENCY - 2, "/api/slow/20");
      await sleep(200);
      const garbage = await getJson(`${app.url}/api/garbage`);
      assert.equal(garbage.status, 502);
      await app.waitStderr(/wrote garbage/);
      assert.ok(await eventually(async () => (await poolWorkers(app.url)).every((w) => w.alive), 5000));
      await sleep(300);
      const acc = await run.stop("garbage");
      assert.equal(acc.answered, acc.sent);
      assert.ok(statuses(acc).every((s) => s === 200 || s === 502), JSON.stringify(acc.byStatus));
      assert.ok(acc.sent - (acc.byStatus[200] ?? 0) <= CONCURRENCY, JSON.stringify(acc.byStatus));
    } finally {
      await app.stop();
    }
  });

  test("SIGTERM under load: requests in flight finish, the dispatcher exits 0", async () => {
    const app = await startApp("app.ts");
    const workers = (await poolWorkers(app.url)).map((w) => w.pid);
    const run = load(app.url, CONCURRENCY, "/api/slow/100");
    await sleep(400);
    const termAt = run.elapsed();
    app.child.kill("SIGTERM");
    const status = await app.exited;
    const acc = await run.stop("SIGTERM");
    assert.deepEqual(status, { code: 0, signal: null });
    const before = acc.log.filter((r) => r.t < termAt - 5);
    assert.ok(before.length > 0);
    assert.ok(before.every((r) => r.status === 200), "a request sent before SIGTERM failed");
    // Sent afterwards: refused (no listener) or 503 "Server shutting down"; never lost.
    assert.equal(acc.answered + acc.refused, acc.sent);
    assert.ok(statuses(acc).every((s) => s === 200 || s === 503), JSON.stringify(acc.byStatus));
    for (const pid of workers) assert.equal(alive(pid), false);
  });

  test("SIGKILL of the dispatcher under load: no process left after 2 s", async () => {
    const app = await startApp("app.ts");
    const workers = (await poolWorkers(app.url)).map((w) => w.pid);
    const run = load(app.url, CONCURRENCY, "/api/slow/50");
    await sleep(300);
    app.child.kill("SIGKILL");
    await app.exited;
    const gone = await eventually(() => workers.every((pid) => !alive(pid)), 2000);
    await run.stop("SIGKILL of the dispatcher");
    assert.ok(gone, "workers outlived the dispatcher by more than 2 s");
  });
});
