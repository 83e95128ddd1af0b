// Uploads from the edge API: the worker pushes each blob in ONE streamed request (POST, then a
// PUT whose body streams with Content-Length), never in PATCH chunks, so a conversion's
// subrequests do not grow with its bytes. Counted at counting fronts before two real loopback
// registries (input + runtime on one, output on the other, so every layer is uploaded), for a
// multi-layer image whose layers are larger than the old 4 MiB chunk; and the worker's own
// subrequest counter (GET /debug/metrics) agrees with what the fronts saw. Counts only, no time.
// Needs target/debug/examples/{demo_images,bench_edge_image} (scripts/test-worker.sh builds them).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, it } from 'node:test';
import { startRegistry } from './lib/registry.mjs';
import { countingFront } from './lib/stubs.mjs';
import { startWorker } from './lib/worker.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const TARGET = process.env.CARGO_TARGET_DIR ?? path.join(ROOT, 'target');
const DEMO_IMAGES = path.join(TARGET, 'debug/examples/demo_images');
const BENCH_IMAGE = path.join(TARGET, 'debug/examples/bench_edge_image');
const OLD_CHUNK = 4 << 20;
// 3 data layers of ~6 MiB (incompressible) + the busybox base: 4 input layers.
const MIB = 18;
const FILES = 90;
const DATA_LAYERS = 3;

