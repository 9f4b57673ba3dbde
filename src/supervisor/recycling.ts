/**
 * Recycling: a worker is replaced gracefully once it has been handed
 * `maxRequests` requests (plus a random jitter, so that workers do not recycle
 * together) or once its memory exceeds `maxMemoryMb`. Its replacement starts
 * at once; the old process takes no new request and stops when the new one is
 * ready.
 *
 * @module
 */

/** The options recycling follows (a pool's). */
export interface RecycleOptions {
  maxRequests: number;
  maxRequestsJitter: number;
  maxMemoryMb: number;
}

/** Requests after which a new worker is replaced: `maxRequests` plus 0..`maxRequestsJitter`; 0 never. */
export function requestLimit(opts: RecycleOptions, random: () => number = Math.random): number {
  if (opts.maxRequests <= 0) return 0;
  return opts.maxRequests + Math.floor(random() * (opts.maxRequestsJitter + 1));
}

/** Whether a worker that took or answered `count` requests is at its `limit` (0: none). */
export function atRequestLimit(count: number, limit: number): boolean {
  return limit > 0 && count >= limit;
}

/** Why a worker with this resident memory is due for replacement, or `null`. */
export function dueByMemory(rss: number, opts: RecycleOptions): string | null {
  if (opts.maxMemoryMb <= 0 || rss <= opts.maxMemoryMb * 1024 * 1024) return null;
  return `memory ${Math.round(rss / 1048576)} MiB over maxMemoryMb`;
}
