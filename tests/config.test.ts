// Construction-time checks and pure routing logic (no processes needed for these).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { api, Dispatcher, sync, Worker, WorkerPool, ws } from "../mod.ts";
import { compilePattern, compilePoolRoute, RouteTable } from "../src/routing.ts";
import { format, renderTemplate } from "../src/logging/format.ts";
import { moduleUrl } from "../src/pool_options.ts";
import { runtime } from "./helpers.ts";

class W extends Worker {}

describe(`configuration errors (${runtime.name})`, () => {
  test("bad WorkerPool options throw naming the option and the value", () => {
    assert.throws(() => new WorkerPool(W, { workers: 0 }), { name: "RangeError", message: /"workers": 0/ });
    assert.throws(() => new WorkerPool(W, { timeout: -1 }), { name: "RangeError", message: /"timeout": -1/ });
    assert.throws(() => new WorkerPool(W, { timeout: "5" as unknown as number }), /"timeout": "5"/);
    assert.throws(() => new WorkerPool(W, { logLevel: "loud" as "info" }), {
      name: "TypeError",
      message: /"logLevel": "loud"/,
    });
    assert.throws(() => new WorkerPool(W, { routes: [] }), /"routes"/);
    assert.throws(() => new WorkerPool(W, { routes: ["api/**"] }), /"routes".*api\/\*\*/);
    assert.throws(() => new WorkerPool(W, { routes: ["/a/*/b"] }), /"routes"/);
    assert.throws(() => new WorkerPool(W, { workerz: 2 } as never), {
      name: "TypeError",
      message: /Unknown WorkerPool option "workerz"/,
    });
    assert.throws(() => new WorkerPool(W, { heartbeatInterval: 1000, stuckTimeout: 500 }), /"stuckTimeout": 500/);
    assert.throws(() => new WorkerPool(W, { kwargs: { n: 1n } as never }), /"kwargs"/);
    assert.throws(() => new WorkerPool(null as never), /Worker class/);
    assert.throws(() => new WorkerPool("Named"), /"module"/);
  });

  test("bad Dispatcher options throw naming the option", () => {
    assert.throws(() => new Dispatcher({ port: 70000 }), { name: "RangeError", message: /"port": 70000/ });
    assert.throws(() => new Dispatcher({ prot: 1 } as never), /Unknown Dispatcher option "prot"/);
    assert.throws(() => new Dispatcher({ maxPending: 0 }), /"maxPending": 0/);
    assert.throws(() => new Dispatcher({ staticRoutes: { static: "./x" } }), /"staticRoutes"/);
    assert.throws(() => new Dispatcher({ tls: { cert: "x" } as never }), /"tls"/);
    assert.throws(() => new Dispatcher({ pools: [{}] as never }), /item 0 is not a WorkerPool/);
    assert.throws(
      () => new Dispatcher({ pools: [new WorkerPool(W), new WorkerPool(W, { routes: ["/x"] })] }),
      { name: "TypeError", message: /two pools are named "W"/ },
    );
  });

  test("an unknown parameter type is a TypeError when the route is declared", () => {
    assert.throws(() => api("/x/{id:uuid}", "GET"), { name: "TypeError", message: /Unknown parameter type "uuid"/ });
    assert.throws(() => sync("/x/{id:bool}"), /Unknown parameter type "bool"/);
    assert.throws(() => api("/x/{bad name}"), /Invalid route segment/);
    assert.throws(() => api("/x", "GE T"), /Invalid HTTP method/);
  });

  test("a method that is no HTTP method, or a pattern without its leading /, throws where the route is declared", () => {
    assert.throws(() => api("/x", "GTE"), {
      name: "TypeError",
      message: 'Invalid HTTP method "GTE" in @api("/x") (did you mean "GET"?)',
    });
    assert.throws(() => sync("/x", "POTS"), /did you mean "POST"/);
    assert.throws(() => api("/x", "FETCH"), /Invalid HTTP method "FETCH" in @api\("\/x"\) \(expected one of GET, HEAD/);
    assert.throws(() => api("users/{id}", "GET"), {
      name: "TypeError",
      message: /Invalid pattern "users\/\{id\}" in @api: it starts with "\/" \("\/users\/\{id\}"/,
    });
    assert.throws(() => ws("chat"), /Invalid pattern "chat" in @ws/);
    // Lower case is fine, WebDAV's methods too.
    api("/x", "get", "propfind");
  });

  test("stop() before run() resolves (LogTape is loaded only by run())", async () => {
    await new Dispatcher({ port: 0 }).stop();
  });

  test("status() before run() lists no workers", () => {
    assert.deepEqual(new WorkerPool(W).status(), { name: "W", workers: [], queueSize: 0, degraded: false, spares: [] });
  });
});

describe(`routing (${runtime.name})`, () => {
  test("patterns convert int and float and reject values that do not convert", () => {
    const p = compilePattern("/item/{id:int}/{price:float}/{name}");
    assert.deepEqual(p.match("/item/42/9.5/pen"), { id: 42, price: 9.5, name: "pen" });
    assert.deepEqual(p.match("/item/-1/3/pen/"), { id: -1, price: 3, name: "pen" });
    assert.equal(p.match("/item/4x/9.5/pen"), undefined);
    assert.equal(p.match("/item/4/abc/pen"), undefined);
    assert.equal(p.match("/item/4/1.5"), undefined);
    assert.equal(p.match("/item/4/1.5/pen/extra"), undefined);
  });

  test("pool routes: /** is segment-aware, others are exact", () => {
    const prefix = compilePoolRoute("/api/users/**");
    assert.equal(prefix("/api/users"), true);
    assert.equal(prefix("/api/users/7/orders"), true);
    assert.equal(prefix("/api/usersx"), false);
    assert.equal(prefix("/api"), false);
    const exact = compilePoolRoute("/api/status");
    assert.equal(exact("/api/status"), true);
    assert.equal(exact("/api/status/x"), false);
    assert.equal(compilePoolRoute("/**")("/anything/at/all"), true);
  });

  test("a route table answers 405 with every method of the matching paths", () => {
    const t = new RouteTable<string>();
    t.add("/a/{id:int}", ["GET"], "get");
    t.add("/a/{id}", ["DELETE"], "del");
    t.add("/b", [], "any");
    assert.equal(t.match("GET", "/a/1")?.route?.target, "get");
    assert.equal(t.match("HEAD", "/a/1")?.route?.target, "get");
    assert.equal(t.match("DELETE", "/a/x")?.route?.target, "del");
    assert.deepEqual(t.match("POST", "/a/1")?.allow, ["DELETE", "GET", "HEAD"]);
    assert.equal(t.match("PATCH", "/b")?.route?.target, "any");
    assert.equal(t.match("GET", "/c"), undefined);
  });
});

describe(`log messages (${runtime.name})`, () => {
  const inspect = (value: unknown) => `<${JSON.stringify(value)}>`;

  test("printf style: each directive, %% and leftover arguments", () => {
    assert.equal(
      format(inspect, ["%s|%d|%i|%f|%j|%o|%O|%c|%%", "a", "7", "7.9", "1.5", { j: 1 }, [1], 2, "css"]),
      'a|7|7|1.5|{"j":1}|<[1]>|<2>||%',
    );
    assert.equal(format(inspect, ["n=%d", 3n]), "n=3n");
    assert.equal(format(inspect, ["%s and %s", "one"]), "one and %s");
    assert.equal(format(inspect, ["%x %s", "y", "z"]), "%x y z");
    assert.equal(format(inspect, ["a", { b: 1 }, "c"]), 'a <{"b":1}> c');
    assert.equal(format(inspect, [{ b: 1 }, 2]), '<{"b":1}> <2>');
    assert.equal(format(inspect, ["trailing %"]), "trailing %");
  });

  test("placeholders: properties, dotted paths, escaped braces, errors", () => {
    assert.equal(
      renderTemplate("item {id} of {user.name}", { id: 4, user: { name: "ann" } }, inspect),
      "item <4> of ann",
    );
    assert.equal(renderTemplate("{{literal}} {missing} }} {", {}, inspect), "{literal} <undefined> } {");
    const error = new Error("boom");
    assert.equal(renderTemplate("failed: {error}", { error }, inspect), `failed: ${error.stack}`);
  });
});

describe(`package metadata (${runtime.name})`, () => {
  test("deno.json, jsr.json, package.json and the CLI agree on name, version and license", async () => {
    const { readFileSync } = await import("node:fs");
    const read = (f: string) => JSON.parse(readFileSync(new URL(`../${f}`, import.meta.url), "utf8"));
    const deno = read("deno.json");
    const jsr = read("jsr.json");
    const npm = read("package.json");
    const { VERSION } = await import("../cli.ts");
    assert.equal(jsr.name, "@forkyard/forkyard");
    assert.equal(deno.name, jsr.name);
    assert.equal(npm.name, "forkyard");
    for (const v of [deno.version, jsr.version, npm.version]) assert.equal(v, VERSION);
    assert.deepEqual(deno.exports, jsr.exports);
    assert.equal(jsr.license, "MIT");
    assert.equal(npm.license, "MIT");
    assert.equal(npm.bin.forkyard, "dist/cli.js");
  });
});

describe(`worker start cost (${runtime.name})`, () => {
  test("a module path becomes the URL node:url's pathToFileURL gives, without loading node:path", async () => {
    const { pathToFileURL } = await import("node:url");
    const { resolve } = await import("node:path");
    const paths = [
      "/a/b c/d.ts",
      "x/../y%z.ts",
      "./q#r?.ts",
      "/é/ü.ts",
      "/a\\b.ts",
      "/a\tb\nc\r.ts",
      "../up.ts",
      "w.ts",
    ];
    for (const path of paths) assert.equal(moduleUrl(path), pathToFileURL(resolve(path)).href, path);
    assert.equal(moduleUrl("https://example.com/w.ts"), "https://example.com/w.ts");
    assert.equal(moduleUrl(new URL("file:///x/y.ts")), "file:///x/y.ts");
  });
});
