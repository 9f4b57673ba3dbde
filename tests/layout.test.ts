// The code's layout, checked: no import cycle, the worker side and the protocol never reach into the dispatcher
// side, runtime checks only in the adapters and detection, and what worker processes load at start stays light.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";

const root = new URL("../", import.meta.url);

/** Every TypeScript file of the library, relative to the root. */
function libraryFiles(): string[] {
  const out = ["mod.ts", "cli.ts", "runtime.ts"];
  const walk = (dir: string) => {
    for (const name of readdirSync(new URL(dir, root))) {
      const path = `${dir}/${name}`;
      if (statSync(new URL(path, root)).isDirectory()) walk(path);
      else if (name.endsWith(".ts")) out.push(path);
    }
  };
  walk("src");
  walk("adapters");
  return out;
}

/** The relative imports of `file` (static, type-only and literal dynamic ones), as paths from the root. */
function importsOf(file: string): { path: string; typeOnly: boolean }[] {
  const code = readFileSync(new URL(file, root), "utf8");
  const out: { path: string; typeOnly: boolean }[] = [];
  const patterns = [
    /^(?:import|export)\s+(type\s)?[^;]*?from\s+"(\.[^"]+)";/gms,
    /\bimport\(\s*"(\.[^"]+)"\s*\)/g,
  ];
  for (const m of code.matchAll(patterns[0])) {
    out.push({ path: new URL(m[2], new URL(file, root)).href.slice(root.href.length), typeOnly: m[1] !== undefined });
  }
  for (const m of code.matchAll(patterns[1])) {
    out.push({ path: new URL(m[1], new URL(file, root)).href.slice(root.href.length), typeOnly: false });
  }
  return out;
}

const graph = new Map(libraryFiles().map((file) => [file, importsOf(file)]));

describe("layout", () => {
  test("every relative import names a file that exists", () => {
    for (const [file, imports] of graph) {
      for (const { path } of imports) {
        assert.ok(graph.has(path), `${file} imports ${path}, which is not a library file`);
      }
    }
  });

  test("no import cycle in the library, type-only imports included", () => {
    const state = new Map<string, "open" | "done">();
    const stack: string[] = [];
    const visit = (file: string) => {
      if (state.get(file) === "done") return;
      if (state.get(file) === "open") {
        assert.fail(`import cycle: ${[...stack.slice(stack.indexOf(file)), file].join(" -> ")}`);
      }
      state.set(file, "open");
      stack.push(file);
      for (const { path } of graph.get(file) ?? []) visit(path);
      stack.pop();
      state.set(file, "done");
    };
    for (const file of graph.keys()) visit(file);
  });

  test("layers point down: pools, requests, supervision, remote pools, protocol and workers never import the dispatcher or the CLI", () => {
    const lower = ["src/supervisor/", "src/requests/", "src/remote/", "src/protocol/", "src/worker/", "src/pool"];
    const upper = ["src/dispatcher/", "src/cli/"];
    for (const [file, imports] of graph) {
      if (!lower.some((layer) => file.startsWith(layer))) continue;
      for (const { path } of imports) {
        assert.ok(!upper.some((side) => path.startsWith(side)), `${file} imports ${path}`);
      }
    }
  });

  test("the worker side never imports supervision, requests or remote pools; the protocol never imports the worker side", () => {
    const dispatcherSide = [
      "src/supervisor/",
      "src/requests/",
      "src/remote/",
      "src/running_pools.ts",
      "src/pool_backend.ts",
    ];
    for (const [file, imports] of graph) {
      if (!file.startsWith("src/worker/") && !file.startsWith("src/protocol/")) continue;
      for (const { path } of imports) {
        assert.ok(!dispatcherSide.some((side) => path.startsWith(side)), `${file} imports ${path}`);
        if (file.startsWith("src/protocol/")) assert.ok(!path.startsWith("src/worker/"), `${file} imports ${path}`);
      }
    }
  });

  test("a request's life is in one place: only the lifecycle makes answers, and nothing below it imports supervision or remote pools", () => {
    for (const [file, imports] of graph) {
      if (!file.startsWith("src/requests/")) continue;
      for (const { path } of imports) {
        assert.ok(!/^src\/(supervisor|remote)\//.test(path), `${file} imports ${path}`);
      }
    }
    for (const [file, imports] of graph) {
      if (file.startsWith("src/requests/")) continue;
      for (const { path } of imports) {
        assert.notEqual(path, "src/requests/answers.ts", `${file} makes answers outside the lifecycle`);
      }
    }
  });

  test("no file of the library over 450 lines", () => {
    for (const file of graph.keys()) {
      const lines = readFileSync(new URL(file, root), "utf8").split("\n").length - 1;
      assert.ok(lines <= 450, `${file} has ${lines} lines`);
    }
  });

  test("the protocol depends on nothing of forkyard but the runtime interface", () => {
    for (const [file, imports] of graph) {
      if (!file.startsWith("src/protocol/")) continue;
      for (const { path } of imports) {
        assert.ok(path.startsWith("src/protocol/") || path === "src/runtime.ts", `${file} imports ${path}`);
      }
    }
  });

  test("only the adapters and src/detect.ts look at which runtime this is", () => {
    const runtimeCheck =
      /\bDeno\.|\bBun\.|"Deno" in globalThis|\.versions\??\.bun|runtime\.name\s*[!=]==|\bname\s*===\s*"(deno|bun|node)"/;
    for (const file of graph.keys()) {
      if (file.startsWith("adapters/") || file === "src/detect.ts") continue;
      const code = readFileSync(new URL(file, root), "utf8")
        .replace(/\/\*[\s\S]*?\*\//g, "")
        .replace(/^\s*\/\/.*$/gm, "");
      const found = runtimeCheck.exec(code);
      assert.equal(found, null, `${file} checks the runtime: ${found?.[0]}`);
    }
  });

  test("mod.ts does not load the supervisor, LogTape, Hono or node:path at import", () => {
    // Worker processes re-run the program, which imports mod.ts: what it loads, every worker start pays for.
    const seen = new Set<string>();
    const visit = (url: URL) => {
      if (seen.has(url.href)) return;
      seen.add(url.href);
      const code = readFileSync(url, "utf8");
      for (const m of code.matchAll(/^(?:import|export)\s(?!type\b)[^;]*?from\s+"([^"]+)";/gms)) {
        if (m[1].startsWith(".")) visit(new URL(m[1], url));
        else seen.add(m[1]);
      }
    };
    visit(new URL("mod.ts", root));
    const loaded = [...seen].map((s) => s.startsWith(root.href) ? s.slice(root.href.length) : s);
    assert.ok(loaded.includes("src/worker/loop.ts"), loaded.join(", "));
    for (const name of loaded) {
      assert.ok(
        !/^src\/(supervisor|cli)\/|^src\/logging\/logtape\.ts$|^src\/dispatcher\/static_guard\.ts$/.test(name) &&
          !["@logtape/logtape", "hono", "node:path", "node:url"].includes(name) && !name.startsWith("hono/"),
        `mod.ts statically loads ${name}: ${loaded.join(", ")}`,
      );
    }
  });
});
