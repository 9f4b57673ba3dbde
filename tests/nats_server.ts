// A real nats-server (Debian's package; scripts/test.mjs installs it when missing) on a free loopback port, for the
// remote pool tests: started, stopped, and started again on the same port.
import { type ChildProcess, spawn } from "node:child_process";
import { createServer } from "node:net";

/** A running nats-server. */
export interface NatsServer {
  url: string;
  port: number;
  /** Stops it (SIGKILL: a server that goes away). */
  kill(): Promise<void>;
  /** Starts it again on the same port. */
  restart(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function run(port: number, args: string[], address: string): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn("nats-server", ["-a", address, "-p", String(port), ...args], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    const onData = (chunk: Buffer) => {
      out += chunk;
      if (out.includes("Server is ready")) resolve(child);
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.once("error", reject);
    child.once("exit", (code) => reject(new Error(`nats-server exited (${code}): ${out}`)));
  });
}

/**
 * Starts a nats-server on a free port, listening on `address` (loopback unless given); `args` adds to its command
 * line (`--auth TOKEN`, `-c forkyard.conf`).
 */
export async function startNats(args: string[] = [], address = "127.0.0.1"): Promise<NatsServer> {
  const port = await freePort();
  let child = await run(port, args, address);
  const kill = () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once("exit", () => resolve());
      child.kill("SIGKILL");
    });
  return {
    url: `nats://${address === "0.0.0.0" ? "127.0.0.1" : address}:${port}`,
    port,
    kill,
    async restart() {
      await kill();
      child = await run(port, args, address);
    },
  };
}
