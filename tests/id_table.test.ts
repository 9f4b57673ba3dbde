// IdTable, the in-flight request table, against a Map doing the same operations.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { IdTable } from "../src/id_table.ts";
import { runtime } from "./helpers.ts";

/** A small seeded PRNG (mulberry32), so that a failure replays. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function assertSame(table: IdTable<string>, model: Map<number, string>) {
  assert.equal(table.size, model.size);
  assert.deepEqual(table.values().sort(), [...model.values()].sort());
}

describe(`IdTable (${runtime.name})`, () => {
  test("matches a Map under request-like churn: growing ids, some negative, bursts and drains", () => {
    for (const seed of [1, 2, 3]) {
      const next = random(seed);
      const table = new IdTable<string>();
      const model = new Map<number, string>();
      let id = seed * 1000;
      let detached = -1;
      const live: number[] = [];
      for (let step = 0; step < 40_000; step++) {
        // Phases: fill up to a few thousand in flight, then drain, so the table grows and shrinks.
        const filling = Math.floor(step / 5000) % 2 === 0;
        const r = next();
        if (r < (filling ? 0.6 : 0.25)) {
          const key = r < 0.02 ? detached-- : ++id;
          table.set(key, `v${key}`);
          model.set(key, `v${key}`);
          live.push(key);
        } else if (r < 0.97 && live.length > 0) {
          // Delete a random live key (answers come back in any order).
          const at = Math.floor(next() * live.length);
          const key = live[at];
          live[at] = live[live.length - 1];
          live.pop();
          assert.equal(table.delete(key), true);
          model.delete(key);
        } else {
          const key = id + 1 + Math.floor(next() * 100);
          assert.equal(table.delete(key), false);
          assert.equal(table.has(key), false);
        }
        if (step % 997 === 0) assertSame(table, model);
      }
      assertSame(table, model);
      for (const [key, value] of model) {
        assert.equal(table.get(key), value);
        assert.equal(table.has(key), true);
      }
    }
  });

  test("ids past 2^31 and collisions of their low bits stay distinct", () => {
    const table = new IdTable<string>();
    const keys = [2 ** 31 + 5, 5, 2 ** 32 + 5, 2 ** 40 + 5, -5, 2 ** 53 - 1];
    for (const k of keys) table.set(k, `v${k}`);
    for (const k of keys) assert.equal(table.get(k), `v${k}`);
    assert.equal(table.delete(5), true);
    assert.equal(table.get(5), undefined);
    for (const k of keys.filter((k) => k !== 5)) assert.equal(table.get(k), `v${k}`);
    table.set(2 ** 32 + 5, "replaced");
    assert.equal(table.size, keys.length - 1);
    assert.equal(table.get(2 ** 32 + 5), "replaced");
    table.clear();
    assert.equal(table.size, 0);
    assert.deepEqual(table.values(), []);
    assert.equal(table.get(2 ** 31 + 5), undefined);
  });
});
