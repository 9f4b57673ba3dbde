// Worker hosts stopped and steered under load: a host stopped with SIGTERM, or by `forkyard ctl stop` on its control
// socket, loses no request; a SIGKILLed one loses at most what it held; `scale` and `reload` from the dispatcher (and
// `forkyard ctl` on it) reach the hosts; several dispatchers share the hosts without overfilling them.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { eventually, fixture, runtime, spillsOf, start } from "./helpers.ts";
import { hostLoad, startDispatcher, startHost } from "./remote_hosts.ts";
import { type NatsServer, startNats } from "./nats_server.ts";

/** The child processes of `pid` (a host's workers). */
function childrenOf(pid: number): number[] {
  try {
    return execFileSync("pgrep", ["-P", String(pid)]).toString().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

describe(`worker hosts stopped under load (${runtime.name})`, () => {
  let nats: NatsServer;
  let dir: string;
  before(async () => {
    nats = await startNats();
    dir = mkdtempSync(join(tmpdir(), "forkyard-host-stop-"));
  });
  after(async () => {
    await nats.kill();
    rmSync(dir, { recursive: true, force: true });
  });

  test("hosts stopped one after another (SIGTERM; SIGTERM to it and its workers, as systemd does; forkyard ctl stop) under load: no request fails", async () => {
    const one = ["--concurrency", "1", "--workers", "1"];
    let current = await startHost(nats.url, "host-0", one);
    const app = await startDispatcher(nats.url);
    try {
      const { statuses, acc, byHost, stop } = hostLoad(app.url, 6, "/render/slow/5");
      for (let round = 1; round <= 6; round++) {
        const control = join(dir, `host-${round}.sock`);
        const next = await startHost(nats.url, `host-${round}`, [...one, "--control", control]);
        assert.ok(
          await eventually(() => (byHost[`host-${round}`] ?? 0) > 20, 10_000),
          JSON.stringify(byHost),
        );
        if (round % 3 === 1) {
          current.child.kill("SIGTERM");
        } else if (round % 3 === 2) {
          const workers = childrenOf(current.pid);
          assert.ok(workers.length > 0, "the host's workers");
          current.child.kill("SIGTERM");
          for (const pid of workers) process.kill(pid, "SIGTERM");
        } else {
          const ctl = start(fixture("../../cli.ts"), ["ctl", "--control", join(dir, `host-${round - 1}.sock`), "stop"]);
          assert.equal((await ctl.exited).code, 0, ctl.stderr());
        }
        assert.equal((await current.exited).code, 0, current.stderr());
        assert.deepEqual(spillsOf(current.pid), [], "the stopped host's spill directory");
        const served = byHost[`host-${round}`];
        assert.ok(await eventually(() => byHost[`host-${round}`] > served + 50, 10_000), JSON.stringify(byHost));
        current = next;
      }
      await stop();
      assert.deepEqual(Object.keys(statuses), ["200"], JSON.stringify(statuses));
      assert.equal(acc.refused, 0);
    } finally {
      assert.equal((await app.stop()).code, 0);
      current.child.kill("SIGTERM");
      await current.exited;
    }
  });
});

describe(`worker hosts steered from the dispatcher (${runtime.name})`, () => {
  let nats: NatsServer;
  let dir: string;
  before(async () => {
    nats = await startNats();
    dir = mkdtempSync(join(tmpdir(), "forkyard-host-steer-"));
  });
  after(async () => {
    await nats.kill();
    rmSync(dir, { recursive: true, force: true });
  });

  test("forkyard ctl scale and reload reach every worker host, or one by name", async () => {
    const control = join(dir, "dispatcher.sock");
    const hosts = [await startHost(nats.url, "host-a", ["--workers", "1"]), await startHost(nats.url, "host-b")];
    const app = await startDispatcher(nats.url, { CONTROL: control, ADMIN: "127.0.0.1:0" });
    const ctl = async (...words: string[]) => {
      const proc = start(fixture("../../cli.ts"), ["ctl", "--control", control, "--json", ...words]);
      const status = await proc.exited;
      return { code: status.code, out: proc.stdout(), err: proc.stderr() };
    };
    const workers = async () => {
      const status = await (await fetch(`http://127.0.0.1:${app.admin}/status`)).json();
      const by: Record<string, number[]> = {};
      for (const w of status.pools[0].workers) (by[w.host] ??= []).push(w.pid);
      return by;
    };
    try {
      assert.ok(await eventually(async () => Object.keys(await workers()).length === 2, 10_000));
      assert.equal((await ctl("scale", "Render", "2")).code, 0);
      assert.ok(
        await eventually(async () => {
          const by = await workers();
          return by["host-a"]?.length === 2 && by["host-b"]?.length === 2;
        }, 10_000),
        JSON.stringify(await workers()),
      );
      assert.match(hosts[0].stderr(), /Scaling pool Render to 2 workers, as a dispatcher asked/);
      assert.match(app.stderr(), /Pool Render: asking its 2 worker hosts to run 2 workers/);
      assert.equal((await ctl("scale", "Render", "3", "host-b")).code, 0);
      assert.ok(
        await eventually(async () => (await workers())["host-b"]?.length === 3, 10_000),
        JSON.stringify(await workers()),
      );
      assert.equal((await workers())["host-a"].length, 2);
      const unknown = await ctl("scale", "Render", "2", "host-z");
      assert.equal(unknown.code, 1);
      assert.match(unknown.err, /no worker host named "host-z" \(hosts: host-a, host-b\)/);

      // Reload one host: its workers are new, the other's are not.
      const before = await workers();
      const one = await ctl("reload", "Render", "host-a");
      assert.equal(one.code, 0, one.err);
      assert.equal(JSON.parse(one.out).replaced, 2);
      // The hosts' next heartbeats say so.
      assert.ok(
        await eventually(async () => (await workers())["host-a"].every((pid) => !before["host-a"].includes(pid)), 5000),
        JSON.stringify({ before, after: await workers() }),
      );
      assert.deepEqual((await workers())["host-b"].toSorted(), before["host-b"].toSorted());
      const all = await ctl("reload", "Render");
      assert.equal(JSON.parse(all.out).replaced, 5);
      assert.equal((await fetch(`${app.url}/render/who`)).status, 200);

      // A host's own SIGTTIN and SIGTTOU resize it alone, and the dispatcher hears of it.
      process.kill(hosts[0].pid, "SIGTTIN");
      await hosts[0].waitStderr(/Scaling pool Render to 3 workers \(SIGTTIN\)/, 5000);
      assert.ok(await eventually(async () => (await workers())["host-a"]?.length === 3, 10_000));
      process.kill(hosts[1].pid, "SIGTTOU");
      assert.ok(await eventually(async () => (await workers())["host-b"]?.length === 2, 10_000));
      assert.equal((await workers())["host-a"].length, 3);
    } finally {
      assert.equal((await app.stop()).code, 0);
      for (const h of hosts) assert.equal((await h.stop()).code, 0);
    }
  });
});

describe(`several dispatchers share worker hosts (${runtime.name})`, () => {
  test("with two dispatchers, scale and reload reach each host once", async () => {
    const nats = await startNats();
    const dir = mkdtempSync(join(tmpdir(), "forkyard-host-once-"));
    const control = join(dir, "dispatcher.sock");
    const hosts = [
      await startHost(nats.url, "host-a", ["--workers", "1"]),
      await startHost(nats.url, "host-b", ["--workers", "1"]),
    ];
    const app = await startDispatcher(nats.url, { CONTROL: control, DISPATCHERS: "2" });
    const ctl = async (...words: string[]) => {
      const proc = start(fixture("../../cli.ts"), ["ctl", "--control", control, "--json", ...words]);
      const status = await proc.exited;
      assert.equal(status.code, 0, proc.stderr());
      return JSON.parse(proc.stdout());
    };
    const count = (text: string, re: RegExp) => text.match(new RegExp(re, "g"))?.length ?? 0;
    try {
      // Each dispatcher hears of both hosts before it is steered.
      assert.ok(await eventually(async () => (await fetch(`${app.url}/render/who`)).status === 200, 10_000));
      assert.equal((await ctl("reload", "Render")).replaced, 2);
      assert.equal((await ctl("reload")).replaced, 2);
      await ctl("scale", "Render", "2");
      for (const host of hosts) {
        await host.waitStderr(/Scaling pool Render to 2 workers/, 10_000);
        assert.equal(count(host.stderr(), /Reloading pool Render, as a dispatcher asked/), 2, host.stderr());
      }
      // Every dispatcher's count is per host: neither halved nor asked twice.
      // Both dispatchers see each host's workers; the status lists each once.
      let workers: { host: string; pid: number }[] = [];
      const four = await eventually(
        async () => (workers = (await ctl("status")).pools[0].workers).length === 4,
        10_000,
      );
      assert.ok(four, JSON.stringify(workers));
      assert.equal(new Set(workers.map((w) => `${w.host} ${w.pid}`)).size, 4);
      for (const host of hosts) assert.equal(count(host.stderr(), /Scaling pool Render/), 1, host.stderr());
    } finally {
      assert.equal((await app.stop()).code, 0);
      for (const h of hosts) assert.equal((await h.stop()).code, 0);
      await nats.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("two dispatchers, one host with two slots: both are served, nothing fails, nothing waits on the host", async () => {
    const nats = await startNats();
    const dir = mkdtempSync(join(tmpdir(), "forkyard-host-share-"));
    const control = join(dir, "host.sock");
    const host = await startHost(nats.url, "host-shared", [
      "--workers",
      "2",
      "--concurrency",
      "1",
      "--control",
      control,
    ]);
    const a = await startDispatcher(nats.url);
    const b = await startDispatcher(nats.url);
    try {
      const loads = [hostLoad(a.url, 4, "/render/slow/50"), hostLoad(b.url, 4, "/render/slow/50")];
      // Requests queued on the host itself (taken beyond its free slots), as its own status says, while both send.
      let queuedOnHost = 0;
      let samples = 0;
      const end = Date.now() + 3000;
      while (Date.now() < end) {
        const ctl = start(fixture("../../cli.ts"), ["ctl", "--control", control, "--json", "status"]);
        assert.equal((await ctl.exited).code, 0, ctl.stderr());
        const status = JSON.parse(ctl.stdout());
        assert.equal(status.pools[0].workers.length, 2);
        queuedOnHost = Math.max(queuedOnHost, status.pools[0].queueSize);
        samples++;
      }
      for (const load of loads) await load.stop();
      assert.ok(samples >= 3, `${samples} samples`);
      assert.equal(queuedOnHost, 0);
      for (const load of loads) {
        assert.deepEqual(Object.keys(load.statuses), ["200"], JSON.stringify(load.statuses));
        assert.equal(load.acc.refused, 0);
      }
      const [na, nb] = loads.map((l) => l.acc.answered);
      assert.ok(Math.min(na, nb) > (na + nb) / 4, `a ${na}, b ${nb}`);
    } finally {
      assert.equal((await a.stop()).code, 0);
      assert.equal((await b.stop()).code, 0);
      assert.equal((await host.stop()).code, 0);
      await nats.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
