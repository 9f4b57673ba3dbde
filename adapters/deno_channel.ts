/**
 * The channel between a Deno dispatcher and its workers: a Unix socket in the
 * abstract namespace where one can be had, else the child's stdin and stdout.
 * Both ends are here: the dispatcher's listener, and a worker's end.
 *
 * @module
 */

import type { ParentChannel } from "../src/runtime.ts";
import { allGranted } from "./deno_permissions.ts";
import { pump } from "./streams.ts";

/**
 * The variable that tells a worker where its socket channel is: `name:token`, the abstract socket's name without
 * its leading NUL and the hex token the worker sends first.
 */
export const CHANNEL_ENV = "FORKYARD_CHANNEL";
/** Bytes of that token. */
export const TOKEN_BYTES = 16;

/**
 * The channel to a worker goes over a Unix socket where one can be had (Linux,
 * full permissions): Deno reads a child's stdin on a blocking thread per read,
 * which costs a worker CPU on every request. The socket lives in the abstract
 * namespace (no file to clean up); a child proves it is ours with a random token
 * sent first. Elsewhere the channel is stdin/stdout, as on Bun and Node.
 */
interface ChannelListener {
  address: string;
  /** Token (hex) → the spawned child waiting for its connection. */
  waiting: Map<string, (conn: Deno.Conn) => void>;
}
let listening: ChannelListener | null | undefined;

export function channelListener(): ChannelListener | null {
  if (listening !== undefined) return listening;
  listening = null;
  if (Deno.build.os !== "linux" || !allGranted()) return listening;
  const address = `\0forkyard-${Deno.pid}-${hex(crypto.getRandomValues(new Uint8Array(8)))}`;
  let listener: Deno.Listener;
  try {
    listener = Deno.listen({ transport: "unix", path: address });
  } catch {
    return listening;
  }
  // The listener must not keep the process alive by itself.
  listener.unref();
  const waiting = new Map<string, (conn: Deno.Conn) => void>();
  acceptChildren(listener, waiting);
  listening = { address, waiting };
  return listening;
}

/** How long a connection to the channel socket may take to send its token before it is closed. */
export const TOKEN_TIMEOUT_MS = 5000;
/** Connections that have not sent their token yet, at most: more are closed as they arrive. */
const MAX_UNPROVEN = 64;
/** How long after a failed accept (no descriptor free) the listener tries again, doubling to the last. */
const ACCEPT_RETRY_MS = [50, 100, 250, 500, 1000];

/**
 * Accepts children's connections for as long as the process lives. The socket is open to every local user of the
 * network namespace: a connection must send a waiting child's token within {@linkcode TOKEN_TIMEOUT_MS}, and few may
 * wait at once. A failed accept (EMFILE) is retried, not the end of the loop.
 */
async function acceptChildren(listener: Deno.Listener, waiting: Map<string, (conn: Deno.Conn) => void>) {
  let unproven = 0;
  let failures = 0;
  for (;;) {
    let conn: Deno.Conn;
    try {
      conn = await listener.accept();
      failures = 0;
    } catch (error) {
      if (error instanceof Deno.errors.BadResource) return;
      const delay = ACCEPT_RETRY_MS[Math.min(failures++, ACCEPT_RETRY_MS.length - 1)];
      await new Promise((resolve) => Deno.unrefTimer(setTimeout(resolve, delay) as unknown as number));
      continue;
    }
    if (unproven >= MAX_UNPROVEN) {
      conn.close();
      continue;
    }
    unproven++;
    const timer = setTimeout(() => closeQuietly(conn), TOKEN_TIMEOUT_MS);
    Deno.unrefTimer(timer as unknown as number);
    readExactly(conn, TOKEN_BYTES).then((token) => {
      const attach = token === null ? undefined : waiting.get(hex(token));
      if (attach === undefined) return closeQuietly(conn);
      waiting.delete(hex(token!));
      attach(conn);
    }).catch(() => closeQuietly(conn)).finally(() => {
      unproven--;
      clearTimeout(timer);
    });
  }
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // closed already (by the timeout)
  }
}

