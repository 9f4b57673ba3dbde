/**
 * Route patterns (`/item/{id:int}`), the `@api` and `@sync` decorators, and
 * the tables that match a method and path against them.
 *
 * @module
 */

/** Values of path parameters after conversion. */
export type PathParams = Record<string, string | number>;

type Convert = (raw: string) => string | number | undefined;

const CONVERTERS: Record<string, Convert> = {
  str: (raw) => raw,
  int: (raw) => (/^-?\d+$/.test(raw) ? Number.parseInt(raw, 10) : undefined),
  float: (raw) => (/^-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$/.test(raw) ? Number.parseFloat(raw) : undefined),
};

type Segment = { literal: string } | { name: string; convert: Convert };

/** A compiled route pattern. */
export interface Pattern {
  /** The pattern text. */
  readonly source: string;
  /** Returns the parameters when `path` matches, else `undefined`. */
  match(path: string): PathParams | undefined;
}

function splitPath(path: string): string[] {
  const parts = path.split("/");
  // "/a/b/" and "/a/b" are the same route; the leading "" goes too.
  if (parts[parts.length - 1] === "" && parts.length > 1) parts.pop();
  if (parts[0] === "") parts.shift();
  return parts;
}

/**
 * Compiles `"/item/{id:int}"` (`":id"` is `"{id}"`). Throws `TypeError` for a parameter type other
 * than `str`, `int` or `float`, or a malformed placeholder.
 */
export function compilePattern(source: string): Pattern {
  if (typeof source !== "string") throw new TypeError(`Route pattern must be a string, got ${typeof source}`);
  const segments: Segment[] = splitPath(source).map((part) => {
    if (part.startsWith(":")) {
      // Express-style ":id", as Hono and most routers write it: a synonym for "{id}".
      if (!/^:[A-Za-z_$][\w$]*$/.test(part)) {
        throw new TypeError(`Invalid route segment "${part}" in pattern "${source}": write ":name" or "{name:int}"`);
      }
      return { name: part.slice(1), convert: CONVERTERS.str };
    }
    if (!part.includes("{") && !part.includes("}")) return { literal: part };
    const m = /^\{([A-Za-z_$][\w$]*)(?::([^}]*))?\}$/.exec(part);
    if (!m) throw new TypeError(`Invalid route segment "${part}" in pattern "${source}"`);
    const type = m[2] ?? "str";
    const convert = CONVERTERS[type];
    if (!convert) {
      throw new TypeError(
        `Unknown parameter type "${type}" in pattern "${source}": use "str", "int" or "float"`,
      );
    }
    return { name: m[1], convert };
  });
  const literal = segments.every((s) => "literal" in s);
  const exact = "/" + segments.map((s) => ("literal" in s ? s.literal : "")).join("/");
  return {
    source,
    match(path: string): PathParams | undefined {
      if (literal) {
        if (path === exact || (path.length === exact.length + 1 && path.endsWith("/") && path.startsWith(exact))) {
          return {};
        }
        return undefined;
      }
      const parts = splitPath(path);
      if (parts.length !== segments.length) return undefined;
      const params: PathParams = {};
      for (let i = 0; i < parts.length; i++) {
        const seg = segments[i];
        if ("literal" in seg) {
          if (seg.literal !== parts[i]) return undefined;
        } else {
          const value = seg.convert(parts[i]);
          if (value === undefined) return undefined;
          params[seg.name] = value;
        }
      }
      return params;
    },
  };
}

/** One route declaration attached to a method by `@api` or `@sync`. */
export interface RouteSpec {
  /** Pattern as written (relative to the handler's `pattern` for `ApiHandler` routes). */
  pattern: string;
  /** Upper-case methods; empty means every method. */
  methods: string[];
}

/** Where `@api` and `@sync` keep route declarations: on the method function itself. */
export const API_ROUTES: unique symbol = Symbol.for("forkyard.api");
/** Marker for `@sync` routes. */
export const SYNC_ROUTES: unique symbol = Symbol.for("forkyard.sync");
/** Marker for `@ws` routes. */
export const WS_ROUTES: unique symbol = Symbol.for("forkyard.ws");

