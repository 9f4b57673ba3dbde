// Remote pools checked apart from the project (issue 30's "done when"): nothing here imports forkyard, its test helpers
// or a NATS library. A real nats-server, worker hosts as processes (`cli.ts worker`), a dispatcher as a user would write
// one (tests/remote_checks/dispatcher.ts), started with the runtime running this file; NATS spoken by hand over
// node:net where a client without credentials is needed.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { connect, createServer, type Socket } from "node:net";
import { networkInterfaces } from "node:os";
import { fileURLToPath } from "node:url";

declare const Deno: { execPath(): string } | undefined;
declare const Bun: unknown;
const runtimeName = typeof Deno !== "undefined" ? "deno" : typeof Bun !== "undefined" ? "bun" : "node";
const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));
const cli = here("../cli.ts");
const dispatcherScript = here("./remote_checks/dispatcher.ts");
const workerModule = `${here("./remote_checks/render.ts")}:Render`;

/** This runtime's command for a script with decorators. */
function command(script: string): string[] {
  if (runtimeName === "deno") return [Deno!.execPath(), "run", "-A", script];
  if (runtimeName === "bun") return [process.execPath, script];
  return [process.execPath, "--import", "tsx", script];
}

/** Resolves once `check()` holds (`true`) or `ms` passed (`false`). */
async function until(check: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return true;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A process, its output so far, and its exit. */
function run(script: string, args: string[], env: Record<string, string>) {
  const [cmd, ...rest] = command(script);
  const child: ChildProcess = spawn(cmd, [...rest, ...args], { env: { ...process.env, ...env } });
  let out = "";
  let err = "";
  child.stdout!.on("data", (chunk) => (out += chunk));
  child.stderr!.on("data", (chunk) => (err += chunk));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return {
    child,
    exited,
    /**
     * Resolves whether it stopped gracefully after SIGTERM: exit status 0. Deno's node:child_process reports the signal
     * it sent instead, even when the child exits 0 by itself: there, the child's own "Shutting down" line counts.
     */
    async stoppedCleanly(): Promise<boolean> {
      const code = await exited;
      return code === 0 || (runtimeName === "deno" && child.signalCode === "SIGTERM" && err.includes("Shutting down"));
    },
    out: () => out,
    err: () => err,
    /** The first line of stdout that is JSON with `key`. */
    async json(key: string): Promise<Record<string, unknown>> {
      const ok = await until(() => out.split("\n").some((l) => l.startsWith("{") && l.includes(`"${key}"`)), 20_000);
      assert.ok(ok, `no ${key} from ${script}:\n${out}\n${err}`);
      return JSON.parse(out.split("\n").find((l) => l.startsWith("{") && l.includes(`"${key}"`))!);
    },
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** A nats-server on `address`, with `args`. */
async function natsServer(args: string[] = [], address = "127.0.0.1") {
  const port = await freePort();
  const child = spawn("nats-server", ["-a", address, "-p", String(port), ...args]);
  let out = "";
  child.stderr.on("data", (chunk) => (out += chunk));
  assert.ok(await until(() => out.includes("Server is ready"), 10_000), out);
  return { port, kill: () => child.kill("SIGKILL") };
}

/** A worker host of the pool, named `name`. */
async function startHost(nats: string, name: string) {
  const host = run(cli, ["worker", "--nats", nats, workerModule, "--name", name, "--concurrency", "1"], {
    CHECK_HOST: name,
  });
  await host.json("host");
  return host;
}

async function startDispatcher(nats: string, env: Record<string, string> = {}) {
  const app = run(dispatcherScript, [], { NATS_URL: nats, ...env });
  const { port } = await app.json("port");
  return { ...app, url: `http://127.0.0.1:${port}` };
}

/** `clients` loops of GET `path` until stopped; statuses counted, failures to connect too. */
function loadOn(url: string, clients: number, path: string) {
  const statuses: Record<string, number> = {};
  let running = true;
  const loops = Array.from({ length: clients }, async () => {
    while (running) {
      let status = "no answer";
      try {
        const res = await fetch(url + path);
        await res.text();
        status = String(res.status);
      } catch {
        // counted below
      }
      statuses[status] = (statuses[status] ?? 0) + 1;
    }
  });
  return {
    statuses,
    async stop() {
      running = false;
      await Promise.all(loops);
      return statuses;
    },
  };
}

/** The child processes of `pid`. */
function childrenOf(pid: number): number[] {
  try {
    return execFileSync("pgrep", ["-P", String(pid)]).toString().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** A NATS client spoken by hand: CONNECT, SUB, PUB, and the messages and errors it gets. */
function rawNats(port: number, connectOptions: Record<string, unknown> = {}) {
  const socket: Socket = connect(port, "127.0.0.1");
  const errors: string[] = [];
  const handlers = new Map<string, (subject: string, reply: string | undefined, payload: Buffer) => void>();
  let buffer = Buffer.alloc(0);
  let pongs = 0;
  socket.on("data", (chunk: Buffer) => {
    buffer = Buffer.concat([buffer, chunk]);
    for (;;) {
      const end = buffer.indexOf("\r\n");
      if (end < 0) return;
      const line = buffer.subarray(0, end).toString();
      if (line.startsWith("MSG ")) {
        const [, subject, sid, ...rest] = line.split(" ");
        const size = Number(rest.at(-1));
        if (buffer.length < end + 2 + size + 2) return;
        const payload = buffer.subarray(end + 2, end + 2 + size);
        buffer = buffer.subarray(end + 2 + size + 2);
        handlers.get(sid)?.(subject, rest.length === 2 ? rest[0] : undefined, Buffer.from(payload));
        continue;
      }
      buffer = buffer.subarray(end + 2);
      if (line === "PING") socket.write("PONG\r\n");
      else if (line === "PONG") pongs++;
      else if (line.startsWith("-ERR")) errors.push(line);
    }
  });
  socket.on("error", () => {});
  socket.write(`CONNECT ${JSON.stringify({ verbose: false, pedantic: false, ...connectOptions })}\r\nPING\r\n`);
  let sids = 0;
  return {
    errors,
    /** Resolves once the server answered a PING (or said why not). */
    ready: () => until(() => pongs > 0 || errors.length > 0, 5000),
    sub(subject: string, handler: (subject: string, reply: string | undefined, payload: Buffer) => void) {
      const sid = String(++sids);
      handlers.set(sid, handler);
      socket.write(`SUB ${subject} ${sid}\r\n`);
    },
    pub(subject: string, payload: Uint8Array, reply?: string) {
      socket.write(`PUB ${subject}${reply ? ` ${reply}` : ""} ${payload.length}\r\n`);
      socket.write(payload);
      socket.write("\r\n");
    },
    close: () => socket.destroy(),
  };
}

/** A remote pool message as docs/remote.md and src/remote/messages.ts describe it: type, header length, header, body. */
function message(type: number, header: unknown, body: Uint8Array = new Uint8Array(0)): Uint8Array {
  const json = Buffer.from(JSON.stringify(header));
  const out = Buffer.alloc(5 + json.length + body.length);
  out[0] = type;
  out.writeUInt32BE(json.length, 1);
  json.copy(out, 5);
  Buffer.from(body).copy(out, 5 + json.length);
  return out;
}

describe(`remote pools, checked apart (${runtimeName})`, () => {
  let nats: { port: number; kill(): void };
  let url: string;
  before(async () => {
    nats = await natsServer();
    url = `nats://127.0.0.1:${nats.port}`;
  });
  after(() => nats.kill());

  test("the whole answer crosses: status, every header, each Set-Cookie; 3 MiB of random bytes both ways", async () => {
    const host = await startHost(url, "check-a");
    const app = await startDispatcher(url);
    try {
      const made = await fetch(`${app.url}/render/made`);
      assert.equal(made.status, 201);
      assert.deepEqual(made.headers.getSetCookie(), ["session=abc; HttpOnly", "theme=dark; Path=/"]);
      assert.equal(made.headers.get("cache-control"), "no-store");
      assert.equal(made.headers.get("x-made-by"), "render");
      assert.equal(await made.text(), "made");
      const body = randomBytes(3 * 1024 * 1024 + 7);
      const echo = await fetch(`${app.url}/render/echo`, { method: "POST", body });
      assert.equal(echo.status, 200);
      assert.ok(Buffer.from(await echo.arrayBuffer()).equals(body), "the bytes came back as sent");
    } finally {
      app.child.kill("SIGTERM");
      host.child.kill("SIGTERM");
      assert.ok(await app.stoppedCleanly(), app.err());
      assert.ok(await host.stoppedCleanly(), host.err());
    }
  });

  test("SIGTERM to a host and its workers under load (as systemd stops it): no request fails", async () => {
    const hosts = [await startHost(url, "check-b"), await startHost(url, "check-c")];
    const app = await startDispatcher(url);
    try {
      const load = loadOn(app.url, 6, "/render/slow/5");
      await sleep(1500);
      const workers = childrenOf(hosts[0].child.pid!);
      assert.ok(workers.length > 0);
      hosts[0].child.kill("SIGTERM");
      for (const pid of workers) process.kill(pid, "SIGTERM");
      assert.ok(await hosts[0].stoppedCleanly(), hosts[0].err());
      await sleep(1000);
      const statuses = await load.stop();
      assert.deepEqual(Object.keys(statuses), ["200"], JSON.stringify(statuses));
    } finally {
      app.child.kill("SIGTERM");
      for (const h of hosts) h.child.kill("SIGTERM");
      await app.exited;
    }
  });

  test("SIGKILL of a host under load, with retryIdempotent: no GET fails", async () => {
    const hosts = [await startHost(url, "check-d"), await startHost(url, "check-e")];
    const app = await startDispatcher(url, { RETRY: "1" });
    try {
      const load = loadOn(app.url, 6, "/render/slow/20");
      await sleep(1500);
      for (const pid of childrenOf(hosts[0].child.pid!)) process.kill(pid, "SIGKILL");
      hosts[0].child.kill("SIGKILL");
      // Three missed heartbeats (3 s), and a while after.
      await sleep(4500);
      const statuses = await load.stop();
      assert.deepEqual(Object.keys(statuses), ["200"], JSON.stringify(statuses));
    } finally {
      app.child.kill("SIGTERM");
      for (const h of hosts) h.child.kill("SIGKILL");
      await app.exited;
    }
  });

  test("a NATS client without credentials on an open server sees requests, but what it answers reaches no client", async () => {
    const host = await startHost(url, "check-f");
    const app = await startDispatcher(url);
    const intruder = rawNats(nats.port);
    try {
      assert.ok(await intruder.ready());
      let seen = 0;
      intruder.sub("forkyard.Render", (_subject, reply) => {
        if (reply === undefined) return;
        seen++;
        const a = "0123456789abcdef";
        intruder.pub(reply, message(16, { h: "intruder", n: "intruder", a }));
        intruder.pub(reply, message(17, { s: 200, n: 8, a }, Buffer.from("injected")));
      });
      await sleep(200);
      for (let i = 0; i < 20; i++) {
        const res = await fetch(`${app.url}/render/who`);
        assert.equal(res.status, 200);
        assert.deepEqual(await res.json(), { host: "check-f" });
      }
      assert.ok(seen >= 20, `the intruder saw ${seen} requests`);
    } finally {
      intruder.close();
      app.child.kill("SIGTERM");
      host.child.kill("SIGTERM");
      await app.exited;
      await host.exited;
    }
  });

  test("a server with authentication lets no client in without credentials", async () => {
    const secured = await natsServer(["--auth", "check-token-123"]);
    try {
      const stranger = rawNats(secured.port);
      assert.ok(await stranger.ready());
      assert.match(stranger.errors.join("\n"), /Authorization Violation/);
      stranger.close();
    } finally {
      secured.kill();
    }
  });

  const outside = Object.values(networkInterfaces()).flat().find((a) => a?.family === "IPv4" && !a.internal)?.address;
  test("a dispatcher that a server beyond loopback lets in without credentials does not start", {
    skip: outside === undefined ? "no address beyond loopback" : false,
  }, async () => {
    const open = await natsServer([], "0.0.0.0");
    try {
      const app = run(dispatcherScript, [], { NATS_URL: `nats://${outside}:${open.port}` });
      const code = await app.exited;
      assert.notEqual(code, 0);
      assert.match(app.err(), /without credentials/);
      assert.match(app.err(), /insecure/);
    } finally {
      open.kill();
    }
  });
});
