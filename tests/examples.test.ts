// The README's program and the demo behind `npm start`, run as a newcomer runs them.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { getJson, runtime, start } from "./helpers.ts";

const file = (path: string) => fileURLToPath(new URL(`../${path}`, import.meta.url));

/** Starts an example on a free port; resolves once it listens, with its base URL. */
async function example(path: string) {
  const proc = start(file(path), [], { PORT: "0" });
  const line = await proc.waitStderr(/Listening on http:\/\/[0-9.]+:\d+/);
  return { proc, url: `http://127.0.0.1:${line.slice(line.lastIndexOf(":") + 1)}` };
}

describe(`examples (${runtime.name})`, () => {
  test("README's complete program is examples/quickstart.ts, word for word", () => {
    const readme = readFileSync(file("README.md"), "utf8");
    const section = readme.slice(readme.indexOf("## A complete program"));
    const block = section.slice(section.indexOf("```ts\n") + 6, section.indexOf("\n```", section.indexOf("```ts")));
    const source = readFileSync(file("examples/quickstart.ts"), "utf8");
    const program = source.slice(source.indexOf("import {")).replace('"../mod.ts"', '"@forkyard/forkyard"').trim();
    assert.equal(block.trim(), program);
  });

  test("the quick start keeps what was posted, and its worker's log line shows", async () => {
    const { proc, url } = await example("examples/quickstart.ts");
    try {
      const key = { "x-api-key": "demo-key" };
      const created = await getJson(`${url}/api/items`, {
        method: "POST",
        headers: { ...key, "content-type": "application/json" },
        body: '{"name":"apple"}',
      });
      assert.equal(created.status, 201);
      for (let i = 0; i < 6; i++) {
        const got = await getJson(`${url}/api/item/${created.body.id}`, { headers: key });
        assert.equal(got.status, 200, `GET ${i} after POST`);
        assert.equal(got.body.name, "apple");
      }
      assert.equal((await fetch(`${url}/static/`)).status, 200);
      assert.match(proc.stderr(), /storage worker 0 ready/);
    } finally {
      proc.child.kill("SIGTERM");
      assert.equal((await proc.exited).code, 0);
    }
  });

  test("the npm start demo prints its endpoints and the API key they need", async () => {
    const { proc, url } = await example("examples/multi_pool.ts");
    try {
      const port = new URL(url).port;
      await proc.waitStdout(/fib\/30.*\n.*items/);
      assert.match(proc.stdout(), new RegExp(`API key for /api: demo-key`));
      assert.match(
        proc.stdout(),
        new RegExp(`curl -H 'x-api-key: demo-key' http://localhost:${port}/api/compute/fib/30`),
      );
      const fib = await getJson(`${url}/api/compute/fib/20`, { headers: { "x-api-key": "demo-key" } });
      assert.equal(fib.body.result, 6765);
    } finally {
      proc.child.kill("SIGTERM");
      assert.equal((await proc.exited).code, 0);
    }
  });
});
