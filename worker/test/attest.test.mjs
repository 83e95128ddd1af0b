// POST /attest/verify in bare workerd: dcap-qvl's real sample SGX quote and its Intel-signed
// collateral (engine/testdata/attest) verify at a time inside the collateral's validity only
// when their TCB status is allowed; a changed report byte, expired collateral, a wrong expected
// MRENCLAVE and an RA-TLS certificate whose key the quote does not bind are refused (passed
// false, the failing check named); unreadable bodies are 400s naming the field; the route's
// methods and CORS preflight.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { startWorker } from './lib/worker.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const DATA = path.join(ROOT, 'engine/testdata/attest');
const QUOTE = fs.readFileSync(path.join(DATA, 'sgx_quote'));
const COLLATERAL = JSON.parse(fs.readFileSync(path.join(DATA, 'sgx_quote_collateral.json'), 'utf8'));
const CERT = fs.readFileSync(path.join(DATA, 'ratls-tcg-dice.pem'), 'utf8');
const MRENCLAVE = '33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb';
const INSIDE = 1751328000; // 2025-07-01T00:00:00Z
const AFTER = 1754006400; // 2025-08-01, after the collateral's nextUpdate
const ALLOW = ['ConfigurationAndSWHardeningNeeded'];

let w;
before(async () => {
  w = await startWorker({ KILN_REGISTRY_ALLOWLIST: '' });
});
after(async () => { await w?.stop(); });

async function attest(body, init = {}) {
  const res = await fetch(`${w.url}/attest/verify`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    ...init,
  });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, json, text };
}

const quote = (q = QUOTE) => ({ quote: Buffer.from(q).toString('base64'), collateral: COLLATERAL });
const failed = (r) => r.json.checks.filter((c) => c.status === 'fail').map((c) => c.id);

describe('POST /attest/verify', () => {
  it('passes the sample quote when its TCB status is allowed', async () => {
    const r = await attest({ ...quote(), at: INSIDE, allowTcb: ALLOW, expectMrenclave: MRENCLAVE });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.passed, true, r.text);
    assert.equal(r.json.tcbStatus, 'ConfigurationAndSWHardeningNeeded');
    assert.deepEqual(r.json.advisoryIds, ['INTEL-SA-00289', 'INTEL-SA-00615']);
    assert.equal(r.json.enclave.mrenclave, MRENCLAVE);
    assert.equal(r.json.verifiedAt, '2025-07-01T00:00:00Z');
  });

  it('refuses the status by default, a changed byte, expired collateral, a wrong MRENCLAVE', async () => {
    let r = await attest({ ...quote(), at: INSIDE });
    assert.equal(r.status, 200);
    assert.deepEqual(failed(r), ['tcb-status']);
    const tampered = Buffer.from(QUOTE);
    tampered[48 + 64] ^= 1; // first byte of MRENCLAVE
    r = await attest({ ...quote(tampered), at: INSIDE, allowTcb: ALLOW });
    assert.equal(r.json.passed, false);
    assert.ok(failed(r).includes('quote-signature'), r.text);
    r = await attest({ ...quote(), at: AFTER, allowTcb: ALLOW });
    assert.ok(failed(r).includes('collateral-time') && failed(r).includes('quote-signature'), r.text);
    r = await attest({ ...quote(), at: INSIDE, allowTcb: ALLOW, expectMrenclave: '0'.repeat(64) });
    assert.deepEqual(failed(r), ['expected-mrenclave']);
    // Without "at" the worker's clock is used: today the 2025 collateral has expired.
    r = await attest({ ...quote(), allowTcb: ALLOW });
    assert.ok(failed(r).includes('collateral-time'), r.text);
  });

  it('refuses an RA-TLS certificate whose key the quote does not bind', async () => {
    const r = await attest({ certificate: CERT, collateral: COLLATERAL, at: INSIDE, allowTcb: ALLOW });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.evidence, 'ra-tls certificate (tcg-dice)');
    assert.deepEqual(failed(r), ['report-data-binding']);
  });

  it('answers unreadable bodies with 400s naming the field', async () => {
    const cases = [
      ['{', /JSON ends early/],
      [{ collateral: COLLATERAL }, /certificate or quote/],
      [{ ...quote(), certificate: CERT }, /not both/],
      [{ quote: '***', collateral: COLLATERAL }, /quote: not base64/],
      [{ ...quote(), allowTcb: ['Revoked'] }, /^allowTcb: .*never accepted/],
      [{ ...quote(), at: 'soon' }, /^at: /],
      [{ quote: 'AAAA', collateral: { pck_crl_issuer_chain: 1 } }, /^collateral\.pck_crl_issuer_chain/],
      [{ ...quote(), extra: 1 }, /unknown field/],
    ];
    for (const [body, re] of cases) {
      const r = await attest(body);
      assert.equal(r.status, 400, `${JSON.stringify(body).slice(0, 80)}: ${r.text}`);
      assert.equal(r.json.errorType, 'BadRequest');
      assert.match(r.json.reason, re);
    }
  });

  it('allows POST and OPTIONS only', async () => {
    const r = await fetch(`${w.url}/attest/verify`);
    assert.equal(r.status, 405);
    assert.match(r.headers.get('allow') ?? '', /POST/);
    await r.text();
    const doc = await (await fetch(`${w.url}/openapi.json`)).json();
    assert.ok(doc.paths['/attest/verify'].post);
  });
});
