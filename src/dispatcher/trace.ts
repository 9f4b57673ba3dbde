/**
 * Trace ids: every answer carries an `X-Request-ID`, the client's own when it
 * sent a sane one, else one made here. Workers see it as `req.traceId` and on
 * their log records.
 *
 * @module
 */

const TRACE_ID = /^[\w.:@/+=-]+$/;
/** Generated ids: a random per-process prefix and a counter (a UUID per request costs more). */
const TRACE_PREFIX = crypto.randomUUID().slice(0, 18);
let traceCounter = 0;

/**
 * The request's trace id: a sane incoming `X-Request-ID` (up to 200 characters of `[A-Za-z0-9_.:@/+=-]`) is kept,
 * anything else is replaced by a generated one: `<18 characters of a per-process random UUID>-<counter in base 36>`,
 * for example `3f2b9c1e-8a4d-4f6b-1k`.
 */
export function traceId(incoming: string | null): string {
  if (incoming !== null && incoming.length <= 200 && TRACE_ID.test(incoming)) return incoming;
  return TRACE_PREFIX + "-" + (++traceCounter).toString(36);
}

/** The `X-Request-ID` header for an answer the dispatcher gives itself. */
export function traceHeader(request: Request | undefined): { "x-request-id": string } {
  return { "x-request-id": traceId(request?.headers.get("x-request-id") ?? null) };
}

/** `response` with an `X-Request-ID` header, unless it has one; a response with immutable headers is copied. */
export function withTrace(response: Response, trace: string): Response {
  return response.headers.has("x-request-id") ? response : withHeader(response, "x-request-id", trace);
}

/** `response` with header `name` set to `value`; a copy when its headers cannot change (`Response.redirect`). */
export function withHeader(response: Response, name: string, value: string): Response {
  try {
    response.headers.set(name, value);
    return response;
  } catch {
    const copy = new Response(response.body, response);
    copy.headers.set(name, value);
    return copy;
  }
}
