// Remote pools: a dispatcher whose pools run on worker hosts (`forkyard worker --nats URL ...`, separate processes)
// reached through a real nats-server. Bytes exact, large bodies in parts, streams, timeouts, logs, status, a host
// killed under load, and the NATS server restarted under load.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { eventually, fixture, getJson, pattern, runtime, start } from "./helpers.ts";
import { hostLoad, startDispatcher, startHost } from "./remote_hosts.ts";
import { type NatsServer, startNats } from "./nats_server.ts";
import { WorkerPool } from "../mod.ts";
import { Render } from "./fixtures/remote_worker.ts";
import { decode, encode, firstPartSize, type HostBeat, isHostBeat, isRemoteAnswer, M } from "../src/remote/messages.ts";
import { RemoteHosts } from "../src/remote/remote_hosts.ts";
import { Metrics } from "../src/dispatcher/metrics.ts";
import type { WorkerStatus } from "../src/pool.ts";
import { connectOptions } from "../src/remote_options.ts";

describe(`remote pool messages and NATS options (${runtime.name})`, () => {
  test("a message keeps its type, header and body bytes; a truncated one is refused", () => {
    const body = pattern(70_000);
    const bytes = encode(M.ANSWER, { s: 200, h: ["content-type", "text/plain"], n: body.length }, body);
    const back = decode(bytes)!;
    assert.equal(back.type, M.ANSWER);
    assert.deepEqual(back.header, { s: 200, h: ["content-type", "text/plain"], n: body.length });
    assert.deepEqual(back.body, body);
    assert.equal(decode(bytes.subarray(0, 8)), null);
    assert.equal(firstPartSize(1024, { h: "x".repeat(2000) }), 0);
  });

  test("a heartbeat from NATS is checked before its values reach the status page, /metrics or the choice of host", () => {
    const worker = {
      id: 0,
      pid: 42,
      alive: true,
      state: "ready",
      lastSeen: 1,
      currentRequest: null,
      inflight: 0,
      restarts: 0,
      lastExitReason: null,
      uptime: 5,
      rss: 1000,
      served: 3,
      sockets: 0,
    };
    const beat = { id: "h1", name: "host", pid: 7, free: 1, slots: 2, every: 1000, workers: [worker], queue: 0 };
    assert.ok(isHostBeat(beat));
    assert.ok(isHostBeat({ ...beat, bye: 1 }));
    for (
      const bad of [
        null,
        { ...beat, pid: "<img src=x onerror=alert(1)>" },
        { ...beat, free: -1 },
        { ...beat, slots: 1e12 },
        { ...beat, every: 0 },
        { ...beat, bye: 2 },
        { ...beat, id: "" },
        { ...beat, workers: "none" },
        { ...beat, workers: [{ ...worker, rss: "1\nforkyard_forged 1" }] },
        { ...beat, workers: [{ ...worker, pid: "<b>" }] },
        { ...beat, workers: [{ ...worker, state: "x".repeat(100) }] },
      ]
    ) assert.equal(isHostBeat(bad), false, JSON.stringify(bad));
    // Whatever reaches /metrics still comes out as one sample per line, its value a number.
    const metrics = new Metrics();
    const forged = { ...worker, id: 'x"} 1\nforged{a="', rss: "1\nforkyard_forged 1" } as unknown as WorkerStatus;
    const status = { name: "p", workers: [forged], queueSize: 0, degraded: false, spares: [] };
    const text = metrics.render([{ status, replaced: new Map() }], 0);
    assert.doesNotMatch(text, /^forkyard_forged/m);
    assert.doesNotMatch(text, /^forged/m);
    assert.match(text, /^forkyard_worker_rss_bytes\{pool="p",worker="x\\"\} 1\\nforged\{a=\\""\} NaN$/m);
  });

  test("hosts that share a name (started on one machine without --name) show apart, by pid", () => {
    const worker = { id: 0, pid: 42, alive: true, state: "ready", lastSeen: 1, currentRequest: null, inflight: 0 };
    const beat = (id: string, name: string, pid: number) =>
      ({ id, name, pid, free: 1, slots: 1, every: 1000, workers: [worker], queue: 0 }) as unknown as HostBeat;
    const hosts = new RemoteHosts<never>();
    hosts.beat(beat("a", "box", 11), 0);
    hosts.beat(beat("b", "box", 12), 0);
    hosts.beat(beat("c", "gpu-1", 13), 0);
    assert.deepEqual(hosts.workers().workers.map((w) => w.host), ["box:11", "box:12", "gpu-1"]);
  });

  test("an answer's head from NATS is checked before a Response is made of it", () => {
    assert.ok(isRemoteAnswer({ s: 201, k: 3, h: ["set-cookie", "a=1", "x-y", ""], n: 4 }));
    assert.ok(isRemoteAnswer({ s: 200, h: ["content-type", "text/plain"], n: "stream" }));
    // A WebSocket handshake accepted: no body.
    assert.ok(isRemoteAnswer({ s: 101, h: ["sec-websocket-protocol", "chat"], n: 0 }));
    for (
      const bad of [
        null,
        { s: 101, n: 5 },
        { s: 102, n: 0 },
        { s: "200", n: 0 },
        { s: 200, k: 9, n: 0 },
        { s: 200, n: -1 },
        { s: 200, n: 1.5 },
        { s: 200, h: ["a"], n: 0 },
        { s: 200, h: ["bad name", "v"], n: 0 },
        { s: 200, h: ["x", "line\r\nbreak"], n: 0 },
        { s: 200, h: "x: y", n: 0 },
      ]
    ) assert.equal(isRemoteAnswer(bad), false, JSON.stringify(bad));
  });

  test("credentials come out of the URL; tls:// asks for TLS", () => {
    assert.deepEqual(connectOptions({ nats: "nats://alice:s%40cret@10.0.0.5:4223" }, "n"), {
      name: "n",
      servers: ["10.0.0.5:4223"],
      user: "alice",
      pass: "s@cret",
    });
    assert.deepEqual(connectOptions({ nats: ["nats://tok@a", "b:4000"] }, "n"), {
      name: "n",
      servers: ["a:4222", "b:4000"],
      token: "tok",
    });
    assert.deepEqual(connectOptions({ nats: "tls://a:4222", tls: { caFile: "/ca.pem" } }, "n").tls, {
      caFile: "/ca.pem",
    });
    assert.deepEqual(connectOptions({ nats: "tls://a:4222" }, "n").tls, {});
  });
});

