/**
 * Request deadlines: a request gets `timeout` from the moment it is submitted;
 * `Worker.keepAlive()` starts the time again for a worker's requests; a
 * streamed answer has none once it has begun. The request lifecycle walks its queue
 * and the requests in flight ten times a second and times out the ones whose
 * deadline has passed (cheaper than a timer or a second table per request).
 *
 * @module
 */

/** A deadline that never comes: for requests answered, timed out, or streaming. */
export const NO_DEADLINE = Infinity;

/** What carries a deadline. */
export interface Timed {
  /** Clock time at which it times out. */
  deadline: number;
}

/** The deadline of a request submitted (or kept alive) at `now`. */
export function deadlineFor(now: number, timeout: number): number {
  return now + timeout;
}

/** The items of `items` whose deadline has passed at `now` (`undefined` entries skipped), added to `out`. */
export function collectExpired<T extends Timed>(items: Iterable<T | undefined>, now: number, out: T[]): T[] {
  for (const item of items) if (item !== undefined && item.deadline <= now) out.push(item);
  return out;
}

/** The item with the earliest deadline (the one submitted first), or `null`. */
export function oldest<T extends Timed>(items: Iterable<T>): T | null {
  let first: T | null = null;
  for (const item of items) if (first === null || item.deadline < first.deadline) first = item;
  return first;
}
