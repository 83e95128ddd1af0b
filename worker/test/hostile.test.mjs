// Hostile images and failing registries against the edge API in workerd (issue 16), with real
// docker-registry on loopback:
//   - each bomb of kiln_tests::bombs (example hostile_images) through /convert-image and
//     /verify-image: a 400 naming the layer and the limit, no tag at the output registry, and
//     the isolate's wasm memory (GET /debug/metrics) grown by less than 64 MB. No timed
//     assertions: the test finishing shows the CPU bound (durations are printed);
//   - the fault front (example fault_front) before the registry: 20% of GET/HEAD requests
//     failing transiently, the conversion succeeds (faults > 0, a log line per retry the engine
//     made: at least one, at most one per fault); 100%,
//     it fails with a clear error and no tag.
// Needs the examples demo_images, hostile_images and fault_front built (scripts/test-worker.sh).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { startFaultFront } from './lib/faultfront.mjs';
import { startRegistry } from './lib/registry.mjs';
import { startWorker } from './lib/worker.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const TARGET = process.env.CARGO_TARGET_DIR ?? path.join(ROOT, 'target');
const EXAMPLES = path.join(TARGET, 'debug/examples');
const MB = 1e6;

let w;
before(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-hostile-test-'));
  const stops = [];
  const keep = (x) => { stops.push(x.stop); return x; };
  try {
    const reg = keep(await startRegistry(dir, 'plain'));
    execFileSync(path.join(EXAMPLES, 'demo_images'), [reg.host], { stdio: ['ignore', 'pipe', 'inherit'] });
    const bombs = JSON.parse(execFileSync(path.join(EXAMPLES, 'hostile_images'), [reg.host],
      { stdio: ['ignore', 'pipe', 'inherit'] }).toString());
    const f20 = keep(await startFaultFront(reg.port, 20));
    const f100 = keep(await startFaultFront(reg.port, 100));
    const keyFile = path.join(dir, 'signing-key.pem');
    execFileSync('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:3072',
      '-pkeyopt', 'rsa_keygen_pubexp:3', '-out', keyFile], { stdio: 'ignore' });
    const common = {
      KILN_DEFAULT_SIGNING_KEY_FILE: keyFile,
      KILN_REGISTRY_ALLOWLIST: [reg, f20, f100].map((s) => `http://${s.host}`).join(','),
      KILN_ALLOW_LOOPBACK_REGISTRIES: '1',
      KILN_PROXY_TIMEOUT_SECS: '60',
      KILN_DEBUG_METRICS: '1',
      // Short waits between tries, so the fault tests take seconds.
      KILN_RETRY_BASE: '5ms',
      KILN_RETRY_CAP: '50ms',
    };
    // The bombs' worker: the edge's default limits.
    const worker = keep(await startWorker({ ...common, KILN_RUNTIME_IMAGE: `${reg.host}/kiln/runtime:fixture` }));
    // The faults' worker: its runtime image is read through the 20% front too.
    const faulty = keep(await startWorker({ ...common, KILN_RUNTIME_IMAGE: `${f20.host}/kiln/runtime:fixture` }));
    w = {
      reg, bombs, f20, f100, worker, faulty,
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

const post = (worker, p, body) => fetch(`${worker.url}${p}`, {
  method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' },
});
const wasmBytes = async (worker) => {
  const r = await fetch(`${worker.url}/debug/metrics`);
  assert.equal(r.status, 200);
  return (await r.json()).wasmMemoryBytes;
};
const tagged = async (repoAndTag) => {
  const [repo, tag] = repoAndTag.split(':');
  const r = await fetch(`${w.reg.url}/v2/${repo}/manifests/${tag}`, {
    method: 'HEAD',
    headers: { accept: 'application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json' },
  });
  return r.status === 200;
};

// The limit each bomb meets with the edge's defaults (kiln_tests::bombs::edge_limit), and
// whether the refusal names a layer digest (a manifest's layer count is the image's).
const BOMBS = {
  'deep-path': ['path-bytes', true],
  'zstd-window': ['zstd-window', true],
  'symlink-chain': ['layer-entries', true],
  'many-layers': ['manifest-layers', false],
  'big-config': ['config-bytes', false],
  'many-entries': ['layer-entries', true],
  'gzip-bomb': ['layer-bytes', true],
};

describe('bombs are 400s naming the layer and the limit, with flat wasm memory', () => {
  for (const [name, [limit, namesLayer]] of Object.entries(BOMBS)) {
    for (const endpoint of ['/convert-image', '/verify-image']) {
      it(`${name} through ${endpoint}`, async () => {
        const image = w.bombs[name];
        assert.ok(image, `hostile_images pushed ${name}`);
        const out = `out/${name}-${endpoint.slice(1)}:1`;
        const body = endpoint === '/convert-image'
          ? { inputImageName: image, outputImageName: `${w.reg.host}/${out}` }
          : { image };
        const m0 = await wasmBytes(w.worker);
        const t0 = performance.now();
        const r = await post(w.worker, endpoint, body);
        const text = await r.text();
        const secs = (performance.now() - t0) / 1000;
        const m1 = await wasmBytes(w.worker);
        console.log(`# ${name} ${endpoint}: ${r.status} in ${secs.toFixed(1)} s, wasm memory ` +
          `${(m0 / MB).toFixed(1)} -> ${(m1 / MB).toFixed(1)} MB: ${text.slice(0, 300)}`);
        assert.equal(r.status, 400, text);
        const j = JSON.parse(text);
        assert.equal(j.errorType, 'BadRequest', text);
        assert.match(j.reason, new RegExp(`${limit}=\\d+`), text);
        if (namesLayer) assert.match(j.reason, /sha256:[0-9a-f]{12}/, text);
        assert.ok(m1 - m0 < 64 * MB, `wasm memory grew ${m1 - m0} bytes`);
        if (endpoint === '/convert-image') assert.equal(await tagged(out), false, `${out} was tagged`);
      });
    }
  }
});

describe('registry faults', () => {
  it('a conversion through 20% transient faults succeeds, each retry logged', async () => {
    const before = w.faulty.lines.length;
    const r = await post(w.faulty, '/convert-image', {
      inputImageName: `${w.f20.host}/sample/busybox:1`,
      outputImageName: `${w.f20.host}/out/faults:1`,
    });
    const text = await r.text();
    assert.equal(r.status, 200, text);
    const stats = await w.f20.stats();
    console.log(`# through 20% faults: ${JSON.stringify(stats)}`);
    assert.ok(stats.faults > 0, JSON.stringify(stats));
    assert.equal(await tagged('out/faults:1'), true);
    const retries = w.faulty.lines.slice(before).filter((l) => l.includes('kiln: retrying'));
    // At most one retry per fault (workerd's HTTP client may itself retry a reset on a reused
    // connection, below the engine), at least one.
    assert.ok(retries.length >= 1 && retries.length <= stats.faults, `${stats.faults} faults:\n${retries.join('\n')}`);
    for (const l of retries) assert.match(l, /kiln: retrying (GET|HEAD) .+ after .+ \(attempt \d failed; next in \d+ ms\)/);
  });

  it('persistent faults fail clearly with no tag', async () => {
    const r = await post(w.faulty, '/convert-image', {
      inputImageName: `${w.f100.host}/sample/busybox:1`,
      outputImageName: `${w.reg.host}/out/persistent:1`,
    });
    const text = await r.text();
    console.log(`# through 100% faults: ${r.status} ${text.slice(0, 300)}`);
    assert.equal(r.status, 502, text);
    const j = JSON.parse(text);
    assert.equal(j.errorType, 'RegistryError', text);
    assert.match(j.reason, /input image/, text);
    assert.ok((await w.f100.stats()).faults > 0);
    assert.equal(await tagged('out/persistent:1'), false);
  });
});
