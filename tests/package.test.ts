// The npm package: `npm pack` contents, then the tarball installed into a scratch project and
// run with Node (npx-style) and with Bun (bunx --bun-style). Registered in the Node run only:
// it spawns Node and Bun itself, and packing three times would only repeat the same work.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { getJson, runtime } from "./helpers.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const bin = (name: string) => join(root, "node_modules", ".bin", name);

if (runtime.name === "node") {
  describe("npm package", () => {
    let dir: string;
    let files: string[];
    before(() => {
      dir = mkdtempSync(join(tmpdir(), "forkyard-pkg-"));
      const out = execFileSync("npm", ["pack", "--json", "--pack-destination", dir], { cwd: root, encoding: "utf8" });
      const info = JSON.parse(out.slice(out.indexOf("[")))[0];
      files = info.files.map((f: { path: string }) => f.path);
      writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "scratch", private: true, type: "module" }));
      execFileSync("npm", ["install", join(dir, info.filename), "--prefer-offline", "--no-audit", "--no-fund"], {
        cwd: dir,
        stdio: "ignore",
      });
      writeFileSync(
        join(dir, "app.js"),
        `export default { fetch: (req) => Response.json({ path: new URL(req.url).pathname, runtime: globalThis.Bun ? "bun" : "node" }) };\n`,
      );
      writeFileSync(
        join(dir, "lib.js"),
        `import { api, Dispatcher, Worker, WorkerPool } from "forkyard";
class Hello extends Worker { hi(req) { return { hi: req.pathParams.name }; } }
api("/hi/{name}", "GET")(Hello.prototype.hi);
class App extends Dispatcher { onListen(i) { console.log(JSON.stringify({ port: i.port })); } }
await new App({ port: 0, hostname: "127.0.0.1", pools: [new WorkerPool(Hello)] }).run();
`,
      );
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    test("npm pack holds the built JS, types, bin and docs, and no sources or tests", () => {
      for (const f of ["package.json", "README.md", "LICENSE", "dist/mod.js", "dist/mod.d.ts", "dist/cli.js"]) {
        assert.ok(files.includes(f), `${f} missing`);
      }
      for (
        const f of [
          "dist/src/worker/module_main.js",
          "dist/adapters/node.js",
          "dist/adapters/bun.js",
          "dist/adapters/deno.js",
        ]
      ) {
        assert.ok(files.includes(f), `${f} missing`);
      }
      assert.ok(
        !files.some((f) => f.startsWith("tests/") || f.startsWith("src/") || f.endsWith(".ts") && !f.endsWith(".d.ts")),
      );
    });

    async function serveWith(cmd: string[]) {
      let err = "";
      const child = runtime.spawn({
        cmd,
        cwd: dir,
        onStdout: () => {},
        onStderr: (c) => (err += new TextDecoder().decode(c)),
      });
      const deadline = Date.now() + 20_000;
      let m: RegExpExecArray | null = null;
      while (!(m = /Listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(err)) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.ok(m, `did not start: ${err}`);
      return { child, url: m![1] };
    }

    for (
      const [name, cmd] of [
        // The README's commands, run in the project that installed the tarball: npx runs the bin with the Node on
        // PATH (called directly here, so that SIGTERM reaches it rather than npm), bunx --bun with Bun.
        ["Node (npx forkyard)", () => [join(dir, "node_modules/.bin/forkyard")]],
        ["Bun (bunx --bun forkyard)", () => [bin("bun"), "x", "--bun", "forkyard"]],
      ] as const
    ) {
      test(`the installed bin serves an app on ${name}`, async () => {
        const { child, url } = await serveWith([...cmd(), "serve", "app.js", "--port", "0", "--host", "127.0.0.1"]);
        try {
          const res = await getJson(`${url}/x/y`);
          assert.equal(res.status, 200);
          assert.deepEqual(res.body, { path: "/x/y", runtime: name.startsWith("Bun") ? "bun" : "node" });
        } finally {
          child.kill("SIGTERM");
          assert.equal((await child.exited).code, 0);
        }
      });
    }

    test("the installed package's API works from plain JavaScript on Node", async () => {
      let out = "";
      const child = runtime.spawn({
        cmd: [bin("node"), join(dir, "lib.js")],
        cwd: dir,
        onStdout: (c) => (out += new TextDecoder().decode(c)),
        onStderr: () => {},
      });
      try {
        const deadline = Date.now() + 20_000;
        while (!out.includes("port") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
        const { port } = JSON.parse(out);
        assert.deepEqual((await getJson(`http://127.0.0.1:${port}/hi/npm`)).body, { hi: "npm" });
      } finally {
        child.kill("SIGTERM");
        assert.equal((await child.exited).code, 0);
      }
    });
  });
}
