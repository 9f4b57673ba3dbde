// node:cluster with WORKERS node:http workers: the prefork baseline for the CPU-bound route. With APP (a module whose
// default export is a request listener, such as bench/servers/express_app.js), each worker serves that app instead,
// as PM2's cluster mode runs it.
import cluster from "node:cluster";
import { createServer, type RequestListener } from "node:http";
import process from "node:process";
import { burn } from "./baseline_burn.ts";

const body = JSON.stringify({ hello: "world" });
const workers = Number(process.env.WORKERS ?? 2);
if (cluster.isPrimary) {
  // Workers inherit PORT from this process's environment.
  const port = Number(process.env.PORT);
  let ready = 0;
  for (let i = 0; i < workers; i++) {
    cluster.fork().on("listening", () => {
      if (++ready === workers) console.log(JSON.stringify({ port }));
    });
  }
} else {
  const app: RequestListener = process.env.APP ? (await import(process.env.APP)).default : (req, res) => {
    if (req.url === "/cpu") burn();
    res.writeHead(200, { "content-type": "application/json" }).end(body);
  };
  createServer(app).listen(Number(process.env.PORT), "127.0.0.1");
}
