// Hostile clients: what a request may not reach and may not hold. A real dispatcher with real worker processes.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type App, runtime, startApp } from "./helpers.ts";

describe(`hostile clients (${runtime.name})`, () => {
  let app: App;
  let dir: string;
  before(async () => {
    // A static directory holding links to a file and a directory outside it, and one to a file inside it.
    dir = mkdtempSync(join(tmpdir(), "forkyard-static-"));
    const root = join(dir, "public");
    const outside = join(dir, "private");
    mkdirSync(root);
    mkdirSync(outside);
    writeFileSync(join(root, "page.txt"), "public page\n");
    writeFileSync(join(outside, "secret.txt"), "secret\n");
    symlinkSync(join(outside, "secret.txt"), join(root, "secret-link.txt"));
    symlinkSync(outside, join(root, "private-dir"));
    symlinkSync(join(root, "page.txt"), join(root, "page-link.txt"));
    symlinkSync("/etc/passwd", join(root, "passwd"));
    app = await startApp("app.ts", { STATIC_DIR: root });
  });
  after(async () => {
    await app?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("static files never follow a symbolic link out of their directory", async () => {
    for (const path of ["secret-link.txt", "private-dir/secret.txt", "passwd"]) {
      const res = await fetch(`${app.url}/static/${path}`);
      const body = await res.text();
      assert.equal(res.status, 404, `${path}: ${body}`);
      assert.ok(!body.includes("secret") && !body.includes("root:"), `${path} leaked: ${body}`);
    }
    const inside = await fetch(`${app.url}/static/page-link.txt`);
    assert.equal(inside.status, 200);
    assert.equal(await inside.text(), "public page\n");
    assert.equal(await (await fetch(`${app.url}/static/page.txt`)).text(), "public page\n");
  });

  test("a Content-Length over maxBodySize is 413 at once, before any body arrives; Node and Bun then close", async () => {
    const socket = connect(app.port, "127.0.0.1");
    let received = "";
    let answered!: () => void;
    const answer = new Promise<void>((resolve) => (answered = resolve));
    const closed = new Promise<void>((resolve) => socket.on("close", () => resolve()));
    socket.on("data", (chunk) => {
      received += chunk.toString("latin1");
      if (received.includes("Payload too large")) answered();
    });
    // 100 MB announced, 3 bytes sent, and the client waits: only an answer from the headers can arrive.
    socket.write(
      "POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n" +
        "Content-Length: 104857600\r\n\r\nabc",
    );
    await answer;
    assert.match(received, /^HTTP\/1\.1 413 /);
    assert.match(received, /connection: close/i);
    // Deno's server keeps the connection until the announced body has come (a known gap, see README).
    if (runtime.name !== "deno") await closed;
    socket.destroy();
  });
});
