// The child of deno_forward.ts: echoes every byte back, over stdio or the socket in ADDRESS.
if (Deno.env.get("CHANNEL") === "unix") {
  const conn = await Deno.connect({ transport: "unix", path: "\0" + Deno.env.get("ADDRESS")! });
  const buf = new Uint8Array(65536);
  for (let n; (n = await conn.read(buf)) !== null;) {
    for (let off = 0; off < n;) off += await conn.write(buf.subarray(off, n));
  }
} else {
  const writer = Deno.stdout.writable.getWriter();
  for await (const chunk of Deno.stdin.readable) writer.write(chunk);
}