export function hex(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

async function readExactly(conn: Deno.Conn, n: number): Promise<Uint8Array | null> {
  const buf = new Uint8Array(n);
  let off = 0;
  while (off < n) {
    const read = await conn.read(buf.subarray(off));
    if (read === null) return null;
    off += read;
  }
  return buf;
}

/**
 * Reads `conn` until it closes. Chunks are cut from a larger buffer that is
 * never written twice, so a consumer may keep them.
 */
export async function readConn(conn: Deno.Conn, onChunk: (chunk: Uint8Array) => void): Promise<void> {
  let buf = new Uint8Array(READ_BUFFER);
  let off = 0;
  try {
    for (;;) {
      if (buf.length - off < READ_BUFFER / 8) {
        buf = new Uint8Array(READ_BUFFER);
        off = 0;
      }
      const n = await conn.read(buf.subarray(off));
      if (n === null) return;
      onChunk(buf.subarray(off, off + n));
      off += n;
    }
  } catch {
    // a reset connection is the same as end of file
  }
}
const READ_BUFFER = 64 * 1024;

/**
 * Writes to `conn` in order, one write at a time. `write` returns the promise of
 * the write in progress: the caller waits for it before handing over more.
 */
export function connWriter(conn: Promise<Deno.Conn | null>) {
  const queue: Uint8Array[] = [];
  let busy: Promise<void> | undefined;
  let open = true;
  async function run() {
    const c = await conn;
    if (c === null) throw new Error("never connected");
    while (queue.length > 0) {
      const data = queue.shift()!;
      let off = 0;
      while (off < data.length) off += await c.write(data.subarray(off));
    }
  }
  return {
    write(data: Uint8Array): Promise<void> | undefined {
      if (!open) return undefined;
      queue.push(data);
      busy ??= run().catch(() => {
        open = false;
        queue.length = 0;
      }).finally(() => (busy = undefined));
      return busy;
    },
    /** Resolves once everything queued is written. */
    flushed: (): Promise<void> => busy ?? Promise.resolve(),
    close() {
      open = false;
    },
  };
}

export function parentChannel(): ParentChannel {
  const socket = Deno.env.get(CHANNEL_ENV);
  if (socket) {
    // Single use: not for this worker's own children.
    Deno.env.delete(CHANNEL_ENV);
    return socketChannel(socket);
  }
  const writer = Deno.stdout.writable.getWriter();
  let last: Promise<void> = Promise.resolve();
  return {
    start(onData, onEnd) {
      pump(Deno.stdin.readable, onData).then(onEnd);
    },
    write(data) {
      last = writer.write(data).catch(() => {});
      return (writer.desiredSize ?? 0) > 0 ? undefined : last;
    },
    redirectStdout,
  };
}

/** The worker's end of a socket channel (see {@linkcode channelListener}). */
function socketChannel(spec: string): ParentChannel {
  const at = spec.lastIndexOf(":");
  const token = new Uint8Array(TOKEN_BYTES);
  for (let i = 0; i < TOKEN_BYTES; i++) token[i] = parseInt(spec.slice(at + 1 + 2 * i, at + 3 + 2 * i), 16);
  const conn: Promise<Deno.Conn | null> = Deno.connect({ transport: "unix", path: "\0" + spec.slice(0, at) })
    .then(async (c) => {
      await c.write(token);
      return c;
    })
    .catch(() => null);
  const writer = connWriter(conn);
  return {
    start(onData, onEnd) {
      conn.then((c) => c && readConn(c, onData)).then(onEnd, onEnd);
    },
    write: (data) => writer.write(data),
    redirectStdout,
  };
}

function redirectStdout(onText: (text: string) => void): void {
  const decoder = new TextDecoder();
  const stdout = Deno.stdout as unknown as {
    write(p: Uint8Array): Promise<number>;
    writeSync(p: Uint8Array): number;
  };
  stdout.write = (p) => {
    onText(decoder.decode(p));
    return Promise.resolve(p.length);
  };
  stdout.writeSync = (p) => {
    onText(decoder.decode(p));
    return p.length;
  };
}