/** Any function: what a route decorator accepts. */
// deno-lint-ignore no-explicit-any
export type AnyFunction = (...args: any[]) => any;

/**
 * A method decorator (TC39) that can also be called on a function directly:
 * `api("/x", "GET")(MyWorker.prototype.list)`.
 */
export type RouteDecorator = <F extends AnyFunction>(method: F, context?: ClassMethodDecoratorContext) => F;

/** The methods a route may name: HTTP's own (RFC 9110, PATCH, QUERY) and WebDAV's. */
const METHODS = [
  "GET",
  "HEAD",
  "POST",
  "PUT",
  "DELETE",
  "PATCH",
  "OPTIONS",
  "QUERY",
  "TRACE",
  "CONNECT",
  "PROPFIND",
  "PROPPATCH",
  "MKCOL",
  "COPY",
  "MOVE",
  "LOCK",
  "UNLOCK",
  "REPORT",
  "SEARCH",
];

/** The method `name` was probably meant to be: one with the same letters, or one letter off. */
function nearestMethod(name: string): string | undefined {
  const sorted = (s: string) => [...s].sort().join("");
  return METHODS.find((m) => sorted(m) === sorted(name)) ??
    METHODS.find((m) => m.length === name.length && [...m].filter((c, i) => name[i] !== c).length === 1);
}

function checkMethods(kind: string, pattern: string, methods: string[]): string[] {
  return methods.map((m) => {
    const name = typeof m === "string" ? m.toUpperCase() : "";
    if (!METHODS.includes(name)) {
      const near = nearestMethod(name);
      throw new TypeError(
        `Invalid HTTP method ${JSON.stringify(m)} in @${kind}("${pattern}")` +
          (near ? ` (did you mean "${near}"?)` : ` (expected one of ${METHODS.slice(0, 7).join(", ")}, ...)`),
      );
    }
    return name;
  });
}

function routeDecorator(key: symbol, kind: string, pattern: string, methods: string[]): RouteDecorator {
  if (typeof pattern === "string" && pattern !== "" && !pattern.startsWith("/")) {
    throw new TypeError(
      `Invalid pattern "${pattern}" in @${kind}: it starts with "/" ("/${pattern}"; an ApiHandler's routes too, ` +
        `below its own pattern)`,
    );
  }
  if (kind === "api" && pattern !== "") compilePattern(pattern);
  if (kind === "sync" || kind === "ws") compilePattern(pattern);
  const spec: RouteSpec = { pattern, methods: checkMethods(kind, pattern, methods) };
  return <F extends AnyFunction>(method: F, _context?: ClassMethodDecoratorContext): F => {
    if (typeof method !== "function") throw new TypeError(`@${kind}("${pattern}") must decorate a method`);
    const holder = method as unknown as Record<symbol, RouteSpec[]>;
    if (!Object.hasOwn(holder, key)) holder[key] = [];
    holder[key].push(spec);
    return method;
  };
}

/**
 * Declares a worker route. On an `ApiHandler`, the pattern is relative to the
 * handler's `pattern`. No methods means every method.
 *
 * @example Decorator and plain forms
 * ```ts
 * import { api, Worker, type WorkerRequest } from "@forkyard/forkyard";
 *
 * class Hello extends Worker {
 *   @api("/hello/{name}", "GET")
 *   hello(req: WorkerRequest) {
 *     return { hello: req.pathParams.name };
 *   }
 *   bye() {
 *     return "bye";
 *   }
 * }
 * // the same without decorators:
 * api("/bye", "GET")(Hello.prototype.bye);
 * ```
 *
 * @param pattern The path pattern, with `{name}` (or `:name`), `{name:int}` or `{name:float}` placeholders.
 * @param methods HTTP methods the route accepts.
 * @returns A method decorator.
 */
export function api(pattern: string, ...methods: string[]): RouteDecorator {
  return routeDecorator(API_ROUTES, "api", pattern, methods);
}

