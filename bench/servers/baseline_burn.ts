/** About `ms` of CPU work, the body of the CPU-bound route in every benchmark server. */
export function burn(ms = 2): number {
  const end = performance.now() + ms;
  let x = 0;
  while (performance.now() < end) x += Math.sqrt(x + 1);
  return x;
}
