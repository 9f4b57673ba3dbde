// A quick A/B probe, for work on the hot path between full `npm run bench` runs: starts one
// server, loads it with wrk three times and prints req/s and CPU µs per request of the
// dispatcher and of each worker (utime + stime of all their threads, from /proc).
//
//   node bench/probe.mjs <deno|bun|node> [server file] [path] [seconds]
//   node bench/probe.mjs deno                                # bench/servers/forkyard.ts, GET /json
//   node bench/probe.mjs bun bench/servers/baseline.ts       # the runtime's own server
//   node bench/probe.mjs node bench/servers/forkyard.ts /echo  # 1 MiB POST echo, 4 connections
//
// Servers print {"port": N}; forkyard ones answer /pids. Ratios across separate probes are
// rougher than the interleaved runs of run.mjs: the machine's noise is about ±10%.
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const bin = (name) => join(root, "node_modules", ".bin", name);
const RUN = {
  deno: [bin("deno"), "run", "-A"],
  bun: [bin("bun"), "run"],
  node: [bin("node")],
};
const [rt, file = "bench/servers/forkyard.ts", path = "/json", seconds = "4"] = process.argv.slice(2);
if (!RUN[rt]) {
  console.error("usage: node bench/probe.mjs <deno|bun|node> [server file] [path] [seconds]");
  process.exit(2);
}
// On Node the benchmark servers load forkyard's compiled package (bench/servers/forkyard_lib.ts): build it first.
if (rt === "node") execFileSync("npm", ["run", "build"], { cwd: root, stdio: "ignore" });
const tmp = mkdtempSync(join(os.tmpdir(), "forkyard-probe-"));
const post = join(tmp, "post1m.lua");
writeFileSync(
  post,
  'wrk.method = "POST"\nwrk.body = string.rep("x", 1048576)\nwrk.headers["Content-Type"] = "application/octet-stream"\n',
);
const load = path === "/echo" ? ["-c4", "-s", post] : ["-c32"];
/** CPU time of a process, all threads, in µs. */
const cpu = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(f[11]) + Number(f[12])) * (1e6 / 100);
};
const [cmd, ...args] = RUN[rt];
const server = spawn(cmd, [...args, join(root, file)], {
  cwd: root,
  stdio: ["ignore", "pipe", "ignore"],
  env: { ...process.env, PORT: "0" },
});
try {
  const line = await new Promise((resolve) => server.stdout.once("data", (d) => resolve(String(d))));
  const url = `http://127.0.0.1:${JSON.parse(line).port}`;
  let pids = { dispatcher: server.pid, workers: [] };
  const res = await fetch(`${url}/pids`).catch(() => null);
  const body = res?.ok ? await res.json().catch(() => null) : null;
  if (body?.dispatcher) pids = body;
  const wrk = (s) => execFileSync("wrk", ["-t1", ...load, `-d${s}s`, url + path], { encoding: "utf8" });
  wrk(1);
  const out = [];
  for (let run = 0; run < 3; run++) {
    const d0 = cpu(pids.dispatcher);
    const w0 = pids.workers.map(cpu);
    const text = wrk(seconds);
    const n = Number(/(\d+) requests in/.exec(text)[1]);
    const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(text)[1]);
    const d = (cpu(pids.dispatcher) - d0) / n;
    const w = pids.workers.map((pid, i) => ((cpu(pid) - w0[i]) / n).toFixed(1));
    out.push(
      `${rps.toFixed(0)} req/s, dispatcher ${d.toFixed(1)} µs` + (w.length ? `, workers ${w.join(" ")} µs` : ""),
    );
  }
  console.log(`${rt} ${file} ${path}\n  ${out.join("\n  ")}`);
} finally {
  server.kill("SIGTERM");
}
