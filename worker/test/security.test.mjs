// The edge service as an attacker sees it (issue #15), against the worker in workerd on
// loopback: API tokens (fail closed, 401/403, output prefixes, names only in logs), the proxy
// speaking only the registry protocol (signed realms, header allowlist, CSP sandbox, nosniff,
// no renderable content type; checked in Chromium too), no secret in any 400, memSize and the
// body limit at the edge, Docker Hub names and a blob redirect to a second host, as Docker Hub
// and ghcr do. Needs the demo_images example built (scripts/test-worker.sh builds it).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { chromium } from 'playwright-core';
import { startRegistry } from './lib/registry.mjs';
import { startWorker } from './lib/worker.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const TARGET = process.env.CARGO_TARGET_DIR ?? path.join(ROOT, 'target');
const DEMO_IMAGES = path.join(TARGET, 'debug/examples/demo_images');
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run'];
const sha256hex = (s) => crypto.createHash('sha256').update(s).digest('hex');

/** The default allowlist of wrangler.toml, as an operator deploys it. */
function defaultAllowlist() {
  const toml = fs.readFileSync(path.join(ROOT, 'worker/wrangler.toml'), 'utf8');
  return /^KILN_REGISTRY_ALLOWLIST = "([^"]*)"/m.exec(toml)[1];
}

/** A loopback server: `handler(req, res)`; counts requests. */
async function server(handler) {
  const state = { requests: [] };
  const s = http.createServer((req, res) => { state.requests.push(req.url); handler(req, res); });
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  return { host: `127.0.0.1:${port}`, url: `http://127.0.0.1:${port}`, state, stop: () => new Promise((r) => { s.closeAllConnections(); s.close(r); }) };
}

