// App pools (web-standard fetch apps), request tracing and dispatcher middleware.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { AppPool } from "../mod.ts";
import { type App, getJson, runtime, sleep, startApp } from "./helpers.ts";

describe(`app pools, tracing and middleware (${runtime.name})`, () => {
  let app: App;
  before(async () => {
    app = await startApp("apps.ts");
  });
  after(async () => {
    await app?.stop();
  });

  test("an app mounted at a prefix sees paths without it, with query and method", async () => {
    const one = await getJson(`${app.url}/api/users/7`);
    assert.equal(one.status, 200);
    assert.deepEqual(one.body, { path: "/7", id: "7" });
    const root = await getJson(`${app.url}/api/users?sort=name`);
    assert.equal(root.body.path, "/");
    assert.deepEqual(root.body.query, { sort: "name" });
    assert.notEqual(root.body.pid, app.pid);
    const plain = await getJson(`${app.url}/plain/a%20b/c`, { method: "DELETE" });
    assert.deepEqual(plain.body, { plain: true, path: "/a%20b/c", method: "DELETE" });
  });

  test("an app gets the request body and its Response comes back", async () => {
    const res = await getJson(`${app.url}/api/users`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "ann" }),
    });
    assert.equal(res.status, 201);
    assert.deepEqual(res.body, { received: { name: "ann" }, contentType: "application/json" });
  });

  test("an app gets a malformed JSON body as sent and answers it itself", async () => {
    const res = await getJson(`${app.url}/api/users`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{not json",
    });
    assert.equal(res.status, 422);
    assert.deepEqual(res.body, { appError: "malformed JSON" });
  });

  test("an app's streamed Response is relayed with its headers", async () => {
    const res = await fetch(`${app.url}/api/users/stream`);
    assert.equal(res.headers.get("set-cookie"), "app=1");
    assert.equal(await res.text(), "part0\npart1\npart2\n");
  });

  test("an app that throws gives 500 without its details", async () => {
    const res = await fetch(`${app.url}/api/users/boom`);
    assert.equal(res.status, 500);
    assert.doesNotMatch(await res.text(), /secret/);
    assert.equal((await getJson(`${app.url}/api/users/nope`)).status, 404);
  });

  test("X-Request-ID is kept, reaches apps and workers, comes back, and is on their log records", async () => {
    const given = `trace-${Date.now()}`;
    const res = await getJson(`${app.url}/api/users/trace`, { headers: { "x-request-id": given } });
    assert.equal(res.headers.get("x-request-id"), given);
    assert.deepEqual(res.body, { seen: given });
    await app.waitStderr(new RegExp(`\\[${given}\\]: handling a traced request`));
    const w = await getJson(`${app.url}/w/trace`, { headers: { "x-request-id": given + "w" } });
    assert.deepEqual(w.body, { traceId: given + "w", header: given + "w" });
    assert.equal(w.headers.get("x-request-id"), given + "w");
    await app.waitStderr(new RegExp(`\\[${given}w\\]: worker saw ${given}w`));
  });

  test("a program's LogTape logger made first inside a handler is forwarded once the worker notices it", async () => {
    // The worker checks for LogTape every 2 s; until then such records are LogTape's to drop. Poll for up to 10 s.
    const done = /late-app \[late-(\d+)\]: a record from a logger made late/;
    for (let i = 0; i < 40 && !done.test(app.stderr()); i++) {
      const res = await getJson(`${app.url}/w/late-logtape`, { headers: { "x-request-id": `late-${i}` } });
      assert.deepEqual(res.body, { ok: true });
      await sleep(250);
    }
    assert.match(app.stderr(), done);
  });

  test("a worker's log records stay below forkyard.worker.<pool>: it cannot write access lines or as another pool", async () => {
    const forged = /forkyard\.worker\.TraceWorker\.forkyard\.access(?: \[[^\]]*\])?: FORGED 6\.6\.6\.6/;
    for (let i = 0; i < 40 && !forged.test(app.stderr()); i++) {
      assert.deepEqual((await getJson(`${app.url}/w/forge`)).body, { ok: true });
      await sleep(250);
    }
    assert.match(app.stderr(), forged);
    assert.match(app.stderr(), /forkyard\.worker\.TraceWorker\.forkyard\.worker\.OtherPool(?: \[[^\]]*\])?: FORGED as/);
    for (const line of app.stderr().split("\n").filter((l) => l.includes("FORGED"))) {
      assert.match(line, /forkyard\.worker\.TraceWorker\./, line);
    }
  });

  test("without X-Request-ID (or with a malformed one) one is generated", async () => {
    const res = await getJson(`${app.url}/w/trace`);
    const id = res.headers.get("x-request-id");
    assert.match(id ?? "", /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-z]+$/);
    assert.equal(res.body.traceId, id);
    const bad = await getJson(`${app.url}/w/trace`, { headers: { "x-request-id": "a b\tc" } });
    assert.match(bad.body.traceId, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-z]+$/);
    assert.equal(bad.body.header, bad.body.traceId, "the worker's x-request-id header is the generated id");
  });

  test("middleware runs before routing: CORS, secure headers, compression, rate limit", async () => {
    const res = await fetch(`${app.url}/w/big`, {
      headers: { origin: "http://example.test", "accept-encoding": "gzip" },
    });
    assert.equal(res.headers.get("access-control-allow-origin"), "*");
    assert.equal(res.headers.get("x-content-type-options"), "nosniff");
    assert.equal(res.headers.get("content-encoding"), "gzip");
    assert.equal((await res.json()).text.length, 18000);
    const preflight = await fetch(`${app.url}/api/users`, {
      method: "OPTIONS",
      headers: { origin: "http://example.test", "access-control-request-method": "POST" },
    });
    assert.equal(preflight.status, 204);
    const client = `c${Date.now()}`;
    const codes = [];
    for (let i = 0; i < 5; i++) {
      codes.push((await fetch(`${app.url}/limited/x`, { headers: { "x-client": client } })).status);
    }
    assert.deepEqual(codes, [404, 404, 404, 429, 429]);
  });

  test("AppPool checks its mount", () => {
    assert.throws(() => new AppPool("api", "./x.ts"), { name: "TypeError", message: /Invalid AppPool mount "api"/ });
    assert.throws(() => new AppPool("/a/**", "./x.ts"), /Invalid AppPool mount/);
    const pool = new AppPool("/api/users/", "./x.ts");
    assert.equal(pool.name, "/api/users");
    assert.equal(pool.matches("/api/users"), true);
    assert.equal(pool.matches("/api/users/1"), true);
    assert.equal(pool.matches("/api/usersx"), false);
  });
});
