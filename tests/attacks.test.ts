// The security review's attacks (issue 29), written apart from the project: nothing here imports forkyard or its test
// helpers. Each attack runs against tests/attacks/target.ts, a dispatcher as a user would write one, started with the
// runtime running this file, over raw sockets.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

declare const Deno: { execPath(): string } | undefined;
declare const Bun: unknown;
const runtimeName = typeof Deno !== "undefined" ? "deno" : typeof Bun !== "undefined" ? "bun" : "node";
const target = fileURLToPath(new URL("./attacks/target.ts", import.meta.url));

/** This runtime's command for a script with decorators. */
function command(script: string): string[] {
  if (runtimeName === "deno") return [Deno!.execPath(), "run", "-A", script];
  if (runtimeName === "bun") return [process.execPath, script];
  return [process.execPath, "--import", "tsx", script];
}

/** Writes `request` on a fresh connection; resolves with everything received once the server closes or 3 s pass. */
function raw(port: number, request: string, waitMs = 3000): Promise<{ text: string; closed: boolean; ms: number }> {
  return new Promise((resolve) => {
    const started = performance.now();
    const socket = connect(port, "127.0.0.1");
    let text = "";
    const done = (closed: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ text, closed, ms: performance.now() - started });
    };
    const timer = setTimeout(() => done(false), waitMs);
    socket.on("data", (chunk: Buffer) => (text += chunk.toString("latin1")));
    socket.on("close", () => done(true));
    socket.on("error", () => {});
    socket.write(request);
  });
}

/** Resolves once `check()` holds (`true`) or 3 s passed (`false`). */
async function until(check: () => boolean): Promise<boolean> {
  const end = Date.now() + 3000;
  while (!check()) {
    if (Date.now() > end) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return true;
}

const statusOf = (text: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);

describe(`the security review's attacks (${runtimeName})`, () => {
  let child: ChildProcess;
  let port = 0;
  let admin = 0;
  let output = "";
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "forkyard-attacks-"));
    mkdirSync(join(dir, "public", "sub"), { recursive: true });
    writeFileSync(join(dir, "public", "page.txt"), "public\n");
    writeFileSync(join(dir, "public", ".env"), "SECRET=1\n");
    writeFileSync(join(dir, "secret.txt"), "secret\n");
    symlinkSync(join(dir, "secret.txt"), join(dir, "public", "sub", "index.html"));
    const [cmd, ...args] = command(target);
    child = spawn(cmd, args, { env: { ...process.env, STATIC_DIR: join(dir, "public") } });
    child.stderr!.on("data", (chunk) => (output += chunk));
    const ports = await new Promise<{ port: number; admin: number }>((resolve, reject) => {
      let out = "";
      child.stdout!.on("data", (chunk) => {
        output += chunk;
        out += chunk;
        const line = out.split("\n").find((l) => l.startsWith('{"port"'));
        if (line !== undefined) resolve(JSON.parse(line));
      });
      child.once("exit", () => reject(new Error(`the target exited:\n${output}`)));
    });
    ({ port, admin } = ports);
  });
  after(async () => {
    child.kill("SIGTERM");
    await new Promise((resolve) => child.once("exit", resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  test("1. a large body leaves no spill file where others could read or plant one", async () => {
    const body = "x".repeat(400 * 1024);
    const res = await fetch(`http://127.0.0.1:${port}/api/echo`, { method: "POST", body });
    assert.equal(res.status, 200);
    for (const name of readdirSync("/dev/shm").filter((n) => n.startsWith(`forkyard-${child.pid}-`))) {
      const stat = statSync(join("/dev/shm", name));
      assert.ok(stat.isDirectory(), `${name} lies open in /dev/shm`);
      assert.equal(stat.mode & 0o777, 0o700, name);
    }
  });

  test("2. a WebSocket upgrade whose Host carries a path reaches no other route: 400", async () => {
    const { text } = await raw(
      port,
      "GET /api/ws HTTP/1.1\r\nHost: x/admin/x?\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    assert.equal(statusOf(text), 400, text);
  });

  test("4. bodies nobody will take are not read: 404 and a refused check answer at once and close", async () => {
    for (const path of ["/nowhere", "/api/private"]) {
      const { text, closed, ms } = await raw(
        port,
        `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n${"x".repeat(1000)}`,
      );
      assert.equal(statusOf(text), path === "/nowhere" ? 404 : 401, text);
      assert.ok(closed && ms < 2500, `${path}: closed ${closed} after ${Math.round(ms)} ms`);
    }
  });

  test("5. static files: no dotfiles, an index file linking out is not served, nosniff", async () => {
    assert.equal((await fetch(`http://127.0.0.1:${port}/static/.env`)).status, 404);
    const sub = await fetch(`http://127.0.0.1:${port}/static/sub/`);
    assert.notEqual(sub.status, 200);
    assert.doesNotMatch(await sub.text(), /secret/);
    const page = await fetch(`http://127.0.0.1:${port}/static/page.txt`);
    assert.equal(page.status, 200);
    assert.equal(page.headers.get("x-content-type-options"), "nosniff");
    await page.text();
  });

  test("6. a worker cannot write lines as the dispatcher's access log", async () => {
    // A worker's LogTape records reach the dispatcher once the worker noticed LogTape in use (within 2 s): ask again.
    for (let i = 0; i < 50 && !output.includes("FORGED"); i++) {
      assert.equal((await fetch(`http://127.0.0.1:${port}/api/forge`)).status, 200);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const forged = output.split("\n").filter((line) => line.includes("FORGED"));
    assert.ok(forged.length > 0, "the worker's record never arrived");
    for (const line of forged) assert.match(line, /forkyard\.worker\.Api\.forkyard\.access/, line);
  });

  test("7. the admin listener answers no foreign Host (DNS rebinding)", async () => {
    const { text } = await raw(admin, "GET /status HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n");
    assert.equal(statusOf(text), 421, text);
    const own = await raw(admin, "GET /status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert.equal(statusOf(own.text), 200);
  });

  test("8. a WebSocket handshake from a page on another site: 403", async () => {
    const { text } = await raw(
      port,
      "GET /api/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: https://evil.example\r\nUpgrade: websocket\r\n" +
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    assert.equal(statusOf(text), 403, text);
  });

  test("10. more header fields than the limit: 431, none dropped silently", async () => {
    const many = Array.from({ length: 150 }, (_, i) => `X-H${i}: ${i}\r\n`).join("");
    const { text } = await raw(port, `GET /api/hello HTTP/1.1\r\nHost: x\r\n${many}Connection: close\r\n\r\n`);
    assert.equal(statusOf(text), 431, text.slice(0, 200));
  });

  test("11. the access log keeps secrets in query strings out", async () => {
    const res = await fetch(`http://127.0.0.1:${port}/api/hello?api_key=K3Y-ATTACK&reset_token=T0K-ATTACK`);
    assert.equal(res.status, 200);
    await res.text();
    const logged = await until(() => output.includes("/api/hello?"));
    assert.ok(logged, "no access line");
    assert.doesNotMatch(output, /K3Y-ATTACK|T0K-ATTACK/);
  });
});