let w;
before(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-security-test-'));
  const stops = [];
  const keep = (x) => { stops.push(x.stop); return x; };
  const secret = `sec-${crypto.randomBytes(12).toString('hex')}`; // stands for any password
  const ciToken = `ci-${crypto.randomBytes(16).toString('hex')}`;
  const adminToken = `admin-${crypto.randomBytes(16).toString('hex')}`;
  const plain = keep(await startRegistry(dir, 'plain'));
  execFileSync(DEMO_IMAGES, [plain.host], { stdio: ['ignore', 'pipe', 'inherit'] });
  const keyFile = path.join(dir, 'signing-key.pem');
  execFileSync('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:3072',
    '-pkeyopt', 'rsa_keygen_pubexp:3', '-out', keyFile], { stdio: 'ignore' });
  const runtime = `${plain.host}/kiln/runtime:fixture`;
  // The attacker's page, its beacon (anything loaded from it means script or markup ran),
  // and an allowlisted "blob store" that serves it.
  const beacon = keep(await server((req, res) => res.end('x')));
  const evil = `<!doctype html><script>fetch("${beacon.url}/script")</script><img src="${beacon.url}/img">`;
  const storage = keep(await server((req, res) => {
    res.writeHead(200, {
      'content-type': 'text/html', 'set-cookie': 'k=v', 'clear-site-data': '"*"',
      'content-disposition': 'inline', 'x-frame-options': 'ALLOWALL', refresh: '0; url=/x',
    });
    res.end(evil);
  }));
  // Docker Hub / ghcr as they behave: the registry redirects blob GETs to a second host.
  const blob = crypto.randomBytes(300 * 1024);
  const blobDigest = `sha256:${sha256hex(blob)}`;
  const blobStore = keep(await server((req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': blob.length });
    res.end(blob);
  }));
  const hub = keep(await server((req, res) => {
    if (req.url === '/v2/' || req.url === '/v2') {
      res.writeHead(200, { 'docker-distribution-api-version': 'registry/2.0' });
      return res.end('{}');
    }
    res.writeHead(307, { location: `${blobStore.url}/registry-v2/docker/registry/v2/blobs/sha256/${blobDigest.slice(7, 9)}/${blobDigest.slice(7)}/data?sig=abc` });
    res.end();
  }));
  const tokens = [
    `# name sha256 prefixes`,
    `ci ${sha256hex(ciToken)} ${plain.host}/allowed`,
    `admin ${sha256hex(adminToken)}`,
  ].join('\n');
  const allow = [plain, storage, hub, blobStore].map((s) => `http://${s.host}`).join(',');
  const worker = keep(await startWorker({
    KILN_API_TOKENS: tokens,
    KILN_DEFAULT_SIGNING_KEY_FILE: keyFile,
    KILN_REGISTRY_ALLOWLIST: allow,
    KILN_ALLOW_LOOPBACK_REGISTRIES: '1',
    KILN_RUNTIME_IMAGE: runtime,
    KILN_PROXY_TIMEOUT_SECS: '60',
    KILN_TWO_STEP_SECRET: `two-step-${crypto.randomBytes(16).toString('hex')}`,
  }));
  // No tokens, anonymous mode off: must refuse every conversion.
  const closed = keep(await startWorker({
    KILN_EDGE_ANONYMOUS: '',
    KILN_DEFAULT_SIGNING_KEY_FILE: keyFile,
    KILN_REGISTRY_ALLOWLIST: allow,
    KILN_ALLOW_LOOPBACK_REGISTRIES: '1',
    KILN_RUNTIME_IMAGE: runtime,
  }));
  // The default allowlist, but workerd may reach only loopback: public names pass the
  // allowlist and then fail to connect; nothing leaves the machine.
  const hubWorker = keep(await startWorker({
    KILN_REGISTRY_ALLOWLIST: defaultAllowlist(),
    KILN_WORKERD_NETWORK: 'loopback',
    KILN_RUNTIME_IMAGE: 'ghcr.io/kiln/runtime:1',
    KILN_DEFAULT_SIGNING_KEY_FILE: keyFile,
    KILN_PROXY_TIMEOUT_SECS: '5',
  }));
  // Small rate limits.
  const limited = keep(await startWorker({
    KILN_API_TOKENS: tokens,
    KILN_DEFAULT_SIGNING_KEY_FILE: keyFile,
    KILN_REGISTRY_ALLOWLIST: allow,
    KILN_ALLOW_LOOPBACK_REGISTRIES: '1',
    KILN_RUNTIME_IMAGE: runtime,
    KILN_RATE_LIMIT_CONVERT_PER_MIN: '2',
    KILN_RATE_LIMIT_VERIFY_PER_MIN: '3',
    KILN_RATE_LIMIT_PROXY_PER_MIN: '5',
  }));
  w = {
    limited,
    dir, plain, storage, beacon, hub, blobStore, blob, blobDigest, worker, closed, hubWorker,
    secret, ciToken, adminToken, responses: [],
    async teardown() {
      for (const s of stops.reverse()) await s();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
});
after(async () => { await w?.teardown(); });

async function call(p, body, { token, base, headers = {}, method = 'POST' } = {}) {
  const h = { 'content-type': 'application/json', ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  const r = await fetch(`${base ?? w.worker.url}${p}`, {
    method, headers: h, body: body === undefined ? undefined : (typeof body === 'string' ? body : JSON.stringify(body)),
  });
  const text = await r.text();
  w.responses.push(text);
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, headers: r.headers, text, json };
}

const sample = () => `${w.plain.host}/sample/busybox:1`;
const ENDPOINTS = ['/convert-image', '/convert-image/prepare', '/convert-image/complete'];

