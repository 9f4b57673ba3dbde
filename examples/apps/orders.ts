// Any module whose default export has fetch(request) is an app; no framework needed.
export default {
  fetch(request: Request): Response {
    const url = new URL(request.url);
    if (url.pathname === "/") return Response.json({ orders: [{ id: 1, item: "book" }], pid: process.pid });
    return Response.json({ error: "Not found" }, { status: 404 });
  },
};
