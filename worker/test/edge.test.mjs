// The edge API end to end: the engine in the worker (workerd) against real loopback registries.
// Needs the native `kiln` binary and the demo_images example built (scripts/test-worker.sh
// builds them): they push the sample and the fixture runtime, and convert with the CLI for
// comparison.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { startRegistry } from './lib/registry.mjs';
import { startWorker } from './lib/worker.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const TARGET = process.env.CARGO_TARGET_DIR ?? path.join(ROOT, 'target');
const KILN = path.join(TARGET, 'debug/kiln');
const DEMO_IMAGES = path.join(TARGET, 'debug/examples/demo_images');

let w;
before(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-edge-test-'));
  const stops = [];
  const keep = (x) => { stops.push(x.stop); return x; };
  const user = 'kiln-user';
  const password = `edge-pw-${crypto.randomBytes(12).toString('hex')}`;
  const plain = keep(await startRegistry(dir, 'plain'));
  const basic = keep(await startRegistry(dir, 'basic', { basic: { user, password } }));
  execFileSync(DEMO_IMAGES, [plain.host], { stdio: ['ignore', 'pipe', 'inherit'] });
  const keyFile = path.join(dir, 'signing-key.pem');
  execFileSync('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:3072',
    '-pkeyopt', 'rsa_keygen_pubexp:3', '-out', keyFile], { stdio: 'ignore' });
  const runtime = `${plain.host}/kiln/runtime:fixture`;
  const worker = keep(await startWorker({
    KILN_DEFAULT_SIGNING_KEY_FILE: keyFile,
    KILN_REGISTRY_ALLOWLIST: `http://${plain.host},http://${basic.host}`,
    KILN_ALLOW_LOOPBACK_REGISTRIES: '1',
    KILN_RUNTIME_IMAGE: runtime,
    KILN_PROXY_TIMEOUT_SECS: '60',
  }));
  // The same conversion with the CLI, for comparison.
  const cliOut = execFileSync(KILN, ['convert', '--input', `${plain.host}/sample/busybox:1`,
    '--output', `${plain.host}/out/cli:1`, '--key', keyFile, '--runtime', runtime,
    '--insecure-registry', plain.host, '--state-dir', path.join(dir, 'state'), '--no-bars'],
  { env: { ...process.env, DOCKER_CONFIG: path.join(dir, 'docker') }, stdio: ['ignore', 'pipe', 'pipe'] });
  const cli = JSON.parse(cliOut.toString());
  w = {
    dir, plain, basic, user, password, worker, runtime, keyFile, cli,
    async teardown() {
      for (const s of stops.reverse()) await s();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
});
after(async () => { await w?.teardown(); });

const post = (p, body) => fetch(`${w.worker.url}${p}`, {
  method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body),
  headers: { 'content-type': 'application/json' },
});

describe('POST /verify-image', () => {
  it('verifies an image converted by kiln convert', async () => {
    const r = await post('/verify-image', {
      image: `${w.plain.host}/out/cli:1`, expectMrenclave: w.cli.mrenclave, expectMrsigner: w.cli.mrsigner,
    });
    const text = await r.text();
    assert.equal(r.status, 200, text);
    const j = JSON.parse(text);
    assert.equal(j.passed, true, text);
    assert.equal(j.mrsigner, w.cli.mrsigner);
    assert.ok(j.mrenclaves.map(([, m]) => m).includes(w.cli.mrenclave), text);
  });

  it('fails the verdict for a wrong expected MRSIGNER', async () => {
    const r = await post('/verify-image', { image: `${w.plain.host}/out/cli:1`, expectMrsigner: '00'.repeat(32) });
    assert.equal(r.status, 200);
    assert.equal((await r.json()).passed, false);
  });

  it('404 {errorType, reason} for a missing image', async () => {
    const r = await post('/verify-image', { image: `${w.plain.host}/no/such:1` });
    assert.equal(r.status, 404);
    const j = await r.json();
    assert.equal(j.errorType, 'NotFound');
    assert.ok(j.reason.length > 0);
  });

  it('400 naming the field for a bad body; 403 for a registry off the allowlist', async () => {
    let r = await post('/verify-image', { imag: 'x' });
    assert.equal(r.status, 400);
    assert.match((await r.json()).reason, /imag/);
    r = await post('/verify-image', { image: '127.0.0.1:1/a/b:1' });
    assert.equal(r.status, 403);
    assert.equal((await r.json()).errorType, 'RegistryNotAllowed');
  });
});

