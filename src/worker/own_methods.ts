/**
 * Methods kept as an object's own properties. Express replaces the prototype of the request and response it is given
 * (`Object.setPrototypeOf(res, app.response)`, whose chain is the runtime's `http.ServerResponse`): forkyard's
 * stand-ins keep working after that because each of their methods is also their own.
 *
 * @module
 */

/** A class's methods, by name (its constructor and accessors left out): computed once per class. */
export function methodsOf(proto: object): [string, unknown][] {
  return Object.entries(Object.getOwnPropertyDescriptors(proto))
    .filter(([name, d]) => name !== "constructor" && typeof d.value === "function")
    .map(([name, d]) => [name, d.value]);
}

/** Makes each of `methods` an own property of `target`: plain stores, which keep the object fast to make and use. */
export function pinMethods(target: object, methods: readonly [string, unknown][]): void {
  const own = target as Record<string, unknown>;
  for (let i = 0; i < methods.length; i++) own[methods[i][0]] = methods[i][1];
}
