// WebSockets on remote pools: the dispatcher holds the socket, its frames cross NATS to the worker host whose worker
// accepted it; topics span local and remote workers; a host that dies closes its sockets with 1011.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { runtime } from "./helpers.ts";
import { startDispatcher, startHost } from "./remote_hosts.ts";
import { startNats } from "./nats_server.ts";
import { type Conn, open } from "./ws_client.ts";

/** The next message on `conn` that `match` accepts, skipping others; rejects after `ms`. */
async function nextMatching(conn: Conn, match: (m: string) => boolean, ms = 5000): Promise<string> {
  const end = Date.now() + ms;
  for (;;) {
    const m = String(await conn.next(Math.max(1, end - Date.now())));
    if (match(m)) return m;
  }
}

describe(`WebSockets on remote pools (${runtime.name})`, () => {
  test("echo through a worker host; a room spans local and remote workers; a host's death closes its sockets with 1011", async () => {
    const nats = await startNats();
    const host = await startHost(nats.url, "host-ws");
    const app = await startDispatcher(nats.url, { LOCAL_ROOM: "1", WS_APP: "1" });
    const appHost = await startHost(nats.url, "host-ws-app", ["--subject", "forkyard.test.wsapp"], "ws_hono_app.ts");
    const ws = app.url.replace("http:", "ws:");
    try {
      const echo = await open(`${ws}/render/ws/echo`);
      assert.deepEqual(await echo.json(), { host: "host-ws" });
      echo.ws.send("hello over NATS");
      assert.equal(await echo.next(), "hello over NATS");
      echo.ws.send(new Uint8Array([1, 2, 3, 250]));
      assert.deepEqual(await echo.next(), new Uint8Array([1, 2, 3, 250]));

      // Hono's upgradeWebSocket in an app pool on a host, as it would run on its own.
      const hono = await open(`${ws}/wsapp/echo?q=remote`);
      const hello = await hono.json();
      assert.equal(hello.raw, true);
      assert.equal(hello.query, "remote");
      hono.ws.send("through the app");
      assert.equal(await hono.next(), "through the app");
      hono.ws.close();

      // One member on a remote worker, one on a local one: each hears the other.
      const remote = await open(`${ws}/render/ws/room/x`);
      const local = await open(`${ws}/local/room/x`);
      // Subscriptions are made as the sockets open, on their workers: say it until the other side has heard.
      let heard = false;
      const saying = (async () => {
        for (let i = 0; i < 150 && !heard; i++) {
          remote.ws.send(`from remote ${i}`);
          await new Promise((r) => setTimeout(r, 100));
        }
      })();
      const first = await nextMatching(local, (m) => m.startsWith("remote: from remote"), 15_000);
      heard = true;
      await saying;
      assert.match(first, /^remote: from remote \d+$/);
      local.ws.send("from local");
      assert.equal(await nextMatching(remote, (m) => m.startsWith("local:")), "local: from local");

      // The client leaves: the host's worker hears of it, the socket is gone on both sides.
      echo.ws.close(1000, "bye");
      assert.equal((await echo.closed).code, 1000);

      host.child.kill("SIGKILL");
      const closed = await Promise.race([
        remote.closed,
        new Promise<null>((resolve) => setTimeout(() => resolve(null), 10_000)),
      ]);
      assert.deepEqual(closed, { code: 1011, reason: "Worker host lost" });
      // The local member stays.
      local.ws.send("still here");
      assert.equal(await nextMatching(local, (m) => m === "local: still here"), "local: still here");
      local.ws.close();
    } finally {
      assert.equal((await app.stop()).code, 0);
      host.child.kill("SIGKILL");
      appHost.child.kill("SIGTERM");
      await appHost.exited;
      await nats.kill();
    }
  });

  test("a client sending faster than its host's worker takes is closed with 1013, as a local worker's would be", async () => {
    const nats = await startNats();
    const host = await startHost(nats.url, "host-ws-busy");
    const app = await startDispatcher(nats.url, { WS_MAX_BUFFERED: String(4 * 1024 * 1024) });
    try {
      const conn = await open(`${app.url.replace("http:", "ws:")}/render/ws/busy`);
      const message = new Uint8Array(16 * 1024);
      // 640 × 16 KiB: 10 MiB, which the worker would take 13 s to read.
      for (let i = 0; i < 640; i++) conn.ws.send(message);
      await app.waitStderr(/busy socket closed with 1013/, 20_000);
      // Still serving: the host's worker is free again.
      assert.equal((await fetch(`${app.url}/render/who`)).status, 200);
    } finally {
      assert.equal((await app.stop()).code, 0);
      assert.equal((await host.stop()).code, 0);
      await nats.kill();
    }
  });
});
