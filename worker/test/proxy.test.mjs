// The registry proxy end to end: real registries on loopback, the built worker in workerd.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { RegistryClient, makeImage, parseChallenge, sha256 } from './lib/client.mjs';
import { setup } from './lib/setup.mjs';

let env;
before(async () => { env = await setup(); });
after(async () => { await env?.teardown(); });

describe('edge API skeleton', () => {
  it('answers /healthz', async () => {
    const r = await fetch(`${env.worker.url}/healthz`);
    assert.equal(r.status, 200);
    const j = await r.json();
    assert.equal(j.status, 'ok');
    assert.equal(j.registries, 11);
    assert.equal(j.defaultSigningKey, true);
  });

  it('answers 500 ConfigurationError for the offline two-step without its secret', async () => {
    for (const p of ['/convert-image/prepare', '/convert-image/complete']) {
      const r = await fetch(`${env.worker.url}${p}`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
      assert.equal(r.status, 500, p);
      const j = await r.json();
      assert.equal(j.errorType, 'ConfigurationError');
      assert.match(j.reason, /KILN_TWO_STEP_SECRET/);
    }
    const r = await fetch(`${env.worker.url}/convert-image`);
    assert.equal(r.status, 405);
    assert.equal((await r.json()).errorType, 'MethodNotAllowed');
  });

  it('serves the static index page', async () => {
    const r = await fetch(`${env.worker.url}/`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /text\/html/);
    assert.match(await r.text(), /<h1>kiln<\/h1>/);
    const missing = await fetch(`${env.worker.url}/nope.js`);
    assert.equal(missing.status, 404);
    await missing.arrayBuffer();
  });
});

describe('pull and push through the proxy', () => {
  it('plain registry: whole image, monolithic and chunked uploads, exact manifest bytes', async () => {
    const c = new RegistryClient(env.proxied(env.plain));
    const img = makeImage();
    const pushed = await c.pushImage('kiln/plain', 'v1', img);
    assert.equal(pushed.digest, img.digest);
    // Upload and manifest Locations point back through the proxy.
    const uploads = c.log.filter(([m]) => m === 'PATCH' || m === 'PUT');
    assert.ok(uploads.length >= 5);
    for (const [, u] of uploads) assert.ok(u.startsWith(`${env.worker.url}/proxy/${env.plain.host}/v2/`), u);
    assert.ok(pushed.location.startsWith(`${env.worker.url}/proxy/${env.plain.host}/v2/`));
    const pulled = await c.pullImage('kiln/plain', 'v1');
    assert.deepEqual(pulled.manifest, img.manifest);
    assert.deepEqual(pulled.layers, img.layers);
    // Same bytes straight from the registry.
    const direct = await new RegistryClient(env.plain.url).getManifest('kiln/plain', 'v1', img.mediaType);
    assert.deepEqual(direct.bytes, img.manifest);
    assert.equal(direct.digest, img.digest);
  });

  it('IPv6 loopback registry ([::1]:port)', async () => {
    const c = new RegistryClient(env.proxied(env.plain6));
    const img = makeImage([4096, 8192]);
    const pushed = await c.pushImage('kiln/v6', 'v1', img);
    assert.equal(pushed.digest, img.digest);
    assert.ok(pushed.location.startsWith(`${env.worker.url}/proxy/${env.plain6.host}/v2/`), pushed.location);
    const pulled = await c.pullImage('kiln/v6', 'v1');
    assert.deepEqual(pulled.manifest, img.manifest);
  });

  it('range GET and HEAD pass Range and Content-Length', async () => {
    const c = new RegistryClient(env.proxied(env.plain));
    const blob = Buffer.from('0123456789abcdef'.repeat(1000));
    const { digest } = await c.pushBlob('kiln/range', blob);
    const r = await fetch(`${env.proxied(env.plain)}/v2/kiln/range/blobs/${digest}`, { headers: { range: 'bytes=10-19' } });
    assert.equal(r.status, 206);
    assert.equal(Buffer.from(await r.arrayBuffer()).toString(), blob.subarray(10, 20).toString());
    const h = await fetch(`${env.proxied(env.plain)}/v2/kiln/range/blobs/${digest}`, { method: 'HEAD' });
    assert.equal(h.status, 200);
    assert.equal(h.headers.get('content-length'), String(blob.length));
    assert.equal(h.headers.get('docker-content-digest'), digest);
  });

  it('basic auth registry', async () => {
    const anon = await fetch(`${env.proxied(env.basic)}/v2/`);
    assert.equal(anon.status, 401);
    assert.equal(parseChallenge(anon.headers.get('www-authenticate')).scheme, 'basic');
    await anon.arrayBuffer();
    const bad = new RegistryClient(env.proxied(env.basic), { username: env.user, password: 'wrong' });
    assert.equal((await bad.request('GET', '/v2/')).status, 401);
    const c = new RegistryClient(env.proxied(env.basic), { username: env.user, password: env.password });
    const img = makeImage([123456, 54321]);
    await c.pushImage('kiln/basic', 'v1', img);
    const pulled = await c.pullImage('kiln/basic', 'v1');
    assert.deepEqual(pulled.manifest, img.manifest);
    assert.deepEqual(pulled.layers, img.layers);
  });

  it('bearer token registry: the realm is rewritten through the proxy', async () => {
    const anon = await fetch(`${env.proxied(env.token)}/v2/`);
    assert.equal(anon.status, 401);
    const ch = parseChallenge(anon.headers.get('www-authenticate'));
    await anon.arrayBuffer();
    assert.equal(ch.scheme, 'bearer');
    // Signed by the proxy: the only non-/v2 links it forwards are those it rewrote itself.
    assert.match(ch.params.realm, new RegExp(`^${env.worker.url}/proxy/${env.tokens.host}/kiln-signed/[0-9a-f]{32}/token$`));
    assert.equal(ch.params.service, env.tokens.service);
    const before = env.tokens.requests.length;
    const c = new RegistryClient(env.proxied(env.token), { username: env.user, password: env.password });
    const img = makeImage([222222, 111]);
    await c.pushImage('kiln/token', 'v1', img);
    const pulled = await c.pullImage('kiln/token', 'v1');
    assert.deepEqual(pulled.manifest, img.manifest);
    assert.deepEqual(pulled.layers, img.layers);
    assert.ok(c.realms.length > 0);
    for (const r of c.realms) assert.ok(r.startsWith(`${env.worker.url}/proxy/${env.tokens.host}/`), r);
    // The token server saw the requests (through the proxy), with the credentials.
    const seen = env.tokens.requests.slice(before);
    assert.ok(seen.length > 0);
    assert.ok(seen.some((r) => r.headers.authorization?.startsWith('Basic ')));
  });
});

describe('CORS preflight', () => {
  it('echoes the requested headers (a * would not cover Authorization) for an allowed origin', async () => {
    const w = await fetch(`${env.proxied(env.plain)}/v2/kiln/x/blobs/uploads/`, {
      method: 'OPTIONS',
      headers: { origin: env.worker.url, 'access-control-request-method': 'PUT', 'access-control-request-headers': 'authorization,content-type,content-range' },
    });
    assert.equal(w.status, 204);
    assert.equal(w.headers.get('access-control-allow-origin'), env.worker.url);
    assert.equal(w.headers.get('access-control-allow-headers'), 'authorization, content-type, content-range');
    assert.match(w.headers.get('access-control-allow-methods'), /PATCH/);
    for (const h of ['Location', 'Docker-Content-Digest', 'Range', 'Docker-Upload-UUID', 'WWW-Authenticate', 'Content-Length']) {
      assert.ok(w.headers.get('access-control-expose-headers').split(', ').includes(h), h);
    }
    const bad = await fetch(`${env.proxied(env.plain)}/v2/`, {
      method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'GET' },
    });
    assert.equal(bad.status, 403);
    assert.equal(bad.headers.get('access-control-allow-origin'), null);
    await bad.arrayBuffer();
  });
});

