#!/usr/bin/env node
// forkyard benchmarks: every figure is a ratio against a baseline measured in the same run.
// Starts each server, loads it with wrk (installed from Debian's packages when missing),
// 3 interleaved runs, medians and min–max, and writes BENCHMARKS.md.
//
//   npm run bench                    all runtimes
//   node bench/run.mjs node          one runtime
//   BENCH_SECONDS=5 npm run bench    longer runs
//   BENCH_ONLY=uploads node bench/run.mjs   only the large-uploads-beside-small-GETs scenario, printed
//   BENCH_ONLY=ws node bench/run.mjs        only the WebSocket scenarios, printed
//   BENCH_ONLY=dispatchers node bench/run.mjs   only 2 dispatchers × 1 worker against 1 × 2 and reusePort × 2, printed
//   BENCH_ONLY=remote node bench/run.mjs        only a remote pool over NATS against a local one, printed
//   BENCH_ONLY=servers node bench/run.mjs       only tiny JSON on the node:http server against the native one, printed
//   BENCH_ONLY=memory node bench/run.mjs        only RSS: idle, with 10,000 pending requests, with 10,000 idle WebSockets
//   BENCH_ONLY=express node bench/run.mjs       only an Express app: in one process, node:cluster, a forkyard app pool
import { execFile, execFileSync, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, openSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const bin = (name) => join(root, "node_modules", ".bin", name);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const RUNS = 3;
const CONNS = 32;
const runtimes = process.argv.slice(2).length ? process.argv.slice(2) : ["deno", "bun", "node"];
// On Node the benchmark servers load forkyard's compiled package (bench/servers/forkyard_lib.ts): build it first.
if (runtimes.includes("node")) execFileSync("npm", ["run", "build"], { cwd: root, stdio: "ignore" });
const RUN = {
  deno: [bin("deno"), "run", "-A"],
  bun: [bin("bun"), "run"],
  node: [bin("node")],
};
const server = (name) => join(root, "bench", "servers", name);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const tmp = mkdtempSync(join(os.tmpdir(), "forkyard-bench-"));

function ensureWrk() {
  if (spawnSync("wrk", ["--version"]).error === undefined) return;
  console.log("installing wrk from Debian's packages");
  execFileSync("apt-get", ["update", "-qq"], { stdio: "inherit" });
  execFileSync("apt-get", ["install", "-y", "-qq", "wrk"], { stdio: "inherit" });
}

/** Every server started, so that none outlives this script, even when it fails. */
const started = new Set();
process.on("exit", () => {
  for (const child of started) child.kill("SIGKILL");
});

/**
 * Starts a server process and resolves once it printed {"port": N}. `stderrFile`: its stderr goes to that file, not
 * to a pipe this script reads: wrk runs synchronously here, and a server logging a line per request (the access
 * log) would otherwise block on a full pipe.
 */
function start(cmd, env = {}, { stderrFile } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd[0], cmd.slice(1), {
      env: { ...process.env, PORT: "0", ...env },
      stdio: ["ignore", "pipe", stderrFile === undefined ? "pipe" : openSync(stderrFile, "w")],
    });
    let out = "";
    let err = stderrFile === undefined ? "" : `(stderr in ${stderrFile})`;
    child.stderr?.on("data", (c) => (err = (err + c).slice(-8192)));
    child.stdout.on("data", (c) => {
      out += c;
      const m = /\{"port":(\d+)\}/.exec(out);
      if (m) resolve({ child, port: Number(m[1]), url: `http://127.0.0.1:${m[1]}` });
    });
    started.add(child);
    child.on("exit", (code) => {
      started.delete(child);
      reject(new Error(`${cmd.join(" ")} exited ${code}: ${err}`));
    });
  });
}

async function stop(s) {
  if (s.child.exitCode !== null) return;
  const exited = new Promise((r) => s.child.once("exit", r));
  s.child.kill("SIGTERM");
  const t = setTimeout(() => s.child.kill("SIGKILL"), 15_000);
  await exited;
  clearTimeout(t);
}

/** A port nothing listens on right now (node:cluster's primary needs a fixed one). */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function unit(v, u) {
  const n = Number(v);
  return u === "us" ? n / 1000 : u === "s" ? n * 1000 : n;
}

/** One wrk run: requests/s and latency percentiles in ms. */
function wrk(url, { script, conns = CONNS } = {}) {
  const args = ["-t1", `-c${conns}`, `-d${SECONDS}s`, "--latency", ...(script ? ["-s", script] : []), url];
  const out = execFileSync("wrk", args, { encoding: "utf8" });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)[1]);
  const requests = Number(/(\d+) requests in/.exec(out)[1]);
  const pct = (p) => {
    const m = new RegExp(`\\s${p}%\\s+([\\d.]+)(us|ms|s)`).exec(out);
    return m ? unit(m[1], m[2]) : NaN;
  };
  const errors = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  const socketErrors = /Socket errors: (.*)/.exec(out);
  if (errors || socketErrors) console.log(`  wrk reported errors: ${errors?.[0] ?? ""} ${socketErrors?.[0] ?? ""}`);
  return { rps, requests, p50: pct(50), p99: pct(99) };
}

/** CPU time (user + system) of a process in microseconds, from /proc. */
function cpuMicros(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1e6) / 100; // USER_HZ is 100 on Linux
}

function rssMiB(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m[1]) / 1024;
}

async function getJson(url) {
  // Once more on a failure: a kept-alive connection a Node server closes (after 5 s idle) as it is reused.
  const res = await fetch(url).catch(() => fetch(url));
  return res.json();
}

function postScript(size) {
  const path = join(tmp, `post_${size}.lua`);
  writeFileSync(
    path,
    `wrk.method = "POST"\nwrk.body = string.rep("x", ${size})\nwrk.headers["Content-Type"] = "application/octet-stream"\n`,
  );
  return path;
}

function fmt(stats, key = "rps", digits = 0) {
  const xs = stats.map((s) => s[key]);
  return {
    median: median(xs),
    min: Math.min(...xs),
    max: Math.max(...xs),
    text: `${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})`,
  };
}

/** Interleaved runs: for each run, every server once. Returns stats per server. */
async function interleaved(servers, path, opts = {}) {
  const stats = Object.fromEntries(Object.keys(servers).map((k) => [k, []]));
  for (const s of Object.values(servers)) wrk(s.url + path, { ...opts }); // warm-up, not counted
  for (let run = 0; run < RUNS; run++) {
    for (const [k, s] of Object.entries(servers)) {
      const pids = s.pids ? await s.pids() : [s.child.pid];
      const before = pids.map(cpuMicros);
      const r = wrk(s.url + path, opts);
      const after = pids.map(cpuMicros);
      r.cpu = after.map((t, i) => (t - before[i]) / r.requests);
      stats[k].push(r);
      await sleep(200);
    }
  }
  return stats;
}

