// The request lifecycle alone, with a fake clock and fake servers: what local and remote pools share (deadlines,
// keepAlive, timeouts that withdraw the request from its server, retries after a lost server, 499 for a client that
// left while queued, relayed answers and failures as frames).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { Logger } from "@logtape/logtape";
import { WorkerPool, type WorkerPoolOptions } from "../src/pool.ts";
import { type ResponseHeader, STREAM_WINDOW } from "../src/protocol/frames.ts";
import type { Clock } from "../src/requests/clock.ts";
import type { ClientRequest, Pending, RelaySink } from "../src/requests/pending.ts";
import { RequestLifecycle, type Servers } from "../src/requests/request_lifecycle.ts";
import type { AdapterRequest, Runtime } from "../src/runtime.ts";

const quiet = new Proxy({}, { get: () => () => {} }) as Logger;
const runtime = { setHeaderAfter: false, spill: () => null } as unknown as Runtime;

/** Servers that take up to `room` requests, and remember what they were told. */
class FakeServers implements Servers<string> {
  room: number;
  readonly held = new Set<Pending<string>>();
  readonly withdrawn: [number, string][] = [];
  readonly credited: number[] = [];
  constructor(room: number) {
    this.room = room;
  }
  offer(p: Pending<string>): boolean {
    if (this.held.size >= this.room) return false;
    p.servedBy = "server";
    this.held.add(p);
    return true;
  }
  withdraw(p: Pending<string>, why: string): void {
    this.held.delete(p);
    this.withdrawn.push([p.requestId, why]);
  }
  inflight(): Iterable<Pending<string>> {
    return this.held;
  }
  credit(_p: Pending<string>, bytes: number): void {
    this.credited.push(bytes);
  }
  /** The server is gone: its requests are handed back. */
  lose(): Pending<string>[] {
    const lost = [...this.held];
    this.held.clear();
    return lost;
  }
}

function setup(room: number, options: WorkerPoolOptions = {}) {
  const clock: Clock & { time: number } = { time: 1_000_000, now: () => clock.time };
  const pool = new WorkerPool("Fake", { module: "file:///fake.ts", timeout: 1000, ...options });
  const finished: number[] = [];
  const servers = new FakeServers(room);
  const requests = new RequestLifecycle<string>(
    { pool, runtime, finished: (p) => finished.push(p.requestId), log: quiet, clock },
    () => servers,
  );
  const answers = new Map<number, Response>();
  let nextId = 1;
  const client = (method = "GET", signal = new AbortController().signal) => {
    const id = nextId++;
    const request: ClientRequest = {
      kind: "client",
      id,
      wire: { i: id, m: method, p: "/", q: "", h: [] },
      body: new Uint8Array(0),
      resolve: (response) => answers.set(id, response),
      request: new Request("http://x/", { signal }),
      adapter: {} as AdapterRequest,
      upgrade: null,
      observe: null,
    };
    return requests.admit(request);
  };
  return { clock, requests, servers, answers, finished, client };
}

describe("request lifecycle", () => {
  test("a timeout answers 504 and withdraws the request from its server; keepAlive gives it its time again", () => {
    const s = setup(2);
    const [a, b, c] = [s.client(), s.client(), s.client()];
    assert.deepEqual([a.state, b.state, c.state], ["sent", "sent", "queued"]);
    s.clock.time += 600;
    s.requests.keepAlive(a);
    s.clock.time += 400;
    s.requests.expire(s.clock.now());
    assert.equal(s.answers.get(b.requestId)?.status, 504);
    assert.equal(s.answers.get(c.requestId)?.status, 504, "queued as long: timed out too");
    assert.deepEqual(s.servers.withdrawn, [[b.requestId, "timeout"]]);
    assert.equal(a.state, "sent", "kept alive");
    s.clock.time += 600;
    s.requests.expire(s.clock.now());
    assert.equal(s.answers.get(a.requestId)?.status, 504);
    assert.deepEqual(s.finished.sort(), [a.requestId, b.requestId, c.requestId].sort());
  });

  test("a streamed answer holds at most a window; the bytes its reader takes go back to its server as credit", async () => {
    const s = setup(1);
    const p = s.client();
    s.requests.startStream(p, { i: p.requestId, s: 200, h: [] }, () => {});
    const chunk = new Uint8Array(64 * 1024);
    const chunks = (2 * STREAM_WINDOW) / chunk.length;
    for (let i = 0; i < chunks; i++) s.requests.chunk(p, chunk);
    // Nothing read yet: no credit, whatever the server sent.
    assert.deepEqual(s.servers.credited, []);
    const reader = s.answers.get(p.requestId)!.body!.getReader();
    let read = 0;
    for (let i = 0; i < chunks; i++) read += (await reader.read()).value!.length;
    await new Promise((r) => setTimeout(r, 0));
    const credited = s.servers.credited.reduce((a, b) => a + b, 0);
    // Given back in batches of a quarter window at least, never more than was read.
    assert.ok(s.servers.credited.every((n) => n >= STREAM_WINDOW / 4), JSON.stringify(s.servers.credited));
    assert.ok(credited <= read && credited >= read - STREAM_WINDOW / 4, `credited ${credited} of ${read}`);
    s.requests.endStream(p, false);
    assert.equal((await reader.read()).done, true);
  });

  test("a lost server: GET goes to another with retryIdempotent, POST gets 502; a client gone while queued, 499", () => {
    const s = setup(2, { retryIdempotent: true });
    const get = s.client("GET");
    const post = s.client("POST");
    const left = new AbortController();
    const queued = s.client("GET", left.signal);
    left.abort();
    s.requests.lost(s.servers.lose());
    assert.equal(s.answers.get(post.requestId)?.status, 502);
    assert.equal(get.state, "sent", "retried at once: a server has room");
    assert.equal(get.retried, true);
    assert.equal(s.answers.get(queued.requestId)?.status, 499);
    s.requests.lost(s.servers.lose());
    assert.equal(s.answers.get(get.requestId)?.status, 502, "retried once only");
  });

  test("a relayed request's answer and failures leave as frames, never as a Response", () => {
    const s = setup(1);
    const frames: unknown[] = [];
    const sink: RelaySink = {
      whole: (head, body) => frames.push(["whole", head, new TextDecoder().decode(body)]),
      start: (head) => frames.push(["start", head]),
      chunk: (body) => frames.push(["chunk", body.length]),
      end: (failed) => frames.push(["end", failed]),
      keptAlive: () => frames.push(["keptAlive"]),
    };
    const relayed = (id: number) =>
      s.requests.admit({
        kind: "relayed",
        sink,
        id,
        wire: { i: id, m: "GET", p: "/", q: "", h: [] },
        body: [],
        resolve: null,
      });
    const p = relayed(100);
    const head: ResponseHeader = { i: 100, s: 201, k: 3, h: ["set-cookie", "a=1", "set-cookie", "b=2"] };
    s.requests.keepAlive(p);
    s.requests.complete(p, head, new TextEncoder().encode("made"), false);
    const q = relayed(101);
    s.clock.time += 2000;
    s.requests.expire(s.clock.now());
    assert.deepEqual(frames, [
      ["keptAlive"],
      ["whole", head, "made"],
      ["whole", { i: 101, s: 504, k: 0 }, '{"error":"Request timeout"}'],
    ]);
    assert.equal(q.state, "done");
  });
});
