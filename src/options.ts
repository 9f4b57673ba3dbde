/**
 * Validation helpers: bad configuration throws at construction with a message
 * naming the option and the value.
 *
 * @module
 */

/** Throws `TypeError` for keys of `options` not in `known`. */
export function checkKeys(what: string, options: object, known: readonly string[]): void {
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw new TypeError(`Unknown ${what} option "${key}": expected one of ${known.join(", ")}`);
    }
  }
}

/** Returns `value` (or `fallback` when undefined) after checking it is an integer within bounds. */
export function intOption(
  what: string,
  name: string,
  value: unknown,
  fallback: number,
  min = 0,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`;
    throw new RangeError(`Invalid ${what} option "${name}": ${JSON.stringify(value)} (expected an integer ${range})`);
  }
  return value;
}

/** Returns `value` (or `fallback`) after checking it is a finite number within bounds. */
export function numberOption(what: string, name: string, value: unknown, fallback: number, min = 0): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value < min) {
    throw new RangeError(`Invalid ${what} option "${name}": ${JSON.stringify(value)} (expected a number >= ${min})`);
  }
  return value;
}

/** Returns `value` (or `fallback`) after checking it is a boolean. */
export function boolOption(what: string, name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== "boolean") {
    throw new TypeError(`Invalid ${what} option "${name}": ${JSON.stringify(value)} (expected true or false)`);
  }
  return value;
}

/** Returns `value` (or `fallback`) after checking it is a string. */
export function stringOption(what: string, name: string, value: unknown, fallback: string): string {
  if (value === undefined) return fallback;
  if (typeof value !== "string") {
    throw new TypeError(`Invalid ${what} option "${name}": ${JSON.stringify(value)} (expected a string)`);
  }
  return value;
}
