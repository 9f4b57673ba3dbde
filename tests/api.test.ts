// The seed's API end to end: a real dispatcher process, real worker processes, real HTTP.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { request } from "node:http";
import { type App, assertTimesOut, eventually, getJson, HTTP_SERVERS, runtime, startApp } from "./helpers.ts";
import { checksum } from "./fixtures/checksum.ts";

describe(`dispatcher and workers (${runtime.name})`, () => {
  let app: App;
  before(async () => {
    app = await startApp("app.ts");
  });
  after(async () => {
    await app?.stop();
  });

  test("a plain value is JSON with 200", async () => {
    const res = await getJson(`${app.url}/api/items`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "application/json");
    assert.ok(Array.isArray(res.body.items));
  });

  test("a returned Response keeps its status and body", async () => {
    const res = await getJson(`${app.url}/api/items`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "apple" }),
    });
    assert.equal(res.status, 201);
    assert.equal(res.body.name, "apple");
    assert.equal(typeof res.body.id, "number");
  });

  test("ApiHandler routes, path parameters and subclass inheritance", async () => {
    assert.deepEqual((await getJson(`${app.url}/api/items/12`, { method: "DELETE" })).body, { deleted: 12 });
    assert.deepEqual((await getJson(`${app.url}/api/things/5`, { method: "DELETE" })).body, { deleted: 5 });
    assert.equal((await getJson(`${app.url}/api/items/999999`)).status, 404);
  });

  test("int, float and string parameters convert; a non-converting value does not match", async () => {
    const ok = await getJson(`${app.url}/api/get/b%20c/-3/2.5?x=1&y=2`);
    assert.equal(ok.status, 200);
    assert.deepEqual(ok.body, {
      params: { name: "b c", n: -3, x: 2.5 },
      path: "/api/get/b c/-3/2.5",
      query: { x: "1", y: "2" },
    });
    assert.equal((await getJson(`${app.url}/api/get/b/notint/2.5`)).status, 404);
    assert.equal((await getJson(`${app.url}/api/get/b/1/x1`)).status, 404);
  });

  test("405 lists every accepted method in Allow", async () => {
    const res = await getJson(`${app.url}/api/echo`);
    assert.equal(res.status, 405);
    assert.equal(res.headers.get("allow"), "PATCH, POST, PUT");
    const res2 = await getJson(`${app.url}/api/items`, { method: "PUT" });
    assert.equal(res2.status, 405);
    assert.equal(res2.headers.get("allow"), "GET, HEAD, POST");
  });

  test("request fields: method, query, JSON data, headers, content type, cookies, requestId", async () => {
    const res = await getJson(`${app.url}/api/echo?a=1&b=two`, {
      method: "PUT",
      headers: { "content-type": "application/json", "x-test": "hdr", cookie: "sid=abc; theme=dark" },
      body: JSON.stringify({ deep: { list: [1, 2] } }),
    });
    assert.equal(res.status, 200);
    assert.equal(res.body.method, "PUT");
    assert.equal(res.body.path, "/api/echo");
    assert.deepEqual(res.body.query, { a: "1", b: "two" });
    assert.deepEqual(res.body.data, { deep: { list: [1, 2] } });
    assert.equal(res.body.contentType, "application/json");
    assert.deepEqual(res.body.cookies, { sid: "abc", theme: "dark" });
    assert.equal(res.body.header, "hdr");
    assert.equal(typeof res.body.requestId, "number");
    assert.ok(res.body.requestId > 0);
  });

  test("a header sent twice, in any case, reaches the worker as one joined value", async () => {
    // node:http sends an array value as repeated lines, which fetch() would have joined already.
    const body = await new Promise<string>((resolve, reject) => {
      const req = request(`${app.url}/api/echo`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Test": ["one", "two"] },
      }, (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c) => (text += c));
        res.on("end", () => resolve(text));
      });
      req.on("error", reject);
      req.end('{"x":1}');
    });
    const echoed = JSON.parse(body);
    assert.equal(echoed.header, "one, two");
    assert.equal(echoed.contentType, "application/json");
    assert.deepEqual(echoed.data, { x: 1 });
  });

  test("form bodies are parsed, other bodies arrive as bytes, no body is null", async () => {
    const form = await getJson(`${app.url}/api/echo`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "a=1&b=x+y",
    });
    assert.deepEqual(form.body.data, { a: "1", b: "x y" });
    const bytes = await getJson(`${app.url}/api/echo`, {
      method: "POST",
      headers: { "content-type": "application/octet-stream" },
      body: new Uint8Array(1000),
    });
    assert.deepEqual(bytes.body.data, { bytes: 1000 });
    const empty = await getJson(`${app.url}/api/echo`, { method: "POST" });
    assert.equal(empty.body.data, null);
    assert.equal(empty.body.query, null);
  });

  test("binary bodies round-trip byte-exact, one after another and at once, small after large", async () => {
    // From 256 KiB on, Deno and Node carry bodies through spill files that are written again for later,
    // shorter bodies: each answer must still be exactly its own body.
    const make = (size: number, seed: number) =>
      new Uint8Array(new ArrayBuffer(size)).map((_, i) => (i * 31 + seed) & 255);
    const roundTrip = async (payload: Uint8Array<ArrayBuffer>, check = false) => {
      // With x-body-sum, doCheck reads the whole body before the request goes on (see tests/fixtures/app.ts).
      const headers = check ? { "x-body-sum": checksum(payload) } : undefined;
      const res = await fetch(`${app.url}/api/raw`, { method: "POST", body: payload, headers });
      assert.equal(res.status, 200, await res.clone().text());
      assert.equal(res.headers.get("content-type"), "application/octet-stream");
      const back = new Uint8Array(await res.arrayBuffer());
      assert.equal(back.length, payload.length);
      assert.ok(Buffer.from(back).equals(Buffer.from(payload)), `${payload.length}-byte body differs`);
    };
    // 100 KiB: past the frame buffer and below the spill threshold, the chunks it arrived in go on as they are.
    for (const [size, seed] of [[256 * 1024, 7], [1000 * 1024, 8], [300 * 1024, 9], [1000, 10], [100 * 1024, 11]]) {
      await roundTrip(make(size, seed));
      await roundTrip(make(size, seed + 1), true);
    }
    await Promise.all([600, 900, 300, 700].map((kib, i) => roundTrip(make(kib * 1024, i))));
  });

  test("a response body onResponse() keeps stays as it was while later large responses go through", async () => {
    // Large response bodies are read into bytes that later responses reuse, unless onResponse() may keep them.
    const kept = new Uint8Array(new ArrayBuffer(600 * 1024)).map((_, i) => (i * 13 + 5) & 255);
    const first = await fetch(`${app.url}/api/raw`, { method: "POST", body: kept, headers: { "x-keep": "1" } });
    assert.equal(first.status, 200);
    await first.arrayBuffer();
    for (let seed = 0; seed < 6; seed++) {
      const other = new Uint8Array(new ArrayBuffer(600 * 1024)).fill(seed);
      const res = await fetch(`${app.url}/api/raw`, { method: "POST", body: other });
      assert.equal(res.status, 200);
      await res.arrayBuffer();
    }
    assert.deepEqual((await getJson(`${app.url}/sync/kept-sum`)).body, { sum: checksum(kept) });
  });

  test("strings are text/plain, undefined is 204", async () => {
    const text = await fetch(`${app.url}/api/text`);
    assert.equal(text.headers.get("content-type"), "text/plain; charset=utf-8");
    assert.equal(await text.text(), "hello text");
    const none = await fetch(`${app.url}/api/nothing`);
    assert.equal(none.status, 204);
    assert.equal(await none.text(), "");
  });

  test("a result that cannot be serialised is 500 and logged", async () => {
    const res = await getJson(`${app.url}/api/bigint`);
    assert.equal(res.status, 500);
    assert.deepEqual(res.body, { error: "Internal server error" });
    await app.waitStderr(/cannot be serialised as JSON/);
  });

  test("a throwing handler is 500 without its stack; the stack goes to the log", async () => {
    for (const path of ["/api/throw", "/api/async-throw"]) {
      const res = await fetch(`${app.url}${path}`);
      const body = await res.text();
      assert.equal(res.status, 500);
      assert.equal(body, '{"error":"Internal server error"}');
      assert.doesNotMatch(body, /secret/);
    }
    await app.waitStderr(/secret internal detail[\s\S]*at /);
    await app.waitStderr(/secret async detail/);
  });

  test("several Set-Cookie headers and custom headers survive", async () => {
    const res = await fetch(`${app.url}/api/cookies`);
    assert.equal(res.status, 202);
    assert.deepEqual(res.headers.getSetCookie(), ["a=1; Path=/", "b=2; HttpOnly"]);
    assert.equal(res.headers.get("x-custom"), "yes");
    assert.equal(await res.text(), "cookies set");
  });

  test("a 204 answer keeps its headers: a logout's Set-Cookie reaches the client", async () => {
    const res = await fetch(`${app.url}/api/logout`);
    assert.equal(res.status, 204);
    assert.deepEqual(res.headers.getSetCookie(), ["session=; Max-Age=0"]);
    assert.equal(res.headers.get("x-custom"), "bye");
    assert.equal(res.headers.get("content-length"), null);
    assert.equal(await res.text(), "");
  });

  test("a streamed body is relayed as it is produced", async () => {
    const t0 = Date.now();
    const res = await fetch(`${app.url}/api/stream`);
    const reader = res.body!.getReader();
    const first = await reader.read();
    const tFirst = Date.now() - t0;
    let rest = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      rest += new TextDecoder().decode(value);
    }
    assert.equal(new TextDecoder().decode(first.value) + rest, "chunk0\nchunk1\nchunk2\n");
    // The first chunk comes ~50 ms in, well before the whole body (~150 ms).
    assert.ok(tFirst < 140, `first chunk after ${tFirst} ms`);
  });

  test("Server-Sent Events: data, event, id, retry, multi-line data, end", async () => {
    const res = await fetch(`${app.url}/api/sse`);
    assert.equal(res.headers.get("content-type"), "text/event-stream");
    assert.equal(
      await res.text(),
      'retry: 1000\n\nevent: greeting\nid: 1\ndata: {"hello":"world"}\n\nid: 2\ndata: two\ndata: lines\n\n',
    );
  });

  test("a client leaving mid-stream reaches the worker as onDisconnect(requestId)", async () => {
    const ac = new AbortController();
    const res = await fetch(`${app.url}/api/sse-forever`, { signal: ac.signal });
    const reader = res.body!.getReader();
    await reader.read();
    ac.abort();
    await reader.cancel().catch(() => {});
    // Both workers may hold the record; ask until one reports a disconnect.
    let seen = false;
    for (let i = 0; i < 100 && !seen; i++) {
      const r = await getJson(`${app.url}/api/disconnects`);
      seen = r.body.disconnects.length > 0;
      if (!seen) await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(seen, "no worker saw the disconnect");
  });

  for (const httpServer of HTTP_SERVERS) {
    // Deno.serve tells of a client that left only through request.signal, which makes Deno warn once read.
    const skip = runtime.name === "deno" && httpServer === "native";
    test(
      `a client that leaves while its worker works: req.signal aborts and onDisconnect(requestId) runs at once (${httpServer} server)`,
      {
        skip,
      },
      async () => {
        const served = httpServer === "node" ? app : await startApp("app.ts", { HTTP_SERVER: "native" });
        try {
          const ac = new AbortController();
          const leaving = fetch(`${served.url}/api/hold`, { signal: ac.signal }).catch((error) => error);
          // Until the worker holds it: both workers may, so ask each until one says.
          const held = async () => {
            for (let i = 0; i < 10; i++) {
              const r = await getJson(`${served.url}/api/held`);
              const entry = r.body.held.find((h: { ms: number }) => h.ms < 10_000);
              if (entry !== undefined) return { entry, disconnects: r.body.disconnects as number[] };
            }
            return null;
          };
          assert.ok(
            await eventually(async () => (await getJson(`${served.url}/sync/status`)).body.pending === 1, 5000),
            "the request never reached its worker",
          );
          const t0 = Date.now();
          ac.abort();
          assert.equal((await leaving).name, "AbortError");
          let seen = null;
          while (seen === null && Date.now() - t0 < 5000) seen = await held();
          assert.ok(seen !== null, "no worker saw its request's signal abort");
          // Not the pool's timeout (700 ms), which would abort it too.
          assert.equal(seen.entry.reason, "Client disconnected");
          assert.ok(seen.disconnects.includes(seen.entry.id), "onDisconnect(requestId) did not run");
        } finally {
          if (served !== app) await served.stop();
        }
      },
    );
  }

  test("a handler that goes on after its client left keeps its slot until it answers", async () => {
    const status = async () => (await getJson(`${app.url}/sync/status`)).body.pending as number;
    const ac = new AbortController();
    const leaving = fetch(`${app.url}/api/slow/600`, { signal: ac.signal }).catch((error) => error);
    assert.ok(await eventually(async () => (await status()) === 1, 5000), "the request never reached its worker");
    const t0 = Date.now();
    ac.abort();
    assert.equal((await leaving).name, "AbortError");
    // The handler sleeps on, ignoring its signal: its worker is busy with it, and the dispatcher counts it so.
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(await status(), 1, "the slot was freed while its handler still worked");
    assert.ok(await eventually(async () => (await status()) === 0, 5000), "the slot was never freed");
    assert.ok(Date.now() - t0 < 2000);
  });

  test("a timeout gives 504 and the request is dropped", async () => {
    await assertTimesOut(`${app.url}/api/slow/3000`, 650, 2000); // the pool's timeout is 700 ms
    await app.waitStderr(/timed out after 700 ms/);
  });

  test("keepAlive() postpones the timeout", async () => {
    const res = await getJson(`${app.url}/api/kept-alive`);
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { done: true });
  });

  test("workers get their id, pool name and kwargs", async () => {
    const res = await getJson(`${app.url}/api/pid`);
    assert.equal(res.body.pool, "main");
    assert.deepEqual(res.body.kwargs, { answer: 42 });
    assert.ok([0, 1].includes(res.body.workerId));
    assert.notEqual(res.body.pid, app.pid);
  });

  test("requests spread over both workers", async () => {
    const pids = new Set<number>();
    const results = await Promise.all(Array.from({ length: 8 }, () => getJson(`${app.url}/api/slow/50`)));
    for (const r of results) pids.add(r.body.pid);
    assert.equal(pids.size, 2);
  });

  test("log records from this.log, console and stray stdout writes reach the dispatcher's log", async () => {
    const res = await getJson(`${app.url}/api/log`);
    assert.deepEqual(res.body, { logged: true, logtape: false });
    await app.waitStderr(/placeholder 42/);
    await app.waitStderr(/printf 7 and x/);
    await app.waitStderr(/console says hi/);
    await app.waitStderr(/console\.debug is not filtered by logLevel/);
    await app.waitStderr(/a stray stdout write/);
    assert.doesNotMatch(app.stderr(), /debug is filtered out/);
    // not a terminal here: syslog priority prefixes
    assert.match(app.stderr(), /<4>forkyard\.worker\.main[^:]*: placeholder 42/);
    assert.match(app.stderr(), /<3>forkyard\.worker\.main[^:]*: printf 7 and x/);
  });

  test("@sync routes answer in the dispatcher with client.respond or a Response", async () => {
    const health = await getJson(`${app.url}/sync/health`);
    assert.equal(health.status, 200);
    assert.equal(health.body.status, "ok");
    assert.match(health.body.remote, /127\.0\.0\.1/);
    const hello = await fetch(`${app.url}/sync/hello/ann`);
    assert.equal(await hello.text(), "hello ann");
    const wrong = await fetch(`${app.url}/sync/health`, { method: "POST" });
    assert.equal(wrong.status, 405);
    assert.match(wrong.headers.get("allow") ?? "", /GET/);
    const thrown = await fetch(`${app.url}/sync/throw`);
    assert.equal(thrown.status, 500);
    assert.doesNotMatch(await thrown.text(), /secret/);
  });

  test("doCheck: respond + RejectRequest, RejectRequest with data and status, and the default 403", async () => {
    const denied = await getJson(`${app.url}/api/secure/x`);
    assert.equal(denied.status, 401);
    assert.deepEqual(denied.body, { error: "unauthorized" });
    const allowed = await getJson(`${app.url}/api/secure/x`, { headers: { "x-key": "k" } });
    assert.equal(allowed.status, 404); // passed the check, no worker route
    const teapot = await getJson(`${app.url}/api/forbidden`);
    assert.equal(teapot.status, 418);
    assert.deepEqual(teapot.body, { error: "nope" });
    const forbidden = await getJson(`${app.url}/api/default-reject`);
    assert.equal(forbidden.status, 403);
    assert.deepEqual(forbidden.body, { error: "Forbidden" });
  });

  test("routes without decorators work (plain JavaScript form)", async () => {
    const res = await getJson(`${app.url}/plain/zoe`);
    assert.deepEqual(res.body, { plain: true, name: "zoe" });
  });

  test("paths served by no pool are 404 Not found", async () => {
    const res = await getJson(`${app.url}/nowhere`);
    assert.equal(res.status, 404);
    assert.deepEqual(res.body, { error: "Not found" });
    assert.equal((await getJson(`${app.url}/plainx`)).status, 404);
  });

  test("malformed JSON is 400 Invalid JSON; a body over maxBodySize is 413", async () => {
    const bad = await getJson(`${app.url}/api/echo`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{not json",
    });
    assert.equal(bad.status, 400);
    assert.deepEqual(bad.body, { error: "Invalid JSON" });
    const big = await getJson(`${app.url}/api/echo`, { method: "POST", body: new Uint8Array(1024 * 1024 + 1) });
    assert.equal(big.status, 413);
  });

  test("static files: content type, index.html, ETag/304, traversal refused", async () => {
    const css = await fetch(`${app.url}/static/style.css`);
    assert.equal(css.status, 200);
    assert.match(css.headers.get("content-type") ?? "", /text\/css/);
    assert.equal(await css.text(), "body{}\n");
    const index = await fetch(`${app.url}/static/`);
    assert.equal(await index.text(), "<h1>index</h1>\n");
    const sub = await fetch(`${app.url}/static/sub/`);
    assert.equal(await sub.text(), "sub index\n");
    const tag = css.headers.get("etag");
    assert.ok(tag);
    const again = await fetch(`${app.url}/static/style.css`, { headers: { "if-none-match": tag! } });
    assert.equal(again.status, 304);
    for (
      const path of [
        "/static/../secret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/..%2fsecret.txt",
        "/static/%2e%2e%2fsecret.txt",
      ]
    ) {
      const res = await fetch(`${app.url}${path}`);
      const body = await res.text();
      assert.notEqual(res.status, 200, path);
      assert.doesNotMatch(body, /secret/, path);
    }
  });

  test("sendConfig reaches every worker of the pool", async () => {
    const value = `v${Date.now()}`;
    assert.equal((await getJson(`${app.url}/sync/config?value=${value}`, { method: "POST" })).status, 200);
    const seen = new Set<number>();
    for (let i = 0; i < 40 && seen.size < 2; i++) {
      const res = await getJson(`${app.url}/api/config`);
      if (res.body.config?.value === value) seen.add(res.body.pid);
    }
    assert.equal(seen.size, 2);
  });

  test("onResponse can forward a result to a pool, fire-and-forget", async () => {
    const created = await getJson(`${app.url}/api/items`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: `forwarded-${Date.now()}` }),
    });
    assert.equal(created.status, 201);
    let found = false;
    for (let i = 0; i < 50 && !found; i++) {
      const audit = (await getJson(`${app.url}/api/audit`)).body.audit as { requestId: number; data: any }[];
      found = audit.some((a) => a.requestId === -1 && a.data.created.name === created.body.name);
      if (!found) await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(found, "the forwarded request never reached a worker");
  });

  test("onIdle runs about every second", async () => {
    const a = (await getJson(`${app.url}/sync/idles`)).body.idles;
    await new Promise((r) => setTimeout(r, 2200));
    const b = (await getJson(`${app.url}/sync/idles`)).body.idles;
    assert.ok(b - a >= 1 && b - a <= 4, `onIdle ran ${b - a} times in 2.2 s`);
  });

  test("status() reports workers, pids, liveness, queue and degraded", async () => {
    const res = await getJson(`${app.url}/sync/status`);
    const main = res.body.pools.find((p: any) => p.name === "main");
    assert.equal(main.workers.length, 2);
    assert.equal(main.degraded, false);
    assert.equal(main.queueSize, 0);
    for (const w of main.workers) {
      assert.equal(typeof w.pid, "number");
      assert.equal(w.alive, true);
      assert.ok(Date.now() - w.lastSeen < 1000);
      assert.ok(w.rss > 0);
      for (const key of ["id", "currentRequest", "restarts", "uptime", "served"]) assert.ok(key in w, key);
    }
  });
});
