// Worker hosts (`forkyard worker --nats URL ...`) and dispatchers with remote pools, as processes, for the remote
// pool tests; and a load that counts answers by the host that served them.
import { type App, fixture, load, start } from "./helpers.ts";

/** A worker host: `forkyard worker` running the Render class (or `target`), started and connected. */
export async function startHost(nats: string, name: string, args: string[] = [], target = "remote_worker.ts:Render") {
  const proc = start(fixture("../../cli.ts"), [
    "worker",
    "--nats",
    nats,
    fixture(target),
    "--name",
    name,
    ...args,
  ], { FORKYARD_TEST_HOST: name });
  const { host } = await proc.line<{ host: string }>((v) => typeof v.host === "string");
  return {
    ...proc,
    host,
    async stop() {
      proc.child.kill("SIGTERM");
      return await proc.exited;
    },
  };
}

export async function startDispatcher(
  nats: string,
  env: Record<string, string> = {},
): Promise<App & { admin?: number }> {
  const proc = start(fixture("remote_dispatcher.ts"), [], { NATS_URL: nats, ...env });
  const { port, admin } = await proc.line<{ port: number; admin?: number }>((v) => typeof v.port === "number");
  return {
    ...proc,
    port,
    admin,
    url: `http://127.0.0.1:${port}`,
    async stop() {
      proc.child.kill("SIGTERM");
      return await proc.exited;
    },
  };
}

/**
 * `clients` loops of GET `path` (/render/slow/100) until `stop()`: answers counted by status, and the 200s by the host that
 * served them.
 */
export function hostLoad(url: string, clients: number, path = "/render/slow/100") {
  const byHost: Record<string, number> = {};
  const run = load(url, clients, path, {
    answered: (status, text) => {
      if (status !== 200) return;
      const host = JSON.parse(text).host;
      byHost[host] = (byHost[host] ?? 0) + 1;
    },
  });
  return { statuses: run.acc.byStatus, acc: run.acc, byHost, stop: () => run.stop("hosts") };
}
