// Remote pools trust nothing from NATS: an intruder on an open server cannot answer a request a host took, malformed
// messages are dropped and counted, a server beyond loopback that takes no credentials is refused (protected mode),
// and the permissions docs/remote.md gives work as given against a real nats-server configured with exactly them.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { eventually, fixture, pattern, runtime, start } from "./helpers.ts";
import { startDispatcher, startHost } from "./remote_hosts.ts";
import { startNats } from "./nats_server.ts";
import {
  ackToken,
  encode,
  isAck,
  isDirect,
  isHostLog,
  isRemoteRequest,
  jsonMessage,
  M,
} from "../src/remote/messages.ts";
import { hasCredentials, isLoopback } from "../src/remote_options.ts";

const SUBJECT = "forkyard.Render";

/** This machine's first address beyond loopback, if it has one. */
const outside = Object.values(networkInterfaces()).flat().find((a) => a?.family === "IPv4" && !a.internal)?.address;

/** The value of a metric sample in exposition text, or undefined. */
function sample(text: string, name: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

describe(`messages from NATS are checked (${runtime.name})`, () => {
  test("requests, acknowledgements, messages to a host and log records have their types, or are refused", () => {
    const request = { w: { i: 1, m: "GET", p: "/render/who", q: "", h: ["accept", "*/*"] }, n: 0, t: 1000 };
    assert.ok(isRemoteRequest(request));
    assert.ok(isRemoteRequest({ ...request, w: { ...request.w, a: "::ffff:10.0.0.1", e: 1 } }));
    for (
      const bad of [
        { ...request, w: { ...request.w, p: "render/who" } },
        { ...request, w: { ...request.w, m: "GET /x" } },
        { ...request, w: { ...request.w, h: ["odd"] } },
        { ...request, w: { ...request.w, h: [1, 2] } },
        { ...request, w: { ...request.w, u: 2 } },
        { ...request, w: { ...request.w, a: ["10.0.0.1"] } },
        { ...request, w: { ...request.w, a: "x".repeat(65) } },
        { ...request, w: { ...request.w, e: true } },
        { ...request, n: -1 },
        { ...request, t: 0 },
        { w: null, n: 0, t: 1 },
      ]
    ) assert.equal(isRemoteRequest(bad), false, JSON.stringify(bad));
    const ack = { h: "host-1", n: "host", a: ackToken() };
    assert.ok(isAck(ack));
    assert.match(ack.a, /^[0-9a-f]{16}$/);
    for (const bad of [{ ...ack, a: "guess" }, { ...ack, h: "a.b" }, { ...ack, h: ">" }, { ...ack, n: 5 }]) {
      assert.equal(isAck(bad), false, JSON.stringify(bad));
    }
    assert.ok(isDirect({ k: "_INBOX.forkyard.x.1.1", w: "timeout" }));
    assert.equal(isDirect({ k: 5 }), false);
    assert.equal(isDirect({ k: "x", w: "now" }), false);
    const log = { host: "h", r: { c: ["app"], l: "info", m: "hi", t: 1, p: {} } };
    assert.ok(isHostLog(log));
    assert.equal(isHostLog({ ...log, r: { ...log.r, l: "loud" } }), false);
    assert.equal(isHostLog({ ...log, r: { ...log.r, c: "forkyard.access" } }), false);
    assert.equal(isHostLog({ host: 5, r: log.r }), false);
  });

  test("protected mode: what counts as credentials and as loopback", () => {
    assert.equal(hasCredentials({ nats: "nats://10.0.0.5:4222" }), false);
    assert.equal(hasCredentials({ nats: "nats://t0ken@10.0.0.5:4222" }), true);
    assert.equal(hasCredentials({ nats: "nats://u:p@10.0.0.5:4222" }), true);
    assert.equal(hasCredentials({ nats: "tls://10.0.0.5:4222", tls: { certFile: "c.pem", keyFile: "k.pem" } }), true);
    assert.equal(hasCredentials({ nats: "tls://10.0.0.5:4222", tls: { caFile: "ca.pem" } }), false);
    for (const server of ["127.0.0.1:4222", "127.1.2.3:4222", "localhost:4222", "[::1]:4222", "::1"]) {
      assert.equal(isLoopback(server), true, server);
    }
    for (const server of ["10.0.0.5:4222", "0.0.0.0:4222", "nats.internal:4222", "128.0.0.1:4222"]) {
      assert.equal(isLoopback(server), false, server);
    }
  });
});

describe(`remote pools trust nothing from NATS (${runtime.name})`, () => {
  test("an intruder on an open server sees requests but its answers never reach a client; malformed messages are dropped and counted", async () => {
    const nats = await startNats();
    const host = await startHost(nats.url, "host-real");
    const app = await startDispatcher(nats.url, { ADMIN: "127.0.0.1:0" });
    const intruder = await connect({ servers: nats.url });
    try {
      // It answers every request it sees at once, as a host would: acknowledgement and answer.
      let seen = 0;
      intruder.subscribe(SUBJECT, {
        callback: (_e, msg) => {
          if (msg.reply === undefined) return;
          seen++;
          const a = ackToken();
          intruder.publish(msg.reply, encode(M.ACK, { h: "intruder", n: "intruder", a }));
          intruder.publish(msg.reply, encode(M.ANSWER, { s: 200, n: 8, a }, new TextEncoder().encode("injected")));
        },
      });
      await intruder.flush();
      for (let i = 0; i < 20; i++) {
        const res = await fetch(`${app.url}/render/who`);
        assert.equal(res.status, 200);
        assert.equal((await res.json()).host, "host-real");
      }
      assert.ok(seen >= 20, `the intruder saw ${seen} requests`);
      // Garbage on every subject a dispatcher or a host reads. The intruder's answers were counted as they came (none
      // once a request's real answer was in): the count goes on from where they left it.
      const metrics = async () => await (await fetch(`http://127.0.0.1:${app.admin}/metrics`)).text();
      const dropped = async () => sample(await metrics(), `forkyard_nats_dropped_total{pool="Render"}`) ?? 0;
      const before = await dropped();
      intruder.publish(`${SUBJECT}.hb`, new TextEncoder().encode("not json"));
      intruder.publish(`${SUBJECT}.hb`, jsonMessage({ id: "x", name: "x", pid: "<b>", free: 1, slots: 1 }));
      intruder.publish(`${SUBJECT}.log`, jsonMessage({ host: "x", r: { c: ["forkyard", "access"], l: "loud" } }));
      intruder.publish(SUBJECT, encode(M.REQUEST, { w: { m: "GET", p: "no-slash" }, n: 0, t: 1 }), { reply: "r.1" });
      intruder.publish(`${SUBJECT}.host.${host.host}`, encode(M.CANCEL, { k: 5 }));
      await intruder.flush();
      // Two heartbeats and a log record reach the dispatcher.
      assert.ok(await eventually(async () => (await dropped()) >= before + 3, 5000), await metrics());
      assert.equal(app.stderr().match(/dropped a malformed/g)?.length, 1, app.stderr());
      assert.ok(await eventually(() => /Dropped a malformed request from NATS/.test(host.stderr()), 5000));
      assert.equal(host.stderr().match(/Dropped a malformed/g)?.length, 1, host.stderr());
      assert.doesNotMatch(app.stderr(), /forkyard\.access.*loud/);
      // Still serving.
      assert.equal((await (await fetch(`${app.url}/render/who`)).json()).host, "host-real");
    } finally {
      await intruder.close();
      assert.equal((await app.stop()).code, 0);
      assert.equal((await host.stop()).code, 0);
      await nats.kill();
    }
  });

  test("a client-left cancel an intruder repeats tells the host's worker once, and the request is still answered", async () => {
    const nats = await startNats();
    const host = await startHost(nats.url, "host-told", ["--workers", "1"]);
    const app = await startDispatcher(nats.url);
    const intruder = await connect({ servers: nats.url });
    try {
      // It snoops the reply subject of each request, which names the request in messages to its host.
      const replies: string[] = [];
      intruder.subscribe(SUBJECT, {
        callback: (_e, msg) => {
          if (msg.reply !== undefined) replies.push(msg.reply);
        },
      });
      await intruder.flush();
      const disconnects = async () => (await (await fetch(`${app.url}/render/disconnects`)).json()).disconnects;
      const before = await disconnects();
      const seen = replies.length;
      const slow = fetch(`${app.url}/render/slow/1500`);
      assert.ok(await eventually(() => replies.length > seen, 5000), "the intruder saw no request");
      const k = replies[replies.length - 1];
      for (let i = 0; i < 5; i++) intruder.publish(`${SUBJECT}.host.${host.host}`, encode(M.CANCEL, { k, w: "left" }));
      await intruder.flush();
      const answer = await slow;
      assert.equal(answer.status, 200);
      assert.equal((await answer.json()).host, "host-told");
      assert.equal(await disconnects(), before + 1);
    } finally {
      await intruder.close();
      assert.equal((await app.stop()).code, 0);
      assert.equal((await host.stop()).code, 0);
      await nats.kill();
    }
  });

  test("protected mode: a server beyond loopback that takes no credentials is refused with one line, unless insecure", {
    skip: outside === undefined ? "no address beyond loopback" : false,
  }, async () => {
    const nats = await startNats([], "0.0.0.0");
    const url = `nats://${outside}:${nats.port}`;
    try {
      const refusedHost = start(fixture("../../cli.ts"), ["worker", "--nats", url, fixture("remote_worker.ts:Render")]);
      assert.equal((await refusedHost.exited).code, 1);
      assert.match(refusedHost.stderr(), /^forkyard: .*without credentials.*--nats-insecure/m);
      const refused = start(fixture("remote_dispatcher.ts"), [], { NATS_URL: url });
      assert.equal((await refused.exited).code, 3);
      assert.match(refused.stderr(), /Cannot start pool "Render": .*without credentials.*insecure: true/);
      const host = await startHost(url, "host-insecure", ["--nats-insecure"]);
      const app = await startDispatcher(url, { NATS_INSECURE: "1" });
      try {
        assert.equal((await (await fetch(`${app.url}/render/who`)).json()).host, "host-insecure");
      } finally {
        assert.equal((await app.stop()).code, 0);
        assert.equal((await host.stop()).code, 0);
      }
    } finally {
      await nats.kill();
    }
    // The same server with a token: let in beyond loopback without the opt-out.
    const secured = await startNats(["--auth", "t0ken-for-forkyard"], "0.0.0.0");
    const tokenUrl = `nats://t0ken-for-forkyard@${outside}:${secured.port}`;
    try {
      const host = await startHost(tokenUrl, "host-token");
      const app = await startDispatcher(tokenUrl);
      try {
        assert.equal((await (await fetch(`${app.url}/render/who`)).json()).host, "host-token");
      } finally {
        assert.equal((await app.stop()).code, 0);
        assert.equal((await host.stop()).code, 0);
      }
    } finally {
      await secured.kill();
    }
  });

  test("the permissions of docs/remote.md, exactly: everything works; no credentials, forged requests and snooping are refused", async () => {
    const dir = mkdtempSync(join(tmpdir(), "forkyard-nats-perms-"));
    const config = join(dir, "nats.conf");
    // As docs/remote.md gives them, for S = forkyard.Render.
    writeFileSync(
      config,
      `authorization {
  users = [
    {
      user: dispatcher, password: d-secret
      permissions: {
        publish: ["${SUBJECT}", "${SUBJECT}.host.>", "${SUBJECT}.hello", "${SUBJECT}.config", "${SUBJECT}.ctl"]
        subscribe: ["_INBOX.forkyard.>", "${SUBJECT}.hb", "${SUBJECT}.log", "${SUBJECT}.pub"]
      }
    }
    {
      user: host, password: h-secret
      permissions: {
        publish: ["${SUBJECT}.hb", "${SUBJECT}.log", "${SUBJECT}.pub"]
        subscribe: ["${SUBJECT} forkyard", "${SUBJECT}.host.>", "${SUBJECT}.hello", "${SUBJECT}.config", "${SUBJECT}.ctl"]
        allow_responses: { max: -1, expires: "1h" }
      }
    }
  ]
}
`,
    );
    const nats = await startNats(["-c", config]);
    const at = (user: string) => `nats://${user}@127.0.0.1:${nats.port}`;
    const host = await startHost(at("host:h-secret"), "host-perms");
    const control = join(dir, "dispatcher.sock");
    const app = await startDispatcher(at("dispatcher:d-secret"), { TIMEOUT: "3000", CONTROL: control });
    let rogue: NatsConnection | undefined;
    try {
      // Requests, a body and an answer in several parts each, a stream, a timeout's cancel, and log records.
      assert.equal((await (await fetch(`${app.url}/render/who`)).json()).host, "host-perms");
      const body = pattern(3 * 1024 * 1024 + 5);
      const echo = await fetch(`${app.url}/render/echo`, { method: "POST", body });
      assert.deepEqual(new Uint8Array(await echo.arrayBuffer()), body);
      const big = new Uint8Array(await (await fetch(`${app.url}/render/bytes/2500001`)).arrayBuffer());
      assert.equal(big.length, 2_500_001);
      const sse = await (await fetch(`${app.url}/render/sse`)).text();
      assert.equal(sse.match(/data: /g)?.length, 3);
      assert.equal((await fetch(`${app.url}/render/slow/5000`)).status, 504);
      assert.ok(await eventually(async () => (await fetch(`${app.url}/render/who`)).status === 200, 5000));
      assert.equal((await fetch(`${app.url}/render/log?what=perms`)).status, 200);
      await app.waitStderr(/rendered perms on the remote host/, 5000);
      // Steering: a reload reaches the host, and its answer comes back.
      const reload = start(fixture("../../cli.ts"), ["ctl", "--control", control, "reload", "Render"]);
      assert.equal((await reload.exited).code, 0, reload.stderr());
      assert.deepEqual(JSON.parse(reload.stdout()), { replaced: 1 });

      // A client without credentials is not let in.
      await assert.rejects(connect({ servers: `127.0.0.1:${nats.port}`, reconnect: false }), /[Aa]uthoriz/);

      // A host's credentials, stolen: they publish no request, and see none but those the queue group gives them.
      rogue = await connect({ servers: `127.0.0.1:${nats.port}`, user: "host", pass: "h-secret" });
      const errors: string[] = [];
      (async () => {
        for await (const s of rogue!.status()) if (s.type === "error") errors.push(String(s.error));
      })();
      const forged = { w: { i: 1, m: "POST", p: "/render/mark", q: "", h: [] }, n: 0, t: 5000 };
      rogue.publish(SUBJECT, encode(M.REQUEST, forged), { reply: `${SUBJECT}.hb` });
      let snooped = 0;
      rogue.subscribe(SUBJECT, { callback: (error) => void (error === null && snooped++) });
      rogue.subscribe("_INBOX.>", { callback: (error) => void (error === null && snooped++) });
      await rogue.flush().catch(() => {});
      assert.ok(
        await eventually(() => errors.filter((e) => /[Pp]ermission/.test(e)).length >= 3, 5000),
        errors.join("\n"),
      );
      for (let i = 0; i < 5; i++) assert.equal((await fetch(`${app.url}/render/who`)).status, 200);
      assert.equal(snooped, 0);
      assert.deepEqual(await (await fetch(`${app.url}/render/marked`)).json(), { marked: false });
    } finally {
      await rogue?.close();
      assert.equal((await app.stop()).code, 0);
      assert.equal((await host.stop()).code, 0);
      await nats.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
