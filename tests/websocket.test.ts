// WebSockets through worker pools: the dispatcher accepts the handshake, the socket stays pinned to one worker,
// messages cross the channel byte-exact, publish/subscribe reaches every worker, and supervision closes sockets with
// the codes clients act on. Real clients: the runtime's own WebSocket, and raw TCP where a client must misbehave.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { connect } from "node:net";
import { alive, type App, eventually, getJson, HTTP_SERVERS, pattern, runtime, startApp } from "./helpers.ts";
import { closeRaw, type Conn, open, rawHandshake, textFrame } from "./ws_client.ts";

/** Resident memory of a process in MiB, from /proc. */
function rssMiB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith("VmRSS:"))!;
  return Number(line.split(/\s+/)[1]) / 1024;
}

/** Sockets to `path` until two different worker pids answered (each socket's first message names its pid). */
async function onTwoWorkers(base: string, path: string): Promise<{ conns: Conn[]; pids: number[] }> {
  const conns: Conn[] = [];
  const pids: number[] = [];
  for (let i = 0; i < 8 && new Set(pids).size < 2; i++) {
    const conn = await open(`${base}${path}`);
    conns.push(conn);
    pids.push(((await conn.json()) as { pid: number }).pid);
  }
  assert.equal(new Set(pids).size, 2, `sockets reached only pids ${pids}`);
  return { conns, pids };
}

/** Sends `text` on a new connection; resolves with all that comes back until the server closes it. */
function rawRequest(port: number, text: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    let data = "";
    socket.on("data", (chunk: Buffer) => (data += chunk.toString("latin1")));
    socket.on("error", () => {});
    socket.on("close", () => resolve(data));
    socket.on("connect", () => socket.write(text));
    setTimeout(() => socket.destroy(), 5000);
  });
}

// headersTimeout times the wait for a request; on Deno and Bun the node:http server once closed every connection,
// WebSockets included, that long after it opened (their node:http emits no "data" on a connection's socket).
describe(`websockets outlive headersTimeout (${runtime.name})`, () => {
  test("a socket open three times headersTimeout still echoes; a connection that sends nothing is closed", async () => {
    const app = await startApp("ws.ts", { HEADERS_TIMEOUT: "400" });
    try {
      const conn = await open(`${app.url.replace("http:", "ws:")}/ws/echo`);
      const silent = connect(app.port, "127.0.0.1");
      silent.on("error", () => {});
      const silentClosed = new Promise<number>((resolve) => silent.on("close", () => resolve(Date.now())));
      const opened = Date.now();
      await new Promise((r) => setTimeout(r, 1200));
      conn.ws.send("still here");
      assert.equal(await conn.next(2000), "still here");
      // Bun's node:http reports a connection that sends nothing about a second after it opened.
      const lived = (await silentClosed) - opened;
      assert.ok(lived < (runtime.name === "bun" ? 2500 : 1200), `the silent connection stayed ${lived} ms`);
      conn.ws.close();
      silent.destroy();
    } finally {
      await app.stop();
    }
  });
});

