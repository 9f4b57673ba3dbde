/**
 * Time as the supervisor reads it: the system's, or a fake one in unit tests.
 *
 * @module
 */

/** A source of the current time in milliseconds since the epoch. */
export interface Clock {
  /** The current time, as `Date.now()`. */
  now(): number;
}

/** The system clock. */
export const systemClock: Clock = { now: () => Date.now() };
