/**
 * What every server checks of a request's head before the dispatcher sees it:
 * the `Host` header, where a server builds the URL from it (a name or an
 * address with an optional port, nothing that could become part of the path:
 * `Host: x/admin?` would make `GET /ws` a request for `/admin`), and how many
 * header fields it carries.
 *
 * @module
 */

/** A `Host` value: a name or an address, with an optional port. */
const VALID_HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::\d{1,5})?$/;

/** Whether `host` is a valid `host[:port]`; a request without one (HTTP/1.0) passes. */
export function validHost(host: string | null | undefined): boolean {
  return host === null || host === undefined || VALID_HOST.test(host);
}

/**
 * The URL of a request whose path is the request line's (origin-form, `/...`), never the Host header's: `null` when
 * the Host is not a valid `host[:port]` or the target does not start with `/`.
 */
export function requestUrl(host: string | undefined, target: string | undefined): string | null {
  if (!validHost(host) || target === undefined || !target.startsWith("/")) return null;
  return `http://${host ?? "localhost"}${target}`;
}

/** Header fields a request may carry unless the server is told otherwise. */
export const MAX_HEADERS = 100;

/** The answer to a request with more header fields than the server takes: 431, and the connection closed. */
export function tooManyHeaders(): Response {
  return new Response(JSON.stringify({ error: "Request header fields too large" }), {
    status: 431,
    headers: { "content-type": "application/json", connection: "close" },
  });
}

/** How many fields `headers` has, or `limit + 1` once it has more than `limit`. */
export function countHeaders(headers: Headers, limit: number): number {
  let n = 0;
  for (const _ of headers) if (++n > limit) break;
  return n;
}

/** The answer to a request whose Host is not valid: 400, and the connection closed. */
export function badHost(): Response {
  return new Response(JSON.stringify({ error: "Bad request" }), {
    status: 400,
    headers: { "content-type": "application/json", connection: "close" },
  });
}
