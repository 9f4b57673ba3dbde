// The npm package: `npm pack` contents, then the tarball installed into a scratch project and
// run with Node (npx-style) and with Bun (bunx --bun-style). Registered in the Node run only:
// it spawns Node and Bun itself, and packing three times would only repeat the same work.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { spawn } from "node:child_process";
import { get as httpGet } from "node:http";
import { hostname, tmpdir } from "node:os";
import process from "node:process";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { eventually, getJson, runtime, sleep } from "./helpers.ts";
import { startNats } from "./nats_server.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const bin = (name: string) => join(root, "node_modules", ".bin", name);

/** README.md and docs/*.md. */
function docFiles(): string[] {
  return ["README.md", ...readdirSync(join(root, "docs")).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`)];
}

/** The commands of the fenced shell blocks of README.md and docs/*.md, without their comments. */
function docCommands(): { file: string; command: string }[] {
  const out: { file: string; command: string }[] = [];
  for (const file of docFiles()) {
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

/** The commands README.md and docs/*.md write inline in their sentences (a table's `\|` read as `|`). */
function inlineCommands(): { file: string; command: string }[] {
  const out: { file: string; command: string }[] = [];
  for (const file of docFiles()) {
    const text = readFileSync(join(root, file), "utf8").replace(/```[\s\S]*?```/g, "");
    for (const m of text.matchAll(/`((?:npx|bunx|deno|npm|node|bun|curl|forkyard) [^`]*)`/g)) {
      out.push({ file, command: m[1].replace(/\\\|/g, "|").replace(/\s+/g, " ") });
    }
  }
  return out;
}

/** A placeholder word of the docs' command forms. */
const PLACEHOLDER = /^(PATH|POOL|HOST|URL|N|n)$/;

/** Whether an inline command is a form (placeholders, alternatives, optional words, an ellipsis). */
function isForm(command: string): boolean {
  return command.split(" ").some((w) => PLACEHOLDER.test(w) || /\.\.\.|\||^\[.*\]$/.test(w));
}

/** A form as a pattern its instances match: a placeholder any word, `[x]` an optional word, `a|b` either. */
function formPattern(form: string): RegExp {
  const escape = (w: string) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  let re = "";
  for (const word of form.split(" ")) {
    if (/^\[.*\]$/.test(word)) {
      re += "(?: \\S+)?";
      continue;
    }
    const bare = word.replace(/^<(.*)>$/, "$1");
    const part = word === "..."
      ? ".*"
      : PLACEHOLDER.test(word)
      ? "\\S+"
      : bare.includes("|")
      ? `(?:${bare.split("|").map(escape).join("|")})`
      : escape(word);
    re += (re === "" ? "" : " ") + part;
  }
  return new RegExp(`^${re}$`);
}

