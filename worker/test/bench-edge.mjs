// Benchmark: an edge conversion of the busybox sample through POST /convert-image (the engine in
// workerd), cold (first request of a fresh workerd) and warm (later requests), against the native
// `kiln convert` of the same image in the same run with an empty state dir (no layer cache: the
// worker has none either), and, for reference, the native one with its layer cache warm.
// Not a test: prints numbers, asserts nothing about time.
//   node worker/test/bench-edge.mjs     (scripts/bench-worker.sh builds first)
// KILN_BENCH_ROUNDS (3) rounds; KILN_BENCH_KILN: the kiln binary (default target/release/kiln when
// it exists, else target/debug/kiln; the worker is always the release wasm build).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startRegistry } from './lib/registry.mjs';
import { startWorker, rssKiB } from './lib/worker.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const TARGET = process.env.CARGO_TARGET_DIR ?? path.join(ROOT, 'target');
const ROUNDS = Number(process.env.KILN_BENCH_ROUNDS || 3);
const WARM = 3;
const release = path.join(TARGET, 'release/kiln');
const KILN = process.env.KILN_BENCH_KILN || (fs.existsSync(release) ? release : path.join(TARGET, 'debug/kiln'));
const DEMO_IMAGES = path.join(TARGET, 'debug/examples/demo_images');

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-edge-bench-'));
const reg = await startRegistry(dir, 'bench');
execFileSync(DEMO_IMAGES, [reg.host], { stdio: ['ignore', 'pipe', 'inherit'] });
const keyFile = path.join(dir, 'key.pem');
execFileSync('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:3072',
  '-pkeyopt', 'rsa_keygen_pubexp:3', '-out', keyFile], { stdio: 'ignore' });
const runtime = `${reg.host}/kiln/runtime:fixture`;
const input = `${reg.host}/sample/busybox:1`;

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const secs = (t0) => (performance.now() - t0) / 1000;

let n = 0;
async function edge(url) {
  const t0 = performance.now();
  const r = await fetch(`${url}/convert-image`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ inputImageName: input, outputImageName: `${reg.host}/out/edge:${n++}` }),
  });
  const text = await r.text();
  if (r.status !== 200) throw new Error(`convert-image ${r.status}: ${text}`);
  return secs(t0);
}

function native(stateDir) {
  const t0 = performance.now();
  execFileSync(KILN, ['convert', '--input', input, '--output', `${reg.host}/out/cli:${n++}`, '--key', keyFile,
    '--runtime', runtime, '--insecure-registry', reg.host, '--state-dir', stateDir, '--no-bars'],
  { env: { ...process.env, DOCKER_CONFIG: path.join(dir, 'docker') }, stdio: ['ignore', 'pipe', 'pipe'] });
  return secs(t0);
}

const t = { edgeCold: [], edgeWarm: [], nativeCold: [], nativeNoCache: [], nativeCached: [] };
let peakRss = 0;
let dirs = 0;
const fresh = () => path.join(dir, `state${dirs++}`);
for (let i = 0; i < ROUNDS; i++) {
  const stateDir = fresh();
  t.nativeCold.push(native(stateDir));
  for (let k = 0; k < WARM; k++) t.nativeNoCache.push(native(fresh()));
  for (let k = 0; k < WARM; k++) t.nativeCached.push(native(stateDir));
  const worker = await startWorker({
    KILN_DEFAULT_SIGNING_KEY_FILE: keyFile,
    KILN_REGISTRY_ALLOWLIST: `http://${reg.host}`,
    KILN_ALLOW_LOOPBACK_REGISTRIES: '1',
    KILN_RUNTIME_IMAGE: runtime,
    KILN_PROXY_TIMEOUT_SECS: '120',
  });
  try {
    t.edgeCold.push(await edge(worker.url));
    for (let k = 0; k < WARM; k++) t.edgeWarm.push(await edge(worker.url));
    peakRss = Math.max(peakRss, await rssKiB(worker.pid));
  } finally {
    await worker.stop();
  }
}
const fmt = (xs) => xs.map((x) => x.toFixed(2)).join(' ');
const line = (name, e, b) => {
  const me = median(e); const mb = median(b);
  console.log(`${name}: edge ${me.toFixed(2)} s, native ${mb.toFixed(2)} s, ratio ${(me / mb).toFixed(2)}x  [edge ${fmt(e)}; native ${fmt(b)}]`);
};
console.log(`busybox sample via POST /convert-image vs ${path.relative(ROOT, KILN)} convert, ${ROUNDS} rounds (warm: ${WARM} per round), medians`);
line('cold (fresh workerd / first native run)', t.edgeCold, t.nativeCold);
line('warm (later requests / native without cache)', t.edgeWarm, t.nativeNoCache);
line('warm vs native with its layer cache warm', t.edgeWarm, t.nativeCached);
console.log(`load average: ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} on ${os.cpus().length} cores`);
console.log(`workerd RSS after the conversions: ${(peakRss / 1024).toFixed(0)} MiB`);
await reg.stop();
fs.rmSync(dir, { recursive: true, force: true });
