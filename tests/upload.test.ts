// An upload's parts on both sides of NATS, without NATS: the dispatcher cuts them from the body's chunks under the
// host's credit; the host writes them to a spill file (or keeps them) and drops what goes past the declared length.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { runtime } from "./helpers.ts";
import { IncomingBody, OutgoingBody, UPLOAD_WINDOW } from "../src/remote/upload.ts";
import { joinBody } from "../src/protocol/body.ts";

const bytes = (n: number, from = 0) => Uint8Array.from({ length: n }, (_, i) => (from + i) % 251);

describe(`uploads cut and put together (${runtime.name})`, () => {
  test("parts cross the body's chunks in order, and stop at the window until the host grants more", () => {
    const whole = bytes(10_000);
    const body = new OutgoingBody([whole.subarray(0, 3000), whole.subarray(3000, 3001), whole.subarray(3001)]);
    const parts = [body.take(2500)];
    assert.equal(parts[0].length, 2500);
    for (const part of body.parts(1000)) parts.push(part);
    assert.ok(body.done);
    assert.deepEqual(parts.map((p) => p.length), [2500, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 500]);
    assert.deepEqual(joinBody(parts), whole);

    const large = new OutgoingBody(new Uint8Array(UPLOAD_WINDOW * 2));
    const size = 1024 * 1024;
    assert.equal([...large.parts(size)].length, UPLOAD_WINDOW / size);
    assert.equal([...large.parts(size)].length, 0, "nothing more without credit");
    large.grant(size);
    assert.equal([...large.parts(size)].length, 1);
    assert.ok(!large.done);
  });

  test("a host takes the declared length and no byte more, in memory or in a spill file, and removes the file", () => {
    const small = new IncomingBody(100, { pid: 1, spill: () => null });
    assert.equal(small.add(bytes(60)), 60);
    assert.ok(!small.complete);
    assert.equal(small.add(bytes(60, 60)), 40);
    assert.ok(small.complete);
    assert.equal(small.add(bytes(5)), 0);
    assert.deepEqual(joinBody(small.take().body as Uint8Array[]), bytes(100));

    const files = runtime.spill();
    if (files === null) return;
    const length = 512 * 1024;
    const large = new IncomingBody(length, runtime);
    for (let at = 0; at < length + 1000; at += 100_000) large.add(bytes(100_000, at));
    const { body, bodyFile } = large.take();
    assert.equal((body as Uint8Array).length, 0);
    assert.equal(bodyFile!.length, length);
    assert.deepEqual(files.read(bodyFile!.path, length).slice(), bytes(length));
    assert.ok(files.list().includes(bodyFile!.path.slice(files.dir.length + 1)));
    large.discard();
    assert.ok(!files.list().includes(bodyFile!.path.slice(files.dir.length + 1)));
  });
});