/**
 * The floor of the dispatcher design on this runtime: its own server forwarding a 16-byte message
 * per request to a child that echoes it, batched per event-loop turn, with no parsing (bench/floor/);
 * and the same forwarder doing only the protocol's work (forkyard's frames, request fields read,
 * answer with status and two headers) over the channel forkyard uses there, with no supervision.
 */
async function floors(rt, only) {
  const floor = (name) => join(root, "bench", "floor", name);
  const env = { PROTOCOL: "1", ...(rt === "deno" ? { CHANNEL: "unix" } : {}) };
  // Also the same forwarder with a child that does a worker's minimum (decodes every frame and sends it back): how
  // much of forkyard's gap to the echo floor a worker's own work explains.
  const decode = async () => ({
    floorDecode: await start([...RUN[rt], floor(`${rt}_forward.ts`)], { ...env, CHILD: "decode" }),
  });
  if (only === "protocol") {
    return { floorProtocol: await start([...RUN[rt], floor(`${rt}_forward.ts`)], env), ...(await decode()) };
  }
  if (rt === "deno") {
    return {
      floorStdio: await start([...RUN.deno, floor("deno_forward.ts")], { CHANNEL: "stdio" }),
      floorUnix: await start([...RUN.deno, floor("deno_forward.ts")], { CHANNEL: "unix" }),
      floorProtocol: await start([...RUN.deno, floor("deno_forward.ts")], env),
      ...(await decode()),
    };
  }
  if (rt === "bun") {
    return {
      floorStdio: await start([...RUN.bun, floor("bun_forward.ts")]),
      floorProtocol: await start([...RUN.bun, floor("bun_forward.ts")], env),
      ...(await decode()),
    };
  }
  return {
    floorStdio: await start([...RUN.node, floor("node_forward.ts")]),
    floorProtocol: await start([...RUN.node, floor("node_forward.ts")], env),
    ...(await decode()),
  };
}

/** The floors of `rt` (see floors()) in table order, each with its label. */
function floorLabels(rt) {
  const pipes = rt === "deno" ? "stdio" : "pipes";
  const channel = rt === "deno" ? "Unix socket" : "pipes";
  return [
    ["floorStdio", `bare forwarder over ${pipes}, no parsing`],
    ["floorUnix", "bare forwarder over Unix socket, no parsing"],
    ["floorProtocol", `forwarder with forkyard's frames over ${channel}, no supervision`],
    ["floorDecode", `the same, its child decoding and re-encoding every frame (a worker's minimum)`],
  ];
}

async function forkyard(rt, workers, env = {}, options = {}) {
  const s = await start([...RUN[rt], server("forkyard.ts")], { WORKERS: String(workers), ...env }, options);
  s.pids = async () => {
    const p = await getJson(`${s.url}/pids`);
    return [p.dispatcher, ...p.workers];
  };
  return s;
}

async function spawnToReady(rt) {
  const times = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    const child = spawn(RUN[rt][0], [...RUN[rt].slice(1), server("ready.ts")], { stdio: ["ignore", "pipe", "ignore"] });
    await new Promise((r) => child.stdout.once("data", r));
    times.push(performance.now() - t0);
    if (i === 2) {
      await sleep(500);
      times.rss = rssMiB(child.pid);
    }
    child.kill("SIGKILL");
  }
  return { ms: median(times), rss: times.rss };
}

async function killToServing(s) {
  const times = [];
  for (let i = 0; i < 3; i++) {
    const { workers } = await getJson(`${s.url}/pids`);
    const t0 = performance.now();
    process.kill(workers[0], "SIGKILL");
    // Until the dispatcher sees the death a probe may get 502; after it, probes wait in the queue
    // for the replacement. The first 200 is "serving again".
    for (;;) {
      const res = await fetch(`${s.url}/json`);
      await res.text();
      if (res.status === 200) break;
    }
    times.push(performance.now() - t0);
    const now = await getJson(`${s.url}/pids`);
    if (now.workers[0] === workers[0]) throw new Error("worker was not replaced");
    await sleep(1000);
  }
  return median(times);
}

/** Opens `n` requests to /slow at once and measures the dispatcher's RSS while they are pending. */
async function rssWithPending(s, n) {
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  const reqs = [];
  for (let i = 0; i < n; i++) {
    const req = http.get(`${s.url}/slow`, { agent });
    req.on("error", () => {});
    reqs.push(req);
  }
  const deadline = Date.now() + 60_000;
  let pending = 0;
  while (Date.now() < deadline) {
    pending = (await getJson(`${s.url}/pending`)).pending;
    if (pending >= n) break;
    await sleep(200);
  }
  await sleep(500);
  const { dispatcher } = await getJson(`${s.url}/pids`);
  const rss = rssMiB(dispatcher);
  for (const r of reqs) r.destroy();
  agent.destroy();
  return { rss, pending };
}

/** One WebSocket echo run of bench/ws_load.mjs: messages/s and latency percentiles in ms. */
function wsLoad(url, conns = CONNS) {
  const out = execFileSync(bin("node"), [join(root, "bench", "ws_load.mjs"), url, String(conns), String(SECONDS)], {
    encoding: "utf8",
  });
  const r = JSON.parse(out.trim().split("\n").pop());
  return { rps: r.rate, requests: r.messages, p50: r.p50, p99: r.p99 };
}

/**
 * WebSocket echo through forkyard (1 and 2 workers) against the runtime's own server in one process: closed-loop
 * clients, each waiting for its echo before it sends again; one warm-up, then interleaved runs.
 */
async function wsEcho(rt) {
  const servers = {
    baseline: await start([...RUN[rt], server("baseline.ts")]),
    w1: await forkyard(rt, 1),
    w2: await forkyard(rt, 2),
    floor: await start([...RUN[rt], join(root, "bench", "floor", "ws_forward.ts")]),
  };
  const wsUrl = (s) => `${s.url.replace("http:", "ws:")}/ws`;
  // One warm-up run each.
  for (const s of Object.values(servers)) wsLoad(wsUrl(s));
  const out = Object.fromEntries(Object.keys(servers).map((k) => [k, []]));
  for (let run = 0; run < RUNS; run++) {
    for (const [k, s] of Object.entries(servers)) out[k].push(wsLoad(wsUrl(s)));
  }
  for (const s of Object.values(servers)) await stop(s);
  return out;
}