/**
 * Declares a route served inside the dispatcher process. The method is called
 * as `(client, pathParams)`; it responds with `client.respond(...)` or returns
 * a `Response` (or a value to send as JSON).
 *
 * @example
 * ```ts
 * import { type Client, Dispatcher, sync } from "@forkyard/forkyard";
 *
 * class MyDispatcher extends Dispatcher {
 *   @sync("/health")
 *   health(client: Client) {
 *     client.respond({ status: "ok" });
 *   }
 * }
 * ```
 *
 * @param pattern The path pattern.
 * @param methods HTTP methods the route accepts; none means every method.
 * @returns A method decorator.
 */
export function sync(pattern: string, ...methods: string[]): RouteDecorator {
  return routeDecorator(SYNC_ROUTES, "sync", pattern, methods);
}

/**
 * Declares a worker's WebSocket route. The method is called with the handshake's request and returns the socket's
 * handlers (`onOpen`, `onMessage`, `onClose`); returning a `Response` instead refuses the handshake with it.
 * A plain HTTP request to the route gets 426.
 *
 * @example A chat room across workers
 * ```ts
 * import { publish, subscribe, type WebSocketHandler, Worker, type WorkerRequest, ws } from "@forkyard/forkyard";
 *
 * class Chat extends Worker {
 *   @ws("/chat/{room}")
 *   room(req: WorkerRequest): WebSocketHandler {
 *     const topic = `room:${req.pathParams.room}`;
 *     return {
 *       onOpen: (socket) => subscribe(socket, topic),
 *       onMessage: (_socket, data) => publish(topic, data),
 *     };
 *   }
 * }
 * ```
 *
 * @param pattern The path pattern, as for `@api`.
 * @returns A method decorator.
 */
export function ws(pattern: string): RouteDecorator {
  return routeDecorator(WS_ROUTES, "ws", pattern, []);
}

/** A matched route's target. */
export interface Route<T> {
  /** The compiled pattern. */
  pattern: Pattern;
  /** Accepted methods, or `null` for all. */
  methods: Set<string> | null;
  /** What the route calls. */
  target: T;
}

/** Result of {@linkcode RouteTable.match}. */
export type RouteMatch<T> =
  | { route: Route<T>; params: PathParams; allow?: undefined }
  | { route?: undefined; params?: undefined; allow: string[] };

/** An ordered list of routes; the first whose pattern and method match wins. */
export class RouteTable<T> {
  /** The routes in match order. */
  readonly routes: Route<T>[] = [];

  /** Adds a route. */
  add(pattern: string, methods: string[], target: T): void {
    this.routes.push({
      pattern: compilePattern(pattern),
      methods: methods.length > 0 ? new Set(methods) : null,
      target,
    });
  }

  /**
   * Finds the route for `method` and `path`. When the path matches only under
   * other methods, returns those methods as `allow` (for a 405); `undefined`
   * when nothing matches the path.
   */
  match(method: string, path: string): RouteMatch<T> | undefined {
    let allow: Set<string> | undefined;
    for (const route of this.routes) {
      const params = route.pattern.match(path);
      if (params === undefined) continue;
      if (route.methods === null || route.methods.has(method) || (method === "HEAD" && route.methods.has("GET"))) {
        return { route, params };
      }
      allow ??= new Set();
      for (const m of route.methods) allow.add(m);
    }
    if (allow === undefined) return undefined;
    if (allow.has("GET")) allow.add("HEAD");
    return { allow: [...allow].sort() };
  }
}

/** A method that carries route declarations: its name, the function the decorator was given, and the routes. */
export interface DecoratedMethod {
  /** The method's name on the prototype. */
  name: string;
  /** The decorated function itself: called directly, so that an instance field of the same name cannot shadow it. */
  fn: AnyFunction;
  /** The routes declared on it. */
  specs: RouteSpec[];
}

