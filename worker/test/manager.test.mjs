// MANAGER_CA at the edge, in bare workerd: a conversion through /convert-image with a
// MANAGER_CA certificate is recorded as pending in the Approvals Durable Object and its warnings
// name this worker as the manager kiln-init asks (KILN_MANAGER_URL default); the operator API
// (admin tokens only) lists, registers, approves and revokes; POST /certificates/issue answers a
// chain `openssl verify` accepts only while the record is approved, and refuses, naming the check,
// a quote that does not bind the CSR key, a debug enclave, a changed quote byte, another subject.
// A request without collateral gets it from the PCCS at KILN_PCCS_URL (a loopback stand-in
// serving the TEST collateral, lib/pccs.mjs); unset, that is a ConfigurationError naming it.
// Quotes are minted under a TEST root (example mint_quote), which the worker trusts only because
// this test sets KILN_ATTEST_TEST_ROOT. Needs `kiln`, demo_images and mint_quote built
// (scripts/test-worker.sh) and openssl.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { startPccs } from './lib/pccs.mjs';
import { startRegistry } from './lib/registry.mjs';
import { startWorker } from './lib/worker.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const TARGET = process.env.CARGO_TARGET_DIR ?? path.join(ROOT, 'target');
const DEMO_IMAGES = path.join(TARGET, 'debug/examples/demo_images');
const MINT_QUOTE = path.join(TARGET, 'debug/examples/mint_quote');
const MANAGER = path.join(ROOT, 'engine/testdata/attest/manager');
const CA_KEY_FILE = path.join(MANAGER, 'ca-key.pem');
const CA_CERT_FILE = path.join(MANAGER, 'ca.pem');
const SUBJECT = 'app.example';

const sha256hex = (s) => crypto.createHash('sha256').update(s).digest('hex');
const hasOpenssl = (() => {
  try { execFileSync('openssl', ['version'], { stdio: 'ignore' }); return true; } catch { return false; }
})();

let w;
const seen = []; // every response body, checked for the CA key at the end

