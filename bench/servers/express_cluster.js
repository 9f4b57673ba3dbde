// The benchmark's Express app under node:cluster with WORKERS workers, as PM2's cluster mode runs it.
import cluster from "node:cluster";
import process from "node:process";

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
  const { default: app } = await import("./express_app.js");
  app.listen(Number(process.env.PORT), "127.0.0.1");
}