/** Every method on `proto`'s chain (nearest first, each name once) that carries routes under `key`. */
export function decoratedMethods(proto: object, key: symbol): DecoratedMethod[] {
  const seen = new Set<string>();
  const out: DecoratedMethod[] = [];
  for (let p = proto; p && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
    for (const name of Object.getOwnPropertyNames(p)) {
      if (seen.has(name) || name === "constructor") continue;
      const desc = Object.getOwnPropertyDescriptor(p, name);
      if (!desc || typeof desc.value !== "function") continue;
      seen.add(name);
      const specs = (desc.value as Record<symbol, RouteSpec[] | undefined>)[key];
      if (specs) out.push({ name, fn: desc.value, specs });
    }
  }
  return out;
}

/** Joins a handler prefix and a route pattern: `"/api/items" + "/{id}"`. */
export function joinPattern(prefix: string, pattern: string): string {
  if (pattern === "") return prefix === "" ? "/" : prefix;
  if (prefix === "") return pattern;
  return prefix.replace(/\/+$/, "") + (pattern.startsWith("/") ? pattern : "/" + pattern);
}

/**
 * Compiles a pool route: `"/api/**"` matches `/api` and everything below it
 * (segment-aware: not `/apix`); anything else matches exactly.
 */
export function compilePoolRoute(route: string): (path: string) => boolean {
  if (typeof route !== "string" || !route.startsWith("/")) {
    throw new TypeError(`Pool route must be a string starting with "/", got ${JSON.stringify(route)}`);
  }
  if (route.endsWith("/**")) {
    const base = route.slice(0, -3);
    if (base === "") return () => true;
    const prefix = base + "/";
    return (path) => path === base || path.startsWith(prefix);
  }
  if (route.includes("*")) throw new TypeError(`Pool route "${route}" may only end in "/**"`);
  if (route.includes("{") || route.includes("/:")) {
    const pattern = compilePattern(route);
    return (path) => pattern.match(path) !== undefined;
  }
  const trimmed = route.length > 1 ? route.replace(/\/+$/, "") : route;
  return (path) => path === trimmed || path === trimmed + "/";
}

/** What {@linkcode workerRoutes} needs of a worker class: its prototype and its `ApiHandler` classes. */
export interface RoutedClass {
  /** The class's prototype, whose decorated methods are routes. */
  readonly prototype: object;
  /** `ApiHandler` classes with their `pattern`. */
  readonly handlers?: readonly { readonly prototype: object; readonly pattern?: string }[];
}

/** One `@api` route of a worker class, with its full pattern. */
export interface WorkerRoute extends RouteSpec {
  /** The decorated function. */
  fn: AnyFunction;
  /** The `ApiHandler` class that declares it, or `null` for the worker class's own methods. */
  handler: object | null;
}

/**
 * Every `@api` route of a worker class, its handlers' first, as full patterns: what a worker's route table holds,
 * and what the dispatcher checks its pools' routes against.
 */
export function workerRoutes(cls: RoutedClass): WorkerRoute[] {
  const out: WorkerRoute[] = [];
  for (const handler of cls.handlers ?? []) {
    for (const { fn, specs } of decoratedMethods(handler.prototype, API_ROUTES)) {
      for (const spec of specs) {
        out.push({ pattern: joinPattern(handler.pattern ?? "", spec.pattern), methods: spec.methods, fn, handler });
      }
    }
  }
  for (const { fn, specs } of decoratedMethods(cls.prototype, API_ROUTES)) {
    for (const spec of specs) out.push({ pattern: spec.pattern || "/", methods: spec.methods, fn, handler: null });
  }
  return out;
}

/** Every `@ws` route of a worker class: its own methods' (WebSocket routes are not read from `ApiHandler`s). */
export function socketRoutes(cls: RoutedClass): WorkerRoute[] {
  const out: WorkerRoute[] = [];
  for (const { fn, specs } of decoratedMethods(cls.prototype, WS_ROUTES)) {
    for (const spec of specs) out.push({ pattern: spec.pattern, methods: [], fn, handler: null });
  }
  return out;
}

/** A path that `pattern` matches: each placeholder filled with `1`, which every parameter type accepts. */
export function samplePath(pattern: string): string {
  return pattern.split("/").map((part) => (part.startsWith(":") || part.startsWith("{") ? "1" : part)).join("/") ||
    "/";
}
