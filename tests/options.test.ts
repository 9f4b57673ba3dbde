// The options schemas are the one list of option names: validation, config-file keys, command-line flags and the
// tables in docs/options.md all come from them.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Dispatcher, WorkerPool } from "../mod.ts";
import { parseArgs } from "../src/cli/cli.ts";
import { applyEnvironment } from "../src/cli/args.ts";
import { DISPATCHER_SCHEMA } from "../src/dispatcher/options.ts";
import { POOL_SCHEMA } from "../src/pool_options.ts";
import { defaultMaxConnections, localWorkers, openFilesLimit } from "../src/dispatcher/open_files.ts";
import { DOC_URLS, renderTables, TABLES } from "../scripts/options_doc.ts";

describe("security options", () => {
  test("an admin listener beyond loopback needs a token of 16 characters or more; bad admin, origins, redact lists throw", () => {
    const token = "s3cret-token-0123";
    assert.throws(
      () => new Dispatcher({ admin: "0.0.0.0:9464" }),
      /Invalid Dispatcher option "admin": 0\.0\.0\.0:9464 is reachable from other machines: give it a token/,
    );
    assert.equal(new Dispatcher({ admin: { address: "0.0.0.0:9464", token } }).options.admin?.token, token);
    assert.equal(new Dispatcher({ admin: "0.0.0.0:9464", adminToken: token }).options.admin?.token, token);
    assert.equal(new Dispatcher({ admin: 9464 }).options.admin?.token, null, "loopback: no token needed");
    assert.throws(() => new Dispatcher({ admin: { address: 9464, token: "short" } }), /at least 16 characters/);
    assert.throws(() => new Dispatcher({ admin: { address: 9464, tokn: token } as never }), /unknown key "tokn"/);
    assert.throws(() => new Dispatcher({ origins: ["evil.example"] }), /Invalid Dispatcher option "origins"/);
    assert.deepEqual(new Dispatcher({ origins: "*" }).options.origins, "*");
    assert.throws(
      () => new Dispatcher({ accessLogRedact: "token" as never }),
      /Invalid Dispatcher option "accessLogRedact"/,
    );
    assert.ok(new Dispatcher({}).options.accessLogRedact.includes("password"));
    const env = (vars: Record<string, string>) => (name: string) => vars[name];
    const fromEnv = applyEnvironment(parseArgs(["--admin", "0.0.0.0:9464"]), env({ FORKYARD_ADMIN_TOKEN: token }));
    assert.equal(fromEnv.dispatcher.adminToken, token);
  });
});

