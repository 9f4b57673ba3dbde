/**
 * The `admin` option: where the admin listener listens, its bearer token and
 * the host names it answers; an address beyond loopback needs a token.
 *
 * @module
 */

/** Connections the admin listener serves at once: scrapers and a few status pages, never a crowd. */
export const ADMIN_CONNECTIONS = 32;

/** Where the admin listener listens, and who may ask it. */
export interface AdminAddress {
  /** Address; 127.0.0.1 unless given. */
  hostname: string;
  /** Port; 0 picks a free one. */
  port: number;
  /** The bearer token every request must carry, or `null` (only on loopback). */
  token: string | null;
  /** Names besides the address and `localhost` a `Host` header may carry. */
  hosts: string[];
}

/** Whether `hostname` is a loopback address (or localhost), which other machines cannot reach. */
function isLoopback(hostname: string): boolean {
  return hostname === "localhost" || hostname === "::1" || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

/**
 * The `admin` option with its token (`admin.token`, else `adminToken`) and names;
 * throws naming the option, also when the address is beyond loopback and there is no token.
 */
export function resolveAdmin(value: unknown, adminToken: unknown): AdminAddress {
  const bad = (why: string) => new TypeError(`Invalid Dispatcher option "admin": ${why}`);
  const spec = typeof value === "object" && value !== null && !Array.isArray(value)
    ? value as { address?: unknown; token?: unknown; hosts?: unknown }
    : { address: value };
  const unknown = Object.keys(spec).filter((k) => !["address", "token", "hosts"].includes(k));
  if (unknown.length > 0) throw bad(`unknown key "${unknown[0]}" (expected address, token, hosts)`);
  const { hostname, port } = parseAdmin(spec.address);
  const token = spec.token ?? adminToken ?? null;
  if (token !== null && (typeof token !== "string" || token.length < 16)) {
    throw bad("the token must be a string of at least 16 characters");
  }
  const hosts = spec.hosts ?? [];
  if (!Array.isArray(hosts) || hosts.some((h) => typeof h !== "string" || h === "")) {
    throw bad("hosts must be an array of host names");
  }
  if (token === null && !isLoopback(hostname)) {
    throw bad(
      `${hostname}:${port} is reachable from other machines: give it a token (admin.token, --admin-token or ` +
        "FORKYARD_ADMIN_TOKEN), or listen on 127.0.0.1",
    );
  }
  return { hostname, port, token, hosts: [...hosts] };
}

/** `"HOST:PORT"`, `":PORT"`, `"PORT"` or a port number as an address; throws naming the option. */
export function parseAdmin(value: unknown): { hostname: string; port: number } {
  const text = typeof value === "number" ? String(value) : value;
  const match = typeof text === "string" ? /^(?:(.*):)?(\d+)$/.exec(text) : null;
  const port = match ? Number(match[2]) : NaN;
  if (match === null || port > 65535) {
    throw new TypeError(`Invalid Dispatcher option "admin": ${JSON.stringify(value)} (expected "HOST:PORT" or a port)`);
  }
  const host = match[1] ?? "";
  return { hostname: host === "" ? "127.0.0.1" : host.replace(/^\[(.*)\]$/, "$1"), port };
}
