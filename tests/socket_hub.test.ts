// The dispatcher's socket hub, in memory: a worker reaches only the WebSockets pinned to it. Socket ids are
// sequential, so a worker (of any pool) that wrote frames naming another worker's socket ids must get nothing.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { SocketHub } from "../src/dispatcher/socket_hub.ts";
import { FrameWriter } from "../src/protocol/codec.ts";
import { F } from "../src/protocol/frames.ts";
import type { ServerWebSocket } from "../src/runtime.ts";

const encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);

/** A client's socket as the hub sees it: what it was sent, and how it was closed. */
function client() {
  const sent: (string | Uint8Array)[] = [];
  const closed: number[] = [];
  const server: ServerWebSocket = {
    send: (data) => sent.push(data),
    close: (code) => closed.push(code),
    bufferedAmount: () => 0,
  };
  return { sent, closed, server };
}

describe("socket hub", () => {
  test("a worker's frames reach only the sockets pinned to it; publishing reaches every subscriber", () => {
    const hub = new SocketHub({ maxMessageSize: 1 << 20, maxBuffered: 1 << 20, relay: null });
    const owner = new FrameWriter(() => undefined);
    const stranger = new FrameWriter(() => undefined);
    const socket = client();
    hub.accept(1, { writer: owner, closed: () => {} }).events.open(socket.server);

    hub.fromWorker(stranger, F.WS_SEND, { i: 1 }, encoder.encode("hijacked"), false);
    hub.fromWorker(stranger, F.SUBSCRIBE, { i: 1, t: "secrets" }, EMPTY, false);
    hub.fromWorker(stranger, F.WS_CLOSE, { i: 1, c: 1000, r: "" }, EMPTY, false);
    assert.deepEqual(socket.sent, []);
    assert.deepEqual(socket.closed, []);
    assert.equal(hub.deliver("secrets", "x"), 0, "a stranger cannot subscribe another worker's socket");

    hub.fromWorker(owner, F.WS_SEND, { i: 1 }, encoder.encode("mine"), false);
    hub.fromWorker(owner, F.SUBSCRIBE, { i: 1, t: "news" }, EMPTY, false);
    hub.fromWorker(stranger, F.PUBLISH, { t: "news" }, encoder.encode("to all"), false);
    assert.deepEqual(socket.sent, ["mine", "to all"]);
    hub.fromWorker(owner, F.WS_CLOSE, { i: 1, c: 1000, r: "bye" }, EMPTY, false);
    assert.deepEqual(socket.closed, [1000]);
  });
});
