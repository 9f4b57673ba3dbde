#!/usr/bin/env node
// Runs the whole suite under `deno test`, `bun test` and `node --test` (Node 24 from
// node_modules, with tsx for decorators), prints each runtime's counts, and fails when any
// runtime fails or runs no test. Then runs `deno lint`, `deno check` on tests, examples and benchmarks, and
// `deno publish --dry-run`.
//
//   node scripts/test.mjs            all runtimes
//   node scripts/test.mjs deno bun   some of them
//   FORKYARD_TEST_FILES="tests/api.test.ts" node scripts/test.mjs node
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";

const ANSI = new RegExp(String.fromCharCode(27) + "\\[[0-9;]*m", "g");
const root = new URL("..", import.meta.url).pathname;
const bin = (name) => join(root, "node_modules", ".bin", name);
const testsIn = (dir) =>
  existsSync(join(root, dir))
    ? readdirSync(join(root, dir)).filter((f) => f.endsWith(".test.ts")).map((f) => `${dir}/${f}`)
    : [];
const files = process.env.FORKYARD_TEST_FILES?.split(/\s+/).filter(Boolean) ??
  [...testsIn("tests"), ...testsIn("tests/faults")].sort();

/**
 * Debian packages some tests drive: chromium (the status page's test), nats-server (remote pools'). Installed when
 * missing and apt can.
 */
function ensurePackage(command, pkg, testFile) {
  if (spawnSync(command, ["--version"]).error === undefined) return;
  if (spawnSync("apt-get", ["--version"]).error !== undefined) {
    console.error(`${command} is missing and apt-get is not available: ${testFile} will fail`);
    return;
  }
  console.log(`installing ${pkg} from Debian's packages (for ${testFile})`);
  const root = process.getuid?.() === 0;
  const aptGet = (args) =>
    spawnSync(root ? "apt-get" : "sudo", root ? args : ["apt-get", ...args], { stdio: "inherit" });
  aptGet(["update", "-qq"]);
  aptGet(["install", "-y", "-qq", pkg]);
}
if (files.some((f) => f.includes("status_page"))) ensurePackage("chromium", "chromium", "tests/status_page.test.ts");
if (files.some((f) => /remote|flow_control/.test(f))) {
  ensurePackage("nats-server", "nats-server", "tests/remote.test.ts");
}

const suites = {
  deno: [bin("deno"), ["test", "-A", ...files]],
  bun: [bin("bun"), ["test", "--timeout", "120000", ...files.map((f) => `./${f}`)]],
  node: [bin("node"), ["--import", "tsx", "--test", "--test-timeout=120000", ...files]],
};

function run(cmd, args, env = {}) {
  return new Promise((resolve) => {
    let out = "";
    const child = spawn(cmd, args, { cwd: root, env: { ...process.env, NO_COLOR: "1", ...env } });
    const tee = (stream) => (chunk) => {
      out += chunk;
      stream.write(chunk);
    };
    child.stdout.on("data", tee(process.stdout));
    child.stderr.on("data", tee(process.stderr));
    child.on("close", (code) => resolve({ code, out: out.replace(ANSI, "") }));
  });
}

function counts(runtime, out) {
  if (runtime === "deno") {
    const m = /(\d+) passed(?: \((\d+) steps?\))? \| (\d+) failed(?: \((\d+) steps?\))?/.exec(out);
    if (!m) return null;
    // node:test tests run as steps of one Deno test per top-level describe: count the steps.
    const passed = m[2] !== undefined ? Number(m[2]) : Number(m[1]);
    const failed = m[4] !== undefined ? Number(m[4]) : Number(m[3]);
    return { passed, failed };
  }
  if (runtime === "bun") {
    const p = /^\s*(\d+) pass$/m.exec(out);
    const f = /^\s*(\d+) fail$/m.exec(out);
    return p && f ? { passed: Number(p[1]), failed: Number(f[1]) } : null;
  }
  const p = /^ℹ pass (\d+)$/m.exec(out);
  const f = /^ℹ fail (\d+)$/m.exec(out);
  return p && f ? { passed: Number(p[1]), failed: Number(f[1]) } : null;
}

const wanted = process.argv.slice(2).length > 0 ? process.argv.slice(2) : Object.keys(suites);
const summary = [];
let ok = true;
for (const runtime of wanted) {
  const [cmd, args] = suites[runtime];
  console.log(`\n=== ${runtime}: ${[cmd, ...args].join(" ")}\n`);
  const started = Date.now();
  const { code, out } = await run(cmd, args);
  const c = counts(runtime, out) ?? { passed: 0, failed: 0 };
  const good = code === 0 && c.failed === 0 && c.passed > 0;
  ok &&= good;
  summary.push({ runtime, ...c, code, seconds: Math.round((Date.now() - started) / 1000), good });
}

if (!process.env.FORKYARD_TEST_FILES && wanted.length === 3) {
  for (
    const [name, args] of [
      ["deno lint", ["lint"]],
      // Type-checks what publishing does not: the tests, the examples and the benchmarks.
      ["deno check", ["check", "tests", "examples", "bench"]],
      ["deno publish --dry-run", ["publish", "--dry-run", "--allow-dirty"]],
    ]
  ) {
    console.log(`\n=== ${name}\n`);
    const { code } = await run(bin("deno"), args);
    summary.push({
      runtime: name,
      passed: code === 0 ? 1 : 0,
      failed: code === 0 ? 0 : 1,
      code,
      seconds: 0,
      good: code === 0,
    });
    ok &&= code === 0;
  }
}

console.log("\n=== summary");
let passed = 0;
let failed = 0;
for (const s of summary) {
  passed += s.passed;
  failed += s.failed + (s.good ? 0 : s.failed === 0 ? 1 : 0);
  console.log(
    `${s.good ? "ok  " : "FAIL"} ${
      s.runtime.padEnd(24)
    } ${s.passed} passed, ${s.failed} failed (exit ${s.code}, ${s.seconds}s)`,
  );
}
console.log(`\n${passed} passed, ${failed} failed`);
process.exit(ok ? 0 : 1);
