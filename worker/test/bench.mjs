// Benchmark: a large blob (default 200 MiB, KILN_BENCH_MB) pushed and pulled through the proxy
// vs straight to the registry, in the same run, plus workerd's RSS. Not a test: prints numbers.
//   node worker/test/bench.mjs     (scripts/bench-worker.sh builds first)
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startRegistry } from './lib/registry.mjs';
import { startWorker, rssKiB } from './lib/worker.mjs';

const MB = Number(process.env.KILN_BENCH_MB || 200);
const ROUNDS = Number(process.env.KILN_BENCH_ROUNDS || 3);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-worker-bench-'));
const reg = await startRegistry(dir, 'bench');
const worker = await startWorker({
  KILN_REGISTRY_ALLOWLIST: `http://${reg.host}`,
  KILN_ALLOW_LOOPBACK_REGISTRIES: '1',
});
const blob = crypto.randomBytes(MB * 1024 * 1024);
const digest = `sha256:${crypto.createHash('sha256').update(blob).digest('hex')}`;

let peakRss = 0;
const sampler = setInterval(async () => { peakRss = Math.max(peakRss, await rssKiB(worker.pid)); }, 50);

async function put(base, repo) {
  const t0 = performance.now();
  const start = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  if (start.status !== 202) throw new Error(`POST ${start.status}`);
  const loc = new URL(start.headers.get('location'), start.url);
  loc.searchParams.set('digest', digest);
  const r = await fetch(loc, { method: 'PUT', body: blob, headers: { 'content-type': 'application/octet-stream' } });
  if (r.status !== 201) throw new Error(`PUT ${r.status}: ${await r.text()}`);
  await r.arrayBuffer();
  return (performance.now() - t0) / 1000;
}

async function get(base, repo) {
  const t0 = performance.now();
  const r = await fetch(`${base}/v2/${repo}/blobs/${digest}`);
  if (r.status !== 200) throw new Error(`GET ${r.status}`);
  let n = 0;
  for await (const chunk of r.body) n += chunk.length;
  if (n !== blob.length) throw new Error(`GET returned ${n} bytes, want ${blob.length}`);
  return (performance.now() - t0) / 1000;
}

/** CPU seconds (user + system) a process has used, from /proc/PID/stat. */
function cpuSecs(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const idleRss = await rssKiB(worker.pid);
const proxy = `${worker.url}/proxy/${reg.host}`;
const cpu = { put: 0, get: 0 };
const t = { putDirect: [], putProxy: [], getDirect: [], getProxy: [] };
try {
  for (let i = 0; i < ROUNDS; i++) {
    t.putDirect.push(await put(reg.url, `bench/direct${i}`));
    let c0 = cpuSecs(worker.pid);
    t.putProxy.push(await put(proxy, `bench/proxy${i}`));
    cpu.put += cpuSecs(worker.pid) - c0;
    t.getDirect.push(await get(reg.url, `bench/direct${i}`));
    c0 = cpuSecs(worker.pid);
    t.getProxy.push(await get(proxy, `bench/proxy${i}`));
    cpu.get += cpuSecs(worker.pid) - c0;
  }
} finally {
  clearInterval(sampler);
}
const rate = (s) => `${(MB / s).toFixed(0)} MiB/s`;
const line = (name, d, p) => {
  const md = median(d); const mp = median(p);
  console.log(`${name}: direct ${md.toFixed(2)} s (${rate(md)}), proxy ${mp.toFixed(2)} s (${rate(mp)}), ratio ${(mp / md).toFixed(2)}x  [direct ${d.map((x) => x.toFixed(2)).join(' ')}; proxy ${p.map((x) => x.toFixed(2)).join(' ')}]`);
};
console.log(`blob ${MB} MiB, ${ROUNDS} rounds, medians`);
line('PUT', t.putDirect, t.putProxy);
line('GET', t.getDirect, t.getProxy);
const gib = (MB * ROUNDS) / 1024;
console.log(`workerd CPU per GiB proxied: PUT ${(cpu.put / gib).toFixed(2)} s, GET ${(cpu.get / gib).toFixed(2)} s`);
console.log(`load average: ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} on ${os.cpus().length} cores`);
console.log(`workerd RSS: idle ${(idleRss / 1024).toFixed(0)} MiB, peak during transfers ${(peakRss / 1024).toFixed(0)} MiB`);
await worker.stop();
await reg.stop();
fs.rmSync(dir, { recursive: true, force: true });
