// MANAGER_CA end to end (issue #18's "Done when"): an image converted THROUGH THE WORKER in
// workerd with `certificates: [{issuer: MANAGER_CA, ...}]` (so the conversion is recorded
// pending) runs under runc (fixture loader, direct mode, KILN_INSECURE_NO_SGX=1; example
// run_attested) with /dev/attestation played by FIFOs that answer TEST-root quotes with the
// conversion's MRENCLAVE and MRSIGNER over the report data kiln-init writes, in the host's
// network namespace so that kiln-init reaches the worker on loopback. kiln-init POSTs
// {csr, quote, subject} to the worker (no collateral: the worker fetches it from a loopback
// PCCS stand-in, KILN_PCCS_URL). While pending the run fails with kiln-init's `refused:` line;
// once approved the app finds a chain at certPath that `openssl verify -CAfile ca.pem`
// accepts; once revoked the next run fails with the manager's reason.
//
// Needs root, runc, skopeo, umoci, mkfifo, /bin/busybox, openssl, and `demo_images`,
// `mint_quote`, `run_attested` built (scripts/test-worker.sh). Without root or a tool it is
// SKIPPED loudly (a failure with KILN_REQUIRE_RUNC=1).
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { startPccs } from './lib/pccs.mjs';
import { startRegistry } from './lib/registry.mjs';
import { startWorker } from './lib/worker.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const TARGET = process.env.CARGO_TARGET_DIR ?? path.join(ROOT, 'target');
const DEMO_IMAGES = path.join(TARGET, 'debug/examples/demo_images');
const MINT_QUOTE = path.join(TARGET, 'debug/examples/mint_quote');
const RUN_ATTESTED = path.join(TARGET, 'debug/examples/run_attested');
const CA_KEY_FILE = path.join(ROOT, 'engine/testdata/attest/manager/ca-key.pem');
const CA_CERT_FILE = path.join(ROOT, 'engine/testdata/attest/manager/ca.pem');
const SUBJECT = 'app.example';
const CERT_PATH = '/data/tls/cert.pem';

const sha256hex = (s) => crypto.createHash('sha256').update(s).digest('hex');
const json = (buf) => JSON.parse(buf.toString().trim().split('\n').pop());
const runAttested = (args) => json(execFileSync(RUN_ATTESTED, args, { maxBuffer: 64 << 20 }));
// The container's run: asynchronous, so that this process's PCCS stand-in keeps answering.
const runAttestedAsync = async (args) => json((await promisify(execFile)(RUN_ATTESTED, args,
  { maxBuffer: 64 << 20 })).stdout);

let w;
let skipped; // why the runs cannot happen here, if they cannot

function skip(t, why, requiredBy) {
  if (process.env[requiredBy] === '1') assert.fail(`${why} (${requiredBy}=1 requires this test)`);
  console.log(`\n!!!!!!!! SKIPPED manager-e2e: ${why} !!!!!!!!\n`);
  skipped = why;
  t?.skip(why);
}