describe('POST /convert-image', () => {
  it('converts the sample like kiln convert with the same key', async () => {
    const r = await post('/convert-image', {
      inputImageName: `${w.plain.host}/sample/busybox:1`,
      outputImageName: `${w.plain.host}/out/edge:1`,
      signingKey: { default: {} },
    });
    const text = await r.text();
    assert.equal(r.status, 200, text);
    const j = JSON.parse(text);
    for (const f of ['newImage', 'imageSHA', 'imageSize', 'isvprodid', 'isvsvn', 'mrenclave',
      'mrenclave2', 'mrsigner', 'memSize', 'digest']) assert.ok(f in j, `${f} in ${text}`);
    assert.equal(j.mrenclave, w.cli.mrenclave);
    assert.equal(j.mrenclave2, w.cli.mrenclave2);
    assert.equal(j.mrsigner, w.cli.mrsigner);
    // The worker's output verifies too.
    const v = await post('/verify-image', { image: `${w.plain.host}/out/edge:1`, expectMrsigner: w.cli.mrsigner });
    assert.equal(v.status, 200);
    assert.equal((await v.json()).passed, true);
  });

  it('pushes with outputAuthConfig; the password appears in no log line and no response', async () => {
    const r = await post('/convert-image', {
      inputImageName: `${w.plain.host}/sample/busybox:1`,
      inputAuthConfig: { username: w.user, password: w.password },
      outputImageName: `${w.basic.host}/out/auth:1`,
      outputAuthConfig: { username: w.user, password: w.password },
    });
    const text = await r.text();
    assert.equal(r.status, 200, text);
    assert.ok(!text.includes(w.password));
    assert.equal(JSON.parse(text).mrsigner, w.cli.mrsigner);
    const bad = await post('/convert-image', {
      inputImageName: `${w.plain.host}/sample/busybox:1`,
      outputImageName: `${w.basic.host}/out/auth:2`,
      outputAuthConfig: { username: w.user, password: `${w.password}-wrong` },
    });
    const badText = await bad.text();
    assert.equal(bad.status, 401, badText);
    assert.ok(!badText.includes(w.password));
    await new Promise((res) => setTimeout(res, 200));
    for (const l of w.worker.lines) assert.ok(!l.includes(w.password), l);
  });

  it('without a default key configured: a clear error, no key invented', async () => {
    const bare = await startWorker({
      KILN_REGISTRY_ALLOWLIST: `http://${w.plain.host}`,
      KILN_ALLOW_LOOPBACK_REGISTRIES: '1',
      KILN_RUNTIME_IMAGE: w.runtime,
    });
    try {
      const r = await fetch(`${bare.url}/convert-image`, {
        method: 'POST',
        body: JSON.stringify({
          inputImageName: `${w.plain.host}/sample/busybox:1`,
          outputImageName: `${w.plain.host}/out/nokey:1`,
        }),
      });
      assert.equal(r.status, 500);
      const j = await r.json();
      assert.equal(j.errorType, 'ConfigurationError');
      assert.match(j.reason, /no default signing key/);
    } finally {
      await bare.stop();
    }
  });

  it('400 naming the field for a bad request', async () => {
    const r = await post('/convert-image', { inputImageName: 42, outputImageName: `${w.plain.host}/x:1` });
    assert.equal(r.status, 400);
    const j = await r.json();
    assert.equal(j.errorType, 'BadRequest');
    assert.match(j.reason, /inputImageName/);
  });
});
