// The forkyard command line: serving modules and config files, and its errors.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { fixture, getJson, runtime, start } from "./helpers.ts";
import { Worker } from "../mod.ts";
import { declaredExports, foreignSubclass } from "../src/cli/module_exports.ts";

const CLI = fileURLToPath(new URL("../cli.ts", import.meta.url));

/** Starts `forkyard serve ...` on a free port; resolves with its base URL once it listens. */
async function serve(...args: string[]) {
  const proc = start(CLI, ["serve", ...args, "--port", "0", "--host", "127.0.0.1"]);
  const line = await proc.waitStderr(/Listening on http:\/\/127\.0\.0\.1:\d+/);
  return { proc, url: line.replace(/^Listening on /, "") };
}

async function fails(args: string[], cmd?: string[]): Promise<string> {
  const proc = start(CLI, args, {}, cmd);
  const status = await proc.exited;
  assert.deepEqual(status, { code: 2, signal: null }, proc.stderr());
  const lines = proc.stderr().trim().split("\n");
  assert.equal(lines.length, 1, proc.stderr());
  return lines[0];
}

describe(`forkyard CLI (${runtime.name})`, () => {
  test("--version and --help", async () => {
    const v = start(CLI, ["--version"]);
    assert.equal((await v.exited).code, 0);
    assert.equal(v.stdout().trim(), "0.1.0");
    const h = start(CLI, ["--help"]);
    assert.equal((await h.exited).code, 0);
    const help = h.stdout();
    assert.match(help, /forkyard serve <module>/);
    // The command line's own defaults, not the options' (the access log and the control socket are on).
    assert.match(help, /^ {2}--access-log\[=<value>\] +.*\(default: combined\)$/m);
    assert.match(help, /^ {2}--control <value> +.*\(default: one per working directory/m);
    assert.match(help, /^ {2}--admin <value> +.*\(default: off\)$/m);
    assert.doesNotMatch(help, /default undefined|default false\)/);
    // One column for every option's text, after the longest flag and two spaces at least.
    const optionLines = help.slice(help.indexOf("Options:")).split("\n").filter((l) => /^ {2}--/.test(l));
    const starts = new Set(optionLines.map((l) => /^ {2}--\S+(?: <\w+>)?\s+/.exec(l)![0].length));
    assert.equal(starts.size, 1, [...starts].join(", "));
    // How this one was started, for this runtime.
    const runsAs = /^Runs as: (.*) \(also: npx forkyard, bunx forkyard\)$/m.exec(help)?.[1] ?? "";
    assert.match(
      runsAs,
      runtime.name === "deno" ? /^deno run -A .*cli\.ts$/ : new RegExp(`^${runtime.name}\\b.*cli\\.ts$`),
    );
  });

  test("serve a fetch app module: it runs in a worker pool at /", async () => {
    const { proc, url } = await serve(fixture("users_app.ts"), "--workers", "2");
    try {
      assert.deepEqual((await getJson(`${url}/42`)).body, { path: "/42", id: "42" });
      const pids = new Set<number>();
      for (let i = 0; i < 6; i++) pids.add((await getJson(`${url}/`)).body.pid);
      assert.equal(pids.size, 2);
      assert.ok(!pids.has(proc.pid));
    } finally {
      proc.child.kill("SIGTERM");
      assert.equal((await proc.exited).code, 0);
    }
  });

  test("serve a module exporting a Dispatcher, and module:export of a Worker class", async () => {
    const a = await serve(fixture("cli_dispatcher.ts"));
    try {
      const res = await getJson(`${a.url}/echo/hi`);
      assert.equal(res.body.echo, "hi");
      assert.notEqual(res.body.pid, a.proc.pid);
    } finally {
      a.proc.child.kill("SIGTERM");
      assert.equal((await a.proc.exited).code, 0);
    }
    const b = await serve(`${fixture("cli_dispatcher.ts")}:EchoWorker`);
    try {
      assert.equal((await getJson(`${b.url}/echo/there`)).body.echo, "there");
    } finally {
      b.proc.child.kill("SIGTERM");
      await b.proc.exited;
    }
  });

  test("serve a config file: worker pool, two apps, static files", async () => {
    const { proc, url } = await serve(fixture("config/forkyard.json"));
    try {
      assert.equal((await getJson(`${url}/echo/cfg`)).body.echo, "cfg");
      assert.deepEqual((await getJson(`${url}/users/5`)).body, { path: "/5", id: "5" });
      assert.deepEqual((await getJson(`${url}/plain/x`)).body, { plain: true, path: "/x", method: "GET" });
      assert.equal(await (await fetch(`${url}/static/style.css`)).text(), "body{}\n");
      assert.equal((await getJson(`${url}/nothing`)).status, 404);
    } finally {
      proc.child.kill("SIGTERM");
      assert.equal((await proc.exited).code, 0);
    }
  });

  test("a module that runs its own dispatcher at import is adopted with the command line's flags", async () => {
    const proc = start(CLI, ["serve", fixture("cli/self_running.ts"), "--port", "0", "--host", "127.0.0.1"]);
    try {
      const { port, hostname } = await proc.line<{ port: number; hostname: string }>((v) => "port" in v);
      assert.equal(hostname, "127.0.0.1");
      assert.notEqual(port, 1);
      const res = await getJson(`http://127.0.0.1:${port}/hello/ann`);
      assert.equal(res.body.hello, "ann");
      assert.notEqual(res.body.pid, proc.pid);
    } finally {
      proc.child.kill("SIGTERM");
      assert.deepEqual(await proc.exited, { code: 0, signal: null }, proc.stderr());
    }
    assert.doesNotMatch(proc.stderr(), /default export/);
  });

  test("a module that cannot load exits 2 with one line naming the cause, no stack, no colours", async () => {
    const pattern = await fails(["serve", fixture("cli/bad_pattern.ts")]);
    assert.match(pattern, /^forkyard: cannot load ".*bad_pattern\.ts": Unknown parameter type "uuid" in pattern/);
    const thrown = await fails(["serve", fixture("cli/throws_at_import.ts")]);
    assert.match(thrown, /^forkyard: cannot load ".*throws_at_import\.ts": DATABASE_URL is not set$/);
  });

  test("a module with a syntax error exits 2 with the runtime's message and where, in two lines", async () => {
    // In the project (.tmp/ is ignored by git), where tsx on Node compiles it as the project's.
    const scratch = new URL("../.tmp/", import.meta.url).pathname;
    mkdirSync(scratch, { recursive: true });
    const dir = mkdtempSync(join(scratch, "syntax-"));
    try {
      const bad = join(dir, "bad.ts");
      writeFileSync(bad, 'export default {\n  fetch() {\n    return new Response("x");\n');
      const proc = start(CLI, ["serve", bad]);
      assert.deepEqual(await proc.exited, { code: 2, signal: null }, proc.stderr());
      const lines = proc.stderr().trim().split("\n");
      assert.equal(lines.length, 2, proc.stderr());
      assert.match(lines[0], /^forkyard: cannot load ".*bad\.ts": .*(end of file|eof|Unexpected)/i);
      assert.match(lines[1], /^ {2}at (file:\/\/)?\/.*bad\.ts:\d+(:\d+)?$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a module's exports read from its text, and a Worker class of another copy of forkyard told apart", () => {
    assert.deepEqual(
      declaredExports(
        "export class A extends Worker {}\nexport default x;\nexport const b = 1, c = 2;\nexport { d, e as f };\n" +
          "export async function g() {}\nexport type { H };\n",
      ),
      ["A", "default", "b", "g", "d", "f", "H"],
    );
    for (const text of ["export * from './x.ts';", "module.exports = {};", "exports.A = 1;", "const a = 1;"]) {
      assert.equal(declaredExports(text), null, text);
    }
    class Other {}
    Object.defineProperty(Other, "name", { value: "Worker" });
    class Theirs extends Other {}
    class Ours extends Worker {}
    assert.equal(foreignSubclass(Theirs, "Worker", Worker), true);
    assert.equal(foreignSubclass(Ours, "Worker", Worker), false);
    assert.equal(foreignSubclass({ fetch() {} }, "Worker", Worker), false);
  });

  test("a port already in use: exit 1 and one line saying so, from the CLI and from a program", async () => {
    const first = await serve(fixture("users_app.ts"));
    try {
      const port = new URL(first.url).port;
      const cli = start(CLI, ["serve", fixture("users_app.ts"), "--port", port, "--host", "127.0.0.1"]);
      const program = start(fixture("app.ts"), [], { PORT: port });
      for (const proc of [cli, program]) {
        assert.deepEqual(await proc.exited, { code: 1, signal: null }, proc.stderr());
        const err = proc.stderr();
        const lines = err.split("\n").filter((l) => /Cannot listen/.test(l));
        assert.equal(lines.length, 1, err);
        assert.match(lines[0], new RegExp(`Cannot listen on [0-9.]+:${port}: the address is already in use; stop`));
        assert.doesNotMatch(err, /^\s+at /m, "a stack trace");
        assert.ok(!err.includes("\x1b["), "colour codes on a stderr that is not a terminal");
      }
    } finally {
      first.proc.child.kill("SIGTERM");
      await first.proc.exited;
    }
  });

  test("every address is checked before any worker starts, each error naming its own option", async () => {
    const dir = mkdtempSync(join(tmpdir(), "forkyard-addr-"));
    const mark = join(dir, "workers");
    const control = join(dir, "first.sock");
    const first = await serve(fixture("users_app.ts"), "--control", control);
    try {
      const port = new URL(first.url).port;
      const app = fixture("cli/marks_workers.ts");
      const cases: [string[], RegExp][] = [
        [["--port", port], new RegExp(`:${port}: the address is already in use; .*\\(option "port" or --port\\)$`)],
        [["--port", "0", "--admin", `127.0.0.1:${port}`], /already in use; .*\(option "admin" or --admin\)$/],
        [
          ["--port", "0", "--control", control],
          /another server answers on the control socket .*: give this one --control PATH or --no-control/,
        ],
      ];
      for (const [flags, expected] of cases) {
        const proc = start(CLI, ["serve", app, "--host", "127.0.0.1", "--workers", "2", ...flags], { MARK_FILE: mark });
        assert.deepEqual(await proc.exited, { code: 1, signal: null }, proc.stderr());
        const lines = proc.stderr().split("\n").filter((l) => /Cannot|another server/.test(l));
        assert.equal(lines.length, 1, proc.stderr());
        assert.match(lines[0], expected);
        assert.ok(!existsSync(mark), `workers started before ${flags.join(" ")} failed: ${proc.stderr()}`);
      }
    } finally {
      first.proc.child.kill("SIGTERM");
      await first.proc.exited;
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("TypeScript with decorators on Node without a loader: one line saying how to run it", async () => {
    if (runtime.name !== "node") return; // Deno and Bun run TypeScript themselves
    const node = fileURLToPath(new URL("../node_modules/.bin/node", import.meta.url));
    const line = await fails(["serve", fixture("cli/decorated.ts")], [node, CLI]);
    assert.match(line, /Node runs TypeScript with decorators only through a loader; run NODE_OPTIONS="--import tsx"/);
  });

  test("bad input exits 2 with one line naming the key or path; nothing starts", async () => {
    const dir = mkdtempSync(join(tmpdir(), "forkyard-cli-"));
    const write = (name: string, config: unknown) => {
      const file = join(dir, name);
      writeFileSync(file, typeof config === "string" ? config : JSON.stringify(config));
      return file;
    };
    const app = fixture("plain_app.ts");
    assert.match(await fails(["serve", write("a.json", { prot: 1 })]), /a\.json: prot: unknown key/);
    assert.match(
      await fails(["serve", write("b.json", { apps: [{ mount: "/a", module: app, workerz: 2 }] })]),
      /b\.json: apps\[0\]: Unknown WorkerPool option "workerz"/,
    );
    assert.match(
      await fails(["serve", write("c.json", { pools: [{ module: app, export: "X", timeout: "5" }] })]),
      /c\.json: pools\[0\]: Invalid WorkerPool option "timeout": "5"/,
    );
    assert.match(
      await fails(["serve", write("d.json", { apps: [{ mount: "/a", module: "./missing.ts" }] })]),
      /d\.json: apps\[0\]\.module: cannot find "\.\/missing\.ts"/,
    );
    assert.match(
      await fails(["serve", write("e.json", { pools: [{ module: app, export: "Nope", routes: ["/x"] }] })]),
      /e\.json: pools\[0\]\.export: .* has no Worker class export "Nope"/,
    );
    assert.match(await fails(["serve", write("f.json", "{oops")]), /f\.json: invalid JSON/);
    assert.match(
      await fails(["serve", write("g.json", { port: "80" })]),
      /g\.json: Invalid Dispatcher option "port": "80"/,
    );
    assert.match(
      await fails(["serve", write("h.json", { headersTimeout: "5" })]),
      /h\.json: Invalid Dispatcher option "headersTimeout": "5"/,
    );
    assert.match(await fails(["serve", join(dir, "none.ts")]), /cannot find module/);
    assert.match(await fails(["serve", `${app}:missing`]), /has no export "missing" \(its exports: /);
    // A module that runs its own dispatcher when imported: its text says what it exports, before anything starts.
    assert.match(
      await fails(["serve", `${fixture("cli/self_running.ts")}:Nope`]),
      /has no export "Nope" \(its exports: HelloWorker\)$/,
    );
    assert.match(await fails(["serve", fixture("echo_child.ts"), "--port", "-1"]), /--port/);
    assert.match(await fails(["serve", app, "--bogus"]), /unknown option --bogus/);
    assert.match(await fails(["launch", app]), /unknown command "launch"/);
  });
});
