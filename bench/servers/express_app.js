// The Express app of the request-listener benchmark: tiny JSON and the 2 ms CPU route, served in-process
// (express_single.js), under node:cluster (cluster.ts with APP) and in a forkyard app pool (express_forkyard.ts).
import express from "express";

/** About `ms` of CPU work, as bench/servers/baseline_burn.ts. */
function burn(ms = 2) {
  const end = performance.now() + ms;
  let x = 0;
  while (performance.now() < end) x += Math.sqrt(x + 1);
  return x;
}

const app = express();
app.get("/json", (_req, res) => {
  res.json({ hello: "world" });
});
app.get("/cpu", (_req, res) => {
  burn();
  res.json({ hello: "world" });
});

export default app;
