/**
 * `forkyard ctl`: asking a running server through its control socket, and printing what it says.
 *
 * @module
 */

import { sendControl } from "../control_socket.ts";
import { firstLine } from "../error_text.ts";
import type { PoolStatus } from "../pool.ts";
import type { Runtime } from "../runtime.ts";
import type { CliArgs } from "./args.ts";
import { defaultControlPath } from "./control_path.ts";
import { pidControlPath, readPidFile } from "./pid_file.ts";

/** Seconds as `1h02m`, `3m05s` or `12s`. */
function duration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s >= 3600) return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, "0")}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${s}s`;
}

/** `forkyard ctl status` as a table: one row per worker. */
export function statusTable(status: { pid: number; port: number; pending: number; pools: PoolStatus[] }): string {
  // Remote pools' workers run on worker hosts: a HOST column, then.
  const hosts = status.pools.some((p) => p.workers.some((w) => w.host !== undefined));
  const rows = [[
    "POOL",
    "WORKER",
    ...(hosts ? ["HOST"] : []),
    "PID",
    "STATE",
    "UPTIME",
    "RSS",
    "SERVED",
    "IN FLIGHT",
    "SOCKETS",
    "RESTARTS",
  ]];
  for (const pool of status.pools) {
    for (const w of pool.workers) {
      rows.push([
        pool.name,
        String(w.id),
        ...(hosts ? [w.host ?? "-"] : []),
        String(w.pid ?? "-"),
        w.state,
        duration(w.uptime),
        `${(w.rss / 1048576).toFixed(1)} MiB`,
        String(w.served),
        String(w.inflight),
        String(w.sockets),
        String(w.restarts),
      ]);
    }
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const lines = rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i])).join("  ").trimEnd());
  const pools = status.pools.map((p) => `${p.name}: ${p.queueSize} queued${p.degraded ? ", DEGRADED" : ""}`);
  return [`dispatcher pid ${status.pid}, port ${status.port}, ${status.pending} pending; ${pools.join("; ")}`, ...lines]
    .join("\n");
}

/**
 * The control socket `forkyard ctl` asks: `--control`, else that of the server whose pid `--pid-file` holds, else
 * `$FORKYARD_CONTROL`, else the default for this working directory.
 */
function controlPath(args: CliArgs, env: (name: string) => string | undefined): string {
  const control = args.dispatcher.control;
  if (typeof control === "string") return control;
  if (args.pidFile !== undefined) return pidControlPath(readPidFile(args.pidFile), env);
  return env("FORKYARD_CONTROL") || defaultControlPath(undefined, env);
}

/** Runs `forkyard ctl`; resolves with the exit status. */
export async function runCtl(args: CliArgs, runtime: Runtime): Promise<number> {
  let reply: unknown;
  try {
    reply = await sendControl(controlPath(args, (name) => runtime.env(name)), args.ctl!.command);
  } catch (error) {
    runtime.writeStderr(`forkyard: ${firstLine(error)}\n`);
    return 1;
  }
  if (args.ctl!.json) console.log(JSON.stringify(reply, null, 2));
  else if (args.ctl!.command.cmd === "status") console.log(statusTable(reply as Parameters<typeof statusTable>[0]));
  else console.log(JSON.stringify(reply));
  return 0;
}
