// The dispatcher's log output never holds its event loop: lines wait in a bounded buffer written off the loop, and a
// reader that stops reading (an unread pipe) costs lines, counted and reported once it reads again, not requests.
// Log files take their lines as the reader would, and are reopened on SIGUSR1 (logrotate).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import {
  closeSync,
  constants,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
} from "node:fs";
import { execFileSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { eventually, fixture, runtime, sleep, start, startApp } from "./helpers.ts";
import { logLinesDropped, LogOutput } from "../src/logging/log_output.ts";

describe(`log output that never blocks (${runtime.name})`, () => {
  test("a full buffer drops lines and counts them; once writing goes again, the count is told once", async () => {
    let release!: () => void;
    const writes: string[] = [];
    let stuck = true;
    const told: number[] = [];
    const output = new LogOutput(
      () => ({
        write: async (data) => {
          if (stuck) await new Promise<void>((resolve) => (release = resolve));
          writes.push(data);
        },
        close: () => {},
      }),
      (n) => told.push(n),
      100,
    );
    const before = logLinesDropped();
    output.write("first\n");
    for (let i = 0; i < 50; i++) output.write(`line ${i}\n`);
    assert.ok(logLinesDropped() - before > 30, "lines beyond the 100 bytes held were dropped");
    assert.equal(output.idle, false);
    stuck = false;
    release();
    assert.ok(await eventually(() => output.idle, 2000));
    assert.equal(writes[0], "first\n");
    assert.equal(told.length, 1);
    assert.equal(told[0], logLinesDropped() - before);
  });

  test("a dispatcher whose stderr is a pipe nobody reads keeps answering; read again, it says what it dropped", async () => {
    const dir = mkdtempSync(join(tmpdir(), "forkyard-unread-"));
    const fifo = join(dir, "stderr");
    execFileSync("mkfifo", [fifo]);
    const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    const writer = openSync(fifo, constants.O_WRONLY);
    const cmd = runtime.selfCommand(fixture("app.ts"));
    const child = spawn(cmd[0], cmd.slice(1), {
      env: { ...process.env, PORT: "0", ACCESS_LOG: "combined", ADMIN: "127.0.0.1:0", NO_COLOR: "1" },
      stdio: ["ignore", "pipe", writer],
    });
    closeSync(writer);
    let out = "";
    child.stdout!.on("data", (chunk) => (out += chunk));
    try {
      assert.ok(await eventually(() => out.includes("\n"), 20_000), "the dispatcher did not start");
      const { port, admin } = JSON.parse(out.split("\n")[0]);
      const url = `http://127.0.0.1:${port}/sync/health`;
      // 8 clients for 10 s; what each second answered.
      const perSecond: number[] = Array(10).fill(0);
      const t0 = Date.now();
      await Promise.all(Array.from({ length: 8 }, async () => {
        while (Date.now() - t0 < 10_000) {
          // A dispatcher held by its log would hold the request: given up after a second.
          const status = await fetch(url, { signal: AbortSignal.timeout(1000) })
            .then(async (res) => (await res.arrayBuffer(), res.status)).catch(() => 0);
          const second = Math.floor((Date.now() - t0) / 1000);
          if (status === 200 && second < 10) perSecond[second]++;
        }
      }));
      const first = perSecond[0];
      const later = perSecond.slice(5).reduce((a, b) => a + b, 0) / 5;
      console.log(`[${runtime.name}] stderr unread: answered per second ${perSecond.join(" ")}`);
      // Written synchronously, the dispatcher stopped for good once the pipe's 64 KiB were full.
      assert.ok(first > 50, `only ${first} answers in the first second`);
      assert.ok(later >= first * 0.25, `${later} answers per second at the end against ${first} at first`);
      const metrics = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
      const dropped = Number(/^forkyard_log_dropped_total (\d+)$/m.exec(metrics)?.[1]);
      assert.ok(dropped > 0, `forkyard_log_dropped_total ${dropped}`);
      // The pipe is read again: the lines come, and one warning with the count among them.
      let err = "";
      const buf = new Uint8Array(65536);
      const found = await eventually(async () => {
        for (;;) {
          let n = 0;
          try {
            n = readSync(reader, buf);
          } catch {
            break; // EAGAIN: nothing more for now
          }
          if (n === 0) break;
          err += new TextDecoder().decode(buf.subarray(0, n));
        }
        await fetch(url).then((r) => r.arrayBuffer());
        return /Dropped \d+ log lines while stderr was not taking them/.test(err);
      }, 20_000);
      assert.ok(found, err.slice(-2000));
      const told = Number(/Dropped (\d+) log lines/.exec(err)![1]);
      assert.ok(told > 0 && told <= dropped + 1000, `told ${told}, counted ${dropped}`);
    } finally {
      child.kill("SIGTERM");
      // Drain what is left, so that its last writes can finish and it can exit.
      const buf = new Uint8Array(65536);
      const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
      let code: number | null | undefined;
      void exited.then((c) => (code = c));
      for (let i = 0; i < 500 && code === undefined; i++) {
        try {
          while (readSync(reader, buf) > 0) { /* drained */ }
        } catch {
          // EAGAIN
        }
        await sleep(10);
      }
      closeSync(reader);
      rmSync(dir, { recursive: true, force: true });
      // Deno's node:child_process reports a child that exits 0 after SIGTERM as ended by the signal.
      const exit = await exited;
      assert.ok(exit === 0 || (runtime.name === "deno" && exit === null), `exit ${exit}`);
    }
  });

  test("a log file that cannot be opened fails the start, naming the option", async () => {
    const proc = start(fixture("app.ts"), [], { PORT: "0", LOG_FILE: "/nonexistent-dir/forkyard.log" });
    const status = await proc.exited;
    assert.notEqual(status.code, 0);
    assert.match(proc.stderr(), /Cannot open \/nonexistent-dir\/forkyard\.log \(option "logFile" or --log-file\): /);
  });

  test("log files: lines with their time, the access log bare in its own file, both reopened on SIGUSR1", async () => {
    const dir = mkdtempSync(join(tmpdir(), "forkyard-logfile-"));
    const logFile = join(dir, "forkyard.log");
    const accessFile = join(dir, "access.log");
    const app = await startApp("app.ts", { ACCESS_LOG: "combined", LOG_FILE: logFile, ACCESS_LOG_FILE: accessFile });
    try {
      assert.equal((await fetch(`${app.url}/sync/health`)).status, 200);
      assert.ok(
        await eventually(
          () => existsSync(accessFile) && readFileSync(accessFile, "utf8").includes("/sync/health"),
          5000,
        ),
      );
      assert.match(
        readFileSync(accessFile, "utf8"),
        /^127\.0\.0\.1 - - \[[^\]]+\] "GET \/sync\/health HTTP\/1\.1" 200 /,
      );
      // A worker's records reach the dispatcher's log: in the file, each with its time.
      assert.equal((await fetch(`${app.url}/api/log`)).status, 200);
      const placeholder = /^\d{4}-\d\d-\d\dT[\d:.]+Z WRN forkyard\.worker\.main \[[^\]]+\]: placeholder 42$/m;
      assert.ok(
        await eventually(() => placeholder.test(readFileSync(logFile, "utf8")), 5000),
        readFileSync(logFile, "utf8"),
      );
      assert.doesNotMatch(readFileSync(logFile, "utf8"), /sync\/health/);
      assert.doesNotMatch(app.stderr(), /placeholder|sync\/health/);
      // logrotate: the files move, SIGUSR1, new files.
      renameSync(logFile, `${logFile}.1`);
      renameSync(accessFile, `${accessFile}.1`);
      process.kill(app.pid, "SIGUSR1");
      assert.ok(
        await eventually(async () => {
          await fetch(`${app.url}/sync/hello/rotated`).then((r) => r.arrayBuffer());
          return existsSync(accessFile) && readFileSync(accessFile, "utf8").includes("/sync/hello/rotated");
        }, 5000),
      );
      // What was written before stays in the moved file; the new one starts after the signal (handled on the event
      // loop: a request or two may still land in the old one).
      assert.match(readFileSync(`${accessFile}.1`, "utf8"), /\/sync\/health/);
      assert.doesNotMatch(readFileSync(accessFile, "utf8"), /\/sync\/health|\/api\/log/);
    } finally {
      await app.stop();
      assert.match(readFileSync(logFile, "utf8"), /Shutting down/);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
