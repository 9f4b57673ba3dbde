// forkyard as each runtime's users run it: the sources on Deno and Bun, which run TypeScript themselves, and on Node
// the compiled package (dist/, `npm run build`), as `npm install forkyard` gives it. Loading the sources on Node would
// measure a loader instead: tsx's keepNames makes every named closure a dictionary-mode object, and Node's type
// stripping keeps its compiler's memory after stripping forkyard's files.
import type * as Forkyard from "../../mod.ts";

const g = globalThis as { Deno?: unknown; Bun?: unknown };
const href = g.Deno !== undefined || g.Bun !== undefined ? "../../mod.ts" : "../../dist/mod.js";
const lib = await import(href) as typeof Forkyard;

export const { api, AppPool, Dispatcher, sync, Worker, WorkerPool, ws } = lib;
export type { Client, ListenInfo, WebSocketHandler, WorkerRequest } from "../../mod.ts";
