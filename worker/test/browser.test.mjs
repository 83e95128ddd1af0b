// CORS from a real browser: headless Chromium (Debian's /usr/bin/chromium) on a page served from
// another origin uses the proxy with Authorization headers and reads the exposed headers.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { chromium } from 'playwright-core';
import { setup } from './lib/setup.mjs';

const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run'];

async function pageServer() {
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<!doctype html><title>page</title><p>another origin</p>');
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${server.address().port}`, stop: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }) };
}

let env, allowedPage, otherPage, browser;
before(async () => {
  allowedPage = await pageServer();
  otherPage = await pageServer();
  env = await setup({ extraOrigins: [allowedPage.url] });
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: FLAGS });
});
after(async () => {
  await browser?.close();
  await env?.teardown();
  await allowedPage?.stop();
  await otherPage?.stop();
});

async function inPage(origin, fn, arg) {
  const ctx = await browser.newContext();
  try {
    const page = await ctx.newPage();
    await page.goto(origin);
    return await page.evaluate(fn, arg);
  } finally {
    await ctx.close();
  }
}

describe('CORS from Chromium on another origin', () => {
  it('preflights Authorization, uploads a blob and reads the exposed headers', async () => {
    const res = await inPage(allowedPage.url, async ({ base, auth }) => {
      const out = {};
      const anon = await fetch(`${base}/v2/`);
      out.anonStatus = anon.status;
      out.challenge = anon.headers.get('www-authenticate');
      const v2 = await fetch(`${base}/v2/`, { headers: { authorization: auth } });
      out.v2Status = v2.status;
      out.apiVersion = v2.headers.get('docker-distribution-api-version');
      const start = await fetch(`${base}/v2/kiln/browser/blobs/uploads/`, { method: 'POST', headers: { authorization: auth } });
      out.startStatus = start.status;
      out.location = start.headers.get('location');
      out.uuid = start.headers.get('docker-upload-uuid');
      out.range = start.headers.get('range');
      const body = new TextEncoder().encode('blob from the browser');
      const hash = new Uint8Array(await crypto.subtle.digest('SHA-256', body));
      const digest = `sha256:${[...hash].map((b) => b.toString(16).padStart(2, '0')).join('')}`;
      const put = new URL(out.location);
      put.searchParams.set('digest', digest);
      const done = await fetch(put, { method: 'PUT', headers: { authorization: auth, 'content-type': 'application/octet-stream' }, body });
      out.putStatus = done.status;
      out.digest = digest;
      out.putDigest = done.headers.get('docker-content-digest');
      const head = await fetch(`${base}/v2/kiln/browser/blobs/${digest}`, { method: 'HEAD', headers: { authorization: auth } });
      out.headLength = head.headers.get('content-length');
      const part = await fetch(`${base}/v2/kiln/browser/blobs/${digest}`, { headers: { authorization: auth, range: 'bytes=5-8' } });
      out.partStatus = part.status;
      out.contentRange = part.headers.get('content-range');
      out.partText = await part.text();
      return out;
    }, { base: env.proxied(env.basic), auth: `Basic ${btoa(`${env.user}:${env.password}`)}` });
    assert.equal(res.anonStatus, 401);
    assert.match(res.challenge, /^Basic realm=/);
    assert.equal(res.v2Status, 200);
    assert.equal(res.apiVersion, 'registry/2.0');
    assert.equal(res.startStatus, 202);
    assert.ok(res.location.startsWith(`${env.worker.url}/proxy/${env.basic.host}/v2/kiln/browser/blobs/uploads/`), res.location);
    assert.ok(res.uuid);
    assert.equal(res.range, '0-0');
    assert.equal(res.putStatus, 201);
    assert.equal(res.putDigest, res.digest);
    assert.equal(res.headLength, '21');
    assert.equal(res.partStatus, 206);
    assert.equal(res.contentRange, 'bytes 5-8/21');
    assert.equal(res.partText, 'from');
  });

  it('gets a bearer token through the rewritten realm', async () => {
    const res = await inPage(allowedPage.url, async ({ base, basic }) => {
      const anon = await fetch(`${base}/v2/`);
      const ch = anon.headers.get('www-authenticate');
      const realm = /realm="([^"]+)"/.exec(ch)[1];
      const service = /service="([^"]+)"/.exec(ch)[1];
      const t = await fetch(`${realm}?service=${encodeURIComponent(service)}&scope=${encodeURIComponent('repository:kiln/b:pull,push')}`, { headers: { authorization: basic } });
      const { token } = await t.json();
      const ok = await fetch(`${base}/v2/`, { headers: { authorization: `Bearer ${token}` } });
      return { anon: anon.status, realm, tokenStatus: t.status, ok: ok.status };
    }, { base: env.proxied(env.token), basic: `Basic ${btoa(`${env.user}:${env.password}`)}` });
    assert.equal(res.anon, 401);
    assert.match(res.realm, new RegExp(`^${env.worker.url}/proxy/${env.tokens.host}/kiln-signed/[0-9a-f]{32}/token$`));
    assert.equal(res.tokenStatus, 200);
    assert.equal(res.ok, 200);
  });

  it('is refused to a page on an origin that is not allowed', async () => {
    const res = await inPage(otherPage.url, async ({ base }) => {
      try {
        const r = await fetch(`${base}/v2/`, { headers: { authorization: 'Basic eDp5' } });
        return { status: r.status };
      } catch (e) {
        return { error: String(e) };
      }
    }, { base: env.proxied(env.plain) });
    assert.match(res.error ?? '', /TypeError|Failed to fetch/);
  });
});
