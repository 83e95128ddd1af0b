// Measures the worker's isolate during edge conversions (POST /convert-image in workerd) of
// deterministic many-file images: the wasm linear memory (GET /debug/metrics after the
// conversion: it never shrinks, so that is the isolate's peak), the V8 JS heap (polled through
// workerd's inspector, Runtime.getHeapUsage, every 100 ms: its peak used size, garbage included,
// and its peak allocated size; and once a second after HeapProfiler.collectGarbage: the peak of
// what was live), workerd's peak
// RSS (VmHWM: everything the process held, an upper bound), workerd's CPU time (utime + stime
// from /proc around the conversion, as a ratio to a warm conversion of the busybox sample in the
// same workerd just before: the sample is converted twice first, the first warming the isolate
// up), and the subrequests (the worker's own counter). Input on one loopback
// docker-registry, output on another, so every layer is fetched, scanned and uploaded.
// Not a test: prints numbers, asserts nothing about time.
//   node --experimental-websocket worker/test/bench-isolate.mjs   (scripts/bench-worker.sh)
// KILN_BENCH_IMAGES: "MIB:FILES:LAYERS,..." (default "256:5000:10,1024:20000:10,100:100000:10").
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './lib/procs.mjs';
import { startRegistry } from './lib/registry.mjs';
import { startWorker } from './lib/worker.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const TARGET = process.env.CARGO_TARGET_DIR ?? path.join(ROOT, 'target');
const DEMO_IMAGES = path.join(TARGET, 'debug/examples/demo_images');
const BENCH_IMAGE = path.join(TARGET, 'debug/examples/bench_edge_image');
const IMAGES = (process.env.KILN_BENCH_IMAGES || '256:5000:10,1024:20000:10,100:100000:10')
  .split(',').map((s) => s.split(':').map(Number)).map(([mib, files, layers]) => ({ mib, files, layers }));
const TICK = 100; // clock ticks per second (getconf CLK_TCK on Linux)
const MiB = 1 << 20;

/** CPU seconds (user + system) of `pid` so far. */
function cpuSecs(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / TICK;
}
function status(pid, key) {
  const m = new RegExp(`${key}:\\s+(\\d+) kB`).exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** Connects to workerd's inspector; `usage()` answers Runtime.getHeapUsage. */
async function inspector(addr) {
  let targets;
  for (let i = 0; i < 100; i++) {
    try { targets = await (await fetch(`http://${addr}/json/list`)).json(); if (targets.length) break; } catch { /* not up */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  if (!targets?.length) throw new Error(`workerd inspector at ${addr}: no targets`);
  const ws = new WebSocket(targets[0].webSocketDebuggerUrl);
  await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = () => reject(new Error('inspector websocket')); });
  let id = 0;
  const pending = new Map();
  ws.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.id && pending.has(msg.id)) { pending.get(msg.id)(msg); pending.delete(msg.id); }
  };
  const call = (method, params = {}) => new Promise((resolve) => {
    const n = ++id;
    pending.set(n, resolve);
    ws.send(JSON.stringify({ id: n, method, params }));
  });
  return {
    async gc() { await call('HeapProfiler.collectGarbage'); },
    async usage() {
      const r = await call('Runtime.getHeapUsage');
      return r.result ?? { usedSize: NaN, totalSize: NaN };
    },
    close() { ws.close(); },
  };
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-isolate-bench-'));
const src = await startRegistry(dir, 'src');
const dst = await startRegistry(dir, 'dst');
execFileSync(DEMO_IMAGES, [src.host], { stdio: ['ignore', 'pipe', 'inherit'] });
const keyFile = path.join(dir, 'key.pem');
execFileSync('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:3072',
  '-pkeyopt', 'rsa_keygen_pubexp:3', '-out', keyFile], { stdio: 'ignore' });

let n = 0;
async function convert(url, input) {
  const t0 = performance.now();
  const r = await fetch(`${url}/convert-image`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ inputImageName: input, outputImageName: `${dst.host}/out/bench:${n++}` }),
  });
  const text = await r.text();
  if (r.status !== 200) throw new Error(`convert-image ${r.status}: ${text.slice(0, 500)}`);
  return (performance.now() - t0) / 1000;
}