before(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-manager-test-'));
  const stops = [];
  const keep = (x) => { stops.push(x.stop); return x; };
  try {
    const plain = keep(await startRegistry(dir, 'plain'));
    execFileSync(DEMO_IMAGES, [plain.host], { stdio: ['ignore', 'pipe', 'inherit'] });
    const keyFile = path.join(dir, 'signing-key.pem');
    execFileSync('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:3072',
      '-pkeyopt', 'rsa_keygen_pubexp:3', '-out', keyFile], { stdio: 'ignore' });
    // The enclave's key and CSR (P-256), and the SHA-256 of its SubjectPublicKeyInfo.
    const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const csrKey = path.join(dir, 'csr-key.pem');
    fs.writeFileSync(csrKey, privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const csr = execFileSync('openssl', ['req', '-new', '-key', csrKey, '-subj', `/CN=${SUBJECT}`, '-sha256'])
      .toString();
    const spkiHash = sha256hex(publicKey.export({ type: 'spki', format: 'der' }));
    const pki = path.join(dir, 'pki');
    const mint = (args) => JSON.parse(execFileSync(MINT_QUOTE, ['--pki', pki, ...args]).toString());
    const first = mint([]);
    const root = first.rootPem;
    const pccs = keep(await startPccs(first.collateral));
    const ciToken = crypto.randomBytes(24).toString('hex');
    const opsToken = crypto.randomBytes(24).toString('hex');
    const tokens = `ci ${sha256hex(ciToken)}\nops ${sha256hex(opsToken)} admin\n`;
    const common = {
      KILN_DEFAULT_SIGNING_KEY_FILE: keyFile,
      KILN_REGISTRY_ALLOWLIST: `http://${plain.host}`,
      KILN_ALLOW_LOOPBACK_REGISTRIES: '1',
      KILN_RUNTIME_IMAGE: `${plain.host}/kiln/runtime:fixture`,
      KILN_PROXY_TIMEOUT_SECS: '60',
      KILN_API_TOKENS: tokens,
      KILN_TWO_STEP_SECRET: crypto.randomBytes(24).toString('hex'),
    };
    const worker = keep(await startWorker({
      ...common,
      KILN_MANAGER_CA_KEY_FILE: CA_KEY_FILE,
      KILN_MANAGER_CA_CERT_FILE: CA_CERT_FILE,
      KILN_ATTEST_TEST_ROOT: root,
      KILN_PCCS_URL: pccs.url,
    }));
    // A CA but no PCCS.
    const noPccs = keep(await startWorker({
      ...common,
      KILN_MANAGER_CA_KEY_FILE: CA_KEY_FILE,
      KILN_MANAGER_CA_CERT_FILE: CA_CERT_FILE,
      KILN_ATTEST_TEST_ROOT: root,
    }));
    // Without a CA; issuance limited to 3 calls a minute per address.
    const noCa = keep(await startWorker({ ...common, KILN_RATE_LIMIT_VERIFY_PER_MIN: '3' }));
    w = {
      dir, plain, worker, noCa, noPccs, pccs, csr, spkiHash, mint, ciToken, opsToken, keyPem: fs.readFileSync(keyFile, 'utf8'),
      async teardown() {
        for (const s of stops.reverse()) await s();
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    for (const s of stops.reverse()) await s();
    throw e;
  }
});
after(async () => { await w?.teardown(); });

async function call(method, p, { body, token, base } = {}) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${base ?? w.worker.url}${p}`, {
    method, headers, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  seen.push(text);
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, json, text, headers: res.headers };
}

/** A quote for the converted enclave over the CSR key (overrides: mint_quote flags). */
function quoteFor(conv, extra = [], reportData = w.spkiHash) {
  return w.mint(['--mrenclave', conv.mrenclave, '--mrsigner', conv.mrsigner,
    '--isv-prod-id', String(conv.isvprodid), '--isv-svn', String(conv.isvsvn),
    '--report-data', reportData, ...extra]);
}

const issueBody = (q, over = {}) => ({
  csr: w.csr, quote: q.quoteBase64, collateral: q.collateral, subject: SUBJECT, ...over,
});

describe('MANAGER_CA at the edge', () => {
  let conv;
  let record;

  it('records a /convert-image conversion with a MANAGER_CA certificate as pending', async () => {
    const r = await call('POST', '/convert-image', {
      token: w.ciToken,
      body: {
        inputImageName: `${w.plain.host}/sample/busybox:1`,
        outputImageName: `${w.plain.host}/out/managed:1`,
        certificates: [{ issuer: 'MANAGER_CA', subject: SUBJECT, keyPath: '/tmp/k.pem', certPath: '/tmp/c.pem' }],
      },
    });
    assert.equal(r.status, 200, r.text);
    conv = r.json;
    assert.ok(!(conv.warnings ?? []).some((x) => x.startsWith('approvals:')), r.text);
    const list = await call('GET', '/approvals', { token: w.opsToken });
    assert.equal(list.status, 200, list.text);
    record = list.json.records.find((x) => x.mrenclave === conv.mrenclave);
    assert.ok(record, list.text);
    assert.equal(record.status, 'pending');
    assert.equal(record.mrenclave2, conv.mrenclave2);
    assert.equal(record.mrsigner, conv.mrsigner);
    assert.deepEqual(record.allowedSubjects, [SUBJECT]);
    assert.equal(record.image, `${w.plain.host}/out/managed:1`);
    assert.ok(w.worker.lines.some((l) => l.includes(`approvals: conversion recorded as ${record.id} (pending)`)),
      w.worker.lines.join('\n'));
  });

  it('measures this worker as the manager: the MANAGER_CA warning names its origin (KILN_MANAGER_URL unset)', () => {
    const origin = new URL(w.worker.url).origin;
    const warn = (conv.warnings ?? []).find((x) => x.startsWith('certificates[0].issuer MANAGER_CA'));
    assert.ok(warn, JSON.stringify(conv.warnings));
    assert.ok(warn.includes(`kiln-init requests the certificate from the manager at ${origin} at start-up`), warn);
    assert.ok(warn.includes('until an operator approves'), warn);
    assert.ok(!warn.includes('self-signed'), warn);
  });

  it('refuses issuance while the record is pending', async () => {
    const r = await call('POST', '/certificates/issue', { body: issueBody(quoteFor(conv)) });
    assert.equal(r.status, 403, r.text);
    assert.equal(r.json.errorType, 'Forbidden');
    assert.match(r.json.reason, /^refused by check approval: .*pending/);
  });

  it('issues a chain openssl verifies once approved', async () => {
    const a = await call('POST', `/approvals/${record.id}/approve`, { token: w.opsToken });
    assert.equal(a.status, 200, a.text);
    assert.equal(a.json.status, 'approved');
    const r = await call('POST', '/certificates/issue', { body: issueBody(quoteFor(conv)) });
    assert.equal(r.status, 200, r.text);
    const chain = r.json.certificateChain;
    assert.equal(chain.match(/BEGIN CERTIFICATE/g).length, 2);
    assert.equal(r.json.approvalId, record.id);
    if (!hasOpenssl) {
      console.log('SKIPPED: openssl verify of the chain (no openssl)');
      return;
    }
    const leaf = path.join(w.dir, 'leaf.pem');
    fs.writeFileSync(leaf, r.json.certificate);
    const out = execFileSync('openssl', ['verify', '-CAfile', CA_CERT_FILE, leaf]).toString();
    assert.match(out, /: OK/);
    const text = execFileSync('openssl', ['x509', '-in', leaf, '-noout', '-text']).toString();
    assert.match(text, new RegExp(`DNS:${SUBJECT.replace('.', '\\.')}`));
  });

  it('refuses, naming the check: key not bound, debug enclave, changed quote byte, other subject', async () => {
    const expect = async (body, check) => {
      const r = await call('POST', '/certificates/issue', { body });
      assert.equal(r.status, 403, r.text);
      assert.ok(r.json.reason.startsWith(`refused by check ${check}:`), r.text);
    };
    await expect(issueBody(quoteFor(conv, [], 'ab'.repeat(32))), 'key-binding');
    await expect(issueBody(quoteFor(conv, ['--debug'])), 'quote/debug');
    const q = quoteFor(conv);
    const bytes = Buffer.from(q.quoteBase64, 'base64');
    bytes[112] ^= 1; // a byte of MRENCLAVE in the signed report body
    await expect(issueBody({ ...q, quoteBase64: bytes.toString('base64') }), 'quote/quote-signature');
    await expect(issueBody(q, { subject: 'other.example' }), 'subject');
    // Unreadable input: 400 naming the field.
    const r = await call('POST', '/certificates/issue', { body: { ...issueBody(q), quote: '***' } });
    assert.equal(r.status, 400, r.text);
    assert.match(r.json.reason, /^quote: not base64/);
    const c = await call('POST', '/certificates/issue', { body: { ...issueBody(q), collateral: 7 } });
    assert.equal(c.status, 400, c.text);
    assert.match(c.json.reason, /^collateral/);
  });

  // Before any fetch: once fetched, the collateral is served from the isolate's cache.
  it('answers 502 naming the PCCS URL when the PCCS fails', async () => {
    w.pccs.state.fail = true;
    try {
      const r = await call('POST', '/certificates/issue', {
        body: { csr: w.csr, quote: quoteFor(conv).quoteBase64, subject: SUBJECT },
      });
      assert.equal(r.status, 502, r.text);
      assert.equal(r.json.errorType, 'CollateralError');
      assert.ok(r.json.reason.startsWith('collateral:'), r.text);
      assert.ok(r.json.reason.includes(w.pccs.url), r.text);
      assert.match(r.json.reason, /HTTP 500/);
    } finally {
      w.pccs.state.fail = false;
    }
  });

  it('fetches the collateral from KILN_PCCS_URL when the request has none', async () => {
    const before = w.pccs.requests.length;
    const r = await call('POST', '/certificates/issue', {
      body: { csr: w.csr, quote: quoteFor(conv).quoteBase64, subject: SUBJECT },
    });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.approvalId, record.id);
    const paths = w.pccs.requests.slice(before).map((u) => u.split('?')[0]);
    assert.deepEqual(paths, ['pckcrl', 'tcb', 'qe/identity', 'rootcacrl']
      .map((p) => `/sgx/certification/v4/${p}`));
    if (hasOpenssl) {
      const leaf = path.join(w.dir, 'leaf-pccs.pem');
      fs.writeFileSync(leaf, r.json.certificate);
      assert.match(execFileSync('openssl', ['verify', '-CAfile', CA_CERT_FILE, leaf]).toString(), /: OK/);
    }
    // The next quote of this platform is served from the isolate's cache: nothing is
    // fetched, even while the PCCS fails.
    w.pccs.state.fail = true;
    try {
      const n = w.pccs.requests.length;
      const again = await call('POST', '/certificates/issue', {
        body: { csr: w.csr, quote: quoteFor(conv).quoteBase64, subject: SUBJECT },
      });
      assert.equal(again.status, 200, again.text);
      assert.equal(w.pccs.requests.length, n);
    } finally {
      w.pccs.state.fail = false;
    }
    // Refusals still name the check after a fetch.
    const d = await call('POST', '/certificates/issue', {
      body: { csr: w.csr, quote: quoteFor(conv, ['--debug']).quoteBase64, subject: SUBJECT },
    });
    assert.equal(d.status, 403, d.text);
    assert.match(d.json.reason, /^refused by check quote\/debug:/);
    // Unreadable evidence: 400 naming the field, nothing fetched.
    const n = w.pccs.requests.length;
    const bad = await call('POST', '/certificates/issue', { body: { csr: w.csr, quote: 'AAAA', subject: SUBJECT } });
    assert.equal(bad.status, 400, bad.text);
    assert.match(bad.json.reason, /^quote:/);
    assert.equal(w.pccs.requests.length, n);
  });

  it('answers ConfigurationError naming KILN_PCCS_URL when the request has no collateral and no PCCS is set', async () => {
    const r = await call('POST', '/certificates/issue', {
      base: w.noPccs.url, body: { csr: w.csr, quote: quoteFor(conv).quoteBase64, subject: SUBJECT },
    });
    assert.equal(r.status, 500, r.text);
    assert.equal(r.json.errorType, 'ConfigurationError');
    assert.match(r.json.reason, /KILN_PCCS_URL/);
    // With collateral it does not need one (no record there: refused on the approval).
    const c = await call('POST', '/certificates/issue', { base: w.noPccs.url, body: issueBody(quoteFor(conv)) });
    assert.equal(c.status, 403, c.text);
    assert.match(c.json.reason, /^refused by check approval:/);
  });

  it('refuses issuance once revoked, and revocation is final', async () => {
    const v = await call('POST', `/approvals/${record.id}/revoke`, { token: w.opsToken });
    assert.equal(v.status, 200, v.text);
    assert.equal(v.json.status, 'revoked');
    const r = await call('POST', '/certificates/issue', { body: issueBody(quoteFor(conv)) });
    assert.equal(r.status, 403, r.text);
    assert.match(r.json.reason, /^refused by check approval: .*revoked/);
    const again = await call('POST', `/approvals/${record.id}/approve`, { token: w.opsToken });
    assert.equal(again.status, 403, again.text);
    assert.match(again.json.reason, /revocation is final/);
  });

  it('answers ConfigurationError naming the variable when no CA is configured', async () => {
    const r = await call('POST', '/certificates/issue', { base: w.noCa.url, body: issueBody(quoteFor(conv)) });
    assert.equal(r.status, 500, r.text);
    assert.equal(r.json.errorType, 'ConfigurationError');
    assert.match(r.json.reason, /KILN_MANAGER_CA_KEY/);
  });

  it('is rate-limited per client address', async () => {
    const statuses = [];
    for (let i = 0; i < 4; i++) {
      const r = await call('POST', '/certificates/issue', { base: w.noCa.url, body: '{}' });
      statuses.push(r.status);
      if (r.status === 429) {
        assert.equal(r.json.errorType, 'RateLimited');
        assert.ok(Number(r.headers.get('retry-after')) >= 1);
      }
    }
    // One call in the previous test, two more here, then refused.
    assert.deepEqual(statuses, [500, 500, 429, 429]);
  });
});

describe('the operator API', () => {
  const enclave = {
    mrenclave: 'aa'.repeat(32), mrenclave2: 'bb'.repeat(32), mrsigner: 'cc'.repeat(32),
    isvProdId: 7, isvSvn: 1, image: 'registry.example/elsewhere:1', allowedSubjects: ['svc.example'],
  };

  it('needs an admin token: 401 without one, 403 for a token without the scope', async () => {
    for (const [method, p, body] of [['GET', '/approvals'], ['POST', '/approvals', enclave],
      ['POST', `/approvals/${'00'.repeat(16)}/approve`], ['POST', `/approvals/${'00'.repeat(16)}/revoke`]]) {
      const none = await call(method, p, { body });
      assert.equal(none.status, 401, `${method} ${p}: ${none.text}`);
      assert.equal(none.headers.get('www-authenticate'), 'Bearer realm="kiln"');
      const wrong = await call(method, p, { body, token: 'not-a-token' });
      assert.equal(wrong.status, 401, wrong.text);
      const ci = await call(method, p, { body, token: w.ciToken });
      assert.equal(ci.status, 403, ci.text);
      assert.match(ci.json.reason, /token ci lacks the admin scope/);
    }
  });

  it('registers an image converted elsewhere; errors name the field; unknown ids are 404', async () => {
    const r = await call('POST', '/approvals', { token: w.opsToken, body: enclave });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.status, 'pending');
    assert.equal(r.json.isvProdId, 7);
    const again = await call('POST', '/approvals', { token: w.opsToken, body: { ...enclave, allowedSubjects: ['b.example'] } });
    assert.equal(again.json.id, r.json.id);
    assert.deepEqual(again.json.allowedSubjects, ['svc.example', 'b.example']);
    for (const [field, value] of [['mrsigner', '00'], ['isvSvn', 'one'], ['allowedSubjects', ['*.example']]]) {
      const bad = await call('POST', '/approvals', { token: w.opsToken, body: { ...enclave, [field]: value } });
      assert.equal(bad.status, 400, bad.text);
      assert.ok(bad.json.reason.startsWith(`${field}`), bad.text);
    }
    const unknown = await call('POST', `/approvals/${'0f'.repeat(16)}/approve`, { token: w.opsToken });
    assert.equal(unknown.status, 404, unknown.text);
    assert.equal(unknown.json.errorType, 'NotFound');
    const badId = await call('POST', '/approvals/xyz/approve', { token: w.opsToken });
    assert.equal(badId.status, 400, badId.text);
    assert.match(badId.json.reason, /^id:/);
    const list = await call('GET', '/approvals', { token: w.opsToken });
    assert.ok(list.json.records.some((x) => x.id === r.json.id && x.image === enclave.image), list.text);
  });

  it('records a two-step conversion (/convert-image/complete) as pending too', async () => {
    const request = {
      inputImageName: `${w.plain.host}/sample/busybox:1`,
      outputImageName: `${w.plain.host}/out/two:1`,
      certificates: [{ subject: 'two.example', keyPath: '/tmp/k.pem', certPath: '/tmp/c.pem' }],
    };
    const p = await call('POST', '/convert-image/prepare', { token: w.ciToken, body: request });
    assert.equal(p.status, 200, p.text);
    const sign = (b64) => crypto.sign('sha256', Buffer.from(b64, 'base64'), w.keyPem).toString('base64');
    const c = await call('POST', '/convert-image/complete', {
      token: w.ciToken,
      body: {
        token: p.json.token,
        signatures: { sgx1: sign(p.json.payloads.sgx1), edmm: sign(p.json.payloads.edmm) },
        publicKey: crypto.createPublicKey(w.keyPem).export({ type: 'spki', format: 'pem' }),
      },
    });
    assert.equal(c.status, 200, c.text);
    assert.ok(!(c.json.warnings ?? []).some((x) => x.startsWith('approvals:')), c.text);
    const list = await call('GET', '/approvals', { token: w.opsToken });
    const rec = list.json.records.find((x) => x.mrenclave === c.json.mrenclave);
    assert.ok(rec, list.text);
    assert.equal(rec.mrsigner, c.json.mrsigner);
    assert.ok(rec.allowedSubjects.includes('two.example'), list.text);
  });

  it('never shows the CA key or a token in a response or a log line', () => {
    const key = fs.readFileSync(CA_KEY_FILE, 'utf8');
    const keyBody = key.split('\n').filter((l) => l && !l.startsWith('-----'));
    assert.ok(keyBody.length > 0);
    const lines = [...w.worker.lines, ...w.noCa.lines, ...w.noPccs.lines];
    assert.ok(lines.some((l) => /certificates\/issue -> 200/.test(l)), lines.join('\n'));
    for (const text of [...seen, ...lines]) {
      assert.ok(!text.includes('PRIVATE KEY'), text);
      for (const k of keyBody) assert.ok(!text.includes(k), text);
      for (const t of [w.ciToken, w.opsToken]) assert.ok(!text.includes(t), text);
    }
  });
});