describe('API tokens', () => {
  it('no token, a wrong token, or another scheme: 401 on every conversion endpoint', async () => {
    const body = { inputImageName: sample(), outputImageName: `${w.plain.host}/allowed/x:1` };
    for (const p of ENDPOINTS) {
      for (const headers of [{}, { authorization: 'Bearer wrong-token' }, { authorization: `Basic ${Buffer.from(`${w.ciToken}:`).toString('base64')}` },
        { authorization: `Bearer ${sha256hex(w.ciToken)}` }]) {
        const r = await call(p, body, { headers });
        assert.equal(r.status, 401, `${p} ${JSON.stringify(headers)}: ${r.text}`);
        assert.equal(r.json.errorType, 'Unauthorized');
        assert.match(r.headers.get('www-authenticate'), /^Bearer /);
      }
    }
    // Verification is anonymous.
    const v = await call('/verify-image', { image: `${w.plain.host}/no/such:1` });
    assert.equal(v.status, 404, v.text);
  });

  it('fails closed without KILN_API_TOKENS: every conversion refused, even with a token', async () => {
    for (const p of ENDPOINTS) {
      const r = await call(p, { inputImageName: sample(), outputImageName: `${w.plain.host}/x/y:1` }, { base: w.closed.url, token: w.adminToken });
      assert.equal(r.status, 503, r.text);
      assert.equal(r.json.errorType, 'ConfigurationError');
      assert.match(r.json.reason, /KILN_API_TOKENS/);
    }
  });

  it('a token outside its output prefixes: 403; inside: converts', async () => {
    for (const out of [`${w.plain.host}/other/x:1`, `${w.plain.host}/allowed-not/x:1`, `${w.plain.host}/allowedx:1`]) {
      for (const p of ['/convert-image', '/convert-image/prepare']) {
        const r = await call(p, { inputImageName: sample(), outputImageName: out }, { token: w.ciToken });
        assert.equal(r.status, 403, `${p} ${out}: ${r.text}`);
        assert.equal(r.json.errorType, 'Forbidden');
        assert.match(r.json.reason, /token ci may push only under/);
      }
    }
    const ok = await call('/convert-image', { inputImageName: sample(), outputImageName: `${w.plain.host}/allowed/app:1` }, { token: w.ciToken });
    assert.equal(ok.status, 200, ok.text);
    assert.ok(ok.json.mrsigner);
    // A token without prefixes may push to any allowlisted registry.
    const any = await call('/convert-image/prepare', { inputImageName: sample(), outputImageName: `${w.plain.host}/other/app:1` }, { token: w.adminToken });
    assert.equal(any.status, 200, any.text);
  });

  it('logs name the token, never the token or its hash', async () => {
    await new Promise((res) => setTimeout(res, 300));
    const lines = w.worker.lines;
    assert.ok(lines.some((l) => /convert-image by ci -> 200/.test(l)), lines.join('\n'));
    for (const l of lines) {
      for (const t of [w.ciToken, w.adminToken, sha256hex(w.ciToken), sha256hex(w.adminToken)]) assert.ok(!l.includes(t), l);
    }
  });
});

