// A screenshot of the admin listener's status page under a little load: starts tests/fixtures/app.ts with an admin
// listener, sends requests for a few seconds, and saves what headless Chromium (Debian's `chromium`) shows.
//
//   node_modules/.bin/deno run -A scripts/status_screenshot.ts [out.png]     default: status.png
import { writeFileSync } from "node:fs";
import { openPage } from "../tests/browser.ts";
import { startApp } from "../tests/helpers.ts";

const out = Deno.args[0] ?? "status.png";
const app = await startApp("app.ts", { ADMIN: "127.0.0.1:0" });
const admin = `http://127.0.0.1:${JSON.parse(app.stdout().split("\n")[0]).admin}`;
const page = await openPage(`${admin}/`);
try {
  const stop = Date.now() + 5000;
  while (Date.now() < stop) {
    await Promise.all(Array.from({ length: 8 }, () => fetch(`${app.url}/plain/x`).then((r) => r.text())));
  }
  await new Promise((r) => setTimeout(r, 1200));
  writeFileSync(out, await page.screenshot(1100, 760));
  console.log(`wrote ${out}`);
} finally {
  await page.close();
  await app.stop();
}
