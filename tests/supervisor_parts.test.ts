// The supervisor's pure parts, with a fake clock: no process, no timer, milliseconds to run.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { decideScale, type ScaleInput } from "../src/supervisor/autoscale.ts";
import type { Clock } from "../src/requests/clock.ts";
import { collectExpired, NO_DEADLINE, oldest } from "../src/requests/deadlines.ts";
import { atRequestLimit, dueByMemory, requestLimit } from "../src/supervisor/recycling.ts";
import { RequestQueue } from "../src/requests/request_queue.ts";
import { Backoff, RestartPolicy } from "../src/supervisor/restart_policy.ts";
import { KILL_GRACE, watch, type Watched } from "../src/supervisor/watchdog.ts";
import { chooseWorker } from "../src/supervisor/worker_choice.ts";

/** A clock that moves only when told. */
class FakeClock implements Clock {
  time = 1_000_000;
  now(): number {
    return this.time;
  }
  advance(ms: number): void {
    this.time += ms;
  }
}

describe("Backoff", () => {
  test("doubles from the first delay up to the longest, and starts again when reset", () => {
    const b = new Backoff(100, 1000);
    assert.deepEqual([b.next(), b.next(), b.next(), b.next(), b.next(), b.next()], [100, 200, 400, 800, 1000, 1000]);
    b.reset();
    assert.equal(b.peek(), 100);
    assert.equal(b.next(), 100);
  });

  test("a first delay of 0 restarts at once, then waits 1, 2, 4 ms", () => {
    const b = new Backoff(0, 30_000);
    assert.deepEqual([b.next(), b.next(), b.next(), b.next()], [0, 1, 2, 4]);
  });
});

describe("RestartPolicy", () => {
  const options = {
    restartDelay: 100,
    maxRestartDelay: 30_000,
    maxRestarts: 3,
    restartWindow: 10_000,
    minUptime: 5000,
  };

  test("degrades the pool at the restart past maxRestarts within the window, once", () => {
    const clock = new FakeClock();
    const policy = new RestartPolicy(options, clock);
    const decisions = [];
    for (let i = 0; i < 5; i++) {
      decisions.push(policy.crashed(0, 0));
      clock.advance(100);
    }
    assert.deepEqual(decisions.map((d) => d.degradedNow), [false, false, false, true, false]);
    assert.deepEqual(decisions.map((d) => d.recent), [1, 2, 3, 4, 5]);
    assert.equal(policy.degraded, true);
  });

  test("forgets restarts older than the window", () => {
    const clock = new FakeClock();
    const policy = new RestartPolicy(options, clock);
    for (let i = 0; i < 3; i++) {
      policy.crashed(i, 0);
      clock.advance(4000);
    }
    // The first restart is 12 s old now: 3 within the window, not degraded.
    const d = policy.crashed(3, 0);
    assert.equal(d.recent, 3);
    assert.equal(policy.degraded, false);
  });

  test("backs off per slot, and resets a slot whose process stayed up for minUptime", () => {
    const clock = new FakeClock();
    const policy = new RestartPolicy({ ...options, maxRestarts: 100 }, clock);
    assert.deepEqual([0, 0, 0].map(() => policy.crashed(0, 0).delay), [100, 200, 400]);
    assert.equal(policy.crashed(1, 0).delay, 100, "another slot has its own backoff");
    const readyAt = clock.now();
    clock.advance(4999);
    assert.equal(policy.crashed(0, readyAt).delay, 800, "up for less than minUptime: no reset");
    const readyAgain = clock.now();
    clock.advance(5000);
    assert.equal(policy.crashed(0, readyAgain).delay, 100, "up for minUptime: reset");
    policy.forget(0);
    assert.equal(policy.backoff(0).peek(), 100);
  });

  test("a degraded pool recovers once a worker has served for minUptime", () => {
    const clock = new FakeClock();
    const policy = new RestartPolicy({ ...options, maxRestarts: 0 }, clock);
    assert.equal(policy.crashed(0, 0).degradedNow, true);
    const readyAt = clock.now();
    clock.advance(4999);
    assert.equal(policy.serving(readyAt), false);
    clock.advance(1);
    assert.equal(policy.serving(readyAt), true);
    assert.equal(policy.degraded, false);
    assert.equal(policy.crashed(0, 0).degradedNow, true, "the window starts empty again after recovery");
  });
});

