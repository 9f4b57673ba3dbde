/**
 * Where a dispatcher's messages go before it has loaded LogTape (a `stop()`
 * or `reload()` called that early): stderr, debug lines dropped.
 *
 * @module
 */

type LogMethod = (message: string, properties?: Record<string, unknown>) => void;

/** A logger's methods, as the dispatcher uses them. */
export interface EarlyLog {
  debug: LogMethod;
  info: LogMethod;
  warning: LogMethod;
  error: LogMethod;
}

/** Writes each message's template to stderr. */
export const earlyLog: EarlyLog = {
  debug: () => {},
  info: (message) => console.error(message),
  warning: (message) => console.error(message),
  error: (message) => console.error(message),
};