let w;
before(async () => {
  const tb = performance.now();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-uploads-test-'));
  const stops = [];
  const keep = (x) => { stops.push(x.stop); return x; };
  try {
    const src = keep(await startRegistry(dir, 'src'));
    const dst = keep(await startRegistry(dir, 'dst'));
    execFileSync(DEMO_IMAGES, [src.host], { stdio: ['ignore', 'pipe', 'inherit'] });
    execFileSync(BENCH_IMAGE, [src.host, 'bench/many:1', String(MIB), String(FILES), String(DATA_LAYERS)],
      { stdio: ['ignore', 'pipe', 'inherit'] });
    const srcFront = keep(await countingFront(src.url));
    const dstFront = keep(await countingFront(dst.url));
    const cutFront = keep(await countingFront(dst.url, { cutPutAfter: 1 << 20 }));
    const keyFile = path.join(dir, 'signing-key.pem');
    execFileSync('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:3072',
      '-pkeyopt', 'rsa_keygen_pubexp:3', '-out', keyFile], { stdio: 'ignore' });
    const worker = keep(await startWorker({
      KILN_DEFAULT_SIGNING_KEY_FILE: keyFile,
      KILN_REGISTRY_ALLOWLIST: `http://${srcFront.host},http://${dstFront.host},http://${cutFront.host}`,
      KILN_ALLOW_LOOPBACK_REGISTRIES: '1',
      KILN_RUNTIME_IMAGE: `${srcFront.host}/kiln/runtime:fixture`,
      KILN_PROXY_TIMEOUT_SECS: '60',
      KILN_DEBUG_METRICS: '1',
    }));
    console.log(`# set up in ${((performance.now() - tb) / 1000).toFixed(1)} s`);
    w = {
      srcFront, dstFront, cutFront, worker,
      async teardown() {
        for (const s of stops.reverse()) await s();
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    for (const s of stops.reverse()) await s();
    fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  }
});
after(async () => { await w?.teardown(); });

const metrics = async () => {
  const r = await fetch(`${w.worker.url}/debug/metrics`);
  assert.equal(r.status, 200);
  return r.json();
};

it('uploads each blob in one streamed PUT; subrequests counted by the worker match the registries', async () => {
  const m0 = await metrics();
  const t0 = performance.now();
  w.srcFront.state.requests.length = 0;
  w.dstFront.state.requests.length = 0;
  const r = await fetch(`${w.worker.url}/convert-image`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ inputImageName: `${w.srcFront.host}/bench/many:1`, outputImageName: `${w.dstFront.host}/out/many:1` }),
  });
  const text = await r.text();
  assert.equal(r.status, 200, text);
  const secs = (performance.now() - t0) / 1000;
  const m1 = await metrics();
  const src = w.srcFront.state.requests;
  const dst = w.dstFront.state.requests;
  const summary = (rs) => rs.map((q) => `${q.method} ${q.url.split('?')[0]} ${q.bytes}`).join('\n');

  // No PATCH at all; every byte of a blob reaches the output registry in one PUT.
  assert.equal(dst.filter((q) => q.method === 'PATCH').length, 0, summary(dst));
  const blobPuts = dst.filter((q) => q.method === 'PUT' && q.url.includes('/blobs/uploads/'));
  const posts = dst.filter((q) => q.method === 'POST' && q.url.includes('/blobs/uploads/'));
  // Input layers (4), the runtime's layer, the kiln layer, the config: 7 blobs, one session each.
  assert.equal(blobPuts.length, DATA_LAYERS + 1 + 1 + 1 + 1, summary(dst));
  assert.equal(posts.length, blobPuts.length, summary(dst));
  for (const q of blobPuts) {
    assert.ok(q.status === 201, `${q.url}: ${q.status}`);
    assert.ok(q.bytes > 0, q.url);
    // Streamed with its length: Content-Length, not chunked (FixedLengthStream).
    assert.equal(q.chunked, false, q.url);
    assert.equal(Number(q.contentLength), q.bytes, q.url);
  }
  // The layers are bigger than the old chunk: 4 MiB PATCHes would have needed more requests.
  const oldPatches = blobPuts.reduce((n, q) => n + Math.ceil(q.bytes / OLD_CHUNK), 0);
  assert.ok(oldPatches >= blobPuts.length + DATA_LAYERS, `${oldPatches} PATCHes then`);
  assert.ok(blobPuts.filter((q) => q.bytes > OLD_CHUNK).length >= DATA_LAYERS, summary(dst));

  // The worker's counter: every request the registries saw (each redirect hop would count
  // too; there are none here) plus the Durable Object calls: the rate limiter's and the
  // approvals store's (the signed conversion recorded as pending).
  const counted = m1.subrequests - m0.subrequests;
  const seen = src.length + dst.length;
  assert.ok(counted >= seen && counted <= seen + 2, `worker counted ${counted}, registries saw ${seen}`);
  // A whole multi-layer conversion, runtime included, stays small and independent of size.
  assert.ok(seen < 60, `${seen} subrequests:\n${summary(src)}\n--\n${summary(dst)}`);
  assert.ok(m1.wasmMemoryBytes > 0);
  console.log(`# subrequests: ${counted} (input registry ${src.length}, output ${dst.length}); ` +
    `blob PUTs ${blobPuts.length} carrying ${blobPuts.reduce((n, q) => n + q.bytes, 0)} bytes ` +
    `(4 MiB PATCHes would have been ${oldPatches}); wasm memory ${m1.wasmMemoryBytes} bytes; ${secs.toFixed(1)} s`);
});

it('a streamed upload cut off by the output registry fails the conversion (no hang, no tag)', async () => {
  const r = await fetch(`${w.worker.url}/convert-image`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ inputImageName: `${w.srcFront.host}/bench/many:1`, outputImageName: `${w.cutFront.host}/out/cut:1` }),
  });
  const text = await r.text();
  assert.ok(r.status >= 500, `${r.status} ${text}`);
  assert.ok(w.cutFront.state.requests.some((q) => q.cut), 'a PUT was cut');
  // Tag last: nothing was tagged.
  const m = await fetch(`${w.dstFront.url}/v2/out/cut/manifests/1`, { method: 'HEAD' });
  assert.equal(m.status, 404);
});

it('serves /debug/metrics only when KILN_DEBUG_METRICS=1', async () => {
  const other = await startWorker({ KILN_REGISTRY_ALLOWLIST: '' });
  try {
    const r = await fetch(`${other.url}/debug/metrics`);
    assert.equal(r.status, 404);
    assert.equal((await r.json()).errorType, 'NotFound');
  } finally {
    await other.stop();
  }
});