before(async () => {
  const check = runAttested(['check']);
  if (check.skipped) {
    skip(undefined, check.skipped, 'KILN_REQUIRE_RUNC');
    return;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-manager-e2e-'));
  const stops = [];
  const keep = (x) => { stops.push(x.stop); return x; };
  try {
    const plain = keep(await startRegistry(dir, 'plain'));
    execFileSync(DEMO_IMAGES, [plain.host], { stdio: ['ignore', 'pipe', 'inherit'] });
    const input = runAttested(['push-input', plain.host]);
    assert.equal(input.certPath, CERT_PATH);
    const keyFile = path.join(dir, 'signing-key.pem');
    execFileSync('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:3072',
      '-pkeyopt', 'rsa_keygen_pubexp:3', '-out', keyFile], { stdio: 'ignore' });
    // The TEST PKI: its root is the worker's trust root, its collateral the PCCS's.
    const pki = path.join(dir, 'pki');
    const minted = json(execFileSync(MINT_QUOTE, ['--pki', pki]));
    const pccs = keep(await startPccs(minted.collateral));
    const ciToken = crypto.randomBytes(24).toString('hex');
    const opsToken = crypto.randomBytes(24).toString('hex');
    const worker = keep(await startWorker({
      KILN_DEFAULT_SIGNING_KEY_FILE: keyFile,
      KILN_REGISTRY_ALLOWLIST: `http://${plain.host}`,
      KILN_ALLOW_LOOPBACK_REGISTRIES: '1',
      KILN_RUNTIME_IMAGE: `${plain.host}/kiln/runtime:fixture`,
      KILN_PROXY_TIMEOUT_SECS: '60',
      KILN_API_TOKENS: `ci ${sha256hex(ciToken)}\nops ${sha256hex(opsToken)} admin\n`,
      KILN_MANAGER_CA_KEY_FILE: CA_KEY_FILE,
      KILN_MANAGER_CA_CERT_FILE: CA_CERT_FILE,
      KILN_ATTEST_TEST_ROOT: minted.rootPem,
      KILN_PCCS_URL: pccs.url,
    }));
    w = {
      dir, plain, pki, pccs, worker, ciToken, opsToken,
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

async function call(method, p, { body, token } = {}) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${w.worker.url}${p}`, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed;
  try { parsed = JSON.parse(text); } catch { parsed = undefined; }
  return { status: res.status, json: parsed, text };
}

/** Runs the converted image once under runc with the attestation stand-in. */
async function runConverted(conv) {
  const r = await runAttestedAsync(['run', '--image', `${w.plain.host}/out/attested:1`, '--pki', w.pki,
    '--mrenclave', conv.mrenclave, '--mrsigner', conv.mrsigner,
    '--isv-prod-id', String(conv.isvprodid ?? 0), '--isv-svn', String(conv.isvsvn ?? 0)]);
  r.output = `${r.stdout}\n${r.stderr}`;
  r.describe = () => `exit ${JSON.stringify(r.exit)}; served ${JSON.stringify(r.served)}\n`
    + `stdout:\n${r.stdout}\nstderr:\n${r.stderr}\nworker:\n${w.worker.lines.slice(-20).join('\n')}`;
  return r;
}

describe('MANAGER_CA end to end under runc', () => {
  let conv;
  let record;

  it('converts through the worker; the conversion is recorded pending', async (t) => {
    if (skipped) return t.skip(skipped);
    const r = await call('POST', '/convert-image', {
      token: w.ciToken,
      body: {
        inputImageName: `${w.plain.host}/sample/busybox-root:1`,
        outputImageName: `${w.plain.host}/out/attested:1`,
        encryptedDirs: ['/data'],
        certificates: [{
          issuer: 'MANAGER_CA', subject: SUBJECT, keyPath: '/data/tls/key.pem', certPath: CERT_PATH,
        }],
      },
    });
    assert.equal(r.status, 200, r.text);
    conv = r.json;
    const list = await call('GET', '/approvals', { token: w.opsToken });
    assert.equal(list.status, 200, list.text);
    record = list.json.records.find((x) => x.mrenclave === conv.mrenclave);
    assert.ok(record, list.text);
    assert.equal(record.status, 'pending');
    assert.deepEqual(record.allowedSubjects, [SUBJECT]);
  });

  it('while pending: kiln-init asks the worker and the run fails with its refused: line', async (t) => {
    if (skipped) return t.skip(skipped);
    assert.ok(record, 'no conversion');
    const r = await runConverted(conv);
    const manager = r.initJson?.certificates?.[0]?.manager;
    assert.ok(manager, `the converted init.json has no certificates[].manager: ${JSON.stringify(r.initJson)}`);
    assert.ok(manager.startsWith(w.worker.url), JSON.stringify(r.initJson));
    assert.ok(r.served.some((s) => s.reportData), r.describe());
    assert.notEqual(r.exit, 0, r.describe());
    assert.match(r.output, /refused:.*pending/, r.describe());
    assert.ok(!r.stdout.includes('BEGIN CERTIFICATE'), r.describe());
    assert.ok(w.worker.lines.some((l) => /certificates\/issue -> 403/.test(l)), r.describe());
  });

  it('once approved: the app finds a chain at certPath that openssl verifies against the CA', async (t) => {
    if (skipped) return t.skip(skipped);
    const a = await call('POST', `/approvals/${record.id}/approve`, { token: w.opsToken });
    assert.equal(a.status, 200, a.text);
    const r = await runConverted(conv);
    assert.equal(r.exit, 0, r.describe());
    assert.match(r.stdout, /app-started/, r.describe());
    const certs = r.stdout.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? [];
    assert.equal(certs.length, 2, `leaf then CA expected\n${r.describe()}`);
    const ca = fs.readFileSync(CA_CERT_FILE, 'utf8');
    assert.equal(certs[1].trim(), ca.trim(), 'the chain ends with the operator CA');
    const leaf = path.join(w.dir, 'leaf.pem');
    fs.writeFileSync(leaf, certs[0]);
    assert.match(execFileSync('openssl', ['verify', '-CAfile', CA_CERT_FILE, leaf]).toString(), /: OK/);
    const text = execFileSync('openssl', ['x509', '-in', leaf, '-noout', '-text']).toString();
    assert.match(text, /DNS:app\.example/);
    // The collateral came from the PCCS stand-in (the enclave sent none).
    assert.ok(w.pccs.requests.some((u) => u.startsWith('/sgx/certification/v4/tcb')), w.pccs.requests.join('\n'));
  });

  it("once revoked: the next run fails with the manager's reason", async (t) => {
    if (skipped) return t.skip(skipped);
    const v = await call('POST', `/approvals/${record.id}/revoke`, { token: w.opsToken });
    assert.equal(v.status, 200, v.text);
    const r = await runConverted(conv);
    assert.notEqual(r.exit, 0, r.describe());
    assert.match(r.output, /refused:.*revoked/, r.describe());
    assert.ok(!r.stdout.includes('BEGIN CERTIFICATE'), r.describe());
  });
});