/** RSS of the process `pid` while a client holds `n` idle WebSockets open to `url`. */
async function rssWithSockets(url, pid, n) {
  const child = spawn(bin("node"), [join(root, "bench", "ws_load.mjs"), url], {
    env: { ...process.env, IDLE: String(n) },
    stdio: ["pipe", "pipe", "inherit"],
  });
  const opened = await new Promise((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (c) => {
      out += c;
      const m = /\{"open":(\d+)\}/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.on("exit", (code) => reject(new Error(`ws_load exited ${code}`)));
  });
  await sleep(1000);
  const rss = rssMiB(pid);
  const exited = new Promise((r) => child.once("exit", r));
  child.stdin.end();
  await exited;
  return { rss, open: opened };
}

/** The dispatcher's RSS with 10,000 idle sockets, and the in-process server's with as many. */
async function wsIdle(rt) {
  const f = await forkyard(rt, 1);
  const dispatcher = (await getJson(`${f.url}/pids`)).dispatcher;
  const forkyardRss = await rssWithSockets(`${f.url.replace("http:", "ws:")}/ws`, dispatcher, 10_000);
  await stop(f);
  const b = await start([...RUN[rt], server("baseline.ts")]);
  const baseRss = await rssWithSockets(`${b.url.replace("http:", "ws:")}/ws`, b.child.pid, 10_000);
  await stop(b);
  return { forkyard: forkyardRss, baseline: baseRss };
}

function printWs(rt, echo, idle) {
  for (const [k, v] of Object.entries(echo)) {
    console.log(
      `  ws echo ${k}: ${fmt(v).text} msg/s, p50 ${fmt(v, "p50", 2).text} ms, p99 ${fmt(v, "p99", 2).text} ms`,
    );
  }
  console.log(
    `  ${rt} RSS with ${idle.forkyard.open} idle sockets: dispatcher ${idle.forkyard.rss.toFixed(1)} MiB, ` +
      `in-process server ${idle.baseline.rss.toFixed(1)} MiB`,
  );
}

/** Pids of the processes running `name` whose parent is `pid` (not a loader's helper process), from /proc. */
function childPids(pid, name) {
  const out = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) !== pid) continue;
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(name)) out.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/**
 * Several dispatchers: tiny JSON and the 2 ms CPU route through 2 dispatchers × 1 worker, 1 dispatcher × 2 workers,
 * and the runtime's own server twice on one port with SO_REUSEPORT; CPU per request of each process.
 */
async function dispatchersScenario(rt) {
  const reuse = rt === "deno" ? [...RUN.deno, "--unstable-net"] : RUN[rt];
  const first = await start([...reuse, server("baseline.ts")], { REUSE_PORT: "1" });
  const second = await start([...reuse, server("baseline.ts")], { REUSE_PORT: "1", PORT: String(first.port) });
  const pair = { ...first, pids: () => [first.child.pid, second.child.pid] };
  // The floor: two bare forwarders with forkyard's frames, each with an echoing child, on one port.
  const forward = [...reuse, join(root, "bench", "floor", `${rt}_forward.ts`)];
  const floorEnv = { PROTOCOL: "1", REUSE_PORT: "1", ...(rt === "deno" ? { CHANNEL: "unix" } : {}) };
  const floorA = await start(forward, floorEnv);
  const floorB = await start(forward, { ...floorEnv, PORT: String(floorA.port) });
  const floor2 = {
    ...floorA,
    pids: () => [
      floorA.child.pid,
      floorB.child.pid,
      ...[floorA, floorB].flatMap((f) => childPids(f.child.pid, "_child.ts")),
    ],
  };
  // Bun's node:http server cannot share a port: both of Bun's forkyards serve with Bun.serve, to compare alike.
  const same = rt === "bun" ? { HTTP_SERVER: "native" } : {};
  const d1 = await forkyard(rt, 2, same);
  const d2 = await forkyard(rt, 2, { DISPATCHERS: "2", ...same });
  d2.pids = () => {
    const dispatchers = childPids(d2.child.pid, "forkyard.ts");
    return [...dispatchers, ...dispatchers.flatMap((p) => childPids(p, "forkyard.ts")), d2.child.pid];
  };
  const servers = { reuse2: pair, floor2, d1w2: d1, d2w1: d2 };
  const json = await interleaved(servers, "/json");
  const { floor2: _, ...cpuServers } = servers;
  const cpu = await interleaved(cpuServers, "/cpu");
  for (const s of [first, second, floorA, floorB, d1, d2]) await stop(s);
  return { json, cpu };
}

/** Tiny JSON through 1 worker on the node:http server (the default) and on the runtime's own (`httpServer: "native"`). */
async function serversScenario(rt) {
  const servers = {
    baseline: await start([...RUN[rt], server("baseline.ts")]),
    node: await forkyard(rt, 1),
    ...(rt === "node" ? {} : { native: await forkyard(rt, 1, { HTTP_SERVER: "native" }) }),
  };
  const json = await interleaved(servers, "/json");
  for (const s of Object.values(servers)) await stop(s);
  return json;
}

function printServers(rt, json) {
  const base = fmt(json.baseline).median;
  for (const [key, runs] of Object.entries(json)) {
    const cpu = median(runs.map((s) => s.cpu[0]));
    console.log(
      `${rt} ${key}: ${fmt(runs).text} req/s (${(fmt(runs).median / base).toFixed(2)} of in-process), ` +
        `${key === "baseline" ? "server" : "dispatcher"} ${cpu.toFixed(1)} µs/request`,
    );
  }
}

