// Large bodies end to end: request bodies forwarded as the chunks they arrived in, response bodies whose bytes
// are reused for later responses once written out (Node), and a response the client is slow to read.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { type App, runtime, startApp } from "./helpers.ts";

const MiB = 1024 * 1024;
const pattern = (size: number, seed: number) => new Uint8Array(size).map((_, i) => (i * 31 + seed * 7) & 255);

/** Sends a POST over a raw socket; resolves the socket once the response's head has begun to arrive, paused. */
function postPaused(port: number, body: Uint8Array): Promise<{ socket: Socket; head: Buffer[] }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    const head: Buffer[] = [];
    socket.once("error", reject);
    socket.once("data", (chunk: Buffer) => {
      socket.pause();
      head.push(chunk);
      resolve({ socket, head });
    });
    socket.write(
      `POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n` +
        `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
    );
    socket.write(body);
  });
}

/** Reads the rest of a paused response to its end and returns its body. */
function finish(socket: Socket, head: Buffer[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks = [...head];
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.once("error", reject);
    socket.once("end", () => {
      const all = Buffer.concat(chunks);
      const split = all.indexOf("\r\n\r\n");
      assert.match(all.subarray(0, split).toString(), /^HTTP\/1\.1 200/);
      resolve(all.subarray(split + 4));
    });
    socket.resume();
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

  test("a response the client has not read keeps its bytes while later responses of its size go through", async () => {
    // The held response cannot be written out while its client does not read (6 MiB is more than the socket
    // buffers take): if its bytes were given back for reuse too early, the next responses would overwrite them.
    const held = pattern(6 * MiB, 1);
    const { socket, head } = await postPaused(app.port, held);
    for (let seed = 2; seed < 8; seed++) {
      const body = pattern(6 * MiB, seed);
      const res = await fetch(`${app.url}/echo`, { method: "POST", body });
      assert.equal(res.status, 200);
      assert.ok(Buffer.from(await res.arrayBuffer()).equals(body), `response ${seed} differs`);
    }
    const back = await finish(socket, head);
    assert.equal(back.length, held.length);
    assert.ok(back.equals(held), "the held response changed while it waited");
  });
});
