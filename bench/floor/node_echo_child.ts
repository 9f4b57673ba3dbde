// The child of node_forward.ts: echoes every byte from stdin back on fd 3.
import { Socket } from "node:net";
import process from "node:process";

const out = new Socket({ fd: 3, readable: false, writable: true });
process.stdin.on("data", (chunk: Uint8Array) => out.write(chunk));
process.stdin.on("end", () => process.exit(0));
