// Process lifecycle: crashes, stuck workers, garbage, degraded pools, shutdown, orphans.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  alive,
  assertTimesOut,
  eventually,
  fixture,
  getJson,
  httpsGet,
  poolWorkers,
  runtime,
  spillsOf,
  start,
  startApp,
} from "./helpers.ts";

const mainWorkers = (url: string) => poolWorkers(url, "main");
/** Requests the app fixture's dispatcher holds for its pools (answered by a @sync route, so not counted). */
const pending = async (url: string): Promise<number> => (await getJson(`${url}/sync/status`)).body.pending;

describe(`worker lifecycle (${runtime.name})`, () => {
  test("a worker that exits is replaced; the other keeps its pid", async () => {
    const app = await startApp("app.ts");
    try {
      const before = await mainWorkers(app.url);
      const { body } = await getJson(`${app.url}/api/exit`);
      const dead = body.exiting as number;
      const survivor = before.find((w) => w.pid !== dead)!;
      assert.ok(
        await eventually(async () => {
          const ws = await mainWorkers(app.url);
          return ws.every((w) => w.alive) && ws.some((w) => w.restarts === 1) && !ws.some((w) => w.pid === dead);
        }, 5000),
        "no replacement",
      );
      const after = await mainWorkers(app.url);
      assert.ok(after.some((w) => w.pid === survivor.pid), "the other worker was restarted too");
      assert.match(after.find((w) => w.restarts === 1)!.lastExitReason ?? "", /code 3/);
      await app.waitStderr(/died \(code 3\)/);
    } finally {
      assert.equal((await app.stop()).code, 0);
    }
  });

  test("requests in flight on a dying worker get 502 at once", async () => {
    const app = await startApp("app.ts");
    try {
      const t0 = Date.now();
      const res = await getJson(`${app.url}/api/crash-inflight`);
      assert.equal(res.status, 502);
      assert.deepEqual(res.body, { error: "Worker failed" });
      assert.ok(Date.now() - t0 < 600, "502 came late");
    } finally {
      await app.stop();
    }
  });

  test("a worker that blocks its event loop: 504 at the timeout, killed after stuckTimeout, replaced", async () => {
    const app = await startApp("app.ts");
    try {
      const before = await mainWorkers(app.url);
      const t0 = Date.now();
      const res = await getJson(`${app.url}/api/spin`);
      assert.equal(res.status, 504);
      assert.ok(Date.now() - t0 < 1400, "504 came after the stuck kill, not at the timeout");
      // the other worker keeps serving meanwhile
      assert.equal((await getJson(`${app.url}/api/pid`)).status, 200);
      await app.waitStderr(/stuck: no heartbeat/, 10_000);
      assert.ok(
        await eventually(async () => {
          const ws = await mainWorkers(app.url);
          return ws.every((w) => w.alive) && ws.filter((w) => before.some((b) => b.pid === w.pid)).length === 1;
        }, 6000),
        "stuck worker not replaced",
      );
    } finally {
      await app.stop();
    }
  });

  test("a worker writing garbage on its channel is killed and replaced; the rest is unaffected", async () => {
    // Deno: over pipes; no write of a program reaches its socket channel.
    const app = await startApp("app.ts", {}, { pipes: true });
    try {
      const res = await getJson(`${app.url}/api/garbage`);
      assert.equal(res.status, 502);
      await app.waitStderr(/wrote garbage/);
      assert.ok(
        await eventually(async () => (await mainWorkers(app.url)).every((w) => w.alive), 5000),
        "not replaced",
      );
      for (let i = 0; i < 4; i++) assert.equal((await getJson(`${app.url}/api/pid`)).status, 200);
    } finally {
      assert.equal((await app.stop()).code, 0);
    }
  });

  test("a worker's raw writes to fd 1 (native code, --trace-gc) are logged; its channel is unharmed", async (t) => {
    if (runtime.name === "deno" && process.platform !== "linux") return t.skip("Deno's socket channel is Linux-only");
    const app = await startApp("app.ts");
    try {
      const first = await getJson(`${app.url}/api/raw-stdout`);
      assert.equal(first.status, 200);
      await app.waitStderr(/raw line on fd 1/);
      // the same process answers again: it was not killed for garbage
      const again = await Promise.all([1, 2, 3, 4].map(() => getJson(`${app.url}/api/raw-stdout`)));
      assert.ok(again.some((r) => r.body.pid === first.body.pid), "the worker was replaced");
      assert.ok(again.every((r) => r.status === 200));
      assert.doesNotMatch(app.stderr(), /wrote garbage/);
    } finally {
      assert.equal((await app.stop()).code, 0);
    }
  });

  test("spares: a spare takes a dead worker's slot and id; used or dead spares are replaced", async () => {
    const app = await startApp("app.ts", { SPARES: "1" });
    const spares = async (): Promise<number[]> =>
      (await getJson(`${app.url}/sync/status`)).body.pools.find((p: { name: string }) => p.name === "main").spares;
    /** Whether a spare other than `old` is waiting, within 5 s. */
    const replaced = (old: number) =>
      eventually(async () => {
        const now = await spares();
        return now.length === 1 && now[0] !== old;
      }, 5000);
    try {
      assert.ok(await eventually(async () => (await spares()).length === 1, 5000), "no spare started");
      const [spare] = await spares();
      assert.ok(alive(spare));
      // The spare is not a worker yet: requests never reach it.
      const before = await mainWorkers(app.url);
      assert.ok(!before.some((w) => w.pid === spare));
      const { body } = await getJson(`${app.url}/api/exit`);
      const dead = body.exiting as number;
      const slot = before.find((w) => w.pid === dead)!.id;
      assert.ok(
        await eventually(async () => (await mainWorkers(app.url)).find((w) => w.id === slot)?.pid === spare, 5000),
        "the spare did not take the slot",
      );
      // It runs setup() with the slot's workerId and serves.
      assert.ok(
        await eventually(async () => {
          const { body } = await getJson(`${app.url}/api/pid`);
          return body.pid === spare && body.workerId === slot;
        }, 5000),
        "the spare never answered as the slot's worker",
      );
      // A new spare replaces the one used.
      assert.ok(await replaced(spare), "no new spare");
      // A spare that dies unused is logged and replaced.
      const [next] = await spares();
      process.kill(next, "SIGKILL");
      await app.waitStderr(/spare process of pool main \(pid \d+\) ended before it was needed: signal SIGKILL/);
      assert.ok(await replaced(next), "the dead spare was not replaced");
      const [last] = await spares();
      assert.equal((await app.stop()).code, 0);
      assert.ok(await eventually(() => !alive(last), 2000), "the spare outlived the dispatcher");
    } finally {
      await app.stop();
    }
  });

  test("a spare of a module pool has the module loaded before it takes over", async () => {
    const dir = mkdtempSync(join(tmpdir(), "forkyard-loaded-"));
    const app = await startApp("faulty.ts", { COMPUTE_SPARES: "1", LOADED_DIR: dir });
    const compute = async () =>
      (await getJson(`${app.url}/sync/status`)).body.pools.find((p: { name: string }) => p.name === "ComputeWorker");
    try {
      assert.ok(await eventually(async () => (await compute()).spares.length === 1, 5000), "no spare started");
      const { spares: [spare], workers: [worker] } = await compute();
      // The spare has had no INIT, so nothing told it which pool it serves but FORKYARD_MODULE.
      assert.ok(
        await eventually(() => existsSync(join(dir, String(spare))), 5000),
        "the spare did not load the module",
      );
      const first = await getJson(`${app.url}/compute/loaded`);
      assert.equal(first.body.pid, worker.pid);
      const killedAt = Date.now();
      process.kill(worker.pid, "SIGKILL");
      assert.ok(
        await eventually(async () => (await getJson(`${app.url}/compute/loaded`)).body.pid === spare, 5000),
        "the spare never answered",
      );
      // Loaded while it waited as a spare, not after the kill gave it the slot.
      const { body } = await getJson(`${app.url}/compute/loaded`);
      assert.ok(body.loadedAt < killedAt, `module loaded ${body.loadedAt - killedAt} ms after the kill`);
    } finally {
      await app.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("sendConfig is replayed to a worker started later", async () => {
    const app = await startApp("app.ts");
    try {
      await getJson(`${app.url}/sync/config?value=replayed`, { method: "POST" });
      await getJson(`${app.url}/api/exit`);
      await app.waitStderr(/died \(code 3\)/);
      assert.ok(await eventually(async () => (await mainWorkers(app.url)).every((w) => w.alive), 5000));
      const seen = new Set<number>();
      for (let i = 0; i < 20; i++) {
        const r = await getJson(`${app.url}/api/config`);
        assert.deepEqual(r.body.config, { value: "replayed" });
        seen.add(r.body.pid);
      }
      assert.equal(seen.size, 2);
    } finally {
      await app.stop();
    }
  });

  test("a pool with a module option loads its worker class from that module only", async () => {
    const app = await startApp("faulty.ts");
    try {
      const res = await getJson(`${app.url}/compute/square/12`);
      assert.equal(res.status, 200);
      assert.equal(res.body.result, 144);
      // FIXTURE_MAIN is set by the dispatcher's main module, which this worker never ran.
      assert.equal(res.body.main, "undefined");
    } finally {
      await app.stop();
    }
  });

  test("maxPending: beyond it, 503 Too many requests", async () => {
    const app = await startApp("app.ts", { MAX_PENDING: "2" });
    try {
      const slow = [getJson(`${app.url}/api/slow/400`), getJson(`${app.url}/api/slow/400`)];
      assert.ok(await eventually(async () => (await pending(app.url)) === 2, 5000), "requests not pending");
      const over = await getJson(`${app.url}/api/pid`);
      assert.equal(over.status, 503);
      assert.deepEqual(over.body, { error: "Too many requests" });
      for (const r of await Promise.all(slow)) assert.equal(r.status, 200);
      assert.equal((await getJson(`${app.url}/api/pid`)).status, 200);
    } finally {
      await app.stop();
    }
  });

  test("the queue warning is logged once per crossing", async () => {
    const app = await startApp("app.ts", { QUEUE_WARNING: "2", CONCURRENCY: "1" });
    try {
      const burst = () => Promise.all(Array.from({ length: 8 }, () => getJson(`${app.url}/api/slow/100`)));
      await burst();
      await burst();
      const count = (app.stderr().match(/requests waiting \(queueWarning 2\)/g) ?? []).length;
      assert.equal(count, 2, app.stderr());
    } finally {
      await app.stop();
    }
  });

  test("a request waiting in the queue times out there with 504 while kept-alive requests hold the workers", async () => {
    const app = await startApp("app.ts", { CONCURRENCY: "1" });
    try {
      // Both workers busy for 1.2 s, kept alive past the 700 ms timeout; the third request waits in the queue.
      const busy = [getJson(`${app.url}/api/kept-alive`), getJson(`${app.url}/api/kept-alive`)];
      assert.ok(await eventually(async () => (await pending(app.url)) === 2, 5000), "workers not busy");
      await assertTimesOut(`${app.url}/api/slow/5`, 600, 1100); // the pool's timeout is 700 ms
      for (const r of await Promise.all(busy)) assert.deepEqual([r.status, r.body], [200, { done: true }]);
      assert.ok(await eventually(async () => (await pending(app.url)) === 0, 5000), "requests left pending");
      assert.equal((await getJson(`${app.url}/api/slow/5`)).status, 200);
    } finally {
      await app.stop();
    }
  });

  test("HTTPS with the tls option", async () => {
    const app = await startApp("app.ts", { TLS: "1" });
    try {
      const { readFileSync } = await import("node:fs");
      const ca = readFileSync(fixture("cert.pem"), "utf8");
      const res = await httpsGet(`https://localhost:${app.port}/sync/health`, ca);
      assert.equal(res.status, 200);
      assert.equal(JSON.parse(res.body).status, "ok");
    } finally {
      await app.stop();
    }
  });
});

describe(`shutdown (${runtime.name})`, () => {
  test("SIGTERM lets in-flight requests finish, stops the workers and exits 0", async () => {
    const app = await startApp("app.ts");
    const workers = (await mainWorkers(app.url)).map((w) => w.pid);
    const inflight = getJson(`${app.url}/api/slow/400`);
    assert.ok(await eventually(async () => (await pending(app.url)) === 1, 5000), "request not in flight");
    app.child.kill("SIGTERM");
    const res = await inflight;
    assert.equal(res.status, 200);
    assert.equal(res.body.slept, 400);
    assert.deepEqual(await app.exited, { code: 0, signal: null });
    for (const pid of workers) assert.equal(alive(pid), false, `worker ${pid} left behind`);
  });

  test("SIGTERM to every process at once, as systemd stops a service: in-flight and queued requests finish", async () => {
    const app = await startApp("app.ts");
    const workers = (await mainWorkers(app.url)).map((w) => w.pid);
    // One request more than there are workers: one waits in the queue.
    const requests = Array.from({ length: workers.length + 1 }, () => getJson(`${app.url}/api/slow/400`));
    assert.ok(
      await eventually(async () => (await pending(app.url)) === workers.length + 1, 5000),
      "requests not pending",
    );
    app.child.kill("SIGTERM");
    for (const pid of workers) process.kill(pid, "SIGTERM");
    for (const res of await Promise.all(requests)) {
      assert.equal(res.status, 200);
      assert.equal(res.body.slept, 400);
    }
    assert.deepEqual(await app.exited, { code: 0, signal: null });
    for (const pid of workers) assert.equal(alive(pid), false, `worker ${pid} left behind`);
  });

  test("requests still pending after shutdownTimeout get 503 Server shutting down", async () => {
    const app = await startApp("app.ts", { SHUTDOWN_TIMEOUT: "200" });
    const inflight = getJson(`${app.url}/api/slow/650`);
    assert.ok(await eventually(async () => (await pending(app.url)) === 1, 5000), "request not in flight");
    const t0 = Date.now();
    app.child.kill("SIGTERM");
    const res = await inflight;
    assert.equal(res.status, 503);
    assert.deepEqual(res.body, { error: "Server shutting down" });
    assert.ok(Date.now() - t0 < 550, "answered after the request would have finished");
    assert.equal((await app.exited).code, 0);
  });

  test("spill files a dispatcher killed with SIGKILL left in /dev/shm are removed when a dispatcher starts", {
    skip: !existsSync("/dev/shm"),
  }, async () => {
    const first = await startApp("app.ts");
    const pid = first.child.pid;
    const left = () => spillsOf(pid);
    // Over the spill threshold: the body goes through a file, which the dispatcher keeps for the next one.
    const res = await fetch(`${first.url}/api/echo`, {
      method: "POST",
      body: new Uint8Array(512 * 1024).fill(7),
      headers: { "content-type": "application/octet-stream" },
    });
    assert.deepEqual((await res.json()).data, { bytes: 512 * 1024 });
    assert.ok(left().length > 0, "the dispatcher kept no spill file");
    first.child.kill("SIGKILL");
    await first.exited;
    assert.ok(left().length > 0);
    // A file of a process that still runs (this one) is left alone.
    const live = `/dev/shm/forkyard-${process.pid}-0-test`;
    writeFileSync(live, "x");
    const second = await startApp("app.ts");
    try {
      assert.deepEqual(left(), []);
      assert.ok(existsSync(live), "a live process's spill file was removed");
    } finally {
      await second.stop();
      rmSync(live, { force: true });
    }
  });

  test("a dispatcher stopped with SIGTERM removes its spill directory from /dev/shm", {
    skip: !existsSync("/dev/shm"),
  }, async () => {
    const app = await startApp("app.ts");
    const pid = app.child.pid;
    // Over the spill threshold: the body goes through a file, which the dispatcher keeps for the next one.
    const res = await fetch(`${app.url}/api/echo`, {
      method: "POST",
      body: new Uint8Array(512 * 1024).fill(7),
      headers: { "content-type": "application/octet-stream" },
    });
    assert.deepEqual((await res.json()).data, { bytes: 512 * 1024 });
    assert.equal(spillsOf(pid).length, 1, "the dispatcher's spill directory");
    assert.ok(readdirSync(`/dev/shm/${spillsOf(pid)[0]}`).length > 0, "no spill file kept");
    assert.equal((await app.stop()).code, 0);
    assert.deepEqual(spillsOf(pid), []);
  });

  test("when the dispatcher is killed with SIGKILL, no worker is left after 2 s", async () => {
    const app = await startApp("app.ts");
    const workers = (await mainWorkers(app.url)).map((w) => w.pid);
    assert.equal(workers.length, 2);
    app.child.kill("SIGKILL");
    await app.exited;
    assert.ok(await eventually(() => workers.every((pid) => !alive(pid)), 2000), "orphaned workers");
  });
});

describe(`runtime flags (${runtime.name})`, () => {
  test("workers run with the flags the program was run with (--preload or --import; Deno's --sloppy-imports)", async () => {
    const script = fixture("flags_app.ts");
    const preload = fixture("flags_preload.ts");
    const exe = runtime.selfCommand(script)[0];
    const cmd = runtime.name === "deno"
      ? [exe, "run", "-A", `--preload=${preload}`, "--sloppy-imports", script]
      : runtime.name === "bun"
      ? [exe, "--preload", preload, script]
      : [exe, "--import", "tsx", "--import", preload, script];
    const proc = start(script, [], { PORT: "0", SLOPPY: runtime.name === "deno" ? "1" : "0" }, cmd);
    try {
      const { port, pid } = await proc.line<{ port: number; pid: number }>((v) => typeof v.port === "number");
      const res = await getJson(`http://127.0.0.1:${port}/flags`);
      assert.equal(res.status, 200, proc.stderr());
      assert.notEqual(res.body.pid, pid, "answered by the dispatcher itself");
      assert.deepEqual({ preloaded: res.body.preloaded, sloppy: res.body.sloppy }, {
        preloaded: "yes",
        sloppy: "loaded",
      });
    } finally {
      proc.child.kill("SIGTERM");
      assert.equal((await proc.exited).code, 0);
    }
  });
});

describe(`plain type stripping (${runtime.name})`, () => {
  test("the library and the decorator-free quick start run on Node 24 without a loader", async () => {
    const node = fileURLToPath(new URL("../node_modules/.bin/node", import.meta.url));
    const script = fileURLToPath(new URL("../examples/quickstart_plain.ts", import.meta.url));
    let out = "";
    const child = runtime.spawn({
      cmd: [node, script],
      env: { PORT: "0", PRINT_PORT: "1" },
      onStdout: (c) => (out += new TextDecoder().decode(c)),
      onStderr: () => {},
    });
    try {
      assert.ok(await eventually(() => out.includes("port"), 15_000), "did not start");
      const { port } = JSON.parse(out.trim().split("\n")[0]);
      const url = `http://127.0.0.1:${port}`;
      const created = await getJson(`${url}/api/items`, {
        method: "POST",
        headers: { "x-api-key": "demo-key", "content-type": "application/json" },
        body: '{"name":"plain"}',
      });
      assert.equal(created.status, 201);
      assert.equal((await getJson(`${url}/health`)).body.status, "ok");
      assert.equal((await getJson(`${url}/api/items`)).status, 401);
    } finally {
      child.kill("SIGTERM");
      assert.equal((await child.exited).code, 0);
    }
  });
});

describe(`elastic pools (${runtime.name})`, () => {
  test("grows while requests wait, shrinks after idleTimeout, and scale(n) works at run time", async () => {
    const app = await startApp("elastic.ts");
    const workers = () => poolWorkers(app.url, "SlowWorker");
    try {
      assert.equal((await workers()).length, 1);
      const burst = await Promise.all(Array.from({ length: 8 }, () => getJson(`${app.url}/work/300`)));
      assert.ok(burst.every((r) => r.status === 200));
      await app.waitStderr(/grows to 2 workers/);
      assert.ok(new Set(burst.map((r) => r.body.pid)).size >= 2, "the new workers took no request");
      assert.ok(
        await eventually(async () => (await workers()).length === 1, 10_000),
        "did not shrink back to minWorkers",
      );
      await app.waitStderr(/shrinks to 1 workers/);
      assert.equal((await getJson(`${app.url}/sync/scale/3`, { method: "POST" })).status, 200);
      assert.ok(await eventually(async () => (await workers()).filter((w) => w.alive).length === 3, 10_000));
      await getJson(`${app.url}/sync/scale/1`, { method: "POST" });
      assert.equal((await workers()).length, 1);
    } finally {
      assert.equal((await app.stop()).code, 0);
    }
  });
});