describe("RequestQueue", () => {
  test("is first in, first out; requests put back go first, in their order", () => {
    const q = new RequestQueue<number>();
    for (const n of [1, 2, 3]) q.push(n);
    assert.equal(q.shift(), 1);
    q.pushFront([10, 11]);
    assert.deepEqual([...q], [10, 11, 2, 3]);
    assert.equal(q.peek(), 10);
    assert.equal(q.size, 4);
    assert.deepEqual(q.takeAll(), [10, 11, 2, 3]);
    assert.equal(q.size, 0);
    assert.equal(q.shift(), undefined);
  });

  test("keeps its order across compaction", () => {
    const q = new RequestQueue<number>();
    let next = 0;
    let expected = 0;
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < 700; i++) q.push(next++);
      for (let i = 0; i < 600; i++) assert.equal(q.shift(), expected++);
    }
    assert.equal(q.size, next - expected);
    assert.deepEqual([...q], Array.from({ length: next - expected }, (_, i) => expected + i));
  });
});

describe("chooseWorker", () => {
  const w = (busy: number, late = false, ok = true) => ({ worker: { busy, late, ok } });
  const all = () => true;

  test("takes the worker with the fewest requests in progress", () => {
    const slots = [w(3), w(1), w(2)];
    assert.equal(chooseWorker(slots, 0, 32, all), slots[1].worker);
  });

  test("breaks ties round-robin from the start slot", () => {
    const slots = [w(0), w(0), w(0)];
    assert.equal(chooseWorker(slots, 0, 32, all), slots[0].worker);
    assert.equal(chooseWorker(slots, 1, 32, all), slots[1].worker);
    assert.equal(chooseWorker(slots, 2, 32, all), slots[2].worker);
    const busy = [w(1), w(1)];
    assert.equal(chooseWorker(busy, 1, 32, all), busy[1].worker);
  });

  test("uses a late worker only when no other can take the request", () => {
    const slots = [w(0, true), w(5)];
    assert.equal(chooseWorker(slots, 0, 32, all), slots[1].worker);
    assert.equal(chooseWorker(slots, 0, 5, all), slots[0].worker, "the others are full");
  });

  test("skips empty slots, full workers and those not available", () => {
    const slots = [{ worker: null }, w(2), w(0, false, false)];
    assert.equal(chooseWorker(slots, 0, 32, (x) => x.ok), slots[1].worker);
    assert.equal(chooseWorker(slots, 0, 2, (x) => x.ok), undefined);
    assert.equal(chooseWorker([], 0, 32, all), undefined);
  });
});

describe("deadlines", () => {
  test("collects what has passed its deadline, never a stream's", () => {
    const clock = new FakeClock();
    const t0 = clock.now();
    const a = { deadline: t0 + 100 };
    const b = { deadline: t0 + 200 };
    const s = { deadline: NO_DEADLINE };
    clock.advance(150);
    assert.deepEqual(collectExpired([a, undefined, b, s], clock.now(), []), [a]);
    clock.advance(50);
    assert.deepEqual(collectExpired([a, b, s], clock.now(), []), [a, b]);
  });

  test("the oldest request is the one with the earliest deadline", () => {
    const items = [{ deadline: 30 }, { deadline: 10 }, { deadline: 20 }];
    assert.equal(oldest(items), items[1]);
    assert.equal(oldest([]), null);
  });
});