for (const httpServer of HTTP_SERVERS) {
  describe(`websockets (${runtime.name}, ${httpServer} server)`, () => {
    let app: App;
    let ws: string;

    before(async () => {
      app = await startApp("ws.ts", { HTTP_SERVER: httpServer });
      ws = app.url.replace("http:", "ws:");
    });
    after(async () => {
      await app.stop();
    });

    test("text and binary messages cross byte-exact, large ones included, in order", async () => {
      const conn = await open(`${ws}/ws/echo`);
      conn.ws.send("hello");
      assert.equal(await conn.next(), "hello");
      const text = "żółw 🐢 ".repeat(100_000); // multi-byte text, about 1.3 MB as UTF-8
      conn.ws.send(text);
      assert.equal(await conn.next(), text);
      for (const size of [0, 1, 65_535, 65_536, 3 * 1024 * 1024]) {
        const bytes = pattern(size, size + 1);
        conn.ws.send(bytes);
        const echoed = await conn.next();
        assert.ok(echoed instanceof Uint8Array, `size ${size}: got text`);
        assert.equal(echoed.length, size);
        assert.deepEqual(echoed, bytes, `size ${size}`);
      }
      for (let i = 0; i < 200; i++) conn.ws.send(`m${i}`);
      for (let i = 0; i < 200; i++) assert.equal(await conn.next(), `m${i}`);
      conn.ws.close(1000, "bye");
      assert.deepEqual(await conn.closed, { code: 1000, reason: "bye" });
    });

    test("a socket stays with one worker; handlers see its id, path params, headers and trace id", async () => {
      const conn = await open(`${ws}/ws/echo`);
      conn.ws.send("pid");
      const pid = Number(await conn.next());
      // The pool's status counts it with its worker, until it closes.
      const sockets = async () =>
        ((await getJson(`${app.url}/sync/status`)).body.pools[0].workers as { pid: number; sockets: number }[])
          .find((w) => w.pid === pid)!.sockets;
      const counted = await sockets();
      assert.ok(counted >= 1);
      for (let i = 0; i < 20; i++) {
        conn.ws.send("pid");
        assert.equal(Number(await conn.next()), pid);
      }
      conn.ws.close();
      await conn.closed;
      assert.ok(await eventually(async () => (await sockets()) === counted - 1, 5000));
      const info = await open(`${ws}/ws/info/alice%20b`);
      const seen = await info.json();
      assert.deepEqual(seen.params, { name: "alice b" });
      assert.equal(seen.path, "/ws/info/alice b");
      assert.equal(typeof seen.id, "number");
      assert.match(String(seen.traceId), /^[\w-]{8,}$/);
      assert.equal(seen.version, "13");
      assert.equal(seen.same, true, "onOpen gets the handshake's request");
      info.ws.close();
    });

    test("a message published in worker A reaches clients on worker B, in the publisher's order", async () => {
      const { conns, pids } = await onTwoWorkers(ws, "/ws/room/r1");
      const a = conns[pids.indexOf(pids[0])];
      const b = conns[pids.lastIndexOf(pids.find((p) => p !== pids[0])!)];
      a.ws.send("from A");
      for (const conn of conns) assert.equal(await conn.next(), "from A");
      a.ws.send("burst:300");
      for (const conn of conns) for (let i = 0; i < 300; i++) assert.equal(await conn.next(), `${pids[0]}:${i}`);
      // A binary message goes to every member as binary.
      b.ws.send(new Uint8Array([0, 255, 1]));
      for (const conn of conns) assert.deepEqual(await conn.next(), new Uint8Array([0, 255, 1]));
      // One that left hears no more; the others do.
      a.ws.send("leave");
      assert.equal(await a.next(), "left");
      b.ws.send("after leave");
      assert.equal(await b.next(), "after leave");
      await assert.rejects(a.next(300), /no message/);
      for (const conn of conns) conn.ws.close();
      // Closed sockets are gone from the topic: a new member gets messages alone.
      await Promise.all(conns.map((c) => c.closed));
      const c = await open(`${ws}/ws/room/r1`);
      await c.json();
      c.ws.send("alone");
      assert.equal(await c.next(), "alone");
      c.ws.close();
    });

    test("publish from the dispatcher and from a Hono app pool reaches Worker-pool sockets", async () => {
      const member = await open(`${ws}/ws/room/lobby`);
      await member.json();
      const res = await fetch(`${app.url}/publish/room:lobby`, { method: "POST", body: "from the dispatcher" });
      assert.equal(res.status, 200);
      assert.equal(await member.next(), "from the dispatcher");
      const hono = await open(`${ws}/hono/room/lobby`);
      assert.deepEqual((await hono.json()).joined, "room:lobby");
      hono.ws.send("from hono");
      assert.equal(await member.next(), "from hono");
      assert.equal(await hono.next(), "from hono");
      member.ws.send("from the worker pool");
      assert.equal(await hono.next(), "from the worker pool");
      member.ws.close();
      hono.ws.close();
    });

    test("a Hono app's upgradeWebSocket routes run in workers, with Hono's WSContext around the socket", async () => {
      const conn = await open(`${ws}/hono/echo?q=x`);
      const hello = await conn.json();
      assert.equal(hello.raw, true);
      assert.equal(hello.query, "x");
      conn.ws.send("text");
      assert.equal(await conn.next(), "text");
      const bytes = pattern(200_000, 9);
      conn.ws.send(bytes);
      assert.deepEqual(await conn.next(), bytes);
      conn.ws.close();
      const plain = await getJson(`${app.url}/hono/plain`);
      assert.deepEqual(plain.body, { plain: true });
    });

    test("handshakes: doCheck refuses, a refusing route answers, no route is 404, plain HTTP to a socket route is 426", async () => {
      const port = app.port;
      const ok = await rawHandshake(port, "/ws/echo");
      assert.equal(ok.status, 101);
      assert.match(ok.head, /sec-websocket-accept:/i);
      await closeRaw(ok);
      const checks: [string, number][] = [
        ["/ws/echo?token=bad", 401],
        ["/ws/refuse", 403],
        ["/ws/nothing-here", 404],
        ["/nowhere", 404],
        ["/ws/pid", 200],
        ["/hono/plain", 200],
        ["/hono/missing", 404],
      ];
      for (const [path, status] of checks) {
        const refused = await rawHandshake(port, path);
        assert.equal(refused.status, status, path);
        refused.socket.destroy();
      }
      const plain = await getJson(`${app.url}/ws/echo`);
      assert.equal(plain.status, 426);
      assert.equal(plain.headers.get("upgrade"), "websocket");
      await assert.rejects(open(`${ws}/ws/refuse`), /closed before it opened/);
    });

    test("the path is the request line's: a Host that is no host[:port] is 400, for an upgrade as for a plain request", async () => {
      // Before, `Host: x/ws/refuse?` made the upgrade's URL http://x/ws/refuse?/ws/info/a: the /ws/refuse route ran.
      for (const host of ["x/ws/refuse?", "x/ws/refuse#", "x@y/ws/refuse"]) {
        const bad = await rawHandshake(app.port, "/ws/info/a", { Host: host });
        assert.equal(bad.status, 400, host);
        bad.socket.destroy();
        const plain = await rawRequest(app.port, `GET /ws/pid HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
        assert.match(plain, /^HTTP\/1\.1 400 /, host);
      }
      const other = await rawHandshake(app.port, "/ws/info/a", { Host: "example.com:8080" });
      assert.equal(other.status, 101);
      await closeRaw(other);
    });

    test("origins: a page elsewhere gets 403 at the handshake; the site's own origin, a listed one and non-browsers pass", async () => {
      const host = `127.0.0.1:${app.port}`;
      const refused = await rawHandshake(app.port, "/ws/echo", { Host: host, Origin: "https://evil.example" });
      assert.equal(refused.status, 403);
      refused.socket.destroy();
      const sameHostOtherPort = await rawHandshake(app.port, "/ws/echo", { Host: host, Origin: "http://127.0.0.1:1" });
      assert.equal(sameHostOtherPort.status, 403);
      sameHostOtherPort.socket.destroy();
      for (const origin of [`http://${host}`, "https://allowed.example"]) {
        const ok = await rawHandshake(app.port, "/ws/echo", { Host: host, Origin: origin });
        assert.equal(ok.status, 101, origin);
        await closeRaw(ok);
      }
      const noOrigin = await rawHandshake(app.port, "/ws/echo");
      assert.equal(noOrigin.status, 101);
      await closeRaw(noOrigin);
    });

    test("a handler that throws closes its socket with 1011; the worker closes with its code; sending after close throws", async () => {
      const failing = await open(`${ws}/ws/fail`);
      failing.ws.send("x");
      assert.equal((await failing.closed).code, 1011);
      await app.waitStderr(/WebSocket onMessage\(\) for \/ws\/fail failed: .*handler failed on purpose/);
      assert.doesNotMatch(app.stderr(), /^\s+at /m, "no stack in a client's answer, and none here");

      const closing = await open(`${ws}/ws/close`);
      closing.ws.send("close:done here");
      assert.deepEqual(await closing.closed, { code: 4000, reason: "done here" });

      const leaving = await open(`${ws}/ws/close`);
      leaving.ws.send("later");
      leaving.ws.close(1000);
      await leaving.closed;
      await app.waitStderr(/send after close caught: WebSocket \d+ is closed/);
      const pids = (await getJson(`${app.url}/ws/pid`)).status;
      assert.equal(pids, 200, "the worker lives on");
    });

    test("a message over wsMaxMessageSize closes the socket with 1009", async () => {
      const conn = await open(`${ws}/ws/echo`);
      conn.ws.send(new Uint8Array(4 * 1024 * 1024 + 1));
      assert.equal((await conn.closed).code, 1009);
      const fine = await open(`${ws}/ws/echo`);
      fine.ws.send("still here");
      assert.equal(await fine.next(), "still here");
      fine.ws.close();
    });
  });
}

for (const httpServer of HTTP_SERVERS) {
  describe(`websocket supervision (${runtime.name}, ${httpServer} server)`, () => {
    /** A dispatcher that holds at most 4 MiB for a socket, and cuts idle connections soon. */
    const bounded = () =>
      startApp("ws.ts", { HTTP_SERVER: httpServer, WS_MAX_BUFFERED: String(4 * 1024 * 1024), WS_IDLE: "2000" });

    test("a worker killed with open sockets closes them with 1011; the other worker's stay; it is replaced", async () => {
      const app = await startApp("ws.ts", { HTTP_SERVER: httpServer });
      const ws = app.url.replace("http:", "ws:");
      try {
        const { conns, pids } = await onTwoWorkers(ws, "/ws/hello");
        const victim = pids[0];
        process.kill(victim, "SIGKILL");
        for (let i = 0; i < conns.length; i++) {
          if (pids[i] !== victim) continue;
          assert.equal((await conns[i].closed).code, 1011);
        }
        const survivor = conns[pids.findIndex((p) => p !== victim)];
        survivor.ws.send("still served");
        assert.equal(await survivor.next(), "still served");
        // The slot is filled again: sockets reach two live workers, neither the victim.
        const replaced = await eventually(async () => {
          const again = await onTwoWorkers(ws, "/ws/hello").catch(() => null);
          for (const c of again?.conns ?? []) c.ws.close();
          return again !== null && !again.pids.includes(victim);
        }, 15_000);
        assert.ok(replaced, "the killed worker's slot serves sockets again");
        survivor.ws.close();
      } finally {
        await app.stop();
      }
    });

    test("a reload keeps old sockets working until wsDrainTimeout, then closes them with 1012; new ones reach new workers", async () => {
      const app = await startApp("ws.ts", { HTTP_SERVER: httpServer, WS_DRAIN: "1500" });
      const ws = app.url.replace("http:", "ws:");
      try {
        const { conns, pids } = await onTwoWorkers(ws, "/ws/hello");
        const old = new Set(pids);
        const started = Date.now();
        process.kill(app.pid, "SIGHUP");
        await app.waitStderr(/Reload done/, 20_000);
        // Old sockets still answer, from their old workers.
        for (const c of conns) {
          c.ws.send("pid");
          assert.ok(old.has(Number(await c.next())));
        }
        const fresh = await open(`${ws}/ws/hello`);
        assert.ok(!old.has(((await fresh.json()) as { pid: number }).pid), "a new socket goes to a new worker");
        for (const c of conns) assert.equal((await c.closed).code, 1012);
        assert.ok(Date.now() - started >= 1400, `closed after ${Date.now() - started} ms`);
        fresh.ws.send("pid");
        assert.ok(!old.has(Number(await fresh.next())));
        fresh.ws.close();
        // Old workers exit once their sockets are closed.
        assert.ok(await eventually(() => [...old].every((pid) => !alive(pid)), 10_000));
      } finally {
        await app.stop();
      }
    });

    test("graceful shutdown closes sockets with 1001 and exits 0", async () => {
      const app = await startApp("ws.ts", { HTTP_SERVER: httpServer });
      const ws = app.url.replace("http:", "ws:");
      const a = await open(`${ws}/ws/echo`);
      const b = await open(`${ws}/hono/echo`);
      await b.next();
      const started = Date.now();
      const exited = app.stop();
      assert.equal((await a.closed).code, 1001);
      assert.equal((await b.closed).code, 1001);
      assert.equal((await exited).code, 0);
      assert.ok(Date.now() - started < 8000, `shutdown took ${Date.now() - started} ms`);
    });

    test("an idle client that answers pings stays; one that never answers is cut after wsIdleTimeout", async () => {
      const app = await startApp("ws.ts", { HTTP_SERVER: httpServer, WS_IDLE: "1000" });
      try {
        const raw = await rawHandshake(app.port, "/ws/echo");
        assert.equal(raw.status, 101);
        const cut = new Promise<number>((resolve) => raw.socket.on("close", () => resolve(Date.now())));
        // It reads what comes (pings among it) and answers nothing.
        raw.socket.on("error", () => {});
        raw.socket.resume();
        const started = Date.now();
        const polite = await open(`${app.url.replace("http:", "ws:")}/ws/echo`);
        const at = await cut;
        // Bun counts idle time in steps of 4 s: a ping after about 4 s, the cut about 4 s later.
        assert.ok(at - started < 12_000, `cut after ${at - started} ms`);
        await new Promise((r) => setTimeout(r, Math.max(0, 3000 - (Date.now() - started))));
        polite.ws.send("still open");
        assert.equal(await polite.next(), "still open");
        polite.ws.close();
      } finally {
        await app.stop();
      }
    });

    test("a client that does not read is closed with 1008 at wsMaxBuffered; the dispatcher's memory stays bounded", async () => {
      // A short wsIdleTimeout: the connection is cut at the end, and Deno keeps its process up to half of it after.
      const app = await bounded();
      try {
        const before = rssMiB(app.pid);
        const raw = await rawHandshake(app.port, "/ws/flood");
        assert.equal(raw.status, 101);
        raw.socket.write(textFrame("flood"));
        // The worker would send 1000 MiB; the dispatcher closes the socket instead of holding it.
        await app.waitStderr(/flood socket closed with 1008 Client too slow/, 30_000);
        await app.waitStderr(/flood stopped after \d+ messages/, 30_000);
        const grown = rssMiB(app.pid) - before;
        assert.ok(grown < 200, `dispatcher grew by ${grown.toFixed(0)} MiB`);
        raw.socket.destroy();
        const fine = await open(`${app.url.replace("http:", "ws:")}/ws/echo`);
        fine.ws.send("ok");
        assert.equal(await fine.next(), "ok");
        fine.ws.close();
      } finally {
        await app.stop();
      }
    });

    test("a client sending faster than its worker reads is closed with 1013 before the channel holds wsMaxBuffered", async () => {
      const app = await bounded();
      try {
        const before = rssMiB(app.pid);
        const conn = await open(`${app.url.replace("http:", "ws:")}/ws/busy`);
        const message = new Uint8Array(16 * 1024);
        // 640 × 16 KiB: 10 MiB, which the worker would take 13 s to read.
        for (let i = 0; i < 640; i++) conn.ws.send(message);
        await app.waitStderr(/busy socket closed with 1013/, 20_000);
        // The client learns it when its close handshake can finish, behind what it still had queued to send; the
        // dispatcher's side is done already.
        assert.ok(rssMiB(app.pid) - before < 200);
        assert.equal((await getJson(`${app.url}/ws/pid`)).status, 200);
      } finally {
        await app.stop();
      }
    });
  });
}