describe(`remote pools over NATS (${runtime.name})`, () => {
  let nats: NatsServer;
  before(async () => {
    nats = await startNats();
  });
  after(async () => {
    await nats.kill();
  });

  test("a bad remote option throws at construction, naming it", () => {
    assert.throws(() => new WorkerPool(Render, { remote: { nats: 5 } as never }), /option "remote": nats 5/);
    assert.throws(
      () => new WorkerPool(Render, { remote: { nats: "http://x:1" } }),
      /option "remote": .*expected nats:\/\/ or tls:\/\//,
    );
    assert.throws(() => new WorkerPool(Render, { remote: { nats: "nats://x", subject: "a.*" } }), /subject "a\.\*"/);
    assert.equal(new WorkerPool(Render, { remote: { nats: "nats://x" } }).options.remote?.subject, "forkyard.Render");
  });

  test("forkyard worker without --nats is a usage error", async () => {
    const proc = start(fixture("../../cli.ts"), ["worker", fixture("remote_worker.ts:Render")]);
    assert.equal((await proc.exited).code, 2);
    assert.match(proc.stderr(), /worker needs --nats URL/);
  });

  test("an Express app on a worker host: the client's address, JSON bodies, cookies and a streamed answer cross NATS", async () => {
    const host = await startHost(
      nats.url,
      "express-host",
      ["--subject", "forkyard.test.express"],
      "listeners/express_app.js",
    );
    const app = await startDispatcher(nats.url, { EXPRESS_APP: "1" });
    try {
      let user: { status: number; body: any } | undefined;
      assert.ok(
        await eventually(async () => (user = await getJson(`${app.url}/express/users/7?a=b`)).status === 200, 10_000),
      );
      assert.deepEqual(user!.body, { id: "7", query: { a: "b" }, ip: "127.0.0.1", secure: false, url: "/users/7?a=b" });
      const echo = await getJson(`${app.url}/express/echo`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ k: [1, 2] }),
      });
      assert.equal(echo.status, 201);
      assert.deepEqual(echo.body, { received: { k: [1, 2] }, type: "application/json" });
      const cookies = await fetch(`${app.url}/express/cookies`);
      assert.deepEqual(cookies.headers.getSetCookie(), ["a=1; Path=/", "b=2; Path=/; HttpOnly"]);
      assert.equal(await cookies.text(), "cookies set");
      assert.equal(await (await fetch(`${app.url}/express/stream`)).text(), "part0\npart1\npart2\n");
    } finally {
      await app.stop();
      await host.stop();
    }
  });

  test("an app that calls listen(3000) itself, unchanged, on worker hosts: served, nothing bound", async () => {
    const host = await startHost(
      nats.url,
      "verbatim-host",
      ["--subject", "forkyard.test.express", "--workers", "2"],
      "listeners/verbatim/express_listen.cjs",
    );
    const app = await startDispatcher(nats.url, { EXPRESS_APP: "1" });
    try {
      let res: { status: number; body: any } | undefined;
      assert.ok(await eventually(async () => (res = await getJson(`${app.url}/express/`)).status === 200, 10_000));
      assert.equal(res!.body, "Hello World!");
      // The host's process and its two workers each ran listen(3000): bound for real, the second would have failed
      // with EADDRINUSE and the host would not have started.
    } finally {
      await app.stop();
      await host.stop();
    }
  });

  test("requests reach both worker hosts; bodies and answers stay byte-exact across message parts; the trace id travels", async () => {
    const hosts = [await startHost(nats.url, "host-a"), await startHost(nats.url, "host-b")];
    const app = await startDispatcher(nats.url, { APP_POOL: "1" });
    try {
      const seen = new Set<string>();
      assert.ok(
        await eventually(async () => {
          const res = await fetch(`${app.url}/render/who`, { headers: { "x-request-id": "trace-123" } });
          assert.equal(res.status, 200);
          const body = await res.json();
          assert.equal(body.trace, "trace-123");
          assert.equal(res.headers.get("x-request-id"), "trace-123");
          seen.add(body.host);
          return seen.size === 2;
        }, 10_000),
        `hosts answering: ${[...seen]}`,
      );
      // The whole answer crosses: status, every header (each Set-Cookie apart), the body; and a text answer's type.
      const made = await fetch(`${app.url}/render/headers`);
      assert.equal(made.status, 201);
      assert.deepEqual(made.headers.getSetCookie(), ["a=1; Path=/; HttpOnly", "b=2; Path=/; Secure"]);
      assert.equal(made.headers.get("cache-control"), "no-store");
      assert.equal(made.headers.get("content-security-policy"), "default-src 'self'");
      assert.equal(made.headers.get("x-custom"), "kept");
      assert.equal(made.headers.get("content-type"), "text/html; charset=utf-8");
      assert.ok(made.headers.get("x-request-id"), "the dispatcher's trace id");
      assert.equal(await made.text(), "<p>made</p>");
      const text = await fetch(`${app.url}/render/text`);
      assert.equal(text.headers.get("content-type"), "text/plain; charset=utf-8");
      assert.equal(await text.text(), "plain words");
      // 3 MiB: three times the server's 1 MiB message limit, both ways.
      const body = pattern(3 * 1024 * 1024 + 17);
      const echo = await fetch(`${app.url}/render/echo`, { method: "POST", body });
      assert.equal(echo.status, 200);
      assert.deepEqual(new Uint8Array(await echo.arrayBuffer()), body);
      const big = await fetch(`${app.url}/render/bytes/${2_500_001}`);
      const bytes = new Uint8Array(await big.arrayBuffer());
      assert.equal(bytes.length, 2_500_001);
      assert.ok(bytes.every((b, i) => b === i % 251), "bytes as sent");
      // An app pool on the worker host, as for a WorkerPool.
      const appHost = await startHost(nats.url, "host-app", ["--subject", "forkyard.test.app"], "remote_app.ts");
      try {
        const res = await fetch(`${app.url}/app/hello`);
        assert.equal(res.status, 200);
        assert.deepEqual({ ...(await res.json()), pid: 0 }, { app: true, path: "/hello", pid: 0 });
      } finally {
        assert.equal((await appHost.stop()).code, 0);
      }
    } finally {
      assert.equal((await app.stop()).code, 0);
      for (const h of hosts) assert.equal((await h.stop()).code, 0);
    }
  });

  test("streams arrive as they are sent; a request over its timeout gets 504, keepAlive() holds it; worker logs reach the dispatcher's log with the host's name", async () => {
    const host = await startHost(nats.url, "host-log");
    const app = await startDispatcher(nats.url, { TIMEOUT: "1000" });
    try {
      const res = await fetch(`${app.url}/render/sse`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("content-type"), "text/event-stream");
      const text = await res.text();
      assert.deepEqual(text.match(/data: .*/g), ['data: {"n":1}', 'data: {"n":2}', 'data: {"n":3}']);
      const t0 = Date.now();
      const slow = await fetch(`${app.url}/render/slow/5000`);
      const took = Date.now() - t0;
      assert.equal(slow.status, 504);
      assert.deepEqual(await slow.json(), { error: "Request timeout" });
      assert.ok(took >= 900 && took < 2500, `504 after ${took} ms`);
      // keepAlive() on the worker host starts the dispatcher's timeout again.
      const patient = await fetch(`${app.url}/render/patient`);
      assert.equal(patient.status, 200);
      assert.deepEqual(await patient.json(), { patient: true });
      assert.equal((await fetch(`${app.url}/render/log?what=teapot`)).status, 200);
      await app.waitStderr(/rendered "?teapot"? on the remote host/, 5000);
      const line = app.stderr().split("\n").find((l) => l.includes("on the remote host"))!;
      assert.match(line, /forkyard\.worker\.Render@host-log \[[^\]]+\]: rendered "?teapot"? on the remote host$/);
    } finally {
      assert.equal((await app.stop()).code, 0);
      assert.equal((await host.stop()).code, 0);
    }
  });

  test("status, forkyard ctl and the admin listener show the worker hosts and their workers; ready once a host serves", async () => {
    // In a directory of this user's alone: the server refuses one others may write (/tmp).
    const control = join(mkdtempSync(join(tmpdir(), "forkyard-remote-")), "app.ctl");
    const app = await startDispatcher(nats.url, { CONTROL: control, ADMIN: "127.0.0.1:0" });
    const admin = `http://127.0.0.1:${app.admin}`;
    const hosts: Awaited<ReturnType<typeof startHost>>[] = [];
    try {
      // No worker host yet: not ready, and the answer says which pool lacks workers.
      const unready = await fetch(`${admin}/ready`);
      assert.equal(unready.status, 503);
      assert.deepEqual(await unready.json(), {
        ready: false,
        pools: [{ name: "Render", workers: 0, degraded: false }],
      });
      hosts.push(await startHost(nats.url, "host-one", ["--workers", "2"]), await startHost(nats.url, "host-two"));
      assert.ok(await eventually(async () => (await fetch(`${admin}/ready`)).status === 200, 10_000));
      let status: any;
      assert.ok(
        await eventually(async () => {
          const ctl = start(fixture("../../cli.ts"), ["ctl", "--control", control, "status", "--json"]);
          if ((await ctl.exited).code !== 0) return false;
          status = JSON.parse(ctl.stdout());
          return status.pools[0].workers.length === 3;
        }, 10_000),
        JSON.stringify(status),
      );
      const workers = status.pools[0].workers;
      assert.deepEqual(workers.map((w: { host: string }) => w.host).sort(), ["host-one", "host-one", "host-two"]);
      assert.ok(workers.every((w: { alive: boolean; pid: number }) => w.alive && w.pid > 0));
      const table = start(fixture("../../cli.ts"), ["ctl", "--control", control, "status"]);
      assert.equal((await table.exited).code, 0);
      assert.match(table.stdout(), /^POOL +WORKER +HOST +PID/m);
      assert.match(table.stdout(), /host-two/);
      const metrics = await (await fetch(`${admin}/metrics`)).text();
      assert.match(metrics, /^forkyard_pool_workers\{pool="Render"\} 3$/m);
    } finally {
      assert.equal((await app.stop()).code, 0);
      for (const h of hosts) assert.equal((await h.stop()).code, 0);
    }
  });

  test("a host takes requests only while it has a free slot: two single-slot hosts serve two requests, one each", async () => {
    const hosts = [
      await startHost(nats.url, "host-slot-a", ["--concurrency", "1"]),
      await startHost(nats.url, "host-slot-b", ["--concurrency", "1"]),
    ];
    const app = await startDispatcher(nats.url, { ADMIN: "127.0.0.1:0" });
    try {
      // Both hosts known, with their one slot each.
      assert.ok(
        await eventually(async () => {
          const status = await (await fetch(`http://127.0.0.1:${app.admin}/status`)).json();
          return status.pools[0].workers.length === 2;
        }, 5000),
      );
      for (let round = 0; round < 5; round++) {
        const answers = await Promise.all([0, 1].map(() => fetch(`${app.url}/render/slow/300`).then((r) => r.json())));
        assert.deepEqual(answers.map((a) => a.host).sort(), ["host-slot-a", "host-slot-b"], `round ${round}`);
      }
    } finally {
      assert.equal((await app.stop()).code, 0);
      for (const h of hosts) assert.equal((await h.stop()).code, 0);
    }
  });

  test("a worker host killed under load: only its in-flight requests fail, the other keeps serving", async () => {
    const victim = await startHost(nats.url, "host-victim", ["--concurrency", "2"]);
    const survivor = await startHost(nats.url, "host-survivor", ["--concurrency", "2"]);
    const app = await startDispatcher(nats.url);
    try {
      const { statuses, byHost, stop } = hostLoad(app.url, 6);
      assert.ok(await eventually(() => (byHost["host-victim"] ?? 0) > 3 && (byHost["host-survivor"] ?? 0) > 3, 10_000));
      victim.child.kill("SIGKILL");
      const servedBefore = byHost["host-survivor"];
      // Three missed heartbeats (3 s) later the host is gone; requests keep going to the survivor.
      assert.ok(await eventually(() => byHost["host-survivor"] > servedBefore + 30, 15_000), JSON.stringify(byHost));
      await stop();
      // What the killed host held: its 2 slots, and what was on its way to it as it died.
      assert.ok((statuses[502] ?? 0) <= 6, JSON.stringify(statuses));
      assert.deepEqual(Object.keys(statuses).filter((s) => s !== "200" && s !== "502"), [], JSON.stringify(statuses));
      // Three missed heartbeats take 3 s from the kill; the survivor may have served its 30 sooner.
      assert.ok(await eventually(() => app.stderr().includes("host-victim missed 3 heartbeats"), 10_000), app.stderr());
    } finally {
      assert.equal((await app.stop()).code, 0);
      assert.equal((await survivor.stop()).code, 0);
      victim.child.kill("SIGKILL");
    }
  });

  test("the NATS server restarted under load: requests in that window get 502 or 503, none hangs, service resumes", async () => {
    const host = await startHost(nats.url, "host-restart");
    const app = await startDispatcher(nats.url, { TIMEOUT: "5000" });
    try {
      const statuses: Record<number, number> = {};
      let running = true;
      let slowest = 0;
      const clients = Array.from({ length: 4 }, async () => {
        while (running) {
          const t0 = Date.now();
          const res = await fetch(`${app.url}/render/slow/20`);
          await res.arrayBuffer();
          slowest = Math.max(slowest, Date.now() - t0);
          statuses[res.status] = (statuses[res.status] ?? 0) + 1;
          if (res.status !== 200) await new Promise((r) => setTimeout(r, 20));
        }
      });
      assert.ok(await eventually(() => (statuses[200] ?? 0) > 20, 10_000));
      await nats.restart();
      const before = statuses[200];
      assert.ok(await eventually(() => statuses[200] > before + 20, 20_000), JSON.stringify(statuses));
      running = false;
      await Promise.all(clients);
      assert.deepEqual(
        Object.keys(statuses).filter((s) => !["200", "502", "503"].includes(s)),
        [],
        JSON.stringify(statuses),
      );
      assert.ok(slowest < 5000, `slowest answer ${slowest} ms`);
    } finally {
      assert.equal((await app.stop()).code, 0);
      assert.equal((await host.stop()).code, 0);
    }
  });

  test("examples/remote.ts answers from a worker host running examples/render_worker.ts", async () => {
    const examples = fileURLToPath(new URL("../examples/", import.meta.url));
    const host = start(fixture("../../cli.ts"), [
      "worker",
      "--nats",
      nats.url,
      `${examples}render_worker.ts:Render`,
    ], { HOSTNAME: "render-host" });
    await host.line<{ host: string }>((v) => typeof v.host === "string");
    const proc = start(`${examples}remote.ts`, [], { PORT: "0", NATS_URL: nats.url });
    try {
      const line = await proc.waitStderr(/Listening on http:\/\/[0-9.]+:\d+/);
      const url = `http://127.0.0.1:${line.slice(line.lastIndexOf(":") + 1)}`;
      const res = await fetch(`${url}/render/cat`);
      assert.equal(res.status, 200);
      const body = await res.json();
      assert.equal(body.name, "cat");
      assert.equal(body.host, "render-host");
      assert.ok(
        await eventually(async () => (await (await fetch(`${url}/health`)).json()).workers.length === 1, 5000),
      );
    } finally {
      proc.child.kill("SIGTERM");
      assert.equal((await proc.exited).code, 0);
      host.child.kill("SIGTERM");
      assert.equal((await host.exited).code, 0);
    }
  });

  test("with retryIdempotent, a GET whose worker host is killed goes to another host: no request fails", async () => {
    const victim = await startHost(nats.url, "host-retry-victim", ["--concurrency", "2"]);
    const survivor = await startHost(nats.url, "host-retry-survivor", ["--concurrency", "2"]);
    const app = await startDispatcher(nats.url, { RETRY: "1" });
    try {
      const { statuses, byHost, stop } = hostLoad(app.url, 4);
      assert.ok(await eventually(() => (byHost["host-retry-victim"] ?? 0) > 3, 10_000), JSON.stringify(byHost));
      victim.child.kill("SIGKILL");
      const before = byHost["host-retry-survivor"] ?? 0;
      assert.ok(await eventually(() => byHost["host-retry-survivor"] > before + 40, 15_000), JSON.stringify(byHost));
      await stop();
      assert.deepEqual(Object.keys(statuses), ["200"], JSON.stringify(statuses));
    } finally {
      assert.equal((await app.stop()).code, 0);
      assert.equal((await survivor.stop()).code, 0);
      victim.child.kill("SIGKILL");
    }
  });

  test("a request waits for a worker host until its timeout; one that joins in time serves it", async () => {
    const app = await startDispatcher(nats.url, { TIMEOUT: "4000" });
    try {
      const t0 = Date.now();
      const none = await fetch(`${app.url}/render/who`);
      assert.equal(none.status, 504);
      assert.ok(Date.now() - t0 >= 3900, `504 after ${Date.now() - t0} ms`);
      const waiting = fetch(`${app.url}/render/who`);
      const host = await startHost(nats.url, "host-late");
      try {
        const res = await waiting;
        assert.equal(res.status, 200);
        assert.equal((await res.json()).host, "host-late");
      } finally {
        assert.equal((await host.stop()).code, 0);
      }
    } finally {
      assert.equal((await app.stop()).code, 0);
    }
  });

  test("a client leaving a stream cancels it on the host's worker, one leaving a request is told to it; SIGTERM lets a host finish its requests", async () => {
    const host = await startHost(nats.url, "host-graceful");
    const app = await startDispatcher(nats.url, { ADMIN: "127.0.0.1:0" });
    try {
      const aborter = new AbortController();
      const res = await fetch(`${app.url}/render/forever`, { signal: aborter.signal });
      const reader = res.body!.getReader();
      assert.match(new TextDecoder().decode((await reader.read()).value), /data: 0/);
      aborter.abort();
      await reader.cancel().catch(() => {});
      assert.ok(
        await eventually(
          async () => (await (await fetch(`${app.url}/render/disconnects`)).json()).disconnects === 1,
          5000,
        ),
        "the worker heard of the disconnect",
      );
      // A client that leaves a request the host's worker works on: the worker hears of it (a `left` cancel), answers
      // when done, and its slot on the host is taken until then.
      const inflight = async () =>
        (await (await fetch(`http://127.0.0.1:${app.admin}/status`)).json()).pools[0].workers[0]?.inflight;
      const leaving = new AbortController();
      const left = fetch(`${app.url}/render/slow/2500`, { signal: leaving.signal }).catch((error) => error);
      assert.ok(await eventually(async () => (await inflight()) === 1, 5000), "the request never reached the host");
      leaving.abort();
      assert.equal((await left).name, "AbortError");
      assert.ok(
        await eventually(
          async () => (await (await fetch(`${app.url}/render/disconnects`)).json()).disconnects === 2,
          5000,
        ),
        "the worker never heard its client left",
      );
      assert.ok(await eventually(async () => (await inflight()) === 0, 5000), "the host's slot was never freed");
      const slow = fetch(`${app.url}/render/slow/1500`);
      // In progress on the host, as its heartbeat says.
      assert.ok(
        await eventually(async () => {
          const status = await (await fetch(`http://127.0.0.1:${app.admin}/status`)).json();
          return status.pools[0].workers[0]?.inflight === 1;
        }, 5000),
      );
      host.child.kill("SIGTERM");
      const answer = await slow;
      assert.equal(answer.status, 200);
      assert.equal((await answer.json()).host, "host-graceful");
      assert.equal((await host.exited).code, 0);
    } finally {
      assert.equal((await app.stop()).code, 0);
      host.child.kill("SIGKILL");
    }
  });

  test("a remote pool from forkyard.json, served by forkyard serve", async () => {
    const dir = mkdtempSync(join(tmpdir(), "forkyard-remote-config-"));
    const config = join(dir, "forkyard.json");
    writeFileSync(
      config,
      JSON.stringify({
        pools: [{
          module: fixture("remote_worker.ts"),
          export: "Render",
          routes: ["/render/**"],
          remote: { nats: nats.url },
        }],
      }),
    );
    const host = await startHost(nats.url, "host-config");
    const proc = start(fixture("../../cli.ts"), ["serve", config, "--port", "0", "--host", "127.0.0.1"]);
    try {
      const line = await proc.waitStderr(/Listening on http:\/\/127\.0\.0\.1:\d+/);
      const res = await fetch(`${line.replace(/^Listening on /, "")}/render/who`);
      assert.equal(res.status, 200);
      assert.equal((await res.json()).host, "host-config");
    } finally {
      proc.child.kill("SIGTERM");
      assert.equal((await proc.exited).code, 0);
      assert.equal((await host.stop()).code, 0);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe(`remote pools with an authenticating NATS server (${runtime.name})`, () => {
  test("the token in the URL lets the dispatcher and the host in; a wrong one stops either with one line", async () => {
    const secured = await startNats(["--auth", "s3cret-token"]);
    const url = `nats://s3cret-token@127.0.0.1:${secured.port}`;
    try {
      const wrong = start(fixture("../../cli.ts"), [
        "worker",
        "--nats",
        `nats://wrong@127.0.0.1:${secured.port}`,
        fixture("remote_worker.ts:Render"),
      ]);
      assert.equal((await wrong.exited).code, 1);
      assert.match(wrong.stderr(), /^forkyard: .*[Aa]uthoriz/m);
      // A dispatcher refused by the server does not start: exit 3, one line naming the pool.
      const refused = start(fixture("remote_dispatcher.ts"), [], {
        NATS_URL: `nats://wrong@127.0.0.1:${secured.port}`,
      });
      assert.equal((await refused.exited).code, 3);
      assert.match(refused.stderr(), /Cannot start pool "Render": .*NATS at .* refused the connection: .*[Aa]uthoriz/);
      const host = await startHost(url, "host-auth");
      const app = await startDispatcher(url);
      try {
        const res = await fetch(`${app.url}/render/who`);
        assert.equal(res.status, 200);
        assert.equal((await res.json()).host, "host-auth");
      } finally {
        assert.equal((await app.stop()).code, 0);
        assert.equal((await host.stop()).code, 0);
      }
    } finally {
      await secured.kill();
    }
  });
});

describe(`remote pools over TLS (${runtime.name})`, () => {
  test("tls:// with the server's CA works for the host and the dispatcher; without it, the host stops with one line", async () => {
    const secured = await startNats(["--tls", "--tlscert", fixture("cert.pem"), "--tlskey", fixture("key.pem")]);
    const url = `tls://127.0.0.1:${secured.port}`;
    try {
      const untrusted = start(fixture("../../cli.ts"), ["worker", "--nats", url, fixture("remote_worker.ts:Render")]);
      assert.equal((await untrusted.exited).code, 1);
      assert.match(untrusted.stderr(), /^forkyard: .*certificate/m);
      const host = await startHost(url, "host-tls", ["--nats-ca", fixture("cert.pem")]);
      const app = await startDispatcher(url, { NATS_CA: fixture("cert.pem") });
      try {
        const body = pattern(100_000);
        const res = await fetch(`${app.url}/render/echo`, { method: "POST", body });
        assert.equal(res.status, 200);
        assert.deepEqual(new Uint8Array(await res.arrayBuffer()), body);
        assert.equal((await (await fetch(`${app.url}/render/who`)).json()).host, "host-tls");
      } finally {
        assert.equal((await app.stop()).code, 0);
        assert.equal((await host.stop()).code, 0);
      }
    } finally {
      await secured.kill();
    }
  });
});
