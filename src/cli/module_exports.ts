/**
 * What `forkyard serve module[:export]` says about a module's exports when the one asked for is not there: the names
 * that are, and, for a class that is a Worker or Dispatcher of another copy of forkyard, why.
 *
 * @module
 */

/**
 * The names a module's source exports, read from its text, for a module that runs its own dispatcher when imported
 * (its import never ends, so its exports cannot be looked at): `null` when the text cannot say for sure (`export *`,
 * CommonJS, no `export` at all).
 */
export function declaredExports(source: string): string[] | null {
  if (/\bexport\s*\*|\bmodule\.exports\b|\bexports\.\w+\s*=/.test(source)) return null;
  const names = new Set<string>();
  const declaration =
    /^\s*export\s+(?:declare\s+)?(default\b|(?:abstract\s+)?class\s+(\w+)|(?:async\s+)?function\*?\s*(\w+)|(?:const|let|var|enum)\s+(\w+))/gm;
  for (const m of source.matchAll(declaration)) names.add(m[1] === "default" ? "default" : m[2] ?? m[3] ?? m[4]);
  for (const m of source.matchAll(/^\s*export\s+(?:type\s+)?\{([^}]*)\}/gm)) {
    for (const part of m[1].split(",")) {
      const name = part.trim().split(/\s+as\s+/).pop()?.trim();
      if (name) names.add(name);
    }
  }
  return names.size === 0 ? null : [...names];
}

/** "its exports: a, b" (or "it exports nothing"), for a message about a missing export. */
export function exportList(names: readonly string[]): string {
  return names.length === 0 ? "it exports nothing" : `its exports: ${names.join(", ")}`;
}

/**
 * Whether `value` is a class whose chain has one named `base` that is not `ours`: a Worker or Dispatcher of another
 * copy of forkyard (on Node, a module loaded as CommonJS gets the package's files a second time).
 */
export function foreignSubclass(
  value: unknown,
  base: string,
  ours: abstract new (...args: never[]) => unknown,
): boolean {
  if (typeof value !== "function" || value.prototype instanceof ours) return false;
  for (
    let proto = Object.getPrototypeOf(value);
    proto !== null && proto !== Function.prototype;
    proto = Object.getPrototypeOf(proto)
  ) {
    if ((proto as { name?: unknown }).name === base) return true;
  }
  return false;
}
