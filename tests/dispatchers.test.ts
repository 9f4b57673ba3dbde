// Several dispatchers per host: a primary starts them on one port (SO_REUSEPORT), each with its share of the workers;
// it restarts one killed under load, rolls a reload through them, and stops them all on SIGTERM.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Accounting, alive, type App, eventually, fixture, getFresh, load, runtime, start } from "./helpers.ts";
import { type Conn, open } from "./ws_client.ts";

/** Pids of the processes of the fixture's program (dispatchers and workers; not tsx's esbuild) whose parent is `pid`. */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[1]) !== pid || fields[0] === "Z") continue;
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8").includes("dispatchers.ts")) out.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

async function startDispatchers(
  env: Record<string, string> = {},
): Promise<App & { primary: number; admin?: number }> {
  // Bun's node:http server cannot share a port (SO_REUSEPORT): Bun's dispatchers serve with Bun.serve.
  const server: Record<string, string> = runtime.name === "bun" ? { HTTP_SERVER: "native" } : {};
  const proc = start(fixture("dispatchers.ts"), [], { PORT: "0", ...server, ...env });
  const { port, primary, admin } = await proc.line<{ port: number; primary: number; admin?: number }>((v) =>
    typeof v.port === "number"
  );
  return {
    ...proc,
    port,
    primary,
    admin,
    url: `http://127.0.0.1:${port}`,
    async stop() {
      proc.child.kill("SIGTERM");
      return await proc.exited;
    },
  };
}

/** GET on a new connection, its body parsed as JSON. */
async function getFreshJson(url: string): Promise<{ status: number; body: any }> {
  const { status, text } = await getFresh(url);
  return { status, body: text ? JSON.parse(text) : null };
}

/** Which dispatcher pids answer `n` requests on fresh connections. */
async function answering(url: string, n: number): Promise<Set<number>> {
  const seen = new Set<number>();
  for (let i = 0; i < n; i++) seen.add((await getFreshJson(`${url}/who`)).body.dispatcher);
  return seen;
}

/** `concurrency` clients of GET /work/slow, each request on a new connection, until `stop()`. */
function slowLoad(url: string, concurrency: number) {
  return load(url, concurrency, "/work/slow", { fresh: true });
}

/** Answers by kind: 200, another status, or none at all. */
function counted(acc: Accounting) {
  const ok = acc.byStatus[200] ?? 0;
  return { ok, other: acc.answered - ok, failed: acc.refused };
}