const rows = [];
for (const img of IMAGES) {
  const repo = `bench/i${img.mib}m${img.files}f${img.layers}l`;
  const t0 = performance.now();
  const out = execFileSync(BENCH_IMAGE, [src.host, `${repo}:1`, String(img.mib), String(img.files), String(img.layers)]);
  const genSecs = (performance.now() - t0) / 1000;
  const inspAddr = `127.0.0.1:${await freePort()}`;
  const worker = await startWorker({
    KILN_DEFAULT_SIGNING_KEY_FILE: keyFile,
    KILN_REGISTRY_ALLOWLIST: `http://${src.host},http://${dst.host}`,
    KILN_ALLOW_LOOPBACK_REGISTRIES: '1',
    KILN_RUNTIME_IMAGE: `${src.host}/kiln/runtime:fixture`,
    KILN_PROXY_TIMEOUT_SECS: '600',
    KILN_PROXY_UPLOAD_TIMEOUT_SECS: '3600',
    KILN_DEBUG_METRICS: '1',
    // Measure past the edge's entry limit (40,000), which these figures set.
    KILN_LIMIT_LAYER_ENTRIES: '200000',
    KILN_LIMIT_IMAGE_ENTRIES: '200000',
    KILN_WORKERD_INSPECTOR: inspAddr,
  });
  const metrics = async () => (await fetch(`${worker.url}/debug/metrics`)).json();
  const insp = await inspector(inspAddr);
  try {
    // Baseline: the busybox sample, warm (its first conversion compiles and warms up).
    await convert(worker.url, `${src.host}/sample/busybox:1`);
    const m0 = await metrics();
    const c0 = cpuSecs(worker.pid);
    await convert(worker.url, `${src.host}/sample/busybox:1`);
    const mb = await metrics();
    const base = {
      cpu: cpuSecs(worker.pid) - c0,
      subrequests: mb.subrequests - m0.subrequests,
      wasmMemoryBytes: mb.wasmMemoryBytes,
    };
    const heapIdle = (await insp.usage()).usedSize;
    let heapPeak = 0;
    let heapTotalPeak = 0;
    let heapLivePeak = 0;
    let polling = true;
    const poll = (async () => {
      for (let i = 1; polling; i++) {
        if (i % 10 === 0) {
          await insp.gc();
          heapLivePeak = Math.max(heapLivePeak, (await insp.usage()).usedSize);
        }
        const u = await insp.usage();
        heapPeak = Math.max(heapPeak, u.usedSize);
        heapTotalPeak = Math.max(heapTotalPeak, u.totalSize);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const c1 = cpuSecs(worker.pid);
    const wall = await convert(worker.url, `${src.host}/${repo}:1`);
    const cpu = cpuSecs(worker.pid) - c1;
    polling = false;
    await poll;
    const m = await metrics();
    rows.push({
      ...img, genSecs, wall, cpu, baseCpu: base.cpu,
      subrequests: m.subrequests - mb.subrequests, baseSubrequests: base.subrequests, heapIdle,
      wasm: m.wasmMemoryBytes, baseWasm: base.wasmMemoryBytes, heapPeak, heapTotalPeak, heapLivePeak,
      hwm: status(worker.pid, 'VmHWM'), pushed: out.toString().trim(),
    });
  } finally {
    insp.close();
    await worker.stop();
  }
  const r = rows.at(-1);
  console.log(`${r.mib} MiB / ${r.files} files / ${r.layers}+1 layers: wasm memory ${(r.wasm / MiB).toFixed(1)} MiB ` +
    `(after the sample: ${(r.baseWasm / MiB).toFixed(1)}), JS heap peak used ${(r.heapPeak / MiB).toFixed(1)} MiB ` +
    `(before it ${(r.heapIdle / MiB).toFixed(1)}, allocated ${(r.heapTotalPeak / MiB).toFixed(1)}, live after GC ` +
    `${(r.heapLivePeak / MiB).toFixed(1)}), wasm + JS used ${((r.wasm + r.heapPeak) / MiB).toFixed(1)} MiB, ` +
    `wasm + JS allocated ${((r.wasm + r.heapTotalPeak) / MiB).toFixed(1)} MiB; ` +
    `workerd peak RSS ${(r.hwm / MiB).toFixed(0)} MiB; CPU ${r.cpu.toFixed(2)} s (sample ${r.baseCpu.toFixed(2)} s, ` +
    `${(r.cpu / r.baseCpu).toFixed(1)}x); subrequests ${r.subrequests} (sample ${r.baseSubrequests}); wall ${r.wall.toFixed(1)} s` +
    ` [image made in ${r.genSecs.toFixed(0)} s: ${r.pushed}]`);
}
console.log(`load average: ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} on ${os.cpus().length} cores`);
await src.stop();
await dst.stop();
fs.rmSync(dir, { recursive: true, force: true });