/** A nats-server on a free loopback port (Debian's package: `apt-get install nats-server`). */
async function natsServer() {
  const port = await freePort();
  const child = spawn("nats-server", ["-a", "127.0.0.1", "-p", String(port)], { stdio: ["ignore", "pipe", "pipe"] });
  started.add(child);
  await new Promise((resolve, reject) => {
    let out = "";
    const onData = (c) => {
      out += c;
      if (out.includes("Server is ready")) resolve();
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.once("error", reject);
  });
  return { child, url: `nats://127.0.0.1:${port}` };
}

/**
 * Remote pools: the 2 ms CPU route through a pool of 2 worker hosts (1 worker each) reached over a local NATS server,
 * against a local pool of 2 workers, in the same run; and tiny JSON on one connection, whose latency difference is what
 * the trip through NATS adds per request.
 */
async function remoteScenario(rt) {
  const nats = await natsServer();
  const hosts = [];
  for (const name of ["host-1", "host-2"]) {
    const args = ["worker", "--nats", nats.url, join(root, "bench", "servers", "bench_worker.ts:BenchWorker")];
    // On Node the package's command line, whose classes are those of the compiled package the worker module loads.
    const cli = rt === "node" ? join(root, "dist", "cli.js") : join(root, "cli.ts");
    const host = spawn(RUN[rt][0], [...RUN[rt].slice(1), cli, ...args, "--name", name], {
      stdio: ["ignore", "pipe", "inherit"],
      env: { ...process.env, FORKYARD_LOG_LEVEL: "warning" },
    });
    started.add(host);
    await new Promise((resolve) => host.stdout.once("data", resolve));
    hosts.push(host);
  }
  const local = await forkyard(rt, 2);
  const remote = await forkyard(rt, 2, { REMOTE_NATS: nats.url });
  const servers = { local, remote };
  const cpu = await interleaved(servers, "/cpu");
  const latency = await interleaved(servers, "/json", { conns: 1 });
  // WebSocket echo: the socket held by the dispatcher, its messages crossing NATS to the host's worker and back.
  const wsUrl = (s) => `${s.url.replace("http:", "ws:")}/ws`;
  for (const s of [local, remote]) wsLoad(wsUrl(s));
  const ws = { local: [], remote: [] };
  for (let run = 0; run < RUNS; run++) {
    for (const [k, s] of Object.entries(servers)) ws[k].push(wsLoad(wsUrl(s)));
  }
  // The floor: a bare NATS request-reply round trip between two processes of this runtime.
  const script = join(root, "bench", "floor", "nats_roundtrip.ts");
  const responder = spawn(RUN[rt][0], [...RUN[rt].slice(1), script], {
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, NATS_URL: nats.url, ROLE: "responder" },
  });
  started.add(responder);
  await new Promise((resolve) => responder.stdout.once("data", resolve));
  const floor = JSON.parse(
    execFileSync(RUN[rt][0], [...RUN[rt].slice(1), script], {
      encoding: "utf8",
      env: { ...process.env, NATS_URL: nats.url },
    }).trim().split("\n").pop(),
  );
  hosts.push(responder);
  for (const s of [local, remote]) await stop(s);
  for (const child of [...hosts, nats.child]) {
    child.kill("SIGTERM");
    await new Promise((r) => child.exitCode !== null ? r() : child.once("exit", r));
  }
  return { cpu, latency, floor, ws };
}

function printRemote(rt, r) {
  console.log(`  ${rt} floor: NATS request-reply round trip p50 ${r.floor.p50.toFixed(3)} ms`);
  for (const [k, label] of [["local", "local pool, 2 workers"], ["remote", "remote pool, 2 hosts × 1 worker"]]) {
    console.log(
      `  ${rt} cpu ${label}: ${fmt(r.cpu[k]).text} req/s, p99 ${
        fmt(r.cpu[k], "p99", 1).text
      } ms; json 1 connection p50 ${fmt(r.latency[k], "p50", 3).text} ms; ws echo ${fmt(r.ws[k]).text} msg/s, p50 ${
        fmt(r.ws[k], "p50", 2).text
      } ms`,
    );
  }
}

/**
 * One Express app (bench/servers/express_app.js), unchanged: in one process listening itself, under node:cluster with
 * 2 workers (as PM2's cluster mode runs it; Node and Bun, Deno has no node:cluster), and in a forkyard app pool of 2
 * workers; tiny JSON and the 2 ms CPU route.
 */
async function expressScenario(rt) {
  const servers = {
    single: await start([...RUN[rt], server("express_single.js")]),
    forkyard: await start([...RUN[rt], server("express_forkyard.ts")], { WORKERS: "2" }),
    ...(rt === "deno" ? {} : {
      cluster: await start([...RUN[rt], server("cluster.ts")], {
        PORT: String(await freePort()),
        APP: server("express_app.js"),
      }),
    }),
  };
  const r = { json: await interleaved(servers, "/json"), cpu: await interleaved(servers, "/cpu") };
  for (const s of Object.values(servers)) await stop(s);
  return r;
}

function printExpress(rt, r) {
  for (const path of ["json", "cpu"]) {
    for (const [k, v] of Object.entries(r[path])) {
      console.log(`  ${rt} express ${path} ${k}: ${fmt(v).text} req/s, p99 ${fmt(v, "p99", 1).text} ms`);
    }
    const base = r[path].cluster ?? r[path].single;
    const ratio = fmt(r[path].forkyard).median / fmt(base).median;
    console.log(`  ${rt} express ${path}: forkyard / ${r[path].cluster ? "cluster" : "single"} = ${ratio.toFixed(2)}`);
  }
}

/** How dispatchersScenario()'s servers are named in the output and the report. */
const DISPATCHER_LABELS = {
  reuse2: "in-process server ×2, reusePort",
  floor2: "floor: 2 bare forwarders with forkyard's frames, reusePort",
  d1w2: "1 dispatcher × 2 workers",
  d2w1: "2 dispatchers × 1 worker",
};

/** The median CPU µs/request of each process of a server's runs, joined with " / ". */
const cpuPerProcess = (v) => v[0].cpu.map((_, i) => median(v.map((s) => s.cpu[i])).toFixed(1)).join(" / ");

function printDispatchers(rt, r) {
  const label = DISPATCHER_LABELS;
  for (const [route, stats] of Object.entries(r)) {
    for (const [k, v] of Object.entries(stats)) {
      const cpus = cpuPerProcess(v);
      console.log(
        `  ${rt} ${route} ${label[k]}: ${fmt(v).text} req/s, p99 ${
          fmt(v, "p99", 1).text
        } ms; CPU µs/request per process ${cpus}`,
      );
    }
  }
}

const versions = {
  deno: execFileSync(bin("deno"), ["--version"], { encoding: "utf8" }).split("\n")[0],
  bun: "bun " + execFileSync(bin("bun"), ["--version"], { encoding: "utf8" }).trim(),
  node: "node " + execFileSync(bin("node"), ["--version"], { encoding: "utf8" }).trim(),
  wrk: "",
};

ensureWrk();
versions.wrk = spawnSync("wrk", ["--version"], { encoding: "utf8" }).stdout.split("\n")[0];
/** A JSON document of about `bytes` bytes. */
function jsonOf(bytes) {
  const item = (i) => ({ id: i, name: `item ${i}`, tags: ["alpha", "beta"], price: i * 1.5, ok: i % 2 === 0 });
  const n = Math.ceil(bytes / JSON.stringify(item(100000)).length);
  return JSON.stringify({ items: Array.from({ length: n }, (_, i) => item(i)) });
}

/**
 * Small GETs to one pool while clients upload 6.9 MB JSON bodies to another: p99 of the GETs with and without the
 * uploads (interleaved, RUNS times). The dispatcher must pass the uploads on without parsing them.
 */
