/**
 * Holds back one runtime warning while something runs: Node warns "Failed to load the ES module ... set "type":
 * "module"" before the import error that `forkyard serve` turns into its own two lines with the same advice.
 *
 * @module
 */

import process from "node:process";

type WarningListener = (warning: Error) => void;

/** Runs `fn` with the process's warnings whose message matches `pattern` dropped; every other warning goes on. */
export async function withoutWarning<T>(pattern: RegExp, fn: () => Promise<T>): Promise<T> {
  const listeners = process.listeners("warning") as WarningListener[];
  const filter: WarningListener = (warning) => {
    if (!pattern.test(warning.message)) { for (const listener of listeners) listener(warning); }
  };
  process.removeAllListeners("warning");
  process.on("warning", filter);
  try {
    return await fn();
  } finally {
    process.off("warning", filter);
    for (const listener of listeners) process.on("warning", listener);
  }
}
