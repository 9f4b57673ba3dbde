// Large bodies end to end: request bodies forwarded as the chunks they arrived in, response bodies whose bytes
// are reused for later responses once written out (the node:http server), and a response the client is slow to read.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { type App, pattern, runtime, startApp } from "./helpers.ts";

const MiB = 1024 * 1024;

/** A POST of `body` to /echo, as raw HTTP/1.1. */
const rawPost = (body: Uint8Array) =>
  Buffer.concat([
    Buffer.from(
      `POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: ${body.length}\r\n\r\n`,
    ),
    body,
  ]);

/**
 * Sends POSTs one after another on one connection (pipelined) without reading the answers; resolves once the
 * first answer has begun to arrive, with the socket paused.
 */
function postPaused(port: number, bodies: Uint8Array[]): Promise<{ socket: Socket; head: Buffer[] }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    const head: Buffer[] = [];
    socket.once("error", reject);
    socket.once("data", (chunk: Buffer) => {
      socket.pause();
      head.push(chunk);
      resolve({ socket, head });
    });
    for (const body of bodies) socket.write(rawPost(body));
  });
}

/** Reads the rest of a paused connection until `count` answers came or it ended; returns their bodies. */
function finish(socket: Socket, head: Buffer[], count: number): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    let data = Buffer.concat(head);
    const bodies: Buffer[] = [];
    const done = () => {
      socket.destroy();
      resolve(bodies);
    };
    const take = () => {
      for (let split; bodies.length < count && (split = data.indexOf("\r\n\r\n")) >= 0;) {
        const headText = data.subarray(0, split).toString();
        const length = Number(/content-length: *(\d+)/i.exec(headText)?.[1]);
        if (data.length < split + 4 + length) return;
        assert.match(headText, /^HTTP\/1\.1 200/);
        bodies.push(data.subarray(split + 4, split + 4 + length));
        data = data.subarray(split + 4 + length);
      }
      if (bodies.length === count) done();
    };
    socket.on("data", (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      take();
    });
    socket.once("end", done);
    socket.once("error", reject);
    socket.resume();
    take();
  });
}

describe(`large bodies (${runtime.name})`, () => {
  let app: App;
  before(async () => {
    app = await startApp("echo_app.ts");
  });
  after(async () => {
    await app?.stop();
  });

  test("responses the client has not read keep their bytes while later responses of their size go through", async () => {
    // The held answers cannot be written out while their client does not read (6 MiB is more than the socket
    // buffers take; the 200 KiB answer, pipelined behind it, waits in the server): if their bytes were given
    // back for reuse too early, the next responses would overwrite them. 6 MiB bodies cross in spill files,
    // 200 KiB ones as frames larger than one read from the channel: both are read into reused bytes.
    const held = [pattern(6 * MiB, 1), pattern(200 * 1024, 2)];
    const { socket, head } = await postPaused(app.port, held);
    for (let seed = 3; seed < 9; seed++) {
      for (const size of [200 * 1024, 6 * MiB]) {
        const body = pattern(size, seed);
        const res = await fetch(`${app.url}/echo`, { method: "POST", body });
        assert.equal(res.status, 200);
        assert.ok(Buffer.from(await res.arrayBuffer()).equals(body), `response ${seed} of ${size} bytes differs`);
      }
    }
    const back = await finish(socket, head, held.length);
    assert.equal(back.length, held.length);
    back.forEach((body, i) => {
      assert.equal(body.length, held[i].length);
      assert.ok(body.equals(held[i]), `held response ${i} changed while it waited`);
    });
  });
});
