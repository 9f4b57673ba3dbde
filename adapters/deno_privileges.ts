/**
 * Dropping root on Deno: its `node:process` has `setuid` and `setgid` but neither `initgroups` nor `setgroups`, and a
 * process that keeps root's supplementary groups (group 0 among them) has not dropped root. So the C library does it
 * all, through FFI (`--allow-ffi`, which `-A` grants).
 *
 * @module
 */

/** The C libraries tried, glibc first, then musl's. */
const LIBC = ["libc.so.6", "libc.musl-x86_64.so.1", "libc.musl-aarch64.so.1"];

const SYMBOLS = {
  initgroups: { parameters: ["buffer", "u32"], result: "i32" },
  setgroups: { parameters: ["usize", "buffer"], result: "i32" },
  setgid: { parameters: ["u32"], result: "i32" },
  setuid: { parameters: ["u32"], result: "i32" },
} as const;

/** Becomes user `uid` in group `gid` with `name`'s supplementary groups (or `gid` alone); throws when it cannot. */
export function dropDenoPrivileges(to: { uid: number; gid: number; name: string | null }): void {
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
    throw new Error("Deno needs --allow-ffi (or -A) to drop root's groups for user and group");
  }
  let lib: Deno.DynamicLibrary<typeof SYMBOLS> | undefined;
  for (const path of LIBC) {
    try {
      lib = Deno.dlopen(path, SYMBOLS);
      break;
    } catch {
      // not this C library
    }
  }
  if (lib === undefined) throw new Error(`cannot load the C library (tried ${LIBC.join(", ")}) to change user`);
  try {
    const c = lib.symbols;
    const groups = to.name !== null
      ? c.initgroups(new TextEncoder().encode(to.name + "\0"), to.gid)
      : c.setgroups(1n, new Uint32Array([to.gid]));
    if (groups !== 0) throw new Error(`cannot set the groups of ${to.name ?? `gid ${to.gid}`}`);
    if (c.setgid(to.gid) !== 0) throw new Error(`cannot change to group ${to.gid}`);
    if (c.setuid(to.uid) !== 0) throw new Error(`cannot change to user ${to.uid}`);
  } finally {
    lib.close();
  }
}
