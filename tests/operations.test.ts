// Operating a running server: the access log, per-pool environment, the command line's flags, PORT and HOST, and
// the start-up banner.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { get as httpGet } from "node:http";
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import process from "node:process";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { eventually, fixture, getJson, runtime, start, startApp } from "./helpers.ts";

/** The access records a dispatcher wrote to stderr as JSON lines. */
/** The JSON access records in a dispatcher's stderr: JSON lines, each a line of its own with nothing before it. */
function accessRecords(stderr: string): Record<string, unknown>[] {
  assert.doesNotMatch(stderr, /forkyard\.access/);
  return stderr.split("\n").filter((line) => line.startsWith("{")).map((line) => JSON.parse(line));
}

/**
 * Parses a Prometheus text exposition, checking its form: every sample's metric has HELP and TYPE lines before it,
 * and every sample line is `name{labels} value`. Returns the samples by `name{labels}`.
 */
function parseMetrics(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  const typed = new Set<string>();
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const comment = /^# (HELP|TYPE) (\w+) (.+)$/.exec(line);
    if (comment) {
      if (comment[1] === "TYPE") {
        assert.match(comment[3], /^(counter|gauge|histogram)$/);
        typed.add(comment[2]);
      }
      continue;
    }
    const sample = /^(\w+)(\{[^}]*\})? (-?[\d.e+]+|\+Inf)$/.exec(line);
    assert.ok(sample, `not a sample line: ${line}`);
    const base = sample[1].replace(/_(bucket|sum|count)$/, "");
    assert.ok(typed.has(sample[1]) || typed.has(base), `no TYPE before ${line}`);
    samples.set(sample[1] + (sample[2] ?? ""), Number(sample[3]));
  }
  return samples;
}

