// What both floor servers do per request, apart from the channel: keep one pending answer,
// send 16 bytes to the child once per event-loop turn, and answer once per 16 bytes echoed back.
import { setImmediate } from "node:timers";

const body = JSON.stringify({ hello: "world" });

/** `write` sends bytes to the child; feed what the child echoes to `onBytes`. */
export function forwarder(write: (bytes: Uint8Array) => void) {
  const waiting: ((r: Response) => void)[] = [];
  let head = 0;
  let queued = 0;
  let scheduled = false;
  let carry = 0;
  const flush = () => {
    scheduled = false;
    write(new Uint8Array(queued * 16));
    queued = 0;
  };
  return {
    /** The server's request handler. */
    handle: (): Promise<Response> =>
      new Promise((resolve) => {
        waiting.push(resolve);
        queued++;
        if (!scheduled) {
          scheduled = true;
          setImmediate(flush);
        }
      }),
    onBytes(n: number) {
      carry += n;
      for (; carry >= 16; carry -= 16) {
        waiting[head++](new Response(body, { headers: { "content-type": "application/json" } }));
      }
      if (head === waiting.length) {
        waiting.length = 0;
        head = 0;
      }
    },
  };
}
