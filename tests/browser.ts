// A headless Chromium driven over the DevTools protocol with the runtimes' own WebSocket: enough to open a page and
// read its DOM, with no driver package (the test setup installs Debian's chromium; scripts/test.mjs).
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Proc, start } from "./helpers.ts";

/** A page open in a headless Chromium. */
export interface Page {
  /** Evaluates `expression` in the page and returns its value. */
  evaluate<T>(expression: string): Promise<T>;
  /** A PNG of the page as it is now, `width` × `height` CSS pixels. */
  screenshot(width: number, height: number): Promise<Uint8Array>;
  /** Ends the browser. */
  close(): Promise<void>;
}

/** Starts Chromium headless and opens `url`. */
export async function openPage(url: string): Promise<Page> {
  const profile = mkdtempSync(join(tmpdir(), "forkyard-chromium-"));
  const browser: Proc = start("", [], {}, [
    "chromium",
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--remote-debugging-port=0",
    `--user-data-dir=${profile}`,
    "about:blank",
  ]);
  const line = await browser.waitStderr(/DevTools listening on (ws:\/\/\S+)/, 30_000);
  const socket = new WebSocket(/ws:\/\/\S+/.exec(line)![0]);
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = reject;
  });
  let nextId = 1;
  const waiting = new Map<number, (message: { result?: unknown; error?: { message: string } }) => void>();
  socket.onmessage = (event) => {
    const message = JSON.parse(String(event.data));
    waiting.get(message.id)?.(message);
    waiting.delete(message.id);
  };
  const send = (method: string, params: Record<string, unknown> = {}, sessionId?: string) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const id = nextId++;
      waiting.set(
        id,
        (message) =>
          message.error ? reject(new Error(message.error.message)) : resolve(message.result as Record<string, unknown>),
      );
      socket.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
    });
  const { targetId } = await send("Target.createTarget", { url });
  const { sessionId } = await send("Target.attachToTarget", { targetId, flatten: true });
  return {
    async evaluate<T>(expression: string): Promise<T> {
      const result = await send("Runtime.evaluate", { expression, returnByValue: true }, sessionId as string);
      return (result.result as { value: T }).value;
    },
    async screenshot(width: number, height: number): Promise<Uint8Array> {
      await send(
        "Emulation.setDeviceMetricsOverride",
        { width, height, deviceScaleFactor: 1, mobile: false },
        sessionId as string,
      );
      const { data } = await send("Page.captureScreenshot", { format: "png" }, sessionId as string);
      return Uint8Array.from(atob(data as string), (c) => c.charCodeAt(0));
    },
    async close() {
      socket.close();
      browser.child.kill("SIGKILL");
      await browser.exited;
    },
  };
}
