// The child of bun_forward.ts: echoes every byte back over stdin/stdout.
const Bun = (globalThis as unknown as {
  Bun: {
    stdin: { stream(): ReadableStream<Uint8Array> };
    stdout: { writer(): { write(b: Uint8Array): void; flush(): void } };
  };
}).Bun;
const out = Bun.stdout.writer();
for await (const chunk of Bun.stdin.stream()) {
  out.write(chunk);
  out.flush();
}
