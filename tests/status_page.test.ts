// The admin listener's live status page, in a real headless Chromium: it renders the pools and workers, its numbers
// move under load, and a killed worker shows up as restarted, without reloading the page.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { openPage, type Page } from "./browser.ts";
import { runtime, startApp } from "./helpers.ts";

/** Polls `read` in the page until `check` holds (or fails after `timeoutMs`); returns the last value. */
async function until<T>(page: Page, read: string, check: (value: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  let value = await page.evaluate<T>(read);
  while (!check(value) && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 100));
    value = await page.evaluate<T>(read);
  }
  assert.ok(check(value), `${read} stayed ${JSON.stringify(value)}`);
  return value;
}

const cell = (pool: string, worker: number, name: string) =>
  `document.querySelector('h2[data-pool="${pool}"] + table tr[data-worker="${worker}"] .${name}')?.textContent ?? null`;

describe(`status page (${runtime.name})`, () => {
  test("renders pools and workers, shows load and a restarted worker live", async () => {
    const app = await startApp("app.ts", { ADMIN: "127.0.0.1:0" });
    const admin = `http://127.0.0.1:${JSON.parse(app.stdout().split("\n")[0]).admin}`;
    const page = await openPage(`${admin}/`);
    try {
      await until<string | null>(page, cell("main", 1, "state"), (v) => v === "ready");
      const status = await (await fetch(`${admin}/status`)).json();
      const plain = status.pools.find((p: { name: string }) => p.name === "PlainWorker");
      const pid = String(plain.workers[0].pid);
      assert.equal(await page.evaluate(cell("PlainWorker", 0, "pid")), pid);
      // Load for about two seconds: the requests/s figure and the served count move.
      const stop = Date.now() + 2000;
      while (Date.now() < stop) {
        await Promise.all(Array.from({ length: 10 }, () => fetch(`${app.url}/plain/load`).then((r) => r.text())));
      }
      await until<string>(page, `document.getElementById("rps").textContent`, (v) => Number(v) > 0);
      await until<string | null>(page, cell("PlainWorker", 0, "served"), (v) => Number(v) > 10);
      const points = await page.evaluate<string>(
        `document.querySelector("#rps-chart polyline").getAttribute("points")`,
      );
      assert.ok(points.split(" ").length >= 2, `the chart has points: ${points}`);
      process.kill(Number(pid), "SIGKILL");
      await until<string | null>(page, cell("PlainWorker", 0, "restarts"), (v) => v === "1");
      await until<string | null>(page, cell("PlainWorker", 0, "pid"), (v) => v !== null && v !== pid && v !== "-");
    } finally {
      await page.close();
      await app.stop();
    }
  });
});
