/**
 * The admin listener's live status page: pools, workers and the last minutes
 * of traffic as small charts, kept current by Server-Sent Events from
 * `/events` (one snapshot a second). One self-contained HTML document, no
 * script or style from elsewhere.
 *
 * @module
 */

import type { PoolStatus } from "../pool.ts";
import type { Second } from "./metrics.ts";

/** What `/events` sends each second. */
export interface Snapshot {
  /** Dispatcher pid. */
  pid: number;
  /** Requests waiting for or being served by workers. */
  pending: number;
  /** The pools' status. */
  pools: PoolStatus[];
  /** Traffic, one entry per second, oldest first (the whole history in the first event, the last second after). */
  seconds: Second[];
}

/** The page. */
export const STATUS_PAGE: string = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>forkyard status</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #222; }
  h1 { font-size: 1.2rem; } h2 { font-size: 1rem; margin: 1.2rem 0 .4rem; }
  table { border-collapse: collapse; } th, td { padding: .2rem .7rem; text-align: right; border-bottom: 1px solid #ddd; }
  th:first-child, td:first-child { text-align: left; }
  .charts { display: flex; gap: 2rem; } .chart { width: 320px; } svg { width: 320px; height: 80px; background: #f6f6f6; }
  .degraded { color: #b00; font-weight: bold; } .muted { color: #777; }
</style>
</head>
<body>
<h1>forkyard <span id="summary" class="muted">connecting…</span></h1>
<div class="charts">
  <div class="chart"><div>requests/s: <b id="rps">0</b></div><svg id="rps-chart" viewBox="0 0 300 80" preserveAspectRatio="none"><polyline fill="none" stroke="#36c" stroke-width="1.5"/></svg></div>
  <div class="chart"><div>latency p50 / p99: <b id="latency">0 / 0 ms</b></div><svg id="latency-chart" viewBox="0 0 300 80" preserveAspectRatio="none"><polyline fill="none" stroke="#c63" stroke-width="1.5"/></svg></div>
</div>
<div id="pools"></div>
<script>
const seconds = [];
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
const uptime = (ms) => { const s = Math.floor(ms / 1000); return s >= 3600 ? Math.floor(s / 3600) + "h" + String(Math.floor(s / 60) % 60).padStart(2, "0") + "m" : s >= 60 ? Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s" : s + "s"; };
function plot(id, values) {
  const max = Math.max(1, ...values);
  const points = values.map((v, i) => (i * 300 / Math.max(1, values.length - 1)).toFixed(1) + "," + (78 - v / max * 74).toFixed(1));
  document.querySelector("#" + id + " polyline").setAttribute("points", points.join(" "));
}
function render(snapshot) {
  seconds.push(...snapshot.seconds);
  seconds.splice(0, Math.max(0, seconds.length - 300));
  const last = seconds[seconds.length - 1] ?? { requests: 0, p50: 0, p99: 0 };
  document.getElementById("summary").textContent = "pid " + snapshot.pid + ", " + snapshot.pending + " pending";
  document.getElementById("rps").textContent = last.requests;
  document.getElementById("latency").textContent = last.p50.toFixed(1) + " / " + last.p99.toFixed(1) + " ms";
  plot("rps-chart", seconds.map((s) => s.requests));
  plot("latency-chart", seconds.map((s) => s.p99));
  document.getElementById("pools").innerHTML = snapshot.pools.map((pool) =>
    "<h2 data-pool=\\"" + esc(pool.name) + "\\">pool " + esc(pool.name) + " <span class=\\"muted\\">queue <b class=\\"queue\\">" + esc(pool.queueSize) + "</b></span>" +
    (pool.degraded ? " <span class=\\"degraded\\">degraded</span>" : "") + "</h2>" +
    "<table><tr><th>worker</th><th>pid</th><th>state</th><th>uptime</th><th>RSS</th><th>served</th><th>in flight</th><th>restarts</th></tr>" +
    pool.workers.map((w) => "<tr data-worker=\\"" + esc(w.id) + "\\"><td>" + esc(w.id) + "</td><td class=\\"pid\\">" + esc(w.pid ?? "-") + "</td><td class=\\"state\\">" + esc(w.state) +
      "</td><td>" + esc(uptime(w.uptime)) + "</td><td>" + esc((Number(w.rss) / 1048576).toFixed(1)) + " MiB</td><td class=\\"served\\">" + esc(w.served) +
      "</td><td>" + esc(w.inflight) + "</td><td class=\\"restarts\\">" + esc(w.restarts) + "</td></tr>").join("") + "</table>"
  ).join("");
}
const events = new EventSource("/events" + location.search);
events.onmessage = (event) => render(JSON.parse(event.data));
events.onerror = () => { document.getElementById("summary").textContent = "disconnected, retrying…"; };
</script>
</body>
</html>
`;

/** One Server-Sent Event carrying `snapshot`. */
export function snapshotEvent(snapshot: Snapshot): string {
  return `data: ${JSON.stringify(snapshot)}\n\n`;
}
