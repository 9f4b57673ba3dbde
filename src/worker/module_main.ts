/**
 * Entry point of worker processes for pools with a `module` option: loads the
 * worker class (or app) from that module, without the dispatcher's program.
 *
 * @module
 */

import { loadRuntime } from "../detect.ts";
import { APP_ENV, MODULE_ENV } from "./entry.ts";
import { importWorkerClass, runWorkerProcess } from "./process.ts";

// Load the pool's module at once, not after INIT: a spare then waits with it loaded, and takes over a dead
// worker's slot for the cost of setup() alone. A failure shows again, with its message, when INIT imports it.
const runtime = await loadRuntime();
const preload = runtime.env(MODULE_ENV);
if (preload && runtime.env(APP_ENV) === "1") {
  import("../listen_capture.ts").then((m) => m.importCapturing(preload)).catch(() => {});
} else if (preload) import(preload).catch(() => {});
await runWorkerProcess(importWorkerClass);