describe(`operations (${runtime.name})`, () => {
  test("access log: one record per answer, the workers' and the dispatcher's own, with pool, worker and bytes", async () => {
    const app = await startApp("app.ts", { ACCESS_LOG: "json" });
    try {
      const ok = await fetch(`${app.url}/plain/ann?x=1`, {
        headers: { "user-agent": "probe/1", "x-request-id": "t-1" },
      });
      const okBody = await ok.text();
      assert.equal((await fetch(`${app.url}/nowhere`)).status, 404);
      assert.equal((await fetch(`${app.url}/static/style.css`)).status, 200);
      const records = await (async () => {
        for (let i = 0; i < 100; i++) {
          const found = accessRecords(app.stderr());
          if (found.length >= 3) return found;
          await new Promise((r) => setTimeout(r, 20));
        }
        return accessRecords(app.stderr());
      })();
      assert.equal(records.length, 3, app.stderr());
      const [worker, missing, file] = records;
      assert.equal(worker.method, "GET");
      assert.equal(worker.url, "/plain/ann?x=1");
      assert.equal(worker.status, 200);
      assert.equal(worker.bytes, new TextEncoder().encode(okBody).length);
      assert.equal(worker.pool, "PlainWorker");
      assert.equal(worker.workerId, 0);
      assert.equal(worker.requestId, "t-1");
      assert.equal(worker.userAgent, "probe/1");
      assert.equal(worker.remoteAddress, "127.0.0.1");
      assert.equal(typeof worker.duration, "number");
      assert.ok((worker.duration as number) >= 0 && (worker.duration as number) < 5000);
      assert.equal(missing.status, 404);
      assert.equal(missing.pool, null);
      assert.equal(missing.workerId, null);
      assert.equal(typeof missing.requestId, "string");
      assert.equal(file.status, 200);
      assert.equal(file.url, "/static/style.css");
    } finally {
      await app.stop();
    }
  });

  test("access log in the combined format, and none when off", async () => {
    const app = await startApp("app.ts", { ACCESS_LOG: "combined" });
    try {
      assert.equal((await fetch(`${app.url}/plain/bob`, { headers: { referer: "http://r/" } })).status, 200);
      const line = await app.waitStderr(/forkyard\.access.*\n/);
      assert.match(
        line,
        /127\.0\.0\.1 - - \[\d\d\/[A-Z][a-z]{2}\/\d{4}:\d\d:\d\d:\d\d \+0000\] "GET \/plain\/bob HTTP\/1\.1" 200 \d+ "http:\/\/r\/" "[^"]*" [\d.]+ms pool=PlainWorker worker=0 id=\S+/,
      );
      // Secrets in the query are not written: the URL's and the Referer's.
      const secret = "/plain/bob?api_key=K1&page=2&reset_token=T2&Password=P3&keyword=visible";
      const referer = "https://site.example/login?code=C4&next=%2Fhome";
      assert.equal((await fetch(`${app.url}${secret}`, { headers: { referer } })).status, 200);
      const redacted = await app.waitStderr(/forkyard\.access.*keyword=visible.*\n/);
      assert.match(
        redacted,
        /"GET \/plain\/bob\?api_key=REDACTED&page=2&reset_token=REDACTED&Password=REDACTED&keyword=visible HTTP\/1\.1"/,
      );
      assert.match(redacted, /"https:\/\/site\.example\/login\?code=REDACTED&next=%2Fhome"/);
      assert.doesNotMatch(app.stderr(), /K1|T2|P3|C4/);
    } finally {
      await app.stop();
    }
    const quiet = await startApp("app.ts");
    try {
      assert.equal((await fetch(`${quiet.url}/plain/bob`)).status, 200);
      assert.equal((await fetch(`${quiet.url}/nowhere`)).status, 404);
    } finally {
      await quiet.stop();
    }
    assert.doesNotMatch(quiet.stderr(), /forkyard\.access/);
  });

  test("access log: an application's own LogTape configuration gets the records under forkyard.access", async () => {
    const app = await startApp("app.ts", { ACCESS_LOG: "combined", APP_LOGTAPE: "1" });
    try {
      assert.equal((await fetch(`${app.url}/plain/eve`)).status, 200);
      const line = await app.waitStderr(/APP-ACCESS .*\n/);
      const record = JSON.parse(line.slice(line.indexOf("{"), line.indexOf("\n")));
      assert.equal(record.url, "/plain/eve");
      assert.equal(record.pool, "PlainWorker");
      assert.equal(record.status, 200);
    } finally {
      await app.stop();
    }
    assert.doesNotMatch(app.stderr(), /<6>forkyard\.access/);
  });

  test("a pool that cannot start a worker stops the start: exit 3, one line naming it, never listening", async () => {
    const setup = start(fixture("faulty.ts"), [], { PORT: "0", RETRY_BOOT: "0" });
    assert.equal((await setup.exited).code, 3, setup.stderr());
    assert.match(
      setup.stderr(),
      /Cannot start pool "BrokenWorker": its workers failed to boot \(Error: database unreachable \(setup failed\)\)/,
    );
    assert.doesNotMatch(setup.stderr() + setup.stdout(), /Listening|"port"/);
    const imported = start(fixture("faulty.ts"), [], { PORT: "0", RETRY_BOOT: "0", BROKEN_IMPORT: "1" });
    assert.equal((await imported.exited).code, 3, imported.stderr());
    assert.match(
      imported.stderr(),
      /Cannot start pool "Never": its workers failed to boot \(Error: DATABASE_URL is not set\)/,
    );
  });

  test("admin listener: only its own Host names (no DNS rebinding), and with a token only with it", async () => {
    const token = "admin-token-0123456789";
    const app = await startApp("app.ts", { ADMIN: "127.0.0.1:0", ADMIN_TOKEN: token });
    try {
      const port = JSON.parse(app.stdout().split("\n")[0]).admin;
      const ask = (path: string, headers: Record<string, string>) =>
        new Promise<number>((resolve, reject) => {
          const req = httpGet({ host: "127.0.0.1", port, path, headers }, (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          });
          req.on("error", reject);
        });
      const bearer = { authorization: `Bearer ${token}` };
      assert.equal(await ask("/metrics", { host: "evil.example:80", ...bearer }), 421, "a rebound name");
      assert.equal(await ask("/metrics", { host: `127.0.0.1:${port}` }), 401, "no token");
      assert.equal(
        await ask("/metrics", { host: `127.0.0.1:${port}`, authorization: "Bearer wrong-token-00000000" }),
        401,
      );
      assert.equal(await ask("/metrics", { host: `localhost:${port}`, ...bearer }), 200);
      assert.equal(await ask("/status", { host: `127.0.0.1:${port}`, ...bearer }), 200);
      assert.equal(await ask(`/?token=${token}`, { host: `127.0.0.1:${port}` }), 200, "the status page, by URL");
      assert.equal(await ask(`/events?token=${token}`, { host: `127.0.0.1:${port}` }), 200);
    } finally {
      await app.stop();
    }
  });

  test("admin listener: /metrics in Prometheus text format, /status, apart from the public port", async () => {
    const app = await startApp("app.ts", { ADMIN: "127.0.0.1:0" });
    try {
      const admin = `http://127.0.0.1:${JSON.parse(app.stdout().split("\n")[0]).admin}`;
      for (let i = 0; i < 5; i++) assert.equal((await fetch(`${app.url}/plain/m${i}`)).status, 200);
      assert.equal((await fetch(`${app.url}/nowhere`)).status, 404);
      assert.equal((await fetch(`${app.url}/metrics`)).status, 404, "not on the public port");
      const res = await fetch(`${admin}/metrics`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
      let metrics = parseMetrics(await res.text());
      assert.equal(metrics.get('forkyard_requests_total{pool="PlainWorker",code="2xx"}'), 5);
      assert.equal(
        metrics.get('forkyard_requests_total{pool="",code="4xx"}'),
        2,
        "/nowhere and /metrics on the public port",
      );
      assert.equal(metrics.get('forkyard_request_duration_seconds_count{pool="PlainWorker"}'), 5);
      assert.equal(metrics.get('forkyard_request_duration_seconds_bucket{pool="PlainWorker",le="+Inf"}'), 5);
      const buckets = [...metrics].filter(([k]) =>
        k.startsWith('forkyard_request_duration_seconds_bucket{pool="PlainWorker"')
      );
      for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i][1] >= buckets[i - 1][1], "cumulative buckets");
      assert.equal(metrics.get('forkyard_pool_workers{pool="main"}'), 2);
      assert.equal(metrics.get('forkyard_worker_up{pool="PlainWorker",worker="0"}'), 1);
      assert.equal(metrics.get('forkyard_pool_degraded{pool="main"}'), 0);
      assert.equal(metrics.get("forkyard_pending_requests"), 0);
      assert.ok((metrics.get("forkyard_uptime_seconds") ?? 0) > 0);
      const status = await (await fetch(`${admin}/status`)).json();
      const plain = status.pools.find((p: { name: string }) => p.name === "PlainWorker");
      const pid = plain.workers[0].pid as number;
      process.kill(pid, "SIGKILL");
      for (let i = 0; i < 200; i++) {
        metrics = parseMetrics(await (await fetch(`${admin}/metrics`)).text());
        if (
          metrics.get('forkyard_worker_up{pool="PlainWorker",worker="0"}') === 1 &&
          metrics.get('forkyard_worker_restarts_total{pool="PlainWorker",worker="0"}') === 1
        ) break;
        await new Promise((r) => setTimeout(r, 25));
      }
      assert.equal(metrics.get('forkyard_worker_restarts_total{pool="PlainWorker",worker="0"}'), 1);
      assert.equal(metrics.get('forkyard_worker_replacements_total{pool="PlainWorker",reason="crash"}'), 1);
      assert.ok((metrics.get('forkyard_worker_rss_bytes{pool="main",worker="0"}') ?? 0) > 1_000_000);
    } finally {
      await app.stop();
    }
  });

  test("forkyard ctl: status table and JSON, scale, reload, stop over the control socket; clear errors", async () => {
    const cli = new URL("../cli.ts", import.meta.url).pathname;
    const dir = mkdtempSync(join(tmpdir(), "forkyard-ctl-"));
    const socket = join(dir, "app.ctl");
    const ctl = async (...args: string[]) => {
      const p = start(cli, ["ctl", "--control", socket, ...args]);
      const status = await p.exited;
      return { code: status.code, out: p.stdout(), err: p.stderr() };
    };
    const none = await ctl("status");
    assert.equal(none.code, 1);
    assert.match(
      none.err,
      /^forkyard: no control socket at .*app\.ctl \(is forkyard serve running there\? see --control\)\n$/,
    );
    const server = start(cli, ["serve", fixture("users_app.ts"), "--control", socket, "--port", "0", "--workers", "2"]);
    try {
      await server.waitStdout(/pool \/: 2 workers/);
      assert.equal(statSync(socket).mode & 0o777, 0o600);
      const table = await ctl("status");
      assert.equal(table.code, 0, table.err);
      assert.match(table.out, /^dispatcher pid \d+, port \d+, 0 pending; \/: 0 queued\n/);
      assert.match(table.out, /POOL +WORKER +PID +STATE +UPTIME +RSS +SERVED +IN FLIGHT +SOCKETS +RESTARTS/);
      assert.equal(table.out.match(/^\/ +\d +\d+ +ready /gm)?.length, 2, table.out);
      const json = JSON.parse((await ctl("status", "--json")).out);
      assert.equal(json.pools[0].workers.length, 2);
      const pids = json.pools[0].workers.map((w: { pid: number }) => w.pid);
      assert.deepEqual(JSON.parse((await ctl("scale", "/", "3")).out), { pool: "/", workers: 3 });
      await server.waitStderr(/forkyard ctl: scaling pool \/ to 3 workers\n/, 5000);
      assert.deepEqual(JSON.parse((await ctl("reload")).out), { replaced: 3 });
      const after = JSON.parse((await ctl("status", "--json")).out);
      assert.equal(after.pools[0].workers.length, 3);
      for (const w of after.pools[0].workers) assert.ok(!pids.includes(w.pid), "every worker was replaced");
      const unknown = await ctl("scale", "nope", "2");
      assert.equal(unknown.code, 1);
      assert.match(unknown.err, /^forkyard: no pool named "nope" \(pools: \/\)\n$/);
      assert.deepEqual(JSON.parse((await ctl("stop")).out), { stopping: true });
      assert.equal((await server.exited).code, 0);
      assert.ok(!existsSync(socket), "the socket is removed on shutdown");
    } finally {
      server.child.kill("SIGKILL");
    }
    const stale = createServer();
    await new Promise<void>((resolve) => stale.listen(socket, resolve));
    await new Promise<void>((resolve) => stale.close(() => resolve()));
    if (!existsSync(socket)) writeFileSync(socket, "");
    const refused = await ctl("status");
    assert.equal(refused.code, 1);
    assert.match(
      refused.err,
      /^forkyard: (the control socket .* refuses connections|cannot reach the control socket|.* is not a socket)/,
    );
    assert.equal((await ctl("frobnicate")).code, 2);
  });

  test("SIGTTIN and SIGTTOU add and remove one worker in every pool, never under one, as gunicorn's do", async () => {
    const cli = new URL("../cli.ts", import.meta.url).pathname;
    const dir = mkdtempSync(join(tmpdir(), "forkyard-ttin-"));
    const socket = join(dir, "app.ctl");
    const workers = async () => {
      const p = start(cli, ["ctl", "--control", socket, "--json", "status"]);
      assert.equal((await p.exited).code, 0, p.stderr());
      return (JSON.parse(p.stdout()).pools[0].workers as { state: string }[]).length;
    };
    const server = start(cli, ["serve", fixture("users_app.ts"), "--control", socket, "--port", "0", "--workers", "2"]);
    try {
      await server.waitStdout(/pool \/: 2 workers/);
      process.kill(server.pid, "SIGTTIN");
      await server.waitStderr(/Scaling pool \/ to 3 workers \(SIGTTIN\)/, 5000);
      assert.equal(await workers(), 3);
      for (const n of [2, 1]) {
        process.kill(server.pid, "SIGTTOU");
        await server.waitStderr(new RegExp(`Scaling pool / to ${n} workers? \\(SIGTTOU\\)`), 5000);
        assert.equal(await workers(), n);
      }
      process.kill(server.pid, "SIGTTOU");
      assert.ok(await eventually(() => (server.stderr().match(/to 1 worker \(SIGTTOU\)/g) ?? []).length === 2, 5000));
      assert.equal(await workers(), 1);
      // The one worker left serves.
      const port = /Listening on http:\/\/[\d.]+:(\d+)/.exec(server.stdout() + server.stderr())![1];
      assert.ok((await fetch(`http://127.0.0.1:${port}/`)).status < 500);
    } finally {
      process.kill(server.pid, "SIGTERM");
      assert.equal((await server.exited).code, 0, server.stderr());
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("--pid-file: written at start, a stale one replaced, a live one refused (exit 2), removed at exit; ctl finds the server by it", async () => {
    const cli = new URL("../cli.ts", import.meta.url).pathname;
    const dir = mkdtempSync(join(tmpdir(), "forkyard-pid-"));
    const pidFile = join(dir, "app.pid");
    writeFileSync(pidFile, "999999999\n"); // stale: no such process
    const serve = [
      "serve",
      fixture("users_app.ts"),
      "--port",
      "0",
      "--workers",
      "1",
      "--pid-file",
      pidFile,
      "--control",
    ];
    const server = start(cli, [...serve, join(dir, "a.ctl")]);
    try {
      await server.waitStdout(/pool \/: 1 worker/);
      assert.equal(readFileSync(pidFile, "utf8"), `${server.pid}\n`);
      const second = start(cli, [...serve, join(dir, "b.ctl")]);
      assert.equal((await second.exited).code, 2);
      assert.equal(
        second.stderr(),
        `forkyard: --pid-file ${pidFile}: process ${server.pid} is running (another server?); stop it, or remove the file\n`,
      );
      const ctl = start(cli, ["ctl", "--pid-file", pidFile, "--json", "status"]);
      assert.equal((await ctl.exited).code, 0, ctl.stderr());
      assert.equal(JSON.parse(ctl.stdout()).pid, server.pid);
      const byEnv = start(cli, ["ctl", "--json", "status"], { FORKYARD_CONTROL: join(dir, "a.ctl") });
      assert.equal((await byEnv.exited).code, 0, byEnv.stderr());
      assert.equal(JSON.parse(byEnv.stdout()).pid, server.pid);
    } finally {
      process.kill(server.pid, "SIGTERM");
      assert.equal((await server.exited).code, 0, server.stderr());
    }
    assert.throws(() => readFileSync(pidFile), /ENOENT/);
    const gone = start(cli, ["ctl", "--pid-file", pidFile, "status"]);
    assert.equal((await gone.exited).code, 1);
    assert.equal(gone.stderr(), `forkyard: no pid file at ${pidFile} (is the server running?)\n`);
    rmSync(dir, { recursive: true, force: true });
  });

  test("--bind unix:PATH: served on a Unix socket with its mode; stale one replaced, live one and a file refused; removed at exit", async () => {
    const cli = new URL("../cli.ts", import.meta.url).pathname;
    const dir = mkdtempSync(join(tmpdir(), "forkyard-unix-"));
    const path = join(dir, "app.sock");
    const serve = (...more: string[]) =>
      start(cli, [
        "serve",
        fixture("users_app.ts"),
        "--bind",
        `unix:${path}`,
        "--no-control",
        "--workers",
        "1",
        ...more,
      ]);
    const get = () =>
      new Promise<number>((resolve, reject) => {
        httpGet({ socketPath: path, path: "/" }, (res) => {
          res.resume();
          res.on("end", () => resolve(res.statusCode!));
        }).on("error", reject);
      });
    try {
      const first = serve("--unix-socket-mode", "600");
      await first.waitStdout(new RegExp(`forkyard [\\d.]+: unix:${path}\n`));
      assert.equal(statSync(path).mode & 0o777, 0o600);
      assert.ok((await get()) < 500);
      const second = serve();
      assert.equal((await second.exited).code, 1);
      assert.match(second.stderr(), /Cannot listen on unix:.*: another server listens on it/);
      assert.ok((await get()) < 500, "the first still serves");
      // Killed, it leaves its socket behind: the next server replaces it.
      process.kill(first.pid, "SIGKILL");
      await first.exited;
      assert.ok(statSync(path).isSocket());
      const third = serve();
      await third.waitStdout(/unix:/);
      assert.equal(statSync(path).mode & 0o777, 0o660);
      assert.ok((await get()) < 500);
      process.kill(third.pid, "SIGTERM");
      assert.equal((await third.exited).code, 0, third.stderr());
      assert.equal(existsSync(path), false, "the socket is removed at exit");
      writeFileSync(path, "not a socket");
      const fourth = serve();
      assert.equal((await fourth.exited).code, 1);
      assert.match(fourth.stderr(), /something other than a socket is at the path/);
      assert.equal(readFileSync(path, "utf8"), "not a socket");
      // A directory everyone may write, without the sticky bit: another user could swap the socket.
      const open = join(dir, "open");
      mkdirSync(open);
      chmodSync(open, 0o777);
      const unsafe = start(cli, ["serve", fixture("users_app.ts"), "--bind", `unix:${join(open, "app.sock")}`]);
      assert.equal((await unsafe.exited).code, 1);
      assert.match(unsafe.stderr(), /writable by every user and not sticky/);
      const tcp = start(cli, ["serve", fixture("users_app.ts"), "--bind", "127.0.0.1:8080"]);
      assert.equal((await tcp.exited).code, 2);
      assert.match(tcp.stderr(), /--bind takes unix:PATH \(for a TCP address: --host and --port\)/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("control socket: in a private directory by default; a directory others may write and a socket of another user are refused", async () => {
    const cli = new URL("../cli.ts", import.meta.url).pathname;
    const dir = mkdtempSync(join(tmpdir(), "forkyard-ctlsec-"));
    try {
      // The default: $XDG_RUNTIME_DIR/forkyard/<working directory>-<hash>.sock, found by `forkyard ctl` alone.
      const runtimeDir = join(dir, "run");
      mkdirSync(runtimeDir, { mode: 0o700 });
      const env = { XDG_RUNTIME_DIR: runtimeDir };
      const server = start(cli, ["serve", fixture("users_app.ts"), "--port", "0", "--workers", "1"], env);
      try {
        await server.waitStdout(/pool \/: 1 worker/);
        // The socket, and its link under the server's pid (for forkyard ctl --pid-file).
        const entries = readdirSync(join(runtimeDir, "forkyard"));
        const sockets = entries.filter((name) => !name.startsWith("pid-"));
        assert.equal(sockets.length, 1, String(entries));
        assert.match(sockets[0], /^[A-Za-z0-9._-]+-[0-9a-f]{8}\.sock$/);
        assert.deepEqual(entries.filter((name) => name.startsWith("pid-")), [`pid-${server.pid}.sock`]);
        assert.equal(statSync(join(runtimeDir, "forkyard")).mode & 0o777, 0o700);
        const status = start(cli, ["ctl", "status", "--json"], env);
        assert.equal((await status.exited).code, 0, status.stderr());
        assert.equal(JSON.parse(status.stdout()).pools[0].workers.length, 1);
      } finally {
        server.child.kill("SIGTERM");
        await server.exited;
      }
      // A directory other users may write: refused in one line naming the way out.
      const open = join(dir, "open");
      mkdirSync(open);
      chmodSync(open, 0o777);
      const squatted = start(cli, ["serve", fixture("users_app.ts"), "--port", "0", "--control", join(open, "x.sock")]);
      assert.equal((await squatted.exited).code, 1);
      assert.match(squatted.stderr(), /the control socket's directory .*open is writable by other users \(mode 777\)/);
      // A socket of another user's: forkyard ctl does not talk to it (needs root to make one here).
      if (process.getuid?.() === 0) {
        const theirs = join(dir, "theirs.sock");
        const squatter = createServer((c) => c.end('{"ok":{"pid":1}}\n'));
        await new Promise<void>((resolve) => squatter.listen(theirs, resolve));
        chownSync(theirs, 65534, 65534);
        const ctl = start(cli, ["ctl", "--control", theirs, "status"]);
        assert.equal((await ctl.exited).code, 1);
        assert.match(ctl.stderr(), /the control socket .*theirs\.sock belongs to user 65534, not to this user/);
        await new Promise<void>((resolve) => squatter.close(() => resolve()));
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("forkyard serve --watch: the server alone watches, source files only, one line per reload", async () => {
    const cli = new URL("../cli.ts", import.meta.url).pathname;
    const mod = new URL("../mod.ts", import.meta.url).pathname;
    // Inside the project (.tmp/ is ignored by git): tsx on Node loads a module outside it apart from the project's.
    const scratch = new URL("../.tmp/", import.meta.url).pathname;
    mkdirSync(scratch, { recursive: true });
    const dir = mkdtempSync(join(scratch, "watch-"));
    const app = join(dir, "app.ts");
    const source = (v: number) =>
      `import { api, Worker } from "${mod}";\nexport default class Hello extends Worker {\n  version() {\n    return { v: ${v} };\n  }\n}\napi("/v", "GET")(Hello.prototype.version);\n`;
    writeFileSync(app, source(1));
    const server = start(cli, [
      "serve",
      app,
      "--watch",
      "--watch-ignore",
      "generated/**",
      "--workers",
      "2",
      "--port",
      "0",
      "--control",
      join(dir, "forkyard.ctl"),
    ]);
    const reloaded = /app\.ts changed: 2 workers reloaded\n/;
    const reloads = () => server.stderr().split("\n").filter((line) => /changed|[Rr]eload/.test(line));
    try {
      const banner = await server.waitStdout(/http:\/\/[\d.]+:(\d+)/);
      const url = `http://127.0.0.1:${/:(\d+)\n?$/.exec(banner.trim())![1]}/v`;
      assert.deepEqual(await (await fetch(url)).json(), { v: 1 });
      writeFileSync(app, source(2));
      await server.waitStderr(reloaded, 20_000);
      assert.deepEqual(await (await fetch(url)).json(), { v: 2 });
      // What forkyard and its output write in the project, and what is not source: none of it reloads. Had any of
      // it counted, the next reload's line would name more than app.ts, or there would be more reloads.
      for (let i = 0; i < 5; i++) {
        writeFileSync(join(dir, "watch.log"), server.stderr());
        assert.equal((await fetch(url)).status, 200);
      }
      mkdirSync(join(dir, "node_modules"));
      writeFileSync(join(dir, "node_modules", "dep.js"), "export {};\n");
      mkdirSync(join(dir, ".cache"));
      writeFileSync(join(dir, ".cache", "x.ts"), "x");
      mkdirSync(join(dir, "generated"));
      writeFileSync(join(dir, "generated", "types.ts"), "export {};\n");
      writeFileSync(app, source(3));
      assert.ok(await eventually(() => reloads().length >= 2, 20_000), server.stderr());
      assert.deepEqual(await (await fetch(url)).json(), { v: 3 });
      const lines = reloads();
      assert.equal(lines.length, 2, server.stderr());
      for (const line of lines) {
        assert.match(line, /^<6>forkyard\.watch: \.tmp\/watch-\w+\/app\.ts changed: 2 workers reloaded$/);
      }
    } finally {
      server.child.kill("SIGTERM");
      assert.equal((await server.exited).code, 0);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("healthCheck: a worker whose app fails or hangs on the path retries times in a row is replaced", async () => {
    const marker = join(mkdtempSync(join(tmpdir(), "forkyard-health-")), "state");
    const app = await startApp("health.ts", { HEALTH_MARKER: marker });
    const pid = async () => (await getJson(`${app.url}/app/`)).body.pid as number;
    const replaced = async (before: number) => {
      for (let i = 0; i < 200; i++) {
        // A request in flight when the worker is killed gets 502 and no pid: only a pid counts.
        const now = await pid().catch(() => undefined);
        if (typeof now === "number" && now !== before) return now;
        await new Promise((r) => setTimeout(r, 25));
      }
      assert.fail(`worker ${before} was not replaced`);
    };
    try {
      const first = await pid();
      await new Promise((r) => setTimeout(r, 400)); // several checks pass: no replacement
      assert.equal(await pid(), first);
      writeFileSync(marker, "fail");
      const second = await replaced(first);
      assert.match(app.stderr(), /failed its health check 2 times in a row \(GET \/health: status 503\)/);
      writeFileSync(marker, "hang");
      await replaced(second);
      assert.match(app.stderr(), /failed its health check 2 times in a row \(GET \/health: timeout\)/);
      writeFileSync(marker, "");
    } finally {
      await app.stop();
    }
  });

  test("env: a pool's variables reach its workers only", async () => {
    const app = await startApp("app.ts");
    try {
      assert.deepEqual((await getJson(`${app.url}/plain/env/POOL_SECRET`)).body, { value: "plain-only" });
      assert.deepEqual((await getJson(`${app.url}/api/env/POOL_SECRET`)).body, { value: null });
    } finally {
      await app.stop();
    }
  });

  test("the command line: flags from the schemas, PORT and HOST, the access log on, a banner per pool", async () => {
    const cli = new URL("../cli.ts", import.meta.url).pathname;
    const proc = start(
      cli,
      ["serve", fixture("users_app.ts"), "--workers", "2", "--timeout", "1500", "--log-level", "info"],
      { PORT: "0", HOST: "127.0.0.1" },
    );
    try {
      const banner = await proc.waitStdout(
        /forkyard [\d.]+: http:\/\/127\.0\.0\.1:(\d+)\n {2}pool \/: 2 workers, app at \/\n/,
      );
      const port = Number(/127\.0\.0\.1:(\d+)/.exec(banner)![1]);
      assert.ok(port > 0);
      assert.equal((await fetch(`http://127.0.0.1:${port}/`)).status, 200);
      await proc.waitStderr(/forkyard\.access[^:]*: 127\.0\.0\.1 - - .*"GET \/ HTTP\/1\.1"/);
    } finally {
      proc.child.kill("SIGTERM");
      assert.equal((await proc.exited).code, 0);
    }
    const bad = start(cli, ["serve", fixture("users_app.ts"), "--log-level", "loud"]);
    assert.equal((await bad.exited).code, 2);
    assert.match(bad.stderr(), /^forkyard: --log-level takes trace, debug, info, warning, error, fatal, got "loud"\n$/);
    const badPort = start(cli, ["serve", fixture("users_app.ts")], { PORT: "http" });
    assert.equal((await badPort.exited).code, 2);
    assert.match(badPort.stderr(), /PORT needs an integer from 0 to 65535, got "http"/);
  });
});