async function uploadsBeside(rt) {
  const s = await forkyard(rt, 1, { UPLOAD_POOL: "1" });
  const body = jsonOf(6.9e6);
  const upload = async (until) => {
    let n = 0;
    while (Date.now() < until) {
      const res = await fetch(`${s.url}/upload`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
      if (res.status !== 200) throw new Error(`upload answered ${res.status}`);
      await res.arrayBuffer();
      n++;
    }
    return n;
  };
  const quiet = [];
  const loaded = [];
  let uploads = 0;
  wrk(`${s.url}/json`, { conns: 8 }); // warm-up
  for (let run = 0; run < RUNS; run++) {
    quiet.push(wrk(`${s.url}/json`, { conns: 8 }));
    await sleep(200);
    const until = Date.now() + SECONDS * 1000;
    const uploaders = [upload(until), upload(until)];
    // wrk blocks this process: run it in a child so that the uploads go on meanwhile.
    loaded.push(await wrkAsync(`${s.url}/json`, { conns: 8 }));
    uploads += (await Promise.all(uploaders)).reduce((a, b) => a + b, 0);
    await sleep(200);
  }
  await stop(s);
  return { quiet, loaded, uploads, bytes: body.length };
}

/** {@link wrk} without blocking this process. */
function wrkAsync(url, { conns = CONNS } = {}) {
  return new Promise((resolve, reject) => {
    const args = ["-t1", `-c${conns}`, `-d${SECONDS}s`, "--latency", url];
    execFile("wrk", args, { encoding: "utf8" }, (error, out) => {
      if (error) return reject(error);
      const pct = (p) => {
        const m = new RegExp(`\\s${p}%\\s+([\\d.]+)(us|ms|s)`).exec(out);
        return m ? unit(m[1], m[2]) : NaN;
      };
      resolve({ rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)[1]), p50: pct(50), p99: pct(99) });
    });
  });
}

/** The dispatcher's RSS with 10,000 pending requests, and the runtime's own server's holding as many (the floor). */
async function pendingScenario(rt) {
  const s = await forkyard(rt, 1, { CONCURRENCY: "32" });
  const pending = await rssWithPending(s, 10_000);
  console.log(`  dispatcher RSS with ${pending.pending} pending: ${pending.rss.toFixed(1)} MiB`);
  await stop(s);
  const b = await start([...RUN[rt], server("baseline.ts")]);
  const pendingBase = await rssWithPending(b, 10_000);
  console.log(`  in-process server RSS with ${pendingBase.pending} pending: ${pendingBase.rss.toFixed(1)} MiB`);
  await stop(b);
  return { pending, pendingBase };
}

/** Idle RSS a second after start: the dispatcher and its worker, and the runtime's own server with the same routes. */
async function idleScenario(rt) {
  const f = await forkyard(rt, 1);
  const b = await start([...RUN[rt], server("baseline.ts")]);
  await sleep(1000);
  const pids = await getJson(`${f.url}/pids`);
  const idle = { dispatcher: rssMiB(pids.dispatcher), worker: rssMiB(pids.workers[0]), baseline: rssMiB(b.child.pid) };
  console.log(
    `  idle RSS: dispatcher ${idle.dispatcher.toFixed(1)} MiB, in-process server ${idle.baseline.toFixed(1)} MiB`,
  );
  await stop(f);
  await stop(b);
  return idle;
}

const results = {};
if (process.env.BENCH_ONLY === "memory") {
  for (const rt of runtimes) {
    console.log(`=== ${rt}`);
    await idleScenario(rt);
    await pendingScenario(rt);
    printWs(rt, {}, await wsIdle(rt));
  }
  process.exit(0);
}
if (process.env.BENCH_ONLY === "uploads") {
  for (const rt of runtimes) {
    const u = await uploadsBeside(rt);
    console.log(
      `${rt}: GET /json p99 ${fmt(u.quiet, "p99", 1).text} ms alone, ${
        fmt(u.loaded, "p99", 1).text
      } ms beside ${u.uploads} uploads of ${(u.bytes / 1e6).toFixed(1)} MB JSON`,
    );
  }
  process.exit(0);
}
if (process.env.BENCH_ONLY === "dispatchers") {
  for (const rt of runtimes) printDispatchers(rt, await dispatchersScenario(rt));
  process.exit(0);
}
if (process.env.BENCH_ONLY === "remote") {
  for (const rt of runtimes) printRemote(rt, await remoteScenario(rt));
  process.exit(0);
}
if (process.env.BENCH_ONLY === "servers") {
  for (const rt of runtimes) printServers(rt, await serversScenario(rt));
  process.exit(0);
}
if (process.env.BENCH_ONLY === "express") {
  for (const rt of runtimes) printExpress(rt, await expressScenario(rt));
  process.exit(0);
}
if (process.env.BENCH_ONLY === "ws") {
  for (const rt of runtimes) printWs(rt, await wsEcho(rt), await wsIdle(rt));
  process.exit(0);
}
for (const rt of runtimes) {
  console.log(`\n=== ${rt}`);
  const r = (results[rt] = {});
  r.idle = await idleScenario(rt);
  // tiny JSON: baseline vs 1 and 2 workers
  {
    const servers = {
      baseline: await start([...RUN[rt], server("baseline.ts")]),
      w1: await forkyard(rt, 1),
      w1log: await forkyard(rt, 1, { ACCESS_LOG: "combined" }, {
        stderrFile: join(mkdtempSync(join(os.tmpdir(), "forkyard-access-")), "stderr.log"),
      }),
      w2: await forkyard(rt, 2),
      ...(rt === "node" ? {} : { w1native: await forkyard(rt, 1, { HTTP_SERVER: "native" }) }),
      ...(await floors(rt)),
    };
    r.json = await interleaved(servers, "/json");
    for (const [k, v] of Object.entries(r.json)) console.log(`  json ${k}: ${fmt(v).text} req/s`);
    r.kill = await killToServing(servers.w1);
    console.log(`  kill -9 to serving: ${r.kill.toFixed(0)} ms`);
    for (const s of Object.values(servers)) await stop(s);
  }
  {
    // The same with a spare process per pool (option `spares`), started once the worker is ready.
    const s = await forkyard(rt, 1, { SPARES: "1" });
    await sleep(1000);
    r.killSpare = await killToServing(s);
    console.log(`  kill -9 to serving, spares 1: ${r.killSpare.toFixed(0)} ms`);
    await stop(s);
  }
  r.bare = await spawnToReady(rt);
  console.log(`  bare spawn-to-ready: ${r.bare.ms.toFixed(0)} ms, idle RSS ${r.bare.rss.toFixed(1)} MiB`);
  // CPU-bound route
  {
    const servers = {
      single: await start([...RUN[rt], server("baseline.ts")]),
      w1: await forkyard(rt, 1),
      w2: await forkyard(rt, 2),
      ...(rt === "node"
        ? {
          cluster: await start([...RUN[rt], server("cluster.ts")], {
            PORT: String(await freePort()),
            WORKERS: "2",
          }),
        }
        : {}),
    };
    r.cpu = await interleaved(servers, "/cpu");
    for (const [k, v] of Object.entries(r.cpu)) {
      console.log(`  cpu ${k}: ${fmt(v).text} req/s, p99 ${fmt(v, "p99", 1).text} ms`);
    }
    for (const s of Object.values(servers)) await stop(s);
  }
  // POST echo, 64 KiB and 1 MiB
  {
    const servers = {
      baseline: await start([...RUN[rt], server("baseline.ts")]),
      w1: await forkyard(rt, 1),
      ...(await floors(rt, "protocol")),
    };
    r.echo64 = await interleaved(servers, "/echo", { script: postScript(64 * 1024), conns: 8 });
    r.echo1m = await interleaved(servers, "/echo", { script: postScript(1024 * 1024), conns: 4 });
    for (const [k, v] of Object.entries(r.echo64)) console.log(`  echo 64 KiB ${k}: ${fmt(v).text} req/s`);
    for (const [k, v] of Object.entries(r.echo1m)) console.log(`  echo 1 MiB ${k}: ${fmt(v).text} req/s`);
    for (const s of Object.values(servers)) await stop(s);
  }
  r.uploads = await uploadsBeside(rt);
  console.log(
    `  GET p99 ${fmt(r.uploads.quiet, "p99", 1).text} ms alone, ${
      fmt(r.uploads.loaded, "p99", 1).text
    } ms beside uploads`,
  );
  r.dispatchers = await dispatchersScenario(rt);
  printDispatchers(rt, r.dispatchers);
  r.remote = await remoteScenario(rt);
  printRemote(rt, r.remote);
  r.wsEcho = await wsEcho(rt);
  r.wsIdle = await wsIdle(rt);
  printWs(rt, r.wsEcho, r.wsIdle);
  Object.assign(r, await pendingScenario(rt));
}

