/**
 * Which worker takes the next request: the one with the fewest requests in
 * progress, ties taken round-robin; a worker whose heartbeats are late
 * (probably blocked) only when no other can take it.
 *
 * @module
 */

/** What the choice looks at in a worker. */
export interface Candidate {
  /** Requests in progress. */
  readonly busy: number;
  /** Whether its heartbeats are overdue. */
  readonly late: boolean;
}

/**
 * The worker to take the next request, from the workers of `slots` (empty slots and workers `available` refuses
 * are skipped), starting the round at slot `start`; `undefined` when every one is full (`busy >= limit`) or
 * unavailable.
 */
export function chooseWorker<W extends Candidate>(
  slots: readonly { readonly worker: W | null }[],
  start: number,
  limit: number,
  available: (worker: W) => boolean,
): W | undefined {
  const n = slots.length;
  let best: W | undefined;
  let late: W | undefined;
  for (let k = 0; k < n; k++) {
    const w = slots[(start + k) % n].worker;
    if (w === null || w.busy >= limit || !available(w)) continue;
    if (w.late) {
      if (late === undefined || w.busy < late.busy) late = w;
    } else if (best === undefined || w.busy < best.busy) {
      best = w;
      if (w.busy === 0) break;
    }
  }
  return best ?? late;
}
