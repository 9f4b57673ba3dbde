/**
 * The flags a Deno worker process runs with: the permissions this process
 * holds, passed on, and the flags it was run with that affect loading.
 *
 * @module
 */

const PERMISSIONS = ["read", "write", "net", "env", "run", "sys", "ffi", "import"] as const;

/**
 * Permission flags for a child: every permission this process holds in full is
 * passed on; a child always may read forkyard's own variables.
 */
export function permissionFlags(): string[] {
  const granted = PERMISSIONS.filter((name) => Deno.permissions.querySync({ name }).state === "granted");
  if (granted.length === PERMISSIONS.length) return ["--allow-all"];
  const flags = granted.map((name) => `--allow-${name}`);
  if (!granted.includes("env")) flags.push("--allow-env=FORKYARD_WORKER,FORKYARD_MODULE");
  return flags;
}

/** `deno run` flags a worker must not get: permissions (recomputed above), watchers and debuggers. */
const DROP_FLAG = /^(-A$|--allow-|--watch|--hmr|--inspect)/;

/**
 * The flags this process was run with that affect loading and running (`--sloppy-imports`, `--config`,
 * `--import-map`, `--unstable-*`, `--env-file`, `--v8-flags`, `--conditions`, `--preload`, ...), so that a worker
 * loads the program as the dispatcher did. Deno has no `execArgv`: they are read from `/proc/self/cmdline`; where
 * that cannot be read, or the process is not a `deno run` of its main module, there are none.
 */
export function runFlags(): string[] {
  return (flagsOfThisRun ??= readRunFlags());
}
let flagsOfThisRun: string[] | undefined;

function readRunFlags(): string[] {
  let argv: string[];
  try {
    argv = Deno.readTextFileSync("/proc/self/cmdline").split("\0");
  } catch {
    return [];
  }
  if (argv[argv.length - 1] === "") argv.pop();
  const script = argv.length - Deno.args.length - 1;
  if (script < 1 || !Deno.mainModule.endsWith(argv[script].replace(/^\.\//, ""))) return [];
  const before = argv.slice(1, script);
  const command = before.findIndex((arg) => !arg.startsWith("-"));
  // `deno run FLAGS script` or `deno FLAGS script`; anything else (`deno test`, `deno eval`) is not a program run.
  if (command >= 0 && (command !== 0 || before[0] !== "run")) return [];
  return before.filter((arg) => arg !== "run" && !DROP_FLAG.test(arg));
}

/** Whether this process holds every permission (then so do its children). */
export function allGranted(): boolean {
  return PERMISSIONS.every((name) => Deno.permissions.querySync({ name }).state === "granted");
}
