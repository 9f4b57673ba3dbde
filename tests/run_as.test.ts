// --user and --group: started as root, the server drops to that user once its sockets are open, and its workers run as
// that user, with that user's groups alone (root's group 0 gone).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  chmodSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { fixture, runtime, spillsOf, start } from "./helpers.ts";
import { idsOf } from "./fixtures/whoami_app.ts";

const CLI = fileURLToPath(new URL("../cli.ts", import.meta.url));
const NOBODY = 65534;
const root = process.getuid?.() === 0;

/** GET `path` over the Unix socket at `socketPath`: status and body. */
function getOverSocket(socketPath: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe(`--user and --group (${runtime.name})`, () => {
  test("as root: the dispatcher and its workers become nobody:nogroup once listening, without root's groups", async (t) => {
    if (!root) return t.skip("needs root");
    const proc = start(CLI, [
      "serve",
      fixture("whoami_app.ts"),
      "--user",
      "nobody",
      "--group",
      "nogroup",
      "--workers",
      "2",
      "--port",
      "0",
      "--host",
      "127.0.0.1",
      "--no-control",
    ]);
    try {
      const line = await proc.waitStderr(/Listening on http:\/\/127\.0\.0\.1:\d+/);
      assert.match(proc.stderr(), /Running as uid 65534, gid 65534/);
      const url = /http:\/\/127\.0\.0\.1:\d+/.exec(line)![0];
      const worker = await (await fetch(`${url}/`)).json();
      assert.notEqual(worker.pid, proc.pid);
      assert.deepEqual({ uid: worker.uid, gid: worker.gid, groups: worker.groups }, {
        uid: NOBODY,
        gid: NOBODY,
        groups: [NOBODY],
      });
      assert.deepEqual(idsOf(proc.pid), { uid: NOBODY, gid: NOBODY, groups: [NOBODY] });
      // Bodies over the spill threshold cross through the dispatcher's spill directory, which is the user's now.
      const posted = await fetch(`${url}/`, { method: "POST", body: new Uint8Array(512 * 1024).fill(1) });
      assert.equal(posted.status, 200, proc.stderr());
      assert.equal((await posted.json()).bytes, 512 * 1024);
      const big = await fetch(`${url}/?big=${1024 * 1024}`);
      assert.equal(big.status, 200, proc.stderr());
      assert.equal((await big.arrayBuffer()).byteLength, 1024 * 1024);
      const [spill] = spillsOf(proc.pid);
      assert.equal(statSync(`/dev/shm/${spill}`).uid, NOBODY);
      assert.ok(readdirSync(`/dev/shm/${spill}`).length > 0, "no body went through the spill directory");
    } finally {
      proc.child.kill("SIGTERM");
    }
    assert.equal((await proc.exited).code, 0, proc.stderr());
    assert.deepEqual(spillsOf(proc.pid), [], "the spill directory outlived the server");
  });

  test("as root: the Unix socket and the log file are handed to the user; requests cross the socket", async (t) => {
    if (!root) return t.skip("needs root");
    const dir = mkdtempSync(join(tmpdir(), "forkyard-runas-"));
    chmodSync(dir, 0o755);
    const socket = join(dir, "app.sock");
    const logFile = join(dir, "app.log");
    const proc = start(CLI, [
      "serve",
      fixture("whoami_app.ts"),
      "--user",
      "nobody",
      "--bind",
      `unix:${socket}`,
      "--log-file",
      logFile,
      "--no-control",
    ]);
    try {
      let answer: { status: number; body: string } | null = null;
      for (let i = 0; i < 200 && answer === null; i++) {
        answer = await getOverSocket(socket, "/").catch(() => null);
        if (answer === null) await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(answer?.status, 200, proc.stderr());
      assert.equal(JSON.parse(answer!.body).uid, NOBODY);
      for (const path of [socket, logFile]) {
        const { uid, gid } = statSync(path);
        assert.deepEqual({ uid, gid }, { uid: NOBODY, gid: NOBODY }, path);
      }
    } finally {
      proc.child.kill("SIGTERM");
      // The socket's folder is root's: the server, nobody now, leaves the socket there and exits all the same.
      assert.equal((await proc.exited).code, 0, proc.stderr());
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("as root: a log path that is a link is refused, its target left root's (no planted link hands /etc/shadow over)", async (t) => {
    if (!root) return t.skip("needs root");
    const dir = mkdtempSync(join(tmpdir(), "forkyard-runas-"));
    chmodSync(dir, 0o755);
    const victim = join(dir, "victim");
    writeFileSync(victim, "");
    symlinkSync(victim, join(dir, "app.log"));
    try {
      const proc = start(CLI, [
        "serve",
        fixture("whoami_app.ts"),
        "--user",
        "nobody",
        "--port",
        "0",
        "--log-file",
        join(dir, "app.log"),
        "--no-control",
      ]);
      assert.equal((await proc.exited).code, 1);
      assert.match(readFileSync(victim, "utf8"), /Cannot run as user nobody.*app\.log is a symbolic link/);
      const { uid, gid } = statSync(victim);
      assert.deepEqual({ uid, gid }, { uid: 0, gid: 0 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("an unknown user or group is refused before anything starts, naming the option", async () => {
    for (const [flag, name] of [["--user", "no-such-user-x"], ["--group", "no-such-group-x"]]) {
      const proc = start(CLI, ["serve", fixture("whoami_app.ts"), flag, name, "--port", "0"]);
      assert.equal((await proc.exited).code, 2, proc.stderr());
      assert.match(proc.stderr(), new RegExp(`"${flag.slice(2)}": no ${flag.slice(2)} named "${name}"`));
    }
  });
});