describe('the guard', () => {
  it('refuses a registry that is not on the allowlist, before any connection', async () => {
    const r = await fetch(`${env.worker.url}/proxy/${env.offList.host}/v2/`);
    assert.equal(r.status, 403);
    const j = await r.json();
    assert.equal(j.errorType, 'RegistryNotAllowed');
    assert.match(j.reason, /allowlist/);
    assert.equal(env.offList.state.connections, 0);
  });

  it('refuses a redirect to a host off the allowlist, before any connection', async () => {
    const r = await fetch(`${env.proxied(env.toOffList)}/v2/x/blobs/sha256:${'0'.repeat(64)}`);
    assert.equal(r.status, 403);
    const j = await r.json();
    assert.equal(j.errorType, 'RegistryNotAllowed');
    assert.match(j.reason, /redirect refused/);
    assert.equal(env.toOffList.state.requests.length, 1);
    assert.equal(env.offList.state.connections, 0);
  });

  it('refuses private, link-local and metadata addresses', async () => {
    for (const a of ['10.0.0.1', '169.254.169.254', '[fe80::1]', '[::ffff:10.0.0.1]', '0.0.0.0:80', '192.168.1.1:5000']) {
      const r = await fetch(`${env.worker.url}/proxy/${a}/v2/`);
      assert.equal(r.status, 403, a);
      assert.equal((await r.json()).errorType, 'RegistryNotAllowed');
    }
    const r = await fetch(`${env.worker.url}/proxy/user@${env.plain.host}/v2/`);
    assert.equal(r.status, 400);
    await r.arrayBuffer();
  });

  it('follows an allowed blob redirect and drops Authorization when the host changes', async () => {
    const c = new RegistryClient(env.proxied(env.plain));
    const blob = Buffer.from('redirected blob');
    const { digest } = await c.pushBlob('kiln/redir', blob);
    // Redirect to the plain registry: followed server-side.
    const r = await fetch(`${env.proxied(env.toPlain)}/v2/kiln/redir/blobs/${digest}`, { redirect: 'manual' });
    assert.equal(r.status, 200);
    assert.deepEqual(Buffer.from(await r.arrayBuffer()), blob);
    // Redirect to the recorder: Authorization must not arrive there.
    const r2 = await fetch(`${env.proxied(env.toRecorder)}/v2/kiln/redir/blobs/${digest}`, { headers: { authorization: 'Bearer secret-token-for-registry' } });
    assert.equal(r2.status, 200);
    await r2.arrayBuffer();
    assert.equal(env.toRecorder.state.requests.at(-1).headers.authorization, 'Bearer secret-token-for-registry');
    assert.equal(env.recorder.state.requests.at(-1).headers.authorization, undefined);
  });

  it('forwards only protocol headers (no Expect, TE, cookies, Origin)', async () => {
    const u = new URL(`${env.proxied(env.recorder)}/v2/kiln/h/blobs/uploads/`);
    const body = Buffer.from('hello');
    const status = await new Promise((resolve, reject) => {
      const req = http.request({
        host: u.hostname, port: u.port, path: u.pathname, method: 'PATCH',
        headers: {
          'content-type': 'application/octet-stream', 'content-length': body.length, 'content-range': '0-4',
          te: 'trailers', cookie: 'session=1', 'x-forwarded-for': '1.2.3.4', authorization: 'Bearer t',
          'docker-content-digest': sha256(body),
        },
      }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); });
      req.on('error', reject);
      req.end(body);
    });
    assert.equal(status, 200);
    const seen = env.recorder.state.requests.at(-1).headers;
    assert.equal(seen['content-type'], 'application/octet-stream');
    assert.equal(seen['content-range'], '0-4');
    assert.equal(seen['content-length'], '5');
    assert.equal(seen['transfer-encoding'], undefined);
    assert.equal(seen.authorization, 'Bearer t');
    assert.equal(seen['docker-content-digest'], sha256(body));
    for (const h of ['te', 'cookie', 'x-forwarded-for', 'expect', 'origin']) assert.equal(seen[h], undefined, h);
  });

  it('bounds the time an upstream has to answer', async () => {
    const t0 = Date.now();
    const r = await fetch(`${env.proxied(env.silent)}/v2/`);
    assert.equal(r.status, 504);
    assert.equal((await r.json()).errorType, 'RegistryTimeout');
    assert.ok(Date.now() - t0 < 20000);
  });

  it('answers 502 when the upstream answers with a status below 200', async () => {
    const r = await fetch(`${env.proxied(env.informational)}/v2/`);
    assert.equal(r.status, 502);
    const j = await r.json();
    assert.ok(['BadUpstreamStatus', 'RegistryUnreachable'].includes(j.errorType), j.errorType);
  });

  it('refuses a page origin that is not allowed', async () => {
    const r = await fetch(`${env.proxied(env.plain)}/v2/`, { headers: { origin: 'https://evil.example' } });
    assert.equal(r.status, 403);
    assert.equal(r.headers.get('access-control-allow-origin'), null);
    assert.equal((await r.json()).errorType, 'OriginNotAllowed');
  });
});

describe('logs', () => {
  it('never contain the password or tokens sent through the proxy', async () => {
    // Runs last: every request above has been made; give workerd a moment to flush.
    await new Promise((r) => setTimeout(r, 300));
    const lines = env.worker.lines;
    assert.ok(lines.some((l) => l.includes('proxy GET')), `workerd logged no proxy line: ${lines.slice(0, 5)}`);
    const b64 = Buffer.from(`${env.user}:${env.password}`).toString('base64');
    for (const l of lines) {
      assert.ok(!l.includes(env.password), `password in log: ${l}`);
      assert.ok(!l.includes(b64), `basic credentials in log: ${l}`);
      assert.ok(!/Bearer /i.test(l), `bearer token in log: ${l}`);
      assert.ok(!l.includes('secret-token-for-registry'), `token in log: ${l}`);
      assert.ok(!l.includes(env.pem.split('\n')[1]), `signing key in log: ${l}`);
    }
  });
});
