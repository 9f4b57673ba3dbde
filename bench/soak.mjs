#!/usr/bin/env node
// Soak: hostile clients, client aborts, worker kills and recycles together against one dispatcher per runtime, on
// loopback only and for a bounded time. Prints, per runtime, the dispatcher's descriptors (TCP sockets apart, since
// clients come and go), RSS and sockets in CLOSE_WAIT before and after, and the answers by status.
//
//   node bench/soak.mjs                    all runtimes, 20 s each
//   SOAK_SECONDS=60 node bench/soak.mjs node
//   SOAK_ONLY=aborts node bench/soak.mjs node    one kind of trouble: load, aborts, slow or kills
//   HTTP_SERVER=native node bench/soak.mjs deno  on Deno.serve or Bun.serve instead of node:http
import { execFileSync, spawn } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import net from "node:net";
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const bin = (name) => join(root, "node_modules", ".bin", name);
const SECONDS = Number(process.env.SOAK_SECONDS ?? 20);
const RUN = {
  deno: [bin("deno"), "run", "-A"],
  bun: [bin("bun"), "run"],
  node: [bin("node")],
};
const runtimes = process.argv.slice(2).length ? process.argv.slice(2) : ["deno", "bun", "node"];
// On Node the benchmark servers load forkyard's compiled package (bench/servers/forkyard_lib.ts): build it first.
if (runtimes.includes("node")) execFileSync("npm", ["run", "build"], { cwd: root, stdio: "ignore" });
const app = join(root, "tests", "fixtures", "app.ts");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => xs.length === 0 ? "-" : [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Lines of /proc/net/tcp and tcp6, split into fields. */
function tcpTable() {
  return ["/proc/net/tcp", "/proc/net/tcp6"].flatMap((file) =>
    readFileSync(file, "utf8").split("\n").slice(1).map((l) => l.trim().split(/\s+/)).filter((f) => f.length > 9)
  );
}

function measure(pid, port) {
  const table = tcpTable();
  const tcp = new Set(table.map((f) => f[9]));
  let fds = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m === null || !tcp.has(m[1])) fds++;
    } catch {
      // closed meanwhile
    }
  }
  const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))[1]) / 1024;
  const hexPort = `:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  const closeWait = table.filter((f) => f[1].endsWith(hexPort) && f[3] === "08").length;
  return { fds, rss: Number(rss.toFixed(1)), closeWait };
}

function startApp(rt) {
  return new Promise((resolve, reject) => {
    const [cmd, ...args] = RUN[rt];
    const env = { ...process.env, PORT: "0", HEADERS_TIMEOUT: "2000", IDLE_TIMEOUT: "1000", SHUTDOWN_TIMEOUT: "2000" };
    const child = spawn(cmd, [...args, app], { env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (c) => {
      out += c;
      const m = /\{"port":(\d+)\}/.exec(out);
      if (m) resolve({ child, port: Number(m[1]), url: `http://127.0.0.1:${m[1]}` });
    });
    child.stderr.resume();
    child.on("exit", (code) => reject(new Error(`${rt} dispatcher exited ${code}`)));
  });
}

async function workers(url) {
  const status = await (await fetch(`${url}/sync/status`)).json();
  return status.pools.find((p) => p.name === "main").workers;
}

async function soak(rt) {
  const s = await startApp(rt);
  await sleep(1000);
  const before = measure(s.child.pid, s.port);
  const until = Date.now() + SECONDS * 1000;
  const byStatus = {};
  const count = (key) => (byStatus[key] = (byStatus[key] ?? 0) + 1);
  const sockets = new Set();
  // Slow clients the dispatcher closed by itself (headersTimeout), and how long each had lived.
  const slowLived = [];
  let slowOpened = 0;
  const raw = (write, slow = false) => {
    const socket = net.connect(s.port, "127.0.0.1");
    const opened = Date.now();
    sockets.add(socket);
    socket.on("error", () => {});
    socket.on("close", () => {
      sockets.delete(socket);
      if (slow && !socket.closedHere) slowLived.push(Date.now() - opened);
    });
    socket.on("connect", () => write(socket));
    return socket;
  };
  const only = process.env.SOAK_ONLY;
  const loops = [
    // steady load
    ...Array.from({ length: only && only !== "load" ? 0 : 4 }, async () => {
      while (Date.now() < until) {
        try {
          const res = await fetch(`${s.url}/api/slow/5`);
          await res.arrayBuffer();
          count(res.status);
        } catch {
          count("no answer");
        }
      }
    }),
    // clients that leave mid-request and mid-body
    (async () => {
      while (Date.now() < until && (!only || only === "aborts")) {
        const abort = new AbortController();
        setTimeout(() => abort.abort(), 10);
        await fetch(`${s.url}/api/slow/50`, { signal: abort.signal }).catch(() => count("aborted"));
        raw((socket) => {
          socket.write("POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + "x".repeat(1000));
          setTimeout(() => socket.destroy(), 20);
        });
        await sleep(20);
      }
    })(),
    // slow clients: silent ones and header dribblers, 50 at a time
    (async () => {
      while (Date.now() < until && (!only || only === "slow")) {
        while (sockets.size < 50) {
          slowOpened++;
          raw((socket) => {
            if (Math.random() < 0.5) return;
            socket.write("GET /api/items HTTP/1.1\r\nHost: x\r\n");
            const timer = setInterval(() => socket.write("X-Drip: 1\r\n"), 500);
            socket.on("close", () => clearInterval(timer));
          }, true);
        }
        await sleep(200);
      }
    })(),
    // kill -9 of a worker 8 times in the run (more would pass maxRestarts and degrade the pool), a rolling reload
    // (SIGHUP) after every second kill
    (async () => {
      let kills = 0;
      while (Date.now() < until && (!only || only === "kills")) {
        await sleep(Math.max(2000, (SECONDS * 1000) / 8));
        const alive = (await workers(s.url).catch(() => [])).filter((w) => w.alive);
        if (alive.length > 0) {
          process.kill(alive[kills % alive.length].pid, "SIGKILL");
          kills++;
        }
        if (kills % 2 === 0) s.child.kill("SIGHUP");
      }
      count(`kills ${kills}`);
    })(),
  ];
  await Promise.all(loops);
  for (const socket of sockets) {
    socket.closedHere = true;
    socket.destroy();
  }
  await sleep(3000); // replaced processes reaped, closed sockets gone
  const after = measure(s.child.pid, s.port);
  const t0 = Date.now();
  s.child.kill("SIGTERM");
  const code = await new Promise((resolve) => s.child.once("exit", (c) => resolve(c)));
  s.child.removeAllListeners("exit");
  console.log(
    `${rt}: descriptors ${before.fds} -> ${after.fds}, RSS ${before.rss} -> ${after.rss} MiB, CLOSE_WAIT ${before.closeWait} -> ${after.closeWait}; ` +
      `answers ${JSON.stringify(byStatus)}; slow clients closed by the dispatcher ${slowLived.length} of ` +
      `${slowOpened} (headersTimeout 2 s), after ${median(slowLived)} ms (median); ` +
      `SIGTERM: exit ${code} after ${Date.now() - t0} ms`,
  );
}

for (const rt of runtimes) await soak(rt).catch((error) => console.log(`${rt}: ${error.message}`));
process.exit(0);
