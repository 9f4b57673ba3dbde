// A plain Hono app. `forkyard serve examples/apps/users.ts` runs it in a worker pool at "/";
// examples/forkyard.json mounts it at /api/users, and it then sees /api/users/7 as /7.
import { Hono } from "hono";

const users = new Map([[1, { id: 1, name: "ann" }], [2, { id: 2, name: "bob" }]]);
const app = new Hono();

app.get("/", (c) => c.json({ users: [...users.values()], pid: process.pid }));
app.get("/:id{[0-9]+}", (c) => {
  const user = users.get(Number(c.req.param("id")));
  return user ? c.json(user) : c.json({ error: "Not found" }, 404);
});

export default app;
