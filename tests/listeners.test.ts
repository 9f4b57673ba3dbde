// Request-listener apps in app pools: Express 5, Fastify 5 and Koa 3 as their guides write them, node:http listeners,
// and `forkyard serve` of such a module.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { type App, eventually, fixture, getJson, httpsGet, pattern, runtime, start, startApp } from "./helpers.ts";

const CLI = fileURLToPath(new URL("../cli.ts", import.meta.url));

/** The body as text, or the error reading it raised. */
async function bodyOrError(res: Response): Promise<string | Error> {
  try {
    return await res.text();
  } catch (error) {
    return error as Error;
  }
}

describe(`request-listener apps (${runtime.name})`, () => {
  let app: App;
  before(async () => {
    app = await startApp("listeners.ts");
  });
  after(async () => {
    await app?.stop();
  });

  test("Express: routing, params, the client's address, JSON bodies, 404 from Express", async () => {
    const hello = await fetch(`${app.url}/express/`);
    assert.equal(hello.status, 200);
    assert.equal(hello.headers.get("x-powered-by"), "Express");
    assert.equal(await hello.text(), "Hello World!");
    const user = await getJson(`${app.url}/express/users/7?sort=name`);
    assert.deepEqual(user.body, {
      id: "7",
      query: { sort: "name" },
      ip: "127.0.0.1",
      secure: false,
      url: "/users/7?sort=name",
    });
    const echo = await getJson(`${app.url}/express/echo`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "ann", tags: [1, 2] }),
    });
    assert.equal(echo.status, 201);
    assert.deepEqual(echo.body, { received: { name: "ann", tags: [1, 2] }, type: "application/json" });
    const missing = await fetch(`${app.url}/express/nope`);
    assert.equal(missing.status, 404);
    assert.match(await missing.text(), /Cannot GET \/nope/);
  });

  test("Express: several Set-Cookie, headers, HEAD and a streamed answer", async () => {
    const res = await fetch(`${app.url}/express/cookies`);
    assert.deepEqual(res.headers.getSetCookie(), ["a=1; Path=/", "b=2; Path=/; HttpOnly"]);
    assert.equal(res.headers.get("cache-control"), "no-store");
    assert.equal(await res.text(), "cookies set");
    const head = await fetch(`${app.url}/express/`, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("content-length"), "12");
    assert.equal(await head.text(), "");
    const stream = await fetch(`${app.url}/express/stream`);
    assert.equal(stream.headers.get("content-type"), "text/plain; charset=utf-8");
    assert.equal(stream.headers.get("content-length"), null);
    const reader = stream.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    // The first part arrives before the app wrote the last (it waits 30 ms between parts).
    assert.ok(first.startsWith("part0\n") && !first.includes("part2"), first);
    let rest = "";
    for (let r = await reader.read(); !r.done; r = await reader.read()) rest += new TextDecoder().decode(r.value);
    assert.equal(first + rest, "part0\npart1\npart2\n");
  });

  test("Express: a throwing route reaches the app's error handler; the stack is in the log, not the answer", async () => {
    for (const path of ["boom", "async-boom"]) {
      const res = await fetch(`${app.url}/express/${path}`);
      assert.equal(res.status, 500);
      assert.equal(await res.text(), "Something broke!");
    }
    await app.waitStderr(/express\.console.*Error: secret express details[\s\S]*express_app\.js:\d+/);
    await app.waitStderr(/express\.console.*Error: secret async details/);
  });

  test("Fastify: its server and its instance, params, address, JSON bodies, cookies, streams, errors", async () => {
    for (const mount of ["/fastify", "/fastify-instance"]) {
      assert.deepEqual((await getJson(`${app.url}${mount}/`)).body, { hello: "world" });
      const user = await getJson(`${app.url}${mount}/users/3?a=b`);
      assert.deepEqual(user.body, { id: "3", query: { a: "b" }, ip: "127.0.0.1", protocol: "http" });
      const echo = await getJson(`${app.url}${mount}/echo`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ k: 2 }),
      });
      assert.equal(echo.status, 201);
      assert.deepEqual(echo.body, { received: { k: 2 } });
      const cookies = await fetch(`${app.url}${mount}/cookies`);
      assert.deepEqual(cookies.headers.getSetCookie(), ["a=1; Path=/", "b=2; Path=/; HttpOnly"]);
      assert.equal(await cookies.text(), "cookies set");
      assert.equal(await (await fetch(`${app.url}${mount}/stream`)).text(), "part0\npart1\npart2\n");
      const boom = await getJson(`${app.url}${mount}/boom`);
      assert.equal(boom.status, 500);
      assert.equal(boom.body.statusCode, 500);
      assert.doesNotMatch(JSON.stringify(boom.body), /\bat /);
      assert.equal((await fetch(`${app.url}${mount}/nope`)).status, 404);
    }
  });

  test("Koa: its callback and the app, cascading middleware, address, bodies, cookies, streams, errors", async () => {
    for (const mount of ["/koa", "/koa-app"]) {
      const hello = await fetch(`${app.url}${mount}/`);
      assert.equal(await hello.text(), "Hello World");
      assert.match(hello.headers.get("x-response-time") ?? "", /^\d+ms$/);
      const json = await getJson(`${app.url}${mount}/json?q=1`);
      assert.deepEqual(json.body, {
        path: "/json",
        query: { q: "1" },
        ip: "127.0.0.1",
        secure: false,
        href: `${app.url}/json?q=1`,
      });
      const echo = await getJson(`${app.url}${mount}/echo`, { method: "POST", body: JSON.stringify({ k: 3 }) });
      assert.equal(echo.status, 201);
      assert.deepEqual(echo.body, { received: { k: 3 } });
      const cookies = await fetch(`${app.url}${mount}/cookies`);
      assert.deepEqual(cookies.headers.getSetCookie(), ["a=1; path=/", "b=2; path=/; httponly"]);
      assert.equal(await (await fetch(`${app.url}${mount}/stream`)).text(), "part0\npart1\npart2\n");
      const boom = await fetch(`${app.url}${mount}/boom`);
      assert.equal(boom.status, 500);
      assert.equal(await boom.text(), "Internal Server Error");
    }
    await app.waitStderr(/koa(?:-app)?\.console.*Error: secret koa details/);
  });

  test("node:http: req as IncomingMessage (headers, address, version), in a worker process", async () => {
    const info = await getJson(`${app.url}/node/info?x=1`, {
      headers: { "x-custom": "a", cookie: "c=1", constructor: "not inherited" },
    });
    assert.equal(info.body.headers.constructor, "not inherited");
    assert.equal(info.body.method, "GET");
    assert.equal(info.body.url, "/info?x=1");
    assert.equal(info.body.headers["x-custom"], "a");
    assert.equal(info.body.headers.cookie, "c=1");
    assert.match(info.body.headers["x-request-id"], /\S/);
    assert.equal(info.body.address, "127.0.0.1");
    assert.equal(info.body.family, "IPv4");
    assert.equal(info.body.httpVersion, "1.1");
    assert.notEqual(info.body.pid, app.pid);
    // The Server's own "request" listener serves the same.
    assert.equal((await getJson(`${app.url}/server/info`)).body.url, "/info");
  });

  test("node:http: a body read with req.on('data') comes back whole, 3 MiB of random bytes", async () => {
    const sent = pattern(3 * 1024 * 1024, 7);
    const res = await fetch(`${app.url}/node/echo`, { method: "POST", body: sent });
    assert.equal(res.headers.get("x-length"), String(sent.length));
    assert.deepEqual(new Uint8Array(await res.arrayBuffer()), sent);
  });

  test("node:http: writeHead with a reason and a header list, 204 without a body, 'finish' emitted", async () => {
    const made = await fetch(`${app.url}/node/head`);
    assert.equal(made.status, 201);
    assert.deepEqual(made.headers.getSetCookie(), ["a=1", "b=2"]);
    assert.equal(made.headers.get("x-custom"), "yes");
    assert.equal(await made.text(), "made");
    const empty = await fetch(`${app.url}/node/empty`);
    assert.equal(empty.status, 204);
    assert.equal(await empty.text(), "");
    assert.equal(await (await fetch(`${app.url}/server/finish`)).text(), "done");
    const events = (await getJson(`${app.url}/server/events`)).body as { path: string; event?: string }[];
    assert.ok(events.some((e) => e.path === "/finish" && e.event === "finish"), JSON.stringify(events));
  });

  test("node:http: a header with CR/LF is refused where it is set (ERR_INVALID_CHAR), nothing injected; 101 is 500", async () => {
    const switching = await getJson(`${app.url}/node/switching`);
    assert.equal(switching.status, 500);
    assert.deepEqual(switching.body, { error: "Internal server error" });
    await app.waitStderr(/Status 101 cannot answer a request/);
    const res = await fetch(`${app.url}/node/bad-header`);
    assert.equal(await res.text(), "ERR_INVALID_CHAR");
    assert.equal(res.headers.get("x-evil"), null);
    assert.deepEqual(res.headers.getSetCookie(), []);
  });

  test("node:http: a large answer is held back until the client takes it (write() false, then 'drain')", async () => {
    const res = await fetch(`${app.url}/server/big`);
    const body = new Uint8Array(await res.arrayBuffer());
    assert.equal(body.length, 8 * 1024 * 1024);
    assert.ok(body.every((b) => b === 120));
    const events = (await getJson(`${app.url}/server/events`)).body as { path: string; waits?: number }[];
    const big = events.find((e) => e.path === "/big");
    assert.ok(big !== undefined && big.waits! >= 1, JSON.stringify(events));
  });

  test("node:http: a listener that throws or rejects gives 500 without details; the stack is in the log", async () => {
    for (const path of ["throw", "reject"]) {
      const res = await getJson(`${app.url}/node/${path}`);
      assert.equal(res.status, 500);
      assert.deepEqual(res.body, { error: "Internal server error" });
    }
    await app.waitStderr(/Handler for GET \/node\/throw failed: Error: secret listener details\n.*node_http\.js:\d+/);
    await app.waitStderr(/Handler for GET \/node\/reject failed: Error: secret rejection details/);
  });

  test("node:http: a response destroyed after it began breaks the client's stream", async () => {
    const res = await fetch(`${app.url}/node/late-throw`);
    assert.equal(res.status, 200);
    const body = await bodyOrError(res);
    assert.ok(body instanceof Error, `the stream ended as if complete: ${JSON.stringify(body)}`);
  });

  test("node:http: server-sent events stream at once, and stop when the client leaves ('close', aborted)", async () => {
    const gone = new AbortController();
    const res = await fetch(`${app.url}/server/sse`, { signal: gone.signal });
    assert.equal(res.headers.get("content-type"), "text/event-stream");
    const reader = res.body!.getReader();
    let text = "";
    while (!text.includes("data: 2")) text += new TextDecoder().decode((await reader.read()).value);
    assert.match(text, /^data: 0\n\ndata: 1\n\n/);
    gone.abort();
    for (let i = 0; i < 50; i++) {
      const events = (await getJson(`${app.url}/server/events`)).body as { path: string }[];
      const sse = events.find((e) => e.path === "/sse");
      if (sse !== undefined) {
        assert.deepEqual(sse, { path: "/sse", event: "close", aborted: true, ended: false });
        return;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.fail("the app never saw the client leave");
  });

  test("node:http: a client that leaves before the answer: the app sees 'aborted' and 'close' at once, not at the timeout", async () => {
    const gone = new AbortController();
    const leaving = fetch(`${app.url}/node/left`, { signal: gone.signal }).catch((error) => error);
    assert.ok(
      await eventually(async () => (await getJson(`${app.url}/sync/pending`)).body.pending === 1, 5000),
      "the request never reached its worker",
    );
    gone.abort();
    assert.equal((await leaving).name, "AbortError");
    for (let i = 0; i < 50; i++) {
      const events = (await getJson(`${app.url}/node/events`)).body as { path: string; event: string; ms?: number }[];
      const left = events.filter((e) => e.path === "/left");
      if (left.length === 2) {
        assert.deepEqual(left.map((e) => e.event), ["aborted", "close"]);
        // The pool's timeout is 1500 ms: the app heard of it from the client, not from the timeout.
        assert.ok(left[0].ms! < 1000, `aborted after ${left[0].ms} ms`);
        // Its answer can no longer be sent: its worker answers for it, and the dispatcher lets the request go.
        assert.ok(
          await eventually(async () => (await getJson(`${app.url}/sync/pending`)).body.pending === 0, 1000),
          "the request was held until its timeout",
        );
        return;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.fail("the app never saw the client leave");
  });

  test("node:http: a request that times out: the app sees 'aborted' and 'close' without an end, the client 504", async () => {
    const res = await getJson(`${app.url}/node/slow`);
    assert.equal(res.status, 504);
    for (let i = 0; i < 50; i++) {
      const events = (await getJson(`${app.url}/node/events`)).body as { path: string; event: string }[];
      const slow = events.filter((e) => e.path === "/slow");
      if (slow.length === 2) {
        assert.deepEqual(slow, [{ path: "/slow", event: "aborted" }, { path: "/slow", event: "close", ended: false }]);
        return;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.fail("the app never saw the request end");
  });
});

describe(`request-listener apps behind HTTPS (${runtime.name})`, () => {
  test("an app sees the client's TLS: Express's req.secure and Koa's ctx.secure are true", async () => {
    const app = await startApp("listeners.ts", { TLS: "1" });
    try {
      const ca = readFileSync(fixture("cert.pem"), "utf8");
      const express = await httpsGet(`https://localhost:${app.port}/express/users/1`, ca);
      assert.equal(JSON.parse(express.body).secure, true, express.body);
      const koa = await httpsGet(`https://localhost:${app.port}/koa/json`, ca);
      assert.equal(JSON.parse(koa.body).secure, true, koa.body);
    } finally {
      await app.stop();
    }
  });
});

describe(`forkyard serve of a request-listener module (${runtime.name})`, () => {
  async function serve(target: string) {
    const proc = start(CLI, ["serve", target, "--port", "0", "--host", "127.0.0.1", "--workers", "2"]);
    const line = await proc.waitStderr(/Listening on http:\/\/127\.0\.0\.1:\d+/);
    return { proc, url: /http:\/\/127\.0\.0\.1:\d+/.exec(line)![0] };
  }

  test("an Express app (ESM, default export) and a CommonJS one (module.exports = app)", async () => {
    for (const [file, text] of [["express_app.js", "Hello World!"], ["express_cjs.cjs", "Hello from CommonJS"]]) {
      const { proc, url } = await serve(fixture(`listeners/${file}`));
      try {
        assert.equal(await (await fetch(`${url}/`)).text(), text);
        if (file.endsWith(".cjs")) assert.notEqual((await getJson(`${url}/pid`)).body.pid, proc.pid);
      } finally {
        proc.child.kill("SIGTERM");
        assert.equal((await proc.exited).code, 0, proc.stderr());
      }
    }
  });

  test("a Fastify instance by name (module:export), and a Koa app", async () => {
    for (
      const [target, path, expected] of [
        [`${fixture("listeners/fastify_app.js")}:instance`, "/", '{"hello":"world"}'],
        [`${fixture("listeners/koa_app.js")}:koa`, "/", "Hello World"],
      ]
    ) {
      const { proc, url } = await serve(target);
      try {
        assert.equal(await (await fetch(`${url}${path}`)).text(), expected);
      } finally {
        proc.child.kill("SIGTERM");
        assert.equal((await proc.exited).code, 0, proc.stderr());
      }
    }
  });

  test("apps that call listen() themselves, as the frameworks' guides write them, unchanged", async () => {
    for (
      const [file, text] of [
        ["express_listen.cjs", "Hello World!"],
        ["koa_listen.cjs", "Hello World"],
        ["fastify_listen.js", '{"hello":"world"}'],
      ]
    ) {
      const { proc, url } = await serve(fixture(`listeners/verbatim/${file}`));
      try {
        // Twice: both workers ran the module's listen(3000), and neither bound the port.
        for (let i = 0; i < 2; i++) assert.equal(await (await fetch(`${url}/`)).text(), text, proc.stderr());
      } finally {
        proc.child.kill("SIGTERM");
        assert.equal((await proc.exited).code, 0, proc.stderr());
      }
    }
  });

  test("an app that listens itself is served on the port it asked for, unless --port or PORT says", async () => {
    const free = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, "127.0.0.1", () => {
        const { port } = probe.address() as { port: number };
        probe.close(() => resolve(port));
      });
    });
    const proc = start(CLI, ["serve", fixture("listeners/listen_port.js"), "--host", "127.0.0.1"], {
      APP_PORT: String(free),
      PORT: "",
    });
    try {
      await proc.waitStderr(new RegExp(`Listening on http://127\\.0\\.0\\.1:${free}\\b`));
      assert.equal(await (await fetch(`http://127.0.0.1:${free}/`)).text(), `served on 127.0.0.1:${free}`);
    } finally {
      proc.child.kill("SIGTERM");
      assert.equal((await proc.exited).code, 0, proc.stderr());
    }
  });
});
