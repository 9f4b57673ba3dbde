// What a request carries to @sync handlers, doCheck and workers, and what every answer carries back: bodies, query
// values, route names and patterns, request ids. A real dispatcher with real worker processes.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { type App, getJson, runtime, startApp } from "./helpers.ts";

const json = (body: string, method = "POST"): RequestInit => ({
  method,
  headers: { "content-type": "application/json" },
  body,
});

describe(`requests (${runtime.name})`, () => {
  let app: App;
  before(async () => {
    app = await startApp("app.ts");
  });
  after(async () => {
    await app?.stop();
  });

  test("a @sync handler gets the request's body: data, body and contentType", async () => {
    const res = await getJson(`${app.url}/sync/echo`, json(JSON.stringify({ a: [1, 2] })));
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { data: { a: [1, 2] }, contentType: "application/json", length: 11 });
    const form = await getJson(`${app.url}/sync/echo`, {
      method: "PUT",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "x=1&y=two",
    });
    assert.deepEqual(form.body.data, { x: "1", y: "two" });
  });

  test("a @sync handler reading malformed JSON answers 400, one over maxBodySize 413", async () => {
    const bad = await getJson(`${app.url}/sync/echo`, json("{nope"));
    assert.equal(bad.status, 400);
    assert.deepEqual(bad.body, { error: "Invalid JSON" });
    const big = await getJson(`${app.url}/sync/echo`, { method: "POST", body: new Uint8Array(1024 * 1024 + 1) });
    assert.equal(big.status, 413);
  });

  test("routes named like a Worker or Dispatcher member are called, not shadowed", async () => {
    const worker = await getJson(`${app.url}/names/log`);
    assert.equal(worker.status, 200);
    assert.deepEqual(worker.body, { route: "log", path: "/names/log" });
    const sync = await getJson(`${app.url}/sync/options`);
    assert.equal(sync.status, 200);
    assert.deepEqual(sync.body, { route: "options" });
  });

  test('":id" in a pattern is a parameter, like "{id}"', async () => {
    const res = await getJson(`${app.url}/names/users/ann/posts/3`);
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { params: { id: "ann", n: 3 } });
    assert.equal((await getJson(`${app.url}/names/users/:id/posts/3`)).body.params.id, ":id");
  });

  test("a route no pool's routes reach is one warning at start", () => {
    const warnings = app.stderr().split("\n").filter((l) => l.includes("is never reached"));
    assert.equal(warnings.length, 1, app.stderr());
    assert.match(
      warnings[0],
      /Route "\/elsewhere\/\{id:int\}" of pool "NamesWorker" is never reached: \/elsewhere\/1 goes to no pool \(404\)/,
    );
  });

  test("repeated query parameters: query keeps the last, searchParams every value", async () => {
    const worker = await getJson(`${app.url}/names/query?x=1&x=2&y=3`);
    assert.deepEqual(worker.body, { query: { x: "2", y: "3" }, x: ["1", "2"] });
    const sync = await getJson(`${app.url}/sync/query?x=a&x=b`);
    assert.deepEqual(sync.body, { query: { x: "b" }, x: ["a", "b"] });
  });

  test("the dispatcher does not parse bodies: a handler that reads only bytes gets malformed JSON as sent", async () => {
    const res = await getJson(`${app.url}/names/bytes`, json("{not json"));
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { length: 9, contentType: "application/json" });
  });

  test("req.data on malformed JSON is 400 from the worker; deeply nested JSON reaches the handler", async () => {
    const bad = await getJson(`${app.url}/names/data`, json("{not json"));
    assert.equal(bad.status, 400);
    assert.deepEqual(bad.body, { error: "Invalid JSON" });
    const deep = "[".repeat(100_000) + "]".repeat(100_000);
    const nested = await getJson(`${app.url}/names/data`, json(deep));
    assert.equal(nested.status, 200);
    assert.deepEqual(nested.body, { array: true });
    assert.deepEqual((await getJson(`${app.url}/names/data`, json('{"ok":true}'))).body, { data: { ok: true } });
  });

  test("every answer carries X-Request-ID: workers, @sync, static files and the dispatcher's own", async () => {
    const generated = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-z]+$/;
    const answers: [string, RequestInit | undefined, number][] = [
      ["/api/items", undefined, 200],
      ["/sync/health", undefined, 200],
      ["/sync/hello/x", undefined, 200], // a Response the handler made
      ["/sync/redirect", { redirect: "manual" }, 302], // one whose headers are immutable
      ["/sync/throw", undefined, 500],
      ["/sync/health", { method: "POST" }, 405],
      ["/static/style.css", undefined, 200],
      ["/nowhere", undefined, 404],
      ["/api/echo", { method: "POST", body: new Uint8Array(1024 * 1024 + 1) }, 413],
      ["/api/secure", undefined, 401], // doCheck
      ["/api/%E0%A4%A", undefined, 400],
    ];
    for (const [path, init, status] of answers) {
      const res = await fetch(app.url + path, init);
      await res.arrayBuffer();
      assert.equal(res.status, status, path);
      assert.match(res.headers.get("x-request-id") ?? "", generated, `${path} has no generated X-Request-ID`);
      const kept = await fetch(app.url + path, { ...init, headers: { "x-request-id": "trace-me-1" } });
      await kept.arrayBuffer();
      assert.equal(kept.headers.get("x-request-id"), "trace-me-1", `${path} did not keep the client's id`);
    }
  });
});
