// The npm package: `npm pack` contents, then the tarball installed into a scratch project and
// run with Node (npx-style) and with Bun (bunx --bun-style). Registered in the Node run only:
// it spawns Node and Bun itself, and packing three times would only repeat the same work.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { spawn } from "node:child_process";
import { hostname, tmpdir } from "node:os";
import process from "node:process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { getJson, runtime, sleep } from "./helpers.ts";
import { startNats } from "./nats_server.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const bin = (name: string) => join(root, "node_modules", ".bin", name);

/** The commands of the fenced shell blocks of README.md and docs/*.md, without their comments. */
function docCommands(): { file: string; command: string }[] {
  const out: { file: string; command: string }[] = [];
  const files = [
    "README.md",
    ...readdirSync(join(root, "docs")).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`),
  ];
  for (const file of files) {
    const text = readFileSync(join(root, file), "utf8");
    for (const block of text.matchAll(/```(?:sh|bash|shell)\n([\s\S]*?)```/g)) {
      for (const line of block[1].split("\n")) {
        const command = line.replace(/(^|\s+)#.*$/, "").trim();
        if (command !== "") out.push({ file, command });
      }
    }
  }
  return out;
}

/** The port of the server whose control socket is `control`, as `forkyard ctl --json status` says. */
async function dispatcherPort(control: string, dir: string, env: Record<string, string>): Promise<number> {
  for (let i = 0; i < 100; i++) {
    let out = "";
    const ctl = runtime.spawn({
      cmd: ["sh", "-c", `exec forkyard ctl --control ${control} --json status`],
      cwd: dir,
      env,
      onStdout: (c) => void (out += new TextDecoder().decode(c)),
      onStderr: () => {},
    });
    if ((await ctl.exited).code === 0) return JSON.parse(out).port;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no server answers on ${control}`);
}

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

    // What the docs' commands name: a module with a fetch app as its default export and as myApp, a config file, a
    // Worker class Render, and an app for a remote pool's host.
    before(() => {
      writeFileSync(
        join(dir, "app.ts"),
        'export default { fetch: () => new Response("app") };\nexport const myApp = { fetch: () => new Response("myApp") };\n',
      );
      writeFileSync(join(dir, "forkyard.json"), JSON.stringify({ apps: [{ mount: "/", module: "./app.ts" }] }));
      writeFileSync(
        join(dir, "render.ts"),
        'import { api, Worker } from "forkyard";\nexport class Render extends Worker {\n  hi() {\n    return { host: "render" };\n  }\n}\napi("/render/hi", "GET")(Render.prototype.hi);\n',
      );
      writeFileSync(join(dir, "api.ts"), "export default { fetch: () => Response.json({ api: true }) };\n");
    });

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

    // Every shell command in README.md and docs/, run as written in this project (`forkyard` is its installed bin;
    // UPPERCASE words are placeholders, filled in below); a worker host's NATS address is this machine's nats-server,
    // as the second machine of a scripted pair. A command added to the docs fails here until it is run or says why not.
    test("every shell command in README.md and docs/ works as written", async () => {
      const commands = docCommands();
      const covered: Record<string, string> = {
        "npm ci && npm start": "CI runs `npm ci`; tests/examples.test.ts runs the demo `npm start` starts",
        "npm test": "CI runs it: it is .ci/run's test command",
      };
      const env = {
        PATH: `${join(dir, "node_modules", ".bin")}:${join(root, "node_modules", ".bin")}:${process.env.PATH}`,
        PORT: "0",
        NO_COLOR: "1",
      };
      const sh = (command: string, extra: Record<string, string> = {}) =>
        runtime.spawn({ cmd: ["sh", "-c", `exec ${command}`], cwd: dir, env: { ...env, ...extra }, ...collect() });
      let output = "";
      const collect = () => {
        output = "";
        return {
          onStdout: (c: Uint8Array) => void (output += new TextDecoder().decode(c)),
          onStderr: (c: Uint8Array) => void (output += new TextDecoder().decode(c)),
        };
      };
      const until = async (re: RegExp, what: string) => {
        const deadline = Date.now() + 30_000;
        while (!re.test(output) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
        assert.match(output, re, what);
        return re.exec(output)!;
      };
      const ran = new Set<string>();
      const once = async (command: string) => {
        const child = sh(command);
        assert.equal((await child.exited).code, 0, `${command}: ${output}`);
        ran.add(command);
        return output;
      };

      // forkyard serve ...: listens, answers, stops on SIGTERM.
      for (const { command } of commands.filter((c) => c.command.startsWith("forkyard serve "))) {
        const child = sh(command);
        const [, url] = await until(/Listening on (http:\/\/[\d.]+:\d+)/, command);
        const res = await fetch(url.replace("0.0.0.0", "127.0.0.1"));
        assert.ok(res.status < 500, `${command}: ${res.status}`);
        child.kill("SIGTERM");
        assert.equal((await child.exited).code, 0, `${command}: ${output}`);
        ran.add(command);
      }
      assert.match(await once("forkyard --help"), /Usage:/);
      assert.match(await once("forkyard --version"), /^\d+\.\d+\.\d+/);

      // forkyard ctl ...: against a server started here, found by its working directory (or --control PATH).
      const control = "/run/app.ctl";
      const server = sh(`forkyard serve ./app.ts --control ${control}`);
      await until(/Listening on/, "the server for forkyard ctl");
      const placeholders = (command: string) =>
        command.replace(/\[POOL\]/, "").replace(/\bPOOL\b/, "/").replace(/\bN\b/, "2").replace(/\s+$/, "");
      try {
        for (
          const { command } of commands.filter((c) => /^forkyard ctl /.test(c.command) && !/HOST|stop/.test(c.command))
        ) {
          const filled = placeholders(command).replace("forkyard ctl ", `forkyard ctl --control ${control} `)
            .replace(`--control ${control} --control ${control}`, `--control ${control}`);
          assert.equal((await sh(filled).exited).code, 0, `${filled}: ${output}`);
          ran.add(command);
        }
      } finally {
        const stop = commands.find((c) => c.command === "forkyard ctl stop")!.command;
        assert.equal((await sh(`forkyard ctl --control ${control} stop`).exited).code, 0, output);
        ran.add(stop);
        assert.equal((await server.exited).code, 0);
      }

      // forkyard worker ...: worker hosts of a dispatcher's remote pools, over a nats-server on this machine.
      const nats = await startNats();
      const local = (command: string) => command.replace(/nats:\/\/10\.0\.0\.5:4222/, nats.url);
      writeFileSync(
        join(dir, "remote.json"),
        JSON.stringify({
          pools: [{ module: "./render.ts", export: "Render", routes: ["/render/**"], remote: { nats: nats.url } }],
          apps: [{ mount: "/api", module: "./api.ts", remote: { nats: nats.url, subject: "myapp.api" } }],
        }),
      );
      const dispatcher = runtime.spawn({
        cmd: ["sh", "-c", `exec forkyard serve remote.json --control ${join(dir, "remote.ctl")}`],
        cwd: dir,
        env,
        onStdout: () => {},
        onStderr: () => {},
      });
      const hosts: ReturnType<typeof sh>[] = [];
      try {
        for (const { command } of commands.filter((c) => c.command.startsWith("forkyard worker "))) {
          if (ran.has(command)) continue;
          hosts.push(sh(local(command)));
          await until(/takes requests for pool/, command);
          ran.add(command);
        }
        // Both kinds of host answer through the dispatcher, and ctl steers one host by name.
        const port = await dispatcherPort(join(dir, "remote.ctl"), dir, env);
        const render = await fetch(`http://127.0.0.1:${port}/render/hi`);
        assert.equal(render.status, 200, await render.text());
        assert.equal((await fetch(`http://127.0.0.1:${port}/api/`)).status, 200);
        for (const { command } of commands.filter((c) => /^forkyard ctl .*HOST/.test(c.command))) {
          const filled = command.replace("forkyard ctl ", `forkyard ctl --control ${join(dir, "remote.ctl")} `)
            .replace(/\bPOOL\b/, "Render").replace(/\bN\b/, "2").replace(/\bHOST\b/, hostname());
          assert.equal((await sh(filled).exited).code, 0, `${filled}: ${output}`);
          ran.add(command);
        }
      } finally {
        for (const host of hosts) host.kill("SIGTERM");
        for (const host of hosts) await host.exited;
        dispatcher.kill("SIGTERM");
        await dispatcher.exited;
        await nats.kill();
      }
      const missed = commands.filter((c) => !ran.has(c.command) && !(c.command in covered));
      assert.deepEqual(missed, [], "commands in the docs no test runs");
    });

    // The commands the README writes inline, in its sentences: each run as written, where it says (the project made
    // from the tarball, a clone beside it, this clone), or named with the test that runs it.
    test("every command written inline in README.md works as written", async () => {
      const inline = [
        ...readFileSync(join(root, "README.md"), "utf8").matchAll(
          /`((?:npx|bunx|deno|npm|node|bun|curl|forkyard) [^`]*)`/g,
        ),
      ]
        .map((m) => m[1]);
      const covered: Record<string, string> = {
        "deno publish --dry-run": "scripts/test.mjs runs it after the suites",
        "npm ci": "CI's first step",
        "npm pack": "this file's before() packs the tarball with it",
        "forkyard worker --nats URL ./render.ts:Render --workers 8": "the docs' fenced forms of it run above",
      };
      const env = {
        PATH: `${join(dir, "node_modules", ".bin")}:${join(root, "node_modules", ".bin")}:${process.env.PATH}`,
        NO_COLOR: "1",
      };
      // A clone beside a project, as the install table's Deno row has it.
      const parent = mkdtempSync(join(tmpdir(), "forkyard-beside-"));
      symlinkSync(root.replace(/\/$/, ""), join(parent, "forkyard"));
      mkdirSync(join(parent, "project"));
      writeFileSync(join(parent, "project", "app.ts"), 'export default { fetch: () => new Response("beside") };\n');
      writeFileSync(join(dir, "app.js"), 'export default { fetch: () => new Response("app.js") };\n');
      // A program with decorators beside the clone, run through the tsx loader the clone has.
      mkdirSync(join(parent, "tsx"));
      symlinkSync(join(root, "node_modules"), join(parent, "tsx", "node_modules"));
      writeFileSync(join(parent, "tsx", "package.json"), JSON.stringify({ type: "module" }));
      writeFileSync(
        join(parent, "tsx", "app.ts"),
        'import { api, Dispatcher, Worker, WorkerPool } from "../forkyard/mod.ts";\n' +
          'class Hi extends Worker {\n  @api("/", "GET")\n  hi() {\n    return { hi: true };\n  }\n}\n' +
          "await new Dispatcher({ port: Number(process.env.PORT ?? 8080), pools: [new WorkerPool(Hi, { workers: 1 })] }).run();\n",
      );
      const where = (command: string) =>
        command === "node --import tsx app.ts"
          ? join(parent, "tsx")
          : command.startsWith("deno run -A ../forkyard/")
          ? join(parent, "project")
          : /^(npx|bunx|npm init) /.test(command)
          ? dir
          : root;
      const ran = new Set<string>();
      try {
        for (const command of inline.filter((c) => !(c in covered))) {
          if (ran.has(command)) continue;
          let out = "";
          // Its own process group: npm and npx start the server as a child, and SIGTERM goes to them all.
          const child = spawn("sh", ["-c", command], {
            cwd: command === "npm init -y" ? mkdtempSync(join(tmpdir(), "forkyard-init-")) : where(command),
            env: { ...process.env, ...env, ...(command === "npm run hello" ? {} : { PORT: "0" }) },
            detached: true,
            stdio: ["ignore", "pipe", "pipe"],
          });
          child.stdout!.on("data", (c) => (out += c));
          child.stderr!.on("data", (c) => (out += c));
          const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
          const serves = !/^(curl|npm init)/.test(command);
          if (serves) {
            const deadline = Date.now() + 30_000;
            while (!/Listening on http:\/\/[\d.]+:\d+/.test(out) && Date.now() < deadline) await sleep(20);
            const m = /Listening on http:\/\/[\d.]+:(\d+)/.exec(out);
            assert.ok(m, `${command}: ${out}`);
            assert.ok((await fetch(`http://127.0.0.1:${m![1]}/`)).status < 500, command);
            if (command === "npm run hello") {
              // The README's next command, against the server this one started on its default port.
              const curl = spawn("sh", ["-c", "curl -s localhost:8080/hello/world"], {
                stdio: ["ignore", "pipe", "inherit"],
              });
              let body = "";
              curl.stdout!.on("data", (c) => (body += c));
              await new Promise((resolve) => curl.once("exit", resolve));
              assert.equal(JSON.parse(body).hello, "world");
              ran.add("curl localhost:8080/hello/world");
            }
            process.kill(-child.pid!, "SIGTERM");
          }
          const code = await exited;
          if (!serves) assert.equal(code, 0, `${command}: ${out}`);
          ran.add(command);
        }
      } finally {
        rmSync(parent, { recursive: true, force: true });
      }
      assert.deepEqual(inline.filter((c) => !ran.has(c) && !(c in covered)), []);
    });
  });
}
