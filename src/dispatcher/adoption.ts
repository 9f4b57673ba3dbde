/**
 * Adoption: `forkyard serve ./app.ts` imports a module that may run its own
 * dispatcher at import (`await new MyDispatcher(...).run()` at top level). The
 * command line then takes that dispatcher over (its flags apply) instead of
 * running a second one.
 *
 * @module
 */

/** Called with a dispatcher whose `run()` began, and the promise of its end. */
export type Adopter<D extends object = object> = (dispatcher: D, finished: Promise<void>) => void;
let adopter: Adopter | undefined;

/**
 * While set, the next `Dispatcher.run()` call hands its dispatcher to `hook` (once) before it starts anything.
 * Returns a function that unsets it.
 */
export function adoptNextRun<D extends object>(hook: Adopter<D>): () => void {
  const set = hook as Adopter;
  adopter = set;
  return () => {
    if (adopter === set) adopter = undefined;
  };
}

/** The adopter waiting for the next `run()`, unset as it is taken. */
export function takeAdopter(): Adopter | undefined {
  const taken = adopter;
  adopter = undefined;
  return taken;
}