describe("watch", () => {
  const opts = { heartbeatInterval: 1000, startupTimeout: 5000, stuckTimeout: 10_000 };
  const worker = (over: Partial<Watched>): Watched => ({
    state: "ready",
    startedAt: 0,
    lastSeen: 0,
    killAt: 0,
    ...over,
  });

  test("a worker is late after three missed heartbeats, and stuck after stuckTimeout", () => {
    assert.deepEqual(watch(worker({}), 3000, opts), { action: "none", late: false });
    assert.deepEqual(watch(worker({}), 3001, opts), { action: "none", late: true });
    assert.equal(watch(worker({}), 10_000, opts).action, "none");
    const verdict = watch(worker({}), 10_001, opts);
    assert.equal(verdict.action, "kill");
    assert.match(
      (verdict as { reason: string }).reason,
      /^stuck: no heartbeat for 10001 ms \(stuckTimeout 10000 ms\)$/,
    );
  });

  test("a starting worker is killed after startupTimeout, whatever its heartbeats", () => {
    assert.equal(watch(worker({ state: "starting", lastSeen: 5001 }), 5000, opts).action, "none");
    const verdict = watch(worker({ state: "starting", lastSeen: 5001 }), 5001, opts);
    assert.equal(verdict.action, "kill");
    assert.match((verdict as { reason: string }).reason, /startupTimeout 5000 ms/);
  });

  test("a killed worker that has not exited gets SIGKILL once its grace is over", () => {
    const killed = worker({ state: "killed", killAt: 100 + KILL_GRACE });
    assert.equal(watch(killed, 100 + KILL_GRACE - 1, opts).action, "none");
    assert.equal(watch(killed, 100 + KILL_GRACE, opts).action, "sigkill");
  });
});

describe("decideScale", () => {
  const opts = { minWorkers: 1, maxWorkers: 3, scaleUpDelay: 500, idleTimeout: 60_000 };
  const input = (over: Partial<ScaleInput>): ScaleInput => ({
    size: 1,
    queued: 0,
    waited: 0,
    starting: false,
    degraded: false,
    lastIdle: null,
    ...over,
  });

  test("grows while the oldest request has waited scaleUpDelay, one worker at a time", () => {
    assert.deepEqual(decideScale(input({ queued: 5, waited: 499 }), opts), { action: "none" });
    assert.deepEqual(decideScale(input({ queued: 5, waited: 500 }), opts), { action: "grow", waited: 500 });
    assert.deepEqual(decideScale(input({ queued: 5, waited: 900, starting: true }), opts), { action: "none" });
    assert.deepEqual(decideScale(input({ queued: 5, waited: 900, size: 3 }), opts), { action: "none" });
    assert.deepEqual(decideScale(input({ queued: 5, waited: 900, degraded: true }), opts), { action: "none" });
  });

  test("shrinks by the last worker once it was idle for idleTimeout, never below minWorkers", () => {
    assert.deepEqual(decideScale(input({ size: 2, lastIdle: 59_999 }), opts), { action: "none" });
    assert.deepEqual(decideScale(input({ size: 2, lastIdle: 60_000 }), opts), { action: "shrink", idle: 60_000 });
    assert.deepEqual(decideScale(input({ size: 1, lastIdle: 90_000 }), opts), { action: "none" });
    assert.deepEqual(decideScale(input({ size: 2, lastIdle: null }), opts), { action: "none" });
  });
});

describe("recycling", () => {
  test("a worker's request limit is maxRequests plus its jitter; 0 never", () => {
    const opts = { maxRequests: 100, maxRequestsJitter: 10, maxMemoryMb: 0 };
    assert.equal(requestLimit(opts, () => 0), 100);
    assert.equal(requestLimit(opts, () => 0.9999), 110);
    assert.equal(requestLimit({ ...opts, maxRequests: 0 }, () => 0.5), 0);
    assert.equal(atRequestLimit(99, 100), false);
    assert.equal(atRequestLimit(100, 100), true);
    assert.equal(atRequestLimit(1_000_000, 0), false);
  });

  test("memory over maxMemoryMb is due for replacement, with the size in the reason", () => {
    const opts = { maxRequests: 0, maxRequestsJitter: 0, maxMemoryMb: 100 };
    assert.equal(dueByMemory(100 * 1048576, opts), null);
    assert.equal(dueByMemory(150 * 1048576, opts), "memory 150 MiB over maxMemoryMb");
    assert.equal(dueByMemory(10 ** 12, { ...opts, maxMemoryMb: 0 }), null);
  });
});