/** The port of the server that `forkyard ctl` finds from `dir`, as `forkyard ctl --json status` says. */
async function dispatcherPort(dir: string, env: Record<string, string>): Promise<number> {
  for (let i = 0; i < 100; i++) {
    let out = "";
    const ctl = runtime.spawn({
      cmd: ["sh", "-c", "exec forkyard ctl --json status"],
      cwd: dir,
      env,
      onStdout: (c) => void (out += new TextDecoder().decode(c)),
      onStderr: () => {},
    });
    if ((await ctl.exited).code === 0) return JSON.parse(out).port;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no server answers forkyard ctl in ${dir}`);
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

    // A project made by `npm init -y` is CommonJS: Node loads a module there with `import` as CommonJS (it fails), and
    // a TypeScript module through tsx as CommonJS (it gets a second copy of forkyard). Both are told what to change.
    test('in a CommonJS project, forkyard serve says in two lines to add "type": "module" (Node)', async () => {
      const cjs = mkdtempSync(join(tmpdir(), "forkyard-cjs-"));
      try {
        execFileSync("npm", ["init", "-y"], { cwd: cjs, stdio: "ignore" });
        symlinkSync(join(dir, "node_modules"), join(cjs, "node_modules"));
        writeFileSync(join(cjs, "app.js"), 'import "forkyard";\nexport default { fetch: () => new Response("x") };\n');
        writeFileSync(
          join(cjs, "app.ts"),
          'import { api, Worker } from "forkyard";\nexport class Hello extends Worker {\n  @api("/hi", "GET")\n' +
            "  hi() {\n    return { hi: true };\n  }\n}\n",
        );
        const tsx = pathToFileURL(join(root, "node_modules", "tsx", "dist", "loader.mjs")).href;
        const serve = async (args: string[]) => {
          let err = "";
          const child = runtime.spawn({
            cmd: [bin("node"), ...args],
            cwd: cjs,
            env: { PORT: "0", NO_COLOR: "1" },
            onStdout: () => {},
            onStderr: (c) => void (err += new TextDecoder().decode(c)),
          });
          return { code: (await child.exited).code, err };
        };
        const cli = join(dir, "node_modules", "forkyard", "dist", "cli.js");
        assert.deepEqual(await serve([cli, "serve", "./app.js"]), {
          code: 2,
          err:
            'forkyard: cannot load "./app.js": Cannot use import statement outside a module; ./app.js is loaded as ' +
            'CommonJS: add "type": "module" to its package.json, or name it .mjs (.mts)\n' +
            `  at ${join(cjs, "app.js")}:1\n`,
        });
        assert.deepEqual(await serve(["--import", tsx, cli, "serve", "./app.ts:Hello"]), {
          code: 2,
          err: 'forkyard: module "./app.ts" uses another copy of forkyard than this command line: on Node, a ' +
            'TypeScript or .js module outside a package with "type": "module" is loaded as CommonJS; add "type": ' +
            '"module" to its package.json (or name it .mts / .mjs)\n',
        });
      } finally {
        rmSync(cjs, { recursive: true, force: true });
      }
    });

    // The form most Express apps have (CommonJS, `module.exports = app`), as the guide writes it, in a project made by
    // `npm init -y`, served by the guide's own command with the installed bin.
    test("in a CommonJS project, the guide's Express server.js serves with the guide's command", async () => {
      const guide = readFileSync(join(root, "docs", "guide.md"), "utf8");
      const source = /```js\n(\/\/ server\.js\n[\s\S]*?)```/.exec(guide)?.[1];
      const command = /`(forkyard serve \.\/server\.js[^`]*)`/.exec(guide)?.[1];
      assert.ok(source !== undefined && command !== undefined, "the guide's server.js and its command");
      const cjs = mkdtempSync(join(tmpdir(), "forkyard-express-"));
      let out = "";
      let child: ReturnType<typeof spawn> | undefined;
      try {
        execFileSync("npm", ["init", "-y"], { cwd: cjs, stdio: "ignore" });
        mkdirSync(join(cjs, "node_modules"));
        symlinkSync(join(dir, "node_modules", "forkyard"), join(cjs, "node_modules", "forkyard"));
        symlinkSync(join(root, "node_modules", "express"), join(cjs, "node_modules", "express"));
        writeFileSync(join(cjs, "server.js"), source!);
        child = spawn("sh", ["-c", `exec ${command} --port 0`], {
          cwd: cjs,
          env: { ...process.env, PATH: `${join(dir, "node_modules", ".bin")}:${process.env.PATH}`, NO_COLOR: "1" },
          stdio: ["ignore", "pipe", "pipe"],
        });
        child.stdout!.on("data", (c) => (out += c));
        child.stderr!.on("data", (c) => (out += c));
        const exited = new Promise<number | null>((resolve) => child!.once("exit", resolve));
        const deadline = Date.now() + 30_000;
        while (!/Listening on http:\/\/[\d.]+:\d+/.test(out) && Date.now() < deadline) await sleep(20);
        const port = /Listening on http:\/\/[\d.]+:(\d+)/.exec(out)?.[1];
        assert.ok(port, out);
        assert.match(out, /pool \/: 4 workers, app at \//);
        const res = await fetch(`http://127.0.0.1:${port}/`);
        assert.equal(res.headers.get("x-powered-by"), "Express");
        assert.equal(await res.text(), "Hello World!");
        child.kill("SIGTERM");
        assert.equal(await exited, 0, out);
      } finally {
        if (child?.exitCode === null) child.kill("SIGKILL");
        rmSync(cjs, { recursive: true, force: true });
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
        const [, url] = await until(/Listening on (http:\/\/[\d.]+:\d+|unix:\S+)/, command);
        const status = url.startsWith("unix:")
          ? await new Promise<number>((resolve, reject) =>
            httpGet({ socketPath: url.slice(5), path: "/" }, (res) => {
              res.resume();
              resolve(res.statusCode!);
            }).on("error", reject)
          )
          : (await fetch(url.replace("0.0.0.0", "127.0.0.1"))).status;
        assert.ok(status < 500, `${command}: ${status}`);
        child.kill("SIGTERM");
        assert.equal((await child.exited).code, 0, `${command}: ${output}`);
        ran.add(command);
      }
      assert.match(await once("forkyard --help"), /Usage:/);
      assert.match(await once("forkyard --version"), /^\d+\.\d+\.\d+/);

      // forkyard ctl ...: against a server started here, found by its working directory (or --control PATH). Those
      // that name the remote pool Render, a host or a host's control socket run against the remote pool below.
      const remoteCtl = (command: string) => /HOST|\bRender\b|gpu-1/.test(command);
      const control = "/run/app.ctl";
      const pidFile = "/run/app.pid";
      const server = sh(`forkyard serve ./app.ts --control ${control} --pid-file ${pidFile}`);
      await until(/Listening on/, "the server for forkyard ctl");
      // Commands that find the server themselves (its pid file, $FORKYARD_CONTROL) or signal it run as written,
      // through a shell (an environment assignment, a $(...)).
      const asWritten = (command: string) => /--pid-file|^FORKYARD_CONTROL=|^kill /.test(command);
      const shell = (command: string) => runtime.spawn({ cmd: ["sh", "-c", command], cwd: dir, env, ...collect() });
      const placeholders = (command: string) =>
        command.replace(/\[POOL\]/, "").replace(/\bPOOL\b/, "/").replace(/\bN\b/, "2").replace(/\s+$/, "");
      try {
        for (
          const { command } of commands.filter((c) =>
            /^forkyard ctl /.test(c.command) && !/stop/.test(c.command) && !remoteCtl(c.command) &&
            !asWritten(c.command)
          )
        ) {
          const filled = placeholders(command).replace("forkyard ctl ", `forkyard ctl --control ${control} `)
            .replace(`--control ${control} --control ${control}`, `--control ${control}`);
          assert.equal((await sh(filled).exited).code, 0, `${filled}: ${output}`);
          ran.add(command);
        }
        // In another folder: found by its pid file and by $FORKYARD_CONTROL; TTIN and TTOU resize it.
        const workers = async () => {
          let json = "";
          const status = runtime.spawn({
            cmd: ["sh", "-c", `exec forkyard ctl --control ${control} --json status`],
            cwd: dir,
            env,
            onStdout: (c) => void (json += new TextDecoder().decode(c)),
            onStderr: () => {},
          });
          assert.equal((await status.exited).code, 0);
          return JSON.parse(json).pools[0].workers.length;
        };
        for (
          const { command } of commands.filter((c) => asWritten(c.command) && !c.command.startsWith("forkyard serve"))
        ) {
          const before = await workers();
          const child = shell(command);
          assert.equal((await child.exited).code, 0, `${command}: ${output}`);
          if (/^forkyard ctl .*status$/.test(command) || /^FORKYARD_CONTROL=/.test(command)) {
            assert.match(output, /^dispatcher pid \d+/m, command);
          }
          if (/^kill -TT(IN|OU)/.test(command)) {
            const expected = command.includes("TTIN") ? before + 1 : Math.max(1, before - 1);
            assert.ok(await eventually(async () => (await workers()) === expected, 5000), command);
          }
          ran.add(command);
        }
      } finally {
        const stop = commands.find((c) => c.command === "forkyard ctl stop")!.command;
        assert.equal((await sh(`forkyard ctl --control ${control} stop`).exited).code, 0, output);
        ran.add(stop);
        assert.equal((await server.exited).code, 0);
        assert.throws(() => readFileSync(pidFile), /ENOENT/, "the pid file is removed at exit");
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
        cmd: ["sh", "-c", "exec forkyard serve remote.json"],
        cwd: dir,
        env,
        onStdout: () => {},
        onStderr: () => {},
      });
      const hosts: ReturnType<typeof sh>[] = [];
      // A host started with --control PATH, by its PATH: `forkyard ctl --control PATH stop` stops it.
      const hostByControl = new Map<string, ReturnType<typeof sh>>();
      try {
        for (const { command } of commands.filter((c) => c.command.startsWith("forkyard worker "))) {
          if (ran.has(command)) continue;
          const host = sh(local(command));
          hosts.push(host);
          const path = /--control (\S+)/.exec(command)?.[1];
          if (path !== undefined) hostByControl.set(path, host);
          await until(/takes requests for pool/, command);
          ran.add(command);
        }
        // Both kinds of host answer through the dispatcher (found from this folder, as ctl finds it), and ctl steers
        // one host by name, or one host through its own control socket.
        const port = await dispatcherPort(dir, env);
        const render = await fetch(`http://127.0.0.1:${port}/render/hi`);
        assert.equal(render.status, 200, await render.text());
        assert.equal((await fetch(`http://127.0.0.1:${port}/api/`)).status, 200);
        for (const { command } of commands.filter((c) => /^forkyard ctl /.test(c.command) && remoteCtl(c.command))) {
          if (ran.has(command) || / stop$/.test(command)) continue;
          const filled = command.replace(/\bPOOL\b/, "Render").replace(/\bN\b/, "2").replace(/\bHOST\b/, hostname());
          assert.equal((await sh(filled).exited).code, 0, `${filled}: ${output}`);
          ran.add(command);
        }
        for (const { command } of commands.filter((c) => /^forkyard ctl --control \S+ stop$/.test(c.command))) {
          const host = hostByControl.get(command.split(" ")[3]);
          if (host === undefined) continue;
          assert.equal((await sh(command).exited).code, 0, `${command}: ${output}`);
          assert.equal((await host.exited).code, 0, command);
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

    // The commands README.md and docs/ write inline, in their sentences. Each is run as written, where it says (the
    // project made from the tarball, a clone beside it, this clone), or is one of: a fenced command (the test above
    // runs those), a command's name (the words a command that runs begins with), a form whose placeholders (`POOL`,
    // `[POOL]`, `a|b`, `<a|b>`, `...`) a fenced command fills, or named here with what runs it.
    test("every command written inline in README.md and docs/ works as written", async () => {
      const fenced = docCommands().map((c) => c.command);
      const inline = [...new Set(inlineCommands().map((c) => c.command))];
      const covered: Record<string, string> = {
        "npm ci": "CI's first step",
        "npm pack": "this file's before() packs the tarball with it",
        "npm run bench": "a benchmark: minutes of load by design; BENCHMARKS.md is its output",
        "node bench/run.mjs node": "a benchmark: minutes of load by design; BENCHMARKS.md is its output",
        "node bench/probe.mjs <deno|bun|node> [server] [path]": "a benchmark probe: seconds of load per runtime",
        "node bench/soak.mjs [runtime]": "a soak: minutes of faults under load by design",
        "forkyard serve ./server.js --workers 4": "run above, with the guide's server.js, in a CommonJS project",
      };
      const forms = inline.filter((c) => !(c in covered) && !fenced.includes(c) && isForm(c));
      for (const form of forms) {
        assert.ok(fenced.some((c) => formPattern(form).test(c)), `no fenced command fills the form ${form}`);
      }
      const names = inline.filter((c) =>
        !forms.includes(c) && [...fenced, ...inline].some((other) => other.startsWith(`${c} `))
      );
      const runs = inline.filter((c) =>
        !(c in covered) && !fenced.includes(c) && !forms.includes(c) && !names.includes(c)
      );
      const env = {
        PATH: `${join(dir, "node_modules", ".bin")}:${join(root, "node_modules", ".bin")}:${process.env.PATH}`,
        NO_COLOR: "1",
      };
      // A clone beside a project, as the install table's Deno row has it.
      const parent = mkdtempSync(join(tmpdir(), "forkyard-beside-"));
      symlinkSync(root.replace(/\/$/, ""), join(parent, "forkyard"));
      mkdirSync(join(parent, "project"));
      writeFileSync(join(parent, "project", "app.ts"), 'export default { fetch: () => new Response("beside") };\n');
      writeFileSync(
        join(dir, "app.js"),
        'export const app = { fetch: () => new Response("app.js") };\nexport default app;\n',
      );
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
          : /^(npx|bunx|npm init|forkyard) /.test(command)
          ? dir
          : root;
      // A server and the curl the docs write after it, whose answer is checked.
      const quickstartCurl = runs.find((c) => c.startsWith("curl -H 'x-api-key: demo-key'"))!;
      const after: Record<string, { command: string; check: (body: Record<string, unknown>) => void }> = {
        "npm run hello": {
          command: "curl localhost:8080/hello/world",
          check: (body) => assert.equal(body.hello, "world"),
        },
        "npm run quickstart": {
          command: quickstartCurl,
          check: (body) => assert.equal(body.name, "apple", JSON.stringify(body)),
        },
      };
      const ran = new Set<string>();
      try {
        for (const command of runs.filter((c) => !Object.values(after).some((a) => a.command === c))) {
          if (ran.has(command)) continue;
          let out = "";
          // Its own process group: npm and npx start the server as a child, and SIGTERM goes to them all.
          const child = spawn("sh", ["-c", command], {
            cwd: command === "npm init -y" ? mkdtempSync(join(tmpdir(), "forkyard-init-")) : where(command),
            env: { ...process.env, ...env, ...(command in after ? {} : { PORT: "0" }) },
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
            // The docs' next command, run as written against the server this one started on its default port.
            const next = after[command];
            if (next !== undefined) {
              const curl = spawn("sh", ["-c", next.command], { stdio: ["ignore", "pipe", "ignore"] });
              let body = "";
              curl.stdout!.on("data", (c) => (body += c));
              await new Promise((resolve) => curl.once("exit", resolve));
              next.check(JSON.parse(body));
              ran.add(next.command);
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
      assert.deepEqual(runs.filter((c) => !ran.has(c)), []);
    });
  });
}
