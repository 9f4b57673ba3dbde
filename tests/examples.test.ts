// The README's and the guide's programs and the demo behind `npm start`, run as a newcomer runs them.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { getJson, runtime, start } from "./helpers.ts";
import { type Conn, open } from "./ws_client.ts";

const file = (path: string) => fileURLToPath(new URL(`../${path}`, import.meta.url));

/** Starts an example on a free port; resolves once it listens, with its base URL. */
async function example(path: string) {
  const proc = start(file(path), [], { PORT: "0" });
  const line = await proc.waitStderr(/Listening on http:\/\/[0-9.]+:\d+/);
  return { proc, url: `http://127.0.0.1:${line.slice(line.lastIndexOf(":") + 1)}` };
}

describe(`deno task (${runtime.name})`, () => {
  // After `npm ci`, node_modules/.bin/deno is Deno's own binary, which `deno task` would run as a JavaScript file when a
  // task names `deno` (it runs package binaries that way); the tasks say `env deno`, which finds it on PATH instead.
  test("every task in deno.json starts after npm ci, with no other Deno on PATH", async (t) => {
    if (runtime.name !== "deno") return t.skip("a Deno command: run on the Deno leg");
    const tasks = Object.keys(JSON.parse(readFileSync(file("deno.json"), "utf8")).tasks);
    const deno = file("node_modules/.bin/deno");
    for (const name of tasks.filter((task) => task !== "test")) {
      const args = name === "cli" ? ["--help"] : name === "config" ? ["--port", "0"] : [];
      const proc = start(deno, [], { PORT: "0", PATH: "/usr/bin:/bin" }, [
        deno,
        "task",
        "--config",
        file("deno.json"),
        name,
        ...args,
      ]);
      if (name === "cli") {
        assert.equal((await proc.exited).code, 0, proc.stderr());
        assert.match(proc.stdout(), /^Usage:/m);
        continue;
      }
      try {
        await proc.waitStderr(/Listening on http:\/\/[0-9.]+:\d+/, 30_000);
      } finally {
        proc.child.kill("SIGTERM");
      }
      assert.equal((await proc.exited).code, 0, `deno task ${name}: ${proc.stderr()}`);
    }
  });
});

describe(`examples (${runtime.name})`, () => {
  /** The first ```ts block after `heading` in `doc`, as the example file `path` reads with the package's name. */
  function sameProgram(doc: string, heading: string, path: string, name = "@forkyard/forkyard") {
    const text = readFileSync(file(doc), "utf8");
    const section = text.slice(text.indexOf(heading));
    const block = section.slice(section.indexOf("```ts\n") + 6, section.indexOf("\n```", section.indexOf("```ts")));
    const source = readFileSync(file(path), "utf8");
    const program = source.slice(source.search(/^import /m)).replace('"../mod.ts"', `"${name}"`).trim();
    assert.equal(block.trim(), program);
  }

  test("README's quick start is examples/hello.ts, and the guide's complete program examples/quickstart.ts", () => {
    sameProgram("README.md", "## Quick start", "examples/hello.ts", "forkyard");
    sameProgram("docs/guide.md", "## A complete program", "examples/quickstart.ts");
  });

  test("the README's quick start answers from two workers, and /health from the dispatcher", async () => {
    const { proc, url } = await example("examples/hello.ts");
    try {
      const pids = new Set<number>();
      for (let i = 0; i < 8; i++) {
        const got = await getJson(`${url}/hello/world`);
        assert.equal(got.status, 200);
        assert.equal(got.body.hello, "world");
        pids.add(got.body.pid);
      }
      assert.equal(pids.size, 2, "both workers answered");
      const health = await getJson(`${url}/health`);
      assert.deepEqual(health.body, { status: "ok", pools: ["ok"] });
    } finally {
      proc.child.kill("SIGTERM");
      assert.equal((await proc.exited).code, 0);
    }
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

  test("the chat example serves its page, and a line said in a room reaches every member on either worker", async () => {
    const { proc, url } = await example("examples/chat.ts");
    try {
      const page = await fetch(`${url}/`);
      assert.equal(page.status, 200);
      assert.match(page.headers.get("content-type") ?? "", /text\/html/);
      assert.match(await page.text(), /new WebSocket/);
      const ws = url.replace("http:", "ws:");
      const members: Conn[] = [];
      const workers = new Set<string>();
      for (let i = 0; i < 6 && workers.size < 2; i++) {
        const conn = await open(`${ws}/chat/demo`);
        const hello = JSON.parse(String(await conn.next())) as { text: string };
        workers.add(/worker (\d+)/.exec(hello.text)![1]);
        members.push(conn);
      }
      assert.equal(workers.size, 2, "members on both workers");
      // Each member hears the later ones join; skip to the line said.
      members[0].ws.send("hello, room");
      for (const member of members) {
        for (;;) {
          const said = JSON.parse(String(await member.next())) as { text: string };
          if (said.text === "hello, room") break;
        }
      }
      for (const member of members) member.ws.close();
    } finally {
      proc.child.kill("SIGTERM");
      assert.equal((await proc.exited).code, 0);
    }
  });
});