describe('the proxy speaks only the registry protocol', () => {
  it('refuses non-/v2 paths and links it did not sign', async () => {
    let r = await call(`/proxy/${w.storage.host}/bucket/x.html`, undefined, { method: 'GET' });
    assert.equal(r.status, 400, r.text);
    r = await call(`/proxy/${w.storage.host}/kiln-signed/${'0'.repeat(32)}/bucket/x.html`, undefined, { method: 'GET' });
    assert.equal(r.status, 403, r.text);
    assert.match(r.json.reason, /signature/);
    assert.equal(w.storage.state.requests.length, 0);
  });

  it('an allowlisted host serving text/html under /v2: sandboxed, nosniff, octet-stream, no cookies or Clear-Site-Data', async () => {
    const r = await fetch(`${w.worker.url}/proxy/${w.storage.host}/v2/x.html`);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'application/octet-stream');
    assert.equal(r.headers.get('content-security-policy'), "sandbox; default-src 'none'");
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
    for (const h of ['set-cookie', 'clear-site-data', 'content-disposition', 'x-frame-options', 'refresh']) {
      assert.equal(r.headers.get(h), null, h);
    }
    await r.arrayBuffer();
    // Error answers of the worker carry the same headers.
    const e = await fetch(`${w.worker.url}/proxy/${w.storage.host}/bucket/x.html`);
    assert.equal(e.headers.get('content-security-policy'), "sandbox; default-src 'none'");
    assert.equal(e.headers.get('x-content-type-options'), 'nosniff');
  });

  it('in Chromium, the page never runs on the worker origin (navigation, iframe)', async () => {
    const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: FLAGS });
    try {
      const ctx = await browser.newContext({ acceptDownloads: false });
      const page = await ctx.newPage();
      const evilUrl = `${w.worker.url}/proxy/${w.storage.host}/v2/x.html`;
      await page.goto(`${w.worker.url}/`);
      // An iframe of the proxied page, and a top-level navigation to it.
      await page.evaluate((u) => new Promise((res) => {
        const f = document.createElement('iframe');
        f.src = u;
        f.onload = res;
        setTimeout(res, 3000);
        document.body.appendChild(f);
      }), evilUrl);
      await page.goto(evilUrl).catch(() => { /* a download, not a page */ });
      await new Promise((res) => setTimeout(res, 1000));
      assert.deepEqual(w.beacon.state.requests, [], 'script or markup of the proxied page ran');
    } finally {
      await browser.close();
    }
  });

  it('a registry that redirects blobs to a second host (Docker Hub, ghcr): followed through the guard', async () => {
    const r = await fetch(`${w.worker.url}/proxy/${w.hub.host}/v2/library/busybox/blobs/${w.blobDigest}`);
    assert.equal(r.status, 200);
    const got = Buffer.from(await r.arrayBuffer());
    assert.equal(`sha256:${sha256hex(got)}`, w.blobDigest);
    assert.equal(r.headers.get('content-security-policy'), "sandbox; default-src 'none'");
    assert.ok(w.blobStore.state.requests.some((u) => u.startsWith('/registry-v2/')));
  });
});

describe('no secret in any response', () => {
  it('serde errors name the field and the kind, never the value', async () => {
    const s = w.secret;
    const cases = [
      ['/convert-image', { inputImageName: sample(), outputImageName: `${w.plain.host}/allowed/a:1`, inputAuthConfig: `user:${s}` }, /inputAuthConfig/],
      ['/convert-image', { inputImageName: sample(), outputImageName: `${w.plain.host}/allowed/a:1`, outputAuthConfig: { username: 'u', password: [s] } }, /outputAuthConfig\.password/],
      ['/convert-image', { inputImageName: sample(), outputImageName: `${w.plain.host}/allowed/a:1`, signingKey: { sdkms: { name: 'k', apiKey: 7 } }, authConfig: s }, /authConfig|signingKey/],
      ['/convert-image/prepare', { inputImageName: [s], outputImageName: 'x' }, /inputImageName/],
      ['/convert-image/complete', { token: 't', signatures: { sgx1: s, edmm: 1 }, inputAuthConfig: `user:${s}` }, /signatures\.edmm|inputAuthConfig/],
      ['/convert-image/complete', { token: 't', signatures: { sgx1: 'a', edmm: 'b' }, modulus: '00', outputAuthConfig: `u:${s}` }, /outputAuthConfig/],
      ['/verify-image', { image: 'x', authConfig: `user:${s}` }, /authConfig/],
      ['/verify-image', { image: [s] }, /image/],
      ['/verify-image', { image: 'x', authConfig: { username: 'u', password: { s } } }, /authConfig\.password/],
      ['/verify-image', `{"image": "${s}`, /JSON ends early/],
      ['/verify-image', `{"image": "x"} ${s}`, /not valid JSON/],
    ];
    for (const [p, body, field] of cases) {
      const r = await call(p, body, { token: w.adminToken });
      assert.equal(r.status, 400, `${p}: ${r.text}`);
      assert.equal(r.json.errorType, 'BadRequest');
      assert.match(r.json.reason, field);
      assert.ok(!r.text.includes(s), `${p}: ${r.text}`);
    }
  });

  it('no response of this file held the secret, no log line either', async () => {
    for (const t of w.responses) assert.ok(!t.includes(w.secret), t.slice(0, 200));
    for (const l of [...w.worker.lines, ...w.closed.lines, ...w.hubWorker.lines]) assert.ok(!l.includes(w.secret), l);
  });
});

