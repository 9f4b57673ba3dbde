// The dispatcher on its runtime's own server (httpServer "native": Deno.serve, Bun.serve; on Node node:http as
// always): the request paths that differ from the node:http server, end to end. The WebSocket suite, the adapter's
// contract, shutdown with slow clients and running out of descriptors run on both servers themselves.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { type App, pipelined, runtime, startApp } from "./helpers.ts";

describe(`the native HTTP server (${runtime.name})`, () => {
  let app: App;
  before(async () => {
    app = await startApp("app.ts", { HTTP_SERVER: "native", SHUTDOWN_TIMEOUT: "1000" });
  });
  after(async () => {
    await app?.stop();
  });

  test("serves worker routes, @sync routes and static files, each answer with its X-Request-ID", async () => {
    for (
      const [path, status, body] of [
        ["/names/query?x=7", 200, /"x":\["7"\]/],
        ["/sync/health", 200, /ok/],
        ["/static/data.json", 200, /\{/],
        ["/nowhere", 404, /Not found/],
      ] as const
    ) {
      const res = await fetch(`${app.url}${path}`);
      assert.equal(res.status, status, path);
      assert.match(await res.text(), body, path);
      assert.match(res.headers.get("x-request-id") ?? "", /^[0-9a-f-]{20,}$/, path);
    }
  });

  test("a 1 MiB body crosses both ways byte-exact; a Content-Length over maxBodySize is 413", async () => {
    const body = new Uint8Array(1024 * 1024 - 1).map((_, i) => (i * 7 + 3) & 255);
    const res = await fetch(`${app.url}/api/raw`, { method: "POST", body });
    assert.equal(res.status, 200);
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(body));
    const over = await fetch(`${app.url}/api/raw`, { method: "POST", body: new Uint8Array(1024 * 1024 + 1) });
    assert.equal(over.status, 413);
    await over.body?.cancel();
  });

  test("streamed answers and Server-Sent Events arrive as sent", async () => {
    assert.equal(await (await fetch(`${app.url}/api/stream`)).text(), "chunk0\nchunk1\nchunk2\n");
    const sse = await fetch(`${app.url}/api/sse`);
    assert.equal(sse.headers.get("content-type"), "text/event-stream");
    assert.match(await sse.text(), /event: greeting\nid: 1\ndata: \{"hello":"world"\}\n\n[^]*data: two\ndata: lines/);
  });

  test("a crashing handler is 500 without its stack", async () => {
    const res = await fetch(`${app.url}/api/throw`);
    assert.equal(res.status, 500);
    assert.doesNotMatch(await res.text(), /at .*\.ts/);
  });

  test("pipelined requests are answered in order on Deno.serve", async () => {
    if (runtime.name === "bun") return; // Bun.serve fails them: tests/hostile.test.ts compares it with Bun's own
    const paths = Array.from({ length: 10 }, (_, i) => `/names/query?x=${i}`);
    assert.deepEqual(await pipelined(app.port, paths), paths.map((_, i) => String(i)));
  });
});
