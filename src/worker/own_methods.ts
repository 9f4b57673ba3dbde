/**
 * Methods kept as an object's own properties. Express replaces the prototype of the request and response it is given
 * (`Object.setPrototypeOf(res, app.response)`, whose chain is the runtime's `http.ServerResponse`): forkyard's
 * stand-ins keep working after that because each of their methods is also their own.
 *
 * @module
 */

/** The descriptors of `proto`'s own methods and accessors, but its constructor: computed once per class. */
export function ownMethods(proto: object): PropertyDescriptorMap {
  const { constructor: _, ...descriptors } = Object.getOwnPropertyDescriptors(proto) as PropertyDescriptorMap;
  return descriptors;
}

/** Defines `fields` on `target` as plain writable data properties, past any accessor its prototype chain has. */
export function defineFields(target: object, fields: Record<string, unknown>): void {
  for (const name in fields) {
    Object.defineProperty(target, name, { value: fields[name], writable: true, enumerable: true, configurable: true });
  }
}