/** Runs `attempt` again (up to five times) when the server closed the socket under a write. */
async function repeatIfClosedEarly(attempt) {
  for (let i = 0; ; i++) {
    try {
      return await attempt();
    } catch (e) {
      if (!['EPIPE', 'ECONNRESET'].includes(e?.code) || i >= 4) throw e;
    }
  }
}

describe('limits at the edge', () => {
  it('memSize over KILN_MAX_ENCLAVE_SIZE (64G): 400 naming the limit, before any registry work', async () => {
    for (const memSize of ['1T', '65G', '1099511627776']) {
      for (const p of ['/convert-image', '/convert-image/prepare']) {
        const before = w.plain.state?.requests?.length;
        const r = await call(p, { inputImageName: sample(), outputImageName: `${w.plain.host}/allowed/m:1`, memSize }, { token: w.adminToken });
        assert.equal(r.status, 400, `${memSize}: ${r.text}`);
        assert.match(r.json.reason, /memSize/);
        if (memSize !== '1T') assert.match(r.json.reason, /KILN_MAX_ENCLAVE_SIZE/);
        if (before !== undefined) assert.equal(w.plain.state.requests.length, before);
      }
    }
  });

  it('rate limits: 429 with Retry-After per token (conversions) and per address (verify, proxy), in a Durable Object', async () => {
    const base = w.limited.url;
    const ip = (a) => ({ 'cf-connecting-ip': a });
    const conv = { inputImageName: sample(), outputImageName: `${w.plain.host}/allowed/r:1`, memSize: '1T' };
    for (let i = 0; i < 2; i++) assert.equal((await call('/convert-image', conv, { base, token: w.ciToken })).status, 400);
    let r = await call('/convert-image/prepare', conv, { base, token: w.ciToken });
    assert.equal(r.status, 429, r.text);
    assert.equal(r.json.errorType, 'RateLimited');
    const retry = Number(r.headers.get('retry-after'));
    assert.ok(retry >= 1 && retry <= 60, `Retry-After ${retry}`);
    // Another token has its own budget; an unauthenticated call is refused before counting.
    assert.equal((await call('/convert-image', conv, { base, token: w.adminToken })).status, 400);
    assert.equal((await call('/convert-image', conv, { base })).status, 401);
    const v = { image: `${w.plain.host}/no/such:1` };
    for (let i = 0; i < 3; i++) assert.equal((await call('/verify-image', v, { base, headers: ip('192.0.2.1') })).status, 404);
    r = await call('/verify-image', v, { base, headers: ip('192.0.2.1') });
    assert.equal(r.status, 429, r.text);
    assert.ok(Number(r.headers.get('retry-after')) >= 1);
    assert.equal((await call('/verify-image', v, { base, headers: ip('192.0.2.2') })).status, 404);
    for (let i = 0; i < 5; i++) {
      assert.equal((await call(`/proxy/${w.plain.host}/v2/`, undefined, { base, method: 'GET', headers: ip('192.0.2.3') })).status, 200);
    }
    r = await call(`/proxy/${w.plain.host}/v2/`, undefined, { base, method: 'GET', headers: ip('192.0.2.3') });
    assert.equal(r.status, 429, r.text);
    assert.ok(Number(r.headers.get('retry-after')) >= 1);
  });

  it('the body limit holds while reading: a streamed body without Content-Length is cut off', async () => {
    // A raw chunked upload of up to 64 MiB; the answer must come long before it ends.
    // The worker answers 413 and closes while the client is still writing, so a write
    // can meet the closed socket (EPIPE/ECONNRESET) before the answer is read; that
    // race is the client's, not the worker's, and such an attempt is repeated.
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    const attempt = () => new Promise((resolve, reject) => {
      let sent = 0;
      let answered = false;
      const req = http.request(`${w.worker.url}/convert-image`, {
        method: 'POST',
        headers: { authorization: `Bearer ${w.adminToken}`, 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
      }, (res) => {
        answered = true;
        let body = '';
        res.on('data', (d) => { body += d; });
        res.on('end', () => { resolve({ status: res.statusCode, body, sent }); req.destroy(); });
      });
      req.on('error', (e) => { if (!answered) reject(e); });
      // One chunk per turn of the event loop, so an answer is read before the next write.
      const pump = () => {
        if (answered) return;
        if (sent >= 64 * 1024 * 1024) { req.end(); return; }
        sent += chunk.length;
        if (req.write(chunk)) setImmediate(pump); else req.once('drain', pump);
      };
      pump();
    });
    const r = await repeatIfClosedEarly(attempt);
    const { sent } = r;
    assert.equal(r.status, 413, r.body);
    assert.match(JSON.parse(r.body).reason, /limit of 1048576 bytes/);
    assert.ok(sent < 16 * 1024 * 1024, `the worker read ${sent} bytes`);
    // A declared length over the limit is refused before the body is read: the answer
    // comes while only 1 KiB of the announced 2 MiB has been sent.
    const status = await repeatIfClosedEarly(() => new Promise((resolve, reject) => {
      let answered = false;
      const req = http.request(`${w.worker.url}/verify-image`, {
        method: 'POST', headers: { 'content-type': 'application/json', 'content-length': String(2 << 20) },
      }, (res) => { answered = true; res.resume(); resolve(res.statusCode); req.destroy(); });
      req.on('error', (e) => { if (!answered) reject(e); });
      req.write(Buffer.alloc(1024, 0x20));
    }));
    assert.equal(status, 413);
  });
});

describe('Docker Hub names and ghcr.io with the default allowlist', () => {
  it('pass the allowlist in the edge API (then fail to connect: workerd reaches only loopback)', async () => {
    for (const image of ['busybox', 'docker.io/library/busybox', 'user/app', 'ghcr.io/acme/app:1']) {
      const v = await call('/verify-image', { image }, { base: w.hubWorker.url });
      assert.notEqual(v.json.errorType, 'RegistryNotAllowed', `${image}: ${v.text}`);
      assert.ok([502, 504].includes(v.status), `${image}: ${v.text}`);
      const c = await call('/convert-image', { inputImageName: image, outputImageName: 'ghcr.io/acme/out:1' }, { base: w.hubWorker.url });
      assert.notEqual(c.json.errorType, 'RegistryNotAllowed', `${image}: ${c.text}`);
      assert.ok([502, 504].includes(c.status), `${image}: ${c.text}`);
    }
    // Still refused: a registry off the default allowlist.
    const off = await call('/verify-image', { image: 'registry.evil.example/a/b:1' }, { base: w.hubWorker.url });
    assert.equal(off.status, 403);
    assert.equal(off.json.errorType, 'RegistryNotAllowed');
  });

  it('pass the allowlist in the proxy (registry-1.docker.io, ghcr.io and their blob hosts)', async () => {
    for (const host of ['registry-1.docker.io', 'ghcr.io', 'pkg-containers.githubusercontent.com', 'production.cloudflare.docker.com']) {
      const r = await call(`/proxy/${host}/v2/`, undefined, { method: 'GET', base: w.hubWorker.url });
      assert.notEqual(r.json?.errorType, 'RegistryNotAllowed', `${host}: ${r.text}`);
      assert.ok([502, 504].includes(r.status), `${host}: ${r.text}`);
    }
    const r = await call('/proxy/docker.io/v2/', undefined, { method: 'GET', base: w.hubWorker.url });
    assert.equal(r.status, 403, 'docker.io itself is not an API host');
  });
});
