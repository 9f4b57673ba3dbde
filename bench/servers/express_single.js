// The benchmark's Express app in one process, listening itself: the in-process baseline.
import app from "./express_app.js";

const server = app.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => {
  console.log(JSON.stringify({ port: server.address().port }));
});
