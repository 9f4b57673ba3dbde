/**
 * Entry point of worker processes for pools with a `module` option: loads the
 * worker class from that module, without the dispatcher's code.
 *
 * @module
 */

import { importWorkerClass, runWorkerProcess } from "./worker_loop.ts";

await runWorkerProcess(importWorkerClass);
