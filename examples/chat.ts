/**
 * A chat with rooms: every browser tab joins a room over a WebSocket; what one
 * says reaches everybody in the room, whichever worker holds their socket.
 *
 *   deno task chat  |  bun run examples/chat.ts  |  npm run chat
 *   open http://localhost:8080/ in two tabs (add ?room=name for another room)
 */
import {
  type Client,
  Dispatcher,
  publish,
  subscribe,
  sync,
  type WebSocketHandler,
  Worker,
  WorkerPool,
  type WorkerRequest,
  ws,
} from "../mod.ts";

class ChatWorker extends Worker {
  @ws("/chat/{room}")
  room(req: WorkerRequest): WebSocketHandler {
    const room = String(req.pathParams.room).slice(0, 40);
    const topic = `room:${room}`;
    const me = `guest-${Math.floor(Math.random() * 10_000)}`;
    const say = (text: string) => publish(topic, JSON.stringify({ from: me, text, worker: this.workerId }));
    return {
      onOpen: (socket) => {
        subscribe(socket, topic);
        socket.send(JSON.stringify({ from: "forkyard", text: `You are ${me} in ${room}, on worker ${this.workerId}` }));
        say("joined");
      },
      onMessage: (_socket, data) => say(String(data).slice(0, 500)),
      onClose: () => say("left"),
    };
  }
}

class ChatDispatcher extends Dispatcher {
  @sync("/", "GET")
  page(client: Client) {
    client.respond(PAGE, 200, { "content-type": "text/html; charset=utf-8" });
  }
}

const PAGE = `<!doctype html>
<meta charset="utf-8"><title>forkyard chat</title>
<style>body{font:15px system-ui;max-width:40em;margin:2em auto}#log{height:60vh;overflow:auto;border:1px solid #ccc;padding:.5em}</style>
<div id="log"></div><form id="f"><input id="t" autofocus autocomplete="off" size="50"> <button>Send</button></form>
<script>
const room = new URLSearchParams(location.search).get("room") || "lobby";
const log = document.getElementById("log");
const line = (text) => { const p = document.createElement("div"); p.textContent = text; log.append(p); log.scrollTop = 1e9; };
const socket = new WebSocket(location.origin.replace("http", "ws") + "/chat/" + encodeURIComponent(room));
socket.onmessage = (e) => { const m = JSON.parse(e.data); line(m.from + (m.worker !== undefined ? " (worker " + m.worker + ")" : "") + ": " + m.text); };
socket.onclose = (e) => line("closed (" + e.code + ") " + e.reason);
document.getElementById("f").onsubmit = (e) => { e.preventDefault(); socket.send(document.getElementById("t").value); document.getElementById("t").value = ""; };
</script>`;

await new ChatDispatcher({
  port: Number(process.env.PORT ?? 8080),
  pools: [new WorkerPool(ChatWorker, { workers: 2, routes: ["/chat/**"] })],
}).run();
