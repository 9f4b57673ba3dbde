/**
 * The command line's usage and configuration errors: printed as one line, exit status 2.
 *
 * @module
 */

/** A usage or configuration error: printed as one line, exit status 2. */
export class UsageError extends Error {
  /**
   * Creates the error.
   *
   * @param message What is wrong, naming the key, option or path.
   */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}
