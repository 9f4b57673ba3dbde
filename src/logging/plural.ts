/**
 * Counts in log lines and banners: "1 worker", "2 workers".
 *
 * @module
 */

/** `n` and `noun`, the noun in the plural unless `n` is 1 (`plural(3, "request")`: "3 requests"). */
export function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}
