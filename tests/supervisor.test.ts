// The supervisor put together, without a process: a fake runtime whose "processes" are frame codecs in memory,
// answering as a scripted worker would, and a fake clock for deadlines and restarts.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { Logger } from "@logtape/logtape";
import { WorkerPool, type WorkerPoolOptions } from "../src/pool.ts";
import { FrameDecoder, FrameWriter } from "../src/protocol/codec.ts";
import { F, type RequestHeader } from "../src/protocol/frames.ts";
import type { ChildProcess, ExitStatus, Runtime, SpawnOptions } from "../src/runtime.ts";
import type { Clock } from "../src/requests/clock.ts";
import { Supervisor } from "../src/supervisor/supervisor.ts";
import { eventually } from "./helpers.ts";
import type { AdapterRequest } from "../src/runtime.ts";

/** How a fake worker answers a request: a status, or `null` to never answer. */
type Script = (wire: RequestHeader, worker: FakeWorker) => number | null;

/** A "process" that speaks the protocol in memory. */
class FakeWorker implements ChildProcess {
  static nextPid = 1000;
  readonly pid = FakeWorker.nextPid++;
  readonly exited: Promise<ExitStatus>;
  readonly cancelled: number[] = [];
  readonly handled: number[] = [];
  #exit!: (status: ExitStatus) => void;
  #out: FrameWriter;
  #in: FrameDecoder;
  #alive = true;

