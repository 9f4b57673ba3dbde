// A dispatcher whose pool runs on worker hosts, as a user would write one, for tests/remote_checks.test.ts. NATS_URL
// names the server; RETRY=1 retries a GET whose host died.
import { Dispatcher, WorkerPool } from "../../mod.ts";
import { Render } from "./render.ts";

class App extends Dispatcher {
  override onListen(info: { port: number }) {
    console.log(JSON.stringify({ port: info.port }));
  }
}

await new App({
  port: 0,
  hostname: "127.0.0.1",
  control: false,
  pools: [
    new WorkerPool(Render, {
      routes: ["/render/**"],
      retryIdempotent: process.env.RETRY === "1",
      remote: { nats: process.env.NATS_URL! },
    }),
  ],
}).run();
