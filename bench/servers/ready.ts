// A bare runtime process: says it is ready, then idles. Spawn-to-ready and idle RSS baseline.
console.log(JSON.stringify({ ready: true }));
setInterval(() => {}, 1 << 30);