  constructor(options: SpawnOptions, script: Script) {
    this.exited = new Promise((resolve) => (this.#exit = resolve));
    this.#out = new FrameWriter((data) => {
      if (this.#alive) options.onStdout(data.slice());
      return undefined;
    });
    this.#in = new FrameDecoder((type, header) => {
      if (type === F.INIT) this.#out.send(F.READY);
      else if (type === F.REQUEST) {
        const wire = header as RequestHeader;
        this.handled.push(wire.i);
        const status = script(wire, this);
        if (status !== null) this.#out.send(F.RESPONSE, { i: wire.i, s: status }, `{"pid":${this.pid}}`);
      } else if (type === F.CANCEL) this.cancelled.push((header as { i: number }).i);
      else if (type === F.STOP) this.crash(0);
    });
  }

  write(data: Uint8Array): undefined {
    if (this.#alive) this.#in.push(data);
    return undefined;
  }
  closeStdin(): void {
    this.crash(0);
  }
  kill(signal = "SIGTERM"): void {
    if (!this.#alive) return;
    this.#alive = false;
    setImmediate(() => this.#exit({ code: null, signal }));
  }
  /** Exits with `code`. */
  crash(code: number): void {
    if (!this.#alive) return;
    this.#alive = false;
    setImmediate(() => this.#exit({ code, signal: null }));
  }
}

class FakeClock implements Clock {
  time = 5_000_000;
  now(): number {
    return this.time;
  }
}

function fakeRuntime(script: Script, workers: FakeWorker[]): Runtime {
  return {
    name: "node",
    pid: 1,
    setHeaderAfter: false,
    selfCommand: (script: string) => ["fake", script],
    spawn: (options: SpawnOptions) => {
      const w = new FakeWorker(options, script);
      workers.push(w);
      return w;
    },
    spill: () => null,
    mainModule: () => "/fake/main.ts",
    args: () => [],
    env: () => undefined,
  } as unknown as Runtime;
}

const quiet = new Proxy({}, { get: () => () => {} }) as Logger;

function setup(script: Script, options: WorkerPoolOptions = {}) {
  const clock = new FakeClock();
  const workers: FakeWorker[] = [];
  const pool = new WorkerPool("Fake", { module: "file:///fake/worker.ts", restartDelay: 0, ...options });
  const finished: number[] = [];
  const supervisor = new Supervisor(pool, {
    runtime: fakeRuntime(script, workers),
    finished: (p) => finished.push(p.requestId),
    log: () => {},
    logger: quiet,
    clock,
  });
  let nextId = 1;
  const request = (method = "GET"): Promise<Response> =>
    new Promise((resolve) => {
      const id = nextId++;
      const wire: RequestHeader = { i: id, m: method, p: "/", q: "", h: [] };
      const request = new Request("http://x/");
      const adapter = {} as AdapterRequest;
      supervisor.request({
        kind: "client",
        id,
        wire,
        body: new Uint8Array(0),
        resolve,
        request,
        adapter,
        upgrade: null,
        observe: null,
      });
    });
  return { clock, workers, supervisor, request, finished };
}

/** Resolves once `check` holds (within 5 s), else fails. */
async function until(check: () => boolean): Promise<void> {
  assert.ok(await eventually(check, 5000), "condition not reached");
}

describe("Supervisor with a fake runtime", () => {
  test("starts its workers, spreads requests over them and answers each", async () => {
    const s = setup(() => 200, { workers: 2 });
    s.supervisor.start();
    await s.supervisor.settled();
    assert.equal(s.workers.length, 2);
    const answers = await Promise.all([s.request(), s.request(), s.request(), s.request()]);
    assert.deepEqual(answers.map((r) => r.status), [200, 200, 200, 200]);
    const pids = new Set(await Promise.all(answers.map(async (r) => (await r.json()).pid)));
    assert.equal(pids.size, 2, "both workers served");
    assert.deepEqual(s.finished.sort(), [1, 2, 3, 4]);
    await s.supervisor.stop(100);
  });

  test("times a request out at its deadline (fake clock): 504 to the client, CANCEL to the worker", async () => {
    const s = setup(() => null, { timeout: 1000 });
    s.supervisor.start();
    await s.supervisor.settled();
    const answer = s.request();
    await until(() => s.workers[0].handled.length === 1);
    s.clock.time += 999;
    s.supervisor.tick(s.clock.now());
    s.clock.time += 1;
    s.supervisor.tick(s.clock.now());
    const response = await answer;
    assert.equal(response.status, 504);
    assert.deepEqual(await response.json(), { error: "Request timeout" });
    await until(() => s.workers[0].cancelled.length === 1);
    await s.supervisor.stop(100);
  });

  test("a worker that dies fails its requests with 502 and is replaced in its slot", async () => {
    const s = setup((wire, worker) => {
      if (wire.m === "POST") {
        worker.crash(1);
        return null;
      }
      return 200;
    });
    s.supervisor.start();
    await s.supervisor.settled();
    const response = await s.request("POST");
    assert.equal(response.status, 502);
    await until(() => s.workers.length === 2 && s.supervisor.status().workers[0].alive);
    const status = s.supervisor.status().workers[0];
    assert.equal(status.restarts, 1);
    assert.equal(status.pid, s.workers[1].pid);
    assert.match(status.lastExitReason ?? "", /died \(code 1\)/);
    assert.equal((await s.request()).status, 200);
    await s.supervisor.stop(100);
  });

  test("retries an idempotent request once on another worker when its worker dies (retryIdempotent)", async () => {
    let first = true;
    const s = setup((_wire, worker) => {
      if (first) {
        first = false;
        worker.crash(1);
        return null;
      }
      return 200;
    }, { workers: 2, retryIdempotent: true });
    s.supervisor.start();
    await s.supervisor.settled();
    const response = await s.request("GET");
    assert.equal(response.status, 200);
    await s.supervisor.stop(100);
  });

  test("degrades past maxRestarts: in flight 502, queued 503, and degraded shows in status", async () => {
    const s = setup((_wire, worker) => {
      worker.crash(1);
      return null;
    }, { maxRestarts: 0, concurrency: 1 });
    s.supervisor.start();
    await s.supervisor.settled();
    const first = s.request("POST");
    const queued = s.request("POST");
    assert.equal((await first).status, 502);
    const response = await queued;
    assert.equal(response.status, 503);
    assert.deepEqual(await response.json(), { error: "Service unavailable" });
    assert.equal(s.supervisor.degraded, true);
    assert.equal(s.supervisor.status().degraded, true);
    await s.supervisor.stop(100);
  });

  test("recycles a worker at maxRequests: the replacement is ready before the old one stops", async () => {
    const s = setup(() => 200, { maxRequests: 3 });
    s.supervisor.start();
    await s.supervisor.settled();
    const pids: number[] = [];
    for (let i = 0; i < 7; i++) pids.push((await (await s.request()).json()).pid);
    assert.deepEqual(pids.slice(0, 3), [s.workers[0].pid, s.workers[0].pid, s.workers[0].pid]);
    assert.ok(!pids.slice(3).includes(s.workers[0].pid), `the first process took more than 3: ${pids}`);
    assert.ok(s.workers.length >= 3, "replaced twice");
    await s.supervisor.stop(100);
  });
});