// ---- report
const ratio = (a, b) => a / b;
const rows = [];
const row = (...cells) => rows.push(`| ${cells.join(" | ")} |`);
const check = (ok) => (ok ? "yes" : "**no**");
for (const rt of runtimes) {
  const r = results[rt];
  const base = fmt(r.json.baseline).median;
  const w1 = fmt(r.json.w1).median;
  const w2 = fmt(r.json.w2).median;
  const target = rt === "deno" ? 0.6 : 0.75;
  row(rt, "tiny JSON, in-process baseline", `${fmt(r.json.baseline).text} req/s`, "1.00", "", "");
  row(
    rt,
    "tiny JSON, forkyard 1 worker",
    `${fmt(r.json.w1).text} req/s`,
    ratio(w1, base).toFixed(2),
    `≥ ${target}`,
    check(ratio(w1, base) >= target),
  );
  if (r.json.w1log) {
    const logged = fmt(r.json.w1log).median;
    const loggedCpu = median(r.json.w1log.map((s) => s.cpu[0]));
    row(
      rt,
      "tiny JSON, forkyard 1 worker, access log on (combined, stderr to a file)",
      `${fmt(r.json.w1log).text} req/s, dispatcher ${loggedCpu.toFixed(1)} µs/request (${
        median(r.json.w1.map((s) => s.cpu[0])).toFixed(1)
      } without)`,
      ratio(logged, base).toFixed(2),
      "",
      "",
    );
  }
  if (r.json.w1native) {
    row(
      rt,
      `tiny JSON, forkyard 1 worker, httpServer "native" (${rt === "deno" ? "Deno.serve" : "Bun.serve"})`,
      `${fmt(r.json.w1native).text} req/s, dispatcher ${
        median(r.json.w1native.map((s) => s.cpu[0])).toFixed(1)
      } µs/request`,
      ratio(fmt(r.json.w1native).median, base).toFixed(2),
      "",
      "",
    );
  }
  row(rt, "tiny JSON, forkyard 2 workers", `${fmt(r.json.w2).text} req/s`, ratio(w2, base).toFixed(2), "", "");
  const floorRows = floorLabels(rt).filter(([key]) => r.json[key]);
  for (const [key, label] of floorRows) {
    const f = fmt(r.json[key]);
    row(rt, `tiny JSON, floor: ${label}`, `${f.text} req/s`, ratio(f.median, base).toFixed(2), "", "");
  }
  const baseCpu = median(r.json.baseline.map((s) => s.cpu[0]));
  const dispCpu = median(r.json.w1.map((s) => s.cpu[0]));
  const workCpu = median(r.json.w1.map((s) => s.cpu[1]));
  row(rt, "CPU µs/request: in-process server", baseCpu.toFixed(1), "1.00", "", "");
  row(
    rt,
    "CPU µs/request: dispatcher (1 worker)",
    dispCpu.toFixed(1),
    ratio(dispCpu, baseCpu).toFixed(2),
    "≤ 1.5",
    check(ratio(dispCpu, baseCpu) <= 1.5),
  );
  row(rt, "CPU µs/request: worker", workCpu.toFixed(1), ratio(workCpu, baseCpu).toFixed(2), "", "");
  for (const [key, label] of floorRows) {
    const c = median(r.json[key].map((s) => s.cpu[0]));
    row(rt, `CPU µs/request: floor, ${label}`, c.toFixed(1), ratio(c, baseCpu).toFixed(2), "", "");
  }
  const single = fmt(r.cpu.single);
  const c2 = fmt(r.cpu.w2);
  row(
    rt,
    "2 ms CPU route, one process",
    `${single.text} req/s, p99 ${fmt(r.cpu.single, "p99", 1).text} ms`,
    "1.00",
    "",
    "",
  );
  row(
    rt,
    "2 ms CPU route, forkyard 1 worker",
    `${fmt(r.cpu.w1).text} req/s, p99 ${fmt(r.cpu.w1, "p99", 1).text} ms`,
    ratio(fmt(r.cpu.w1).median, single.median).toFixed(2),
    "",
    "",
  );
  row(
    rt,
    "2 ms CPU route, forkyard 2 workers",
    `${c2.text} req/s, p99 ${fmt(r.cpu.w2, "p99", 1).text} ms`,
    ratio(c2.median, single.median).toFixed(2),
    "≥ 1.9",
    check(ratio(c2.median, single.median) >= 1.9),
  );
  if (r.cpu.cluster) {
    const cl = fmt(r.cpu.cluster);
    const p99ok = fmt(r.cpu.w2, "p99").median <= fmt(r.cpu.cluster, "p99").median;
    row(
      rt,
      "2 ms CPU route, node:cluster 2 workers",
      `${cl.text} req/s, p99 ${fmt(r.cpu.cluster, "p99", 1).text} ms`,
      ratio(cl.median, single.median).toFixed(2),
      "forkyard p99 ≤ cluster p99",
      check(p99ok),
    );
  }
  for (const [key, label, size] of [["echo64", "64 KiB", 64 * 1024], ["echo1m", "1 MiB", 1024 * 1024]]) {
    const b = fmt(r[key].baseline).median;
    const f = fmt(r[key].w1).median;
    const mbs = (x) => ((x * size) / 1048576).toFixed(0);
    row(rt, `POST echo ${label}, in-process`, `${mbs(b)} MiB/s`, "1.00", "", "");
    row(
      rt,
      `POST echo ${label}, forkyard 1 worker`,
      `${mbs(f)} MiB/s`,
      ratio(f, b).toFixed(2),
      key === "echo1m" ? "≥ 0.5" : "",
      key === "echo1m" ? check(ratio(f, b) >= 0.5) : "",
    );
    for (const [floorKey, floorLabel] of floorLabels(rt).filter(([k]) => r[key][k])) {
      const fl = fmt(r[key][floorKey]).median;
      row(rt, `POST echo ${label}, floor: ${floorLabel}`, `${mbs(fl)} MiB/s`, ratio(fl, b).toFixed(2), "", "");
    }
  }
  if (r.dispatchers) {
    for (const [route, label] of [["json", "tiny JSON"], ["cpu", "2 ms CPU route"]]) {
      const stats = r.dispatchers[route];
      const b = fmt(stats.reuse2).median;
      for (const [k, v] of Object.entries(stats)) {
        row(
          rt,
          `${label}, ${DISPATCHER_LABELS[k]}`,
          `${fmt(v).text} req/s, p99 ${fmt(v, "p99", 1).text} ms; CPU µs/request per process ${cpuPerProcess(v)}`,
          ratio(fmt(v).median, b).toFixed(2),
          "",
          "",
        );
      }
    }
  }
  if (r.remote) {
    const l = fmt(r.remote.cpu.local).median;
    row(
      rt,
      "2 ms CPU route, local pool 2 workers",
      `${fmt(r.remote.cpu.local).text} req/s, p99 ${fmt(r.remote.cpu.local, "p99", 1).text} ms`,
      "1.00",
      "",
      "",
    );
    row(
      rt,
      "2 ms CPU route, remote pool over NATS, 2 worker hosts × 1 worker",
      `${fmt(r.remote.cpu.remote).text} req/s, p99 ${fmt(r.remote.cpu.remote, "p99", 1).text} ms`,
      ratio(fmt(r.remote.cpu.remote).median, l).toFixed(2),
      "",
      "",
    );
    const lp = fmt(r.remote.latency.local, "p50", 3);
    const rp = fmt(r.remote.latency.remote, "p50", 3);
    row(
      rt,
      "tiny JSON on 1 connection, p50 latency: remote pool vs local",
      `${rp.text} vs ${lp.text} ms: +${((rp.median - lp.median) * 1000).toFixed(0)} µs per request, ` +
        `${((rp.median - lp.median - r.remote.floor.p50) * 1000).toFixed(0)} µs over the bare round trip below`,
      ratio(rp.median, lp.median).toFixed(2),
      "",
      "",
    );
    row(
      rt,
      "floor: a bare NATS request-reply round trip, 64 bytes, p50",
      `${(r.remote.floor.p50 * 1000).toFixed(0)} µs (p99 ${(r.remote.floor.p99 * 1000).toFixed(0)} µs)`,
      "",
      "",
      "",
    );
    const wl = fmt(r.remote.ws.local);
    const wr = fmt(r.remote.ws.remote);
    row(
      rt,
      `WebSocket echo, ${CONNS} connections: remote pool (2 hosts × 1 worker) vs local (2 workers)`,
      `${wr.text} vs ${wl.text} msg/s, p50 ${fmt(r.remote.ws.remote, "p50", 2).text} vs ${
        fmt(r.remote.ws.local, "p50", 2).text
      } ms`,
      ratio(wr.median, wl.median).toFixed(2),
      "",
      "",
    );
  }
  if (r.wsEcho) {
    const b = fmt(r.wsEcho.baseline).median;
    const cell = (v) => `${fmt(v).text} msg/s, p50 ${fmt(v, "p50", 2).text} ms, p99 ${fmt(v, "p99", 2).text} ms`;
    row(rt, "WebSocket echo, in-process server", cell(r.wsEcho.baseline), "1.00", "", "");
    for (
      const [key, label] of [["w1", "forkyard 1 worker"], ["w2", "forkyard 2 workers"], [
        "floor",
        "floor: the runtime's server relaying each message as a frame to an echoing child",
      ]]
    ) {
      const v = r.wsEcho[key];
      row(rt, `WebSocket echo, ${label}`, cell(v), ratio(fmt(v).median, b).toFixed(2), "", "");
    }
    const { forkyard: f, baseline: base } = r.wsIdle;
    row(rt, `in-process server RSS, ${base.open} idle WebSockets`, `${base.rss.toFixed(1)} MiB`, "", "", "");
    row(
      rt,
      `dispatcher RSS, ${f.open} idle WebSockets`,
      `${f.rss.toFixed(1)} MiB`,
      ratio(f.rss, base.rss).toFixed(2),
      "≤ 1.5",
      check(f.rss / base.rss <= 1.5),
    );
  }
  row(rt, "bare runtime spawn-to-ready", `${r.bare.ms.toFixed(0)} ms`, "1.00", "", "");
  for (const [ms, label] of [[r.kill, ""], [r.killSpare, ", spares: 1"]]) {
    const x = ratio(ms, r.bare.ms);
    row(rt, `kill -9 of a worker to serving again${label}`, `${ms.toFixed(0)} ms`, x.toFixed(2), "≤ 3", check(x <= 3));
  }
  row(rt, "in-process server RSS, idle", `${r.idle.baseline.toFixed(1)} MiB`, "", "", "");
  row(
    rt,
    "dispatcher RSS, idle",
    `${r.idle.dispatcher.toFixed(1)} MiB`,
    `+${(r.idle.dispatcher - r.idle.baseline).toFixed(1)} MiB`,
    "≤ +20 MiB",
    check(r.idle.dispatcher - r.idle.baseline <= 20),
  );
  row(
    rt,
    `in-process server RSS, ${r.pendingBase.pending} pending (floor)`,
    `${r.pendingBase.rss.toFixed(1)} MiB`,
    "",
    "",
    "",
  );
  row(
    rt,
    `dispatcher RSS, ${r.pending.pending} pending`,
    `${r.pending.rss.toFixed(1)} MiB`,
    "",
    "≤ 150 MiB",
    check(r.pending.rss <= 150),
  );
  row(
    rt,
    "idle worker RSS vs bare runtime",
    `${r.idle.worker.toFixed(1)} vs ${r.bare.rss.toFixed(1)} MiB`,
    `+${(r.idle.worker - r.bare.rss).toFixed(1)} MiB`,
    "≤ +15 MiB",
    check(r.idle.worker - r.bare.rss <= 15),
  );
  if (r.uploads) {
    const alone = fmt(r.uploads.quiet, "p99", 1);
    const beside = fmt(r.uploads.loaded, "p99", 1);
    row(
      rt,
      `GET p99, 8 connections, beside 2 clients uploading ${
        (r.uploads.bytes / 1e6).toFixed(1)
      } MB JSON to another pool`,
      `${beside.text} ms (alone ${alone.text} ms; ${r.uploads.uploads} uploads)`,
      ratio(beside.median, alone.median).toFixed(1),
      "",
      "",
    );
  }
}
const cpu = os.cpus();
const md = `# Benchmarks

Written by \`npm run bench\` (\`bench/run.mjs\`) on ${new Date().toISOString().slice(0, 10)}. Every ratio compares
two servers measured in the same run; absolute numbers vary between machines and runs.

- Machine: ${cpu.length} × ${cpu[0]?.model ?? "?"}, ${
  (os.totalmem() / 2 ** 30).toFixed(0)
} GiB, ${os.type()} ${os.release()}
- Versions: ${versions.deno}; ${versions.bun}; ${versions.node}; ${versions.wrk}
- Load: \`wrk -t1 -c${CONNS} -d${SECONDS}s --latency\` against 127.0.0.1 (POST echo: 8 connections for 64 KiB,
  4 for 1 MiB, body from a Lua script); one warm-up run, then ${RUNS} interleaved runs (every server once
  per run). Cells show the median and (min–max) of the ${RUNS} runs.
- Servers (\`bench/servers/\`): \`baseline.ts\` serves the same routes in one process with the runtime's own
  server (\`Deno.serve\`, \`Bun.serve\`, \`node:http\`); \`forkyard.ts\` serves them from a \`WorkerPool\`,
  with forkyard's default HTTP server, \`node:http\` on every runtime, except in the rows marked
  \`httpServer "native"\` (\`Deno.serve\`, \`Bun.serve\`) and Bun's several-dispatcher rows (Bun's \`node:http\`
  cannot share a port); the floors below use the runtime's own server, so on Deno and Bun they are the native
  server's floors;
  \`cluster.ts\` is \`node:cluster\` with 2 \`node:http\` workers. The CPU-bound route burns 2 ms per request.
  \`forkyard.ts\` reads its settings with \`Deno.env\` on Deno, not \`node:process\`: its workers re-run it, and
  the first use of \`node:process\` starts Deno's Node layer, about 10 ms more per worker start.
- Floors (\`bench/floor/\`): the runtime's own server (on Node \`@hono/node-server\`, as forkyard's dispatcher
  uses there) forwarding each request to a child that echoes bytes back, batched once per event-loop turn.
  The bare forwarder sends 16 bytes and parses nothing; the forwarder with forkyard's frames reads the
  request's method, path and headers, sends them as one frame (\`src/protocol/codec.ts\`), parses the echoed frame
  and answers with a status and two headers (\`content-type\`, \`x-request-id\`), as forkyard's dispatcher
  does, with no routing and no supervision. Under POST echo it sends the body as forkyard does (large ones
  through a spill file in /dev/shm, which the echoed frame names, so it reads back the file it wrote) and
  answers with it; its child does no work, where forkyard's worker reads the body and writes it back.
  A third floor runs the same forwarder with a child that does a worker's minimum
  (\`decode_child.ts\`, over the channel a worker of that runtime uses): it decodes every frame (a spilled body read into bytes of its own, as a
  worker must hand them to its handler) and sends it back (a large body through a spill file of its own),
  with no routing, no handler and no supervision. How to read them: a floor is what a dispatcher of this
  design reaches on this machine without forkyard's routing and supervision; where a floor's ratio is
  already short of a target, no tuning of forkyard meets that target here.
- CPU µs per request: user + system time from \`/proc/<pid>/stat\` across a run, divided by the requests
  wrk completed. RSS: \`VmRSS\` from \`/proc/<pid>/status\`. 10,000 pending: 10,000 concurrent requests to
  a route that never answers in time, held open by the benchmark process.
- Several dispatchers (option \`dispatchers\`): two processes share the port with SO_REUSEPORT: the in-process
  server twice (ratio 1.00 of its group), the floor twice (each a forwarder with forkyard's frames and its echoing
  child), forkyard with 2 dispatchers × 1 worker; and forkyard with 1 dispatcher × 2 workers. CPU per process in
  the order: the servers (dispatchers), then their children (workers, echo children), then the primary.
- Remote pools: a local \`nats-server\` and two worker hosts (\`forkyard worker --nats\`, 1 worker each) serving
  \`bench/servers/bench_worker.ts\`, behind a dispatcher whose pool is remote, against the same dispatcher with a
  local pool of 2 workers. Everything on this one machine: the NATS hop costs CPU here that another host would carry.
- WebSocket echo (\`bench/ws_load.mjs\`, the \`ws\` package's client on Node): ${CONNS} connections, each
  sending a 64-byte text message and waiting for its echo before the next, for ${SECONDS} s; messages per second
  and the latency of each round trip. Idle WebSockets: one client process opens 10,000 sockets (200 handshakes at
  a time), and the server's \`VmRSS\` is read a second after the last one opened.
- Kill -9 to serving: SIGKILL to the only worker, then requests one after another until one answers 200
  (until the dispatcher sees the death a request may get 502; after it, requests wait in the queue for
  the replacement); median of 3. Bare spawn-to-ready: spawning the runtime on a script that prints one line;
  median of 3. Node runs every server with its own type stripping (the benchmark servers declare their routes
  without decorators), as it runs forkyard's compiled JavaScript, not through tsx.

| runtime | scenario | result | ratio | target | met |
| --- | --- | --- | --- | --- | --- |
${rows.join("\n")}
`;
writeFileSync(join(root, "BENCHMARKS.md"), md);
console.log(`\nwrote BENCHMARKS.md`);
process.exit(0);
