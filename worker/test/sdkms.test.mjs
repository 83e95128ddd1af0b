// signingKey.sdkms in the worker: POST /convert-image signing with a Fortanix DSM key, against the
// stand-in DSM (tests/examples/dsm_standin.rs: real RSA-3072 e=3 key) and a real loopback
// registry. Needs the demo_images and dsm_standin examples built (scripts/test-worker.sh).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { startChild } from './lib/procs.mjs';
import { startRegistry } from './lib/registry.mjs';
import { startWorker } from './lib/worker.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const TARGET = process.env.CARGO_TARGET_DIR ?? path.join(ROOT, 'target');
const DEMO_IMAGES = path.join(TARGET, 'debug/examples/demo_images');
const DSM_STANDIN = path.join(TARGET, 'debug/examples/dsm_standin');

async function startDsm() {
  const proc = startChild(DSM_STANDIN, []);
  const end = Date.now() + 60000;
  for (;;) {
    const line = proc.lines.find((l) => l.startsWith('{'));
    if (line) return { ...JSON.parse(line), stop: () => proc.stop() };
    if (proc.exited || Date.now() > end) {
      await proc.stop();
      throw new Error(`dsm_standin did not start: ${proc.lines.join('\n')}`);
    }
    await sleep(50);
  }
}

let w;
before(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-sdkms-test-'));
  const stops = [];
  const keep = (x) => { stops.push(x.stop); return x; };
  const plain = keep(await startRegistry(dir, 'plain'));
  execFileSync(DEMO_IMAGES, [plain.host], { stdio: ['ignore', 'pipe', 'inherit'] });
  const dsm = keep(await startDsm());
  // The DSM is NOT on the registry allowlist: KILN_KMS_URL is its own exemption.
  const worker = keep(await startWorker({
    KILN_REGISTRY_ALLOWLIST: `http://${plain.host}`,
    KILN_ALLOW_LOOPBACK_REGISTRIES: '1',
    KILN_RUNTIME_IMAGE: `${plain.host}/kiln/runtime:fixture`,
    KILN_KMS_URL: dsm.url,
    KILN_PROXY_TIMEOUT_SECS: '60',
  }));
  w = {
    dir, plain, dsm, worker,
    async teardown() {
      for (const s of stops.reverse()) await s();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
});
after(async () => { await w?.teardown(); });

const post = (p, body) => fetch(`${w.worker.url}${p}`, {
  method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' },
});
const request = (tag, name, apiKey) => ({
  inputImageName: `${w.plain.host}/sample/busybox:1`,
  outputImageName: `${w.plain.host}/out/sdkms:${tag}`,
  signingKey: { sdkms: { name, apiKey } },
});

describe('POST /convert-image with signingKey.sdkms', () => {
  it('signs with the DSM key: mrsigner is the DSM key\'s and the image verifies', async () => {
    const r = await post('/convert-image', request('1', w.dsm.key, w.dsm.apiKey));
    const text = await r.text();
    assert.equal(r.status, 200, text);
    const j = JSON.parse(text);
    assert.equal(j.mrsigner, w.dsm.mrsigner);
    assert.ok(!text.includes(w.dsm.apiKey));
    const v = await post('/verify-image', {
      image: `${w.plain.host}/out/sdkms:1`, expectMrenclave: j.mrenclave, expectMrsigner: w.dsm.mrsigner,
    });
    const vt = await v.text();
    assert.equal(v.status, 200, vt);
    assert.equal(JSON.parse(vt).passed, true, vt);
  });

  it('a wrong API key is 401, nothing tagged, the key in no response or log line', async () => {
    const wrong = 'd3Jvbmctd29ya2VyOndyb25nLXNlY3JldC0yNDY4';
    const r = await post('/convert-image', request('2', w.dsm.key, wrong));
    const text = await r.text();
    assert.equal(r.status, 401, text);
    const j = JSON.parse(text);
    assert.equal(j.errorType, 'Unauthorized');
    assert.match(j.reason, /signingKey\.sdkms\.apiKey/);
    assert.ok(!text.includes(wrong));
    const m = await fetch(`http://${w.plain.host}/v2/out/sdkms/manifests/2`, { method: 'HEAD' });
    assert.equal(m.status, 404);
    await sleep(200);
    for (const l of w.worker.lines) {
      assert.ok(!l.includes(wrong) && !l.includes(w.dsm.apiKey), l);
    }
  });

  it('an unknown key or one SGX cannot use is 400 naming signingKey.sdkms.name', async () => {
    let r = await post('/convert-image', request('3', 'no-such-key', w.dsm.apiKey));
    let j = await r.json();
    assert.equal(r.status, 400, JSON.stringify(j));
    assert.match(j.reason, /signingKey\.sdkms\.name/);
    r = await post('/convert-image', request('3', w.dsm.wrongExponentKey, w.dsm.apiKey));
    j = await r.json();
    assert.equal(r.status, 400, JSON.stringify(j));
    assert.match(j.reason, /65537/);
  });

  it('a DSM that cannot be reached is 502 SignerError, nothing tagged (runs last: stops the DSM)', async () => {
    await w.dsm.stop();
    const r = await post('/convert-image', request('5', w.dsm.key, w.dsm.apiKey));
    const text = await r.text();
    assert.equal(r.status, 502, text);
    const j = JSON.parse(text);
    assert.equal(j.errorType, 'SignerError');
    assert.match(j.reason, /signingKey\.sdkms: Fortanix DSM .* could not be reached/);
    assert.ok(!text.includes(w.dsm.apiKey));
    const m = await fetch(`http://${w.plain.host}/v2/out/sdkms/manifests/5`, { method: 'HEAD' });
    assert.equal(m.status, 404);
  });

  it('the proxy cannot reach the DSM (it is not on the registry allowlist)', async () => {
    const host = new URL(w.dsm.url).host;
    const r = await fetch(`${w.worker.url}/proxy/${host}/v2/`);
    assert.equal(r.status, 403);
    assert.equal((await r.json()).errorType, 'RegistryNotAllowed');
  });
});
