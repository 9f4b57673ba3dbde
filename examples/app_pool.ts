/**
 * Two apps, each isolated in its own supervised processes at its own prefix.
 *
 *   deno task app-pool  |  bun run examples/app_pool.ts  |  npm run app-pool
 *   curl localhost:8080/api/users/1     (reaches the Hono app as /1)
 */
import { AppPool, Dispatcher } from "../mod.ts";

await new Dispatcher({
  port: Number(process.env.PORT ?? 8080),
  pools: [
    new AppPool("/api/users", new URL("./apps/users.ts", import.meta.url), { workers: 2 }),
    new AppPool("/api/orders", new URL("./apps/orders.ts", import.meta.url)),
  ],
}).run();