describe("options schemas", () => {
  test("docs/options.md and docs/cli.md carry the schemas' tables as the schemas write them", () => {
    const [options, cli] = DOC_URLS.map((url) => readFileSync(url, "utf8"));
    for (const name of Object.keys(TABLES)) assert.ok(options.includes(`<!-- options:${name} -->`), name);
    assert.ok(cli.includes("<!-- options:flags -->"));
    for (const doc of [options, cli]) {
      assert.equal(doc, renderTables(doc), "run: node_modules/.bin/deno run -A scripts/options_doc.ts");
    }
  });

  test("defaults are the schema's", () => {
    class W {}
    const pool = new WorkerPool(W as never, { workers: 3 });
    for (const [name, spec] of Object.entries(POOL_SCHEMA)) {
      if (spec.type === "custom" || spec.default === undefined) continue;
      const expected = typeof spec.default === "object" || name === "workers" ? 3 : spec.default;
      assert.equal((pool.options as Record<string, unknown>)[name], expected, name);
    }
    const dispatcher = new Dispatcher({});
    for (const [name, spec] of Object.entries(DISPATCHER_SCHEMA)) {
      if (spec.type === "custom" || name === "maxConnections") continue;
      assert.equal((dispatcher.options as Record<string, unknown>)[name], spec.default, name);
    }
  });

  test("maxConnections defaults below the open-files limit read at start, leaving descriptors for the workers", () => {
    const limit = openFilesLimit();
    assert.ok(limit !== null && limit > 0, "this machine's ulimit -n");
    class W {}
    const pools = [
      new WorkerPool(W as never, { workers: 2, maxWorkers: 6, spares: 1, name: "a" }),
      new WorkerPool(W as never, { name: "b" }),
    ];
    assert.equal(localWorkers(pools), 6 + 1 + pools[1].options.workers);
    assert.equal(new Dispatcher({ pools }).options.maxConnections, defaultMaxConnections(limit, localWorkers(pools)));
    assert.equal(new Dispatcher({ maxConnections: 0 }).options.maxConnections, 0, "0: no limit, as given");
    assert.equal(defaultMaxConnections(1024, 4), 1024 - 64 - 32);
    assert.equal(defaultMaxConnections(256, 100), 128, "at least half the limit");
    assert.equal(defaultMaxConnections(null, 4), 0, "no limit to read: none");
    const dir = mkdtempSync(join(tmpdir(), "forkyard-limits-"));
    try {
      const file = join(dir, "limits");
      writeFileSync(
        file,
        "Limit  Soft Limit  Hard Limit  Units\nMax open files            4096                 8192                 files\n",
      );
      assert.equal(openFilesLimit(file), 4096);
      writeFileSync(file, "Max open files            unlimited            unlimited            files\n");
      assert.equal(openFilesLimit(file), null);
      assert.equal(openFilesLimit(join(dir, "missing")), null);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("every option is checked by the schema's type and range, naming the option", () => {
    for (const [name, spec] of Object.entries(DISPATCHER_SCHEMA)) {
      if (spec.type !== "integer") continue;
      assert.throws(() => new Dispatcher({ [name]: -1 }), new RegExp(`option "${name}": -1`), name);
      assert.throws(() => new Dispatcher({ [name]: "1" }), new RegExp(`option "${name}"`), name);
    }
    class W {}
    for (const [name, spec] of Object.entries(POOL_SCHEMA)) {
      if (spec.type === "integer") {
        assert.throws(() => new WorkerPool(W as never, { [name]: 1.5 }), new RegExp(`option "${name}": 1.5`), name);
      } else if (spec.type === "boolean") {
        assert.throws(() => new WorkerPool(W as never, { [name]: "yes" }), new RegExp(`option "${name}"`), name);
      }
    }
  });

  test("the command line's flags are the schemas' flags", () => {
    const args = parseArgs(["serve", "x.json", "--port", "9000", "--host=127.0.0.1", "--workers", "4"]);
    assert.deepEqual(args.dispatcher, { port: 9000, hostname: "127.0.0.1" });
    assert.deepEqual(args.pool, { workers: 4 });
    assert.deepEqual(parseArgs(["--hostname", "::1"]).dispatcher, { hostname: "::1" });
    assert.throws(() => parseArgs(["--port", "70000"]), /--port needs an integer from 0 to 65535, got "70000"/);
    assert.throws(() => parseArgs(["--workers", "0"]), /--workers needs an integer from 1 to 1024/);
    assert.deepEqual(parseArgs(["--timeout", "5000", "--log-level=info", "--retry-idempotent"]).pool, {
      timeout: 5000,
      logLevel: "info",
      retryIdempotent: true,
    });
    assert.deepEqual(parseArgs(["--no-access-log"]).dispatcher, { accessLog: false });
    assert.deepEqual(parseArgs(["--admin", "9464"]).dispatcher, { admin: "9464" });
    assert.deepEqual(parseArgs(["--admin=0.0.0.0:9464", "--admin-token", "t".repeat(16)]).dispatcher, {
      admin: "0.0.0.0:9464",
      adminToken: "t".repeat(16),
    });
    assert.throws(() => parseArgs(["--admin", "nine"]), /--admin needs \[HOST:\]PORT, got "nine"/);
    assert.deepEqual(parseArgs(["--access-log=json"]).dispatcher, { accessLog: "json" });
    assert.throws(() => parseArgs(["--access-log=xml"]), /--access-log takes combined or json, got "xml"/);
    assert.throws(() => parseArgs(["--no-port"]), /unknown option --no-port/);
    assert.throws(() => parseArgs(["--frobnicate", "5"]), /unknown option --frobnicate/);
  });
});
