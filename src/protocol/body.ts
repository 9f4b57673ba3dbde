/**
 * Request and response bodies: as bytes or chunks, and decoded by content
 * type (JSON, forms, cookies) on first use, the same way on both sides.
 *
 * @module
 */

const decoder = new TextDecoder();
const EMPTY: Uint8Array = new Uint8Array(0);

/**
 * A body as one buffer, or as the chunks it arrived in. The dispatcher keeps a
 * request body as its chunks: joining them would allocate a second copy of every
 * large body only to write it out again.
 */
export type Body = Uint8Array | readonly Uint8Array[];

/** A body its receiver wrote to a spill file as it arrived: `length` bytes from the start of the file at `path`. */
export interface SpilledBody {
  readonly path: string;
  readonly length: number;
}

/** The number of bytes in `body`. */
export function bodyLength(body: Body): number {
  if (body instanceof Uint8Array) return body.length;
  let n = 0;
  for (const chunk of body) n += chunk.length;
  return n;
}

/** `body` as one buffer: itself, its only chunk, or its chunks copied into a new one. */
export function joinBody(body: Body): Uint8Array {
  if (body instanceof Uint8Array) return body;
  if (body.length < 2) return body[0] ?? EMPTY;
  const out = new Uint8Array(bodyLength(body));
  let off = 0;
  for (const chunk of body) {
    out.set(chunk, off);
    off += chunk.length;
  }
  return out;
}

/** Parses `application/x-www-form-urlencoded` or a query string into an object (last value wins). */
export function parseForm(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of new URLSearchParams(text)) out[k] = v;
  return out;
}

/** Parses a `Cookie` header. */
export function parseCookies(header: string | null): Record<string, string> {
  const out: Record<string, string> = {};
  if (!header) return out;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    const name = part.slice(0, eq).trim();
    let value = part.slice(eq + 1).trim();
    if (value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    try {
      out[name] = decodeURIComponent(value);
    } catch {
      out[name] = value;
    }
  }
  return out;
}

/** The media type of a content type header, lower case, without parameters. */
export function mediaType(contentType: string | null | undefined): string {
  if (!contentType) return "";
  const semi = contentType.indexOf(";");
  return (semi < 0 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
}

/** Whether a media type is JSON (`application/json` or `application/*+json`). */
export function isJsonType(type: string): boolean {
  return type === "application/json" || (type.startsWith("application/") && type.endsWith("+json"));
}

/**
 * Thrown by `req.data` and `client.data` when a body cannot be decoded (JSON the parser refuses).
 * Uncaught, it answers the request 400 `{"error": "Invalid JSON"}` instead of 500: the client sent it.
 */
export class InvalidBody extends Error {
  /** The HTTP status the request gets when the error is not caught. */
  readonly status = 400;

  /**
   * Creates the error.
   *
   * @param message What is wrong with the body.
   * @param cause The parser's error.
   */
  constructor(message: string, cause?: unknown) {
    super(message, { cause });
    this.name = "InvalidBody";
  }
}

/**
 * Decodes a body by content type: JSON parsed, forms parsed, anything else as bytes; empty is `null`. A JSON body
 * the parser refuses, for whatever reason, throws {@linkcode InvalidBody}.
 */
export function decodeBody(body: Uint8Array, contentType: string | null | undefined): unknown {
  if (body.length === 0) return null;
  const type = mediaType(contentType);
  if (isJsonType(type)) {
    try {
      return JSON.parse(decoder.decode(body));
    } catch (error) {
      throw new InvalidBody("Invalid JSON", error);
    }
  }
  if (type === "application/x-www-form-urlencoded") return parseForm(decoder.decode(body));
  return body;
}