describe(`several dispatchers (${runtime.name})`, () => {
  test("two dispatchers share the port, each with its share of the workers; the primary serves nothing itself", async () => {
    const app = await startDispatchers({ WORKERS: "2" });
    try {
      const dispatchers = childrenOf(app.primary);
      assert.equal(dispatchers.length, 2, `the primary's children: ${dispatchers}`);
      const seen = await answering(app.url, 40);
      assert.deepEqual([...seen].sort(), [...dispatchers].sort(), "both dispatchers answer");
      for (const d of dispatchers) assert.equal(childrenOf(d).length, 1, `dispatcher ${d} has one worker`);
      assert.ok(!seen.has(app.primary));
    } finally {
      assert.equal((await app.stop()).code, 0);
    }
  });

  test("sendConfig, status, scale and reload from the primary reach every dispatcher (forkyard ctl too)", async () => {
    // In a directory of this user's alone: the server refuses one others may write (/tmp).
    const control = join(mkdtempSync(join(tmpdir(), "forkyard-dispatchers-")), "app.ctl");
    const app = await startDispatchers({ WORKERS: "2", CONTROL: control });
    const ctl = async (...args: string[]) => {
      const proc = start(fixture("../../cli.ts"), ["ctl", "--control", control, ...args]);
      const status = await proc.exited;
      assert.equal(status.code, 0, proc.stderr());
      return proc.stdout();
    };
    try {
      // Each dispatcher's worker got the primary's config.
      assert.ok(
        await eventually(async () => {
          const answers = await Promise.all(Array.from({ length: 10 }, () => getFreshJson(`${app.url}/work/pid`)));
          const workers = new Set(answers.map((a) => a.body.worker));
          return workers.size === 2 && answers.every((a) => a.body.config?.from === app.primary);
        }, 10_000),
        "config on both dispatchers' workers",
      );
      const status = JSON.parse(await ctl("status", "--json"));
      assert.equal(status.pid, app.primary);
      assert.equal(status.pools[0].workers.length, 2, JSON.stringify(status));
      await ctl("scale", "Work", "4");
      assert.ok(await eventually(() => childrenOf(app.primary).flatMap(childrenOf).length === 4, 15_000));
      assert.ok(
        await eventually(async () => JSON.parse(await ctl("status", "--json")).pools[0].workers.length === 4, 5000),
      );
    } finally {
      assert.equal((await app.stop()).code, 0);
    }
  });

  test("the admin listener, served by the primary, counts every dispatcher's answers and shows every worker", async () => {
    const app = await startDispatchers({ WORKERS: "2", ADMIN: "127.0.0.1:0" });
    try {
      assert.equal(typeof app.admin, "number");
      const admin = `http://127.0.0.1:${app.admin}`;
      const seen = new Set<number>();
      for (let i = 0; i < 30; i++) {
        const res = await getFreshJson(`${app.url}/work/pid`);
        assert.equal(res.status, 200);
        seen.add(res.body.worker);
      }
      assert.equal(seen.size, 2, "both dispatchers' workers answered");
      const count = (text: string) =>
        Number(/^forkyard_requests_total\{pool="Work",code="2xx"\} (\d+)$/m.exec(text)?.[1] ?? 0);
      // Each dispatcher reports its counts once a second.
      let metrics = "";
      assert.ok(
        await eventually(async () => {
          metrics = await (await fetch(`${admin}/metrics`)).text();
          return count(metrics) === 30;
        }, 5000),
        metrics,
      );
      assert.match(metrics, /^forkyard_pool_workers\{pool="Work"\} 2$/m);
      assert.match(metrics, /^forkyard_request_duration_seconds_count\{pool="Work"\} 30$/m);
      const status = await (await fetch(`${admin}/status`)).json();
      const pids = status.pools[0].workers.map((w: { pid: number }) => w.pid).sort();
      assert.deepEqual(pids, [...seen].sort());
      // A dispatcher that dies takes its counts with it no more: what it reported stays in the totals.
      const [victim, survivor] = childrenOf(app.primary);
      process.kill(victim, "SIGKILL");
      // Its replacement running and reporting: the primary has seen the exit, and the counts it had stay.
      assert.ok(
        await eventually(() => childrenOf(app.primary).some((p) => p !== victim && p !== survivor), 15_000),
      );
      assert.ok(
        await eventually(async () => {
          const status = await (await fetch(`${admin}/status`)).json();
          return status.pools[0].workers.length === 2;
        }, 15_000),
      );
      assert.equal(count(await (await fetch(`${admin}/metrics`)).text()), 30);
    } finally {
      assert.equal((await app.stop()).code, 0);
    }
  });

  test("a message published in one dispatcher reaches sockets subscribed through the other", async () => {
    const app = await startDispatchers({ WORKERS: "2" });
    const conns: Conn[] = [];
    try {
      // Each WebSocket is a connection of its own: open them until both dispatchers hold one.
      const through = new Map<number, Conn>();
      for (let i = 0; i < 40 && through.size < 2; i++) {
        const conn = await open(`ws://127.0.0.1:${app.port}/work/room`);
        conns.push(conn);
        const { dispatcher } = await conn.json<{ dispatcher: number }>();
        if (!through.has(dispatcher)) through.set(dispatcher, conn);
      }
      assert.equal(through.size, 2, "sockets through both dispatchers");
      const [a, b] = [...through.values()];
      a.ws.send("from a");
      assert.equal(await b.next(), "from a");
      assert.equal(await a.next(), "from a");
      b.ws.send(new Uint8Array([1, 2, 3]));
      assert.deepEqual(await a.next(), new Uint8Array([1, 2, 3]));
      for (const c of conns) if (c !== a && c !== b) assert.equal(await c.next(), "from a");
    } finally {
      for (const c of conns) c.ws.close();
      assert.equal((await app.stop()).code, 0);
    }
  });

  test("a dispatcher killed with SIGKILL under load fails only its own requests, and is replaced", async () => {
    const app = await startDispatchers({ WORKERS: "2" });
    try {
      const [victim, survivor] = childrenOf(app.primary);
      const traffic = slowLoad(app.url, 8);
      await new Promise((r) => setTimeout(r, 500));
      const before = counted(traffic.acc);
      process.kill(victim, "SIGKILL");
      assert.ok(
        await eventually(
          () => childrenOf(app.primary).filter((p) => p !== survivor && p !== victim).length === 1,
          15_000,
        ),
        "a new dispatcher replaces the killed one",
      );
      const replacement = childrenOf(app.primary).find((p) => p !== survivor)!;
      assert.ok(await eventually(async () => (await answering(app.url, 10)).has(replacement), 15_000));
      const counts = counted(await traffic.stop("dispatcher killed"));
      assert.ok(before.ok > 0 && counts.ok > before.ok, JSON.stringify(counts));
      // At most what was in flight on the killed dispatcher (8 clients) failed; nothing answered other than 200.
      assert.ok(counts.failed <= 8, JSON.stringify(counts));
      assert.equal(counts.other, 0, JSON.stringify(counts));
      assert.ok(
        app.stderr().includes(`Dispatcher 0 (pid ${victim}) exited`) ||
          app.stderr().includes(`(pid ${victim}) exited`),
        app.stderr(),
      );
    } finally {
      assert.equal((await app.stop()).code, 0);
    }
  });

  test("SIGHUP reloads every dispatcher's workers, one dispatcher at a time, with no failed request", async () => {
    const app = await startDispatchers({ WORKERS: "2" });
    try {
      const workersBefore = childrenOf(app.primary).flatMap(childrenOf);
      const traffic = slowLoad(app.url, 4);
      process.kill(app.primary, "SIGHUP");
      assert.ok(
        await eventually(() => {
          const now = childrenOf(app.primary).flatMap(childrenOf);
          return now.length === 2 && now.every((p) => !workersBefore.includes(p));
        }, 20_000),
        "every worker replaced",
      );
      const counts = counted(await traffic.stop("SIGHUP"));
      assert.equal(counts.failed + counts.other, 0, JSON.stringify(counts));
      assert.ok(counts.ok > 0);
    } finally {
      assert.equal((await app.stop()).code, 0);
    }
  });

  test("SIGTTIN and SIGTTOU to the primary add and remove one worker in all, once, not once per dispatcher", async () => {
    const app = await startDispatchers({ WORKERS: "2" });
    const workers = () => childrenOf(app.primary).flatMap(childrenOf).length;
    try {
      process.kill(app.primary, "SIGTTIN");
      assert.ok(await eventually(() => workers() === 3, 15_000), `${workers()} workers after SIGTTIN`);
      process.kill(app.primary, "SIGTTOU");
      assert.ok(await eventually(() => workers() === 2, 15_000), `${workers()} workers after SIGTTOU`);
      // Each dispatcher keeps its one: a process group signal reaches the dispatchers too, and they leave it alone.
      for (const d of childrenOf(app.primary)) process.kill(d, "SIGTTIN");
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(workers(), 2);
      assert.equal(childrenOf(app.primary).length, 2, "the dispatchers still run");
    } finally {
      assert.equal((await app.stop()).code, 0);
    }
  });

  test("a server that cannot share the port refuses several dispatchers in one line (Bun's node:http)", async () => {
    if (runtime.name !== "bun") return; // node:http shares ports on Node and Deno: every other test here uses it
    const proc = start(fixture("dispatchers.ts"), [], { PORT: "0", HTTP_SERVER: "node" });
    assert.deepEqual(await proc.exited, { code: 1, signal: null });
    assert.match(proc.stderr(), /Cannot run 2 dispatchers: Bun's node:http server cannot listen with SO_REUSEPORT/);
    assert.equal(proc.stderr().trim().split("\n").length, 1, proc.stderr());
  });

  test("SIGTERM stops every dispatcher and worker and exits 0", async () => {
    const app = await startDispatchers({ WORKERS: "2" });
    const dispatchers = childrenOf(app.primary);
    const workers = dispatchers.flatMap(childrenOf);
    assert.equal(workers.length, 2);
    assert.equal((await app.stop()).code, 0);
    for (const pid of [...dispatchers, ...workers]) {
      assert.ok(await eventually(() => !alive(pid), 3000), `${pid} left`);
    }
  });
});
