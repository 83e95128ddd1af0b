// The browser runtime end to end (app/src/browser): the built web app, served by kiln's worker
// in bare workerd (same origin: /kiln-config.json, /proxy), converts and verifies in its Web
// Worker against a loopback docker-registry, in headless Chromium. The same conversion through
// the worker's POST /convert-image (same key as its default key) must give the same identities.
//
// Needs: the app built (KILN_APP_DIST, default dist/), the worker built (worker/build), the
// demo_images example (KILN_DEMO_IMAGES, default target/debug/examples/demo_images), openssl,
// docker-registry, /usr/bin/chromium. scripts/test-app.sh builds what is missing and runs it.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { chromium } from 'playwright-core';
import { startRegistry } from '../../worker/test/lib/registry.mjs';
import { startWorker } from '../../worker/test/lib/worker.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const TARGET = process.env.CARGO_TARGET_DIR ?? path.join(ROOT, 'target');
const DIST = path.resolve(ROOT, process.env.KILN_APP_DIST ?? 'dist');
const DEMO_IMAGES = process.env.KILN_DEMO_IMAGES ?? path.join(TARGET, 'debug/examples/demo_images');
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run'];

/**
 * A loopback front for the registry at `upstream` (host:port): forwards every request, but of
 * a blob larger than 64 KiB it sends the headers and the first 16 KiB and then nothing, with
 * the connection left open. Counts the stalled responses.
 */
async function startStallingFront(upstream) {
  const [upHost, upPort] = upstream.split(':');
  const sockets = new Set();
  const counts = { stalled: 0 };
  const server = http.createServer((req, res) => {
    const up = http.request({
      host: upHost, port: Number(upPort), method: req.method, path: req.url,
      headers: { ...req.headers, host: upstream },
    }, (r) => {
      const big = req.method === 'GET' && req.url.includes('/blobs/')
        && Number(r.headers['content-length'] ?? 0) > 64 * 1024;
      res.writeHead(r.statusCode, r.headers);
      if (!big) { r.pipe(res); return; }
      counts.stalled += 1;
      res.on('close', () => r.destroy());
      let sent = 0;
      r.on('data', (chunk) => {
        const part = chunk.subarray(0, Math.max(0, 16 * 1024 - sent));
        if (part.length > 0) { res.write(part); sent += part.length; }
      });
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  server.on('connection', (sock) => { sockets.add(sock); sock.on('close', () => sockets.delete(sock)); });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    host: `127.0.0.1:${server.address().port}`,
    counts,
    stop: async () => {
      for (const sock of sockets) sock.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

let t;
before(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-app-runtime-'));
  const stops = [];
  const keep = (x) => { stops.push(x.stop); return x; };
  const reg = keep(await startRegistry(dir, 'plain'));
  execFileSync(DEMO_IMAGES, [reg.host], { stdio: ['ignore', 'pipe', 'inherit'] });
  const front = keep(await startStallingFront(reg.host));
  const keyFile = path.join(dir, 'key.pem');
  execFileSync('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:3072',
    '-pkeyopt', 'rsa_keygen_pubexp:3', '-out', keyFile], { stdio: 'ignore' });
  const worker = keep(await startWorker({
    KILN_ASSETS_DIR: DIST,
    KILN_DEFAULT_SIGNING_KEY_FILE: keyFile,
    KILN_REGISTRY_ALLOWLIST: `http://${reg.host},http://${front.host}`,
    KILN_ALLOW_LOOPBACK_REGISTRIES: '1',
    KILN_RUNTIME_IMAGE: `${reg.host}/kiln/runtime:fixture`,
    KILN_PROXY_TIMEOUT_SECS: '60',
    KILN_BROWSER_IDLE_TIMEOUT_SECS: '5',
  }));
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: FLAGS });
  const page = await browser.newPage();
  const console = [];
  page.on('console', (m) => console.push(m.text()));
  page.on('pageerror', (e) => console.push(`pageerror: ${e.message}`));
  const failedRequests = [];
  page.on('requestfailed', (r) => failedRequests.push({ url: r.url(), error: r.failure()?.errorText }));
  await page.goto(`${worker.url}/`);
  await page.waitForFunction(() => window.wasmBindings && window.wasmBindings.kiln_convert, null,
    { timeout: 60000 });
  t = {
    reg, front, worker, page, console, failedRequests, pem: fs.readFileSync(keyFile, 'utf8'),
    async teardown() {
      await browser.close();
      for (const s of stops.reverse()) await s();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
});
after(async () => { await t?.teardown(); });

/** Runs a job in the page's engine worker; resolves with every event (the last is terminal). */
function job(kind, args) {
  return t.page.evaluate(([kind, args]) => new Promise((resolve, reject) => {
    const events = [];
    const on = (json) => {
      const m = JSON.parse(json);
      events.push(m);
      if (m.type !== 'progress') resolve(events);
    };
    try {
      if (kind === 'convert') window.wasmBindings.kiln_convert(JSON.stringify(args.request), args.pem, on);
      else window.wasmBindings.kiln_verify(args.image, args.expectMrsigner ?? undefined, on);
    } catch (e) { reject(new Error(String(e))); }
  }), [kind, args]);
}

const last = (events) => events[events.length - 1];

describe('the engine in the page\'s Web Worker', () => {
  let converted;

  it('converts the sample through the proxy, like POST /convert-image with the same key', async () => {
    const request = {
      inputImageName: `${t.reg.host}/sample/busybox:1`,
      outputImageName: `${t.reg.host}/out/browser:1`,
    };
    let t0 = performance.now();
    const events = await job('convert', { request, pem: t.pem });
    const browserMs = performance.now() - t0;
    const end = last(events);
    assert.equal(end.type, 'converted', `${JSON.stringify(end)}\n${t.console.join('\n')}`);
    converted = end.response;
    const steps = events.filter((e) => e.type === 'progress' && e.event.kind === 'step-done')
      .map((e) => e.event.step);
    for (const s of ['validate', 'resolve-input', 'scan-layers', 'measure', 'sign', 'push']) {
      assert.ok(steps.includes(s), `step ${s} in ${steps}`);
    }
    assert.ok(events.some((e) => e.type === 'progress' && e.event.kind === 'layer-done'
      && e.event.cached === false), 'a layer was scanned');
    t0 = performance.now();
    const r = await fetch(`${t.worker.url}/convert-image`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      // The same output name too: the request is recorded in the image (conversion.json).
      body: JSON.stringify(request),
    });
    const edge = await r.json();
    const edgeMs = performance.now() - t0;
    assert.equal(r.status, 200, JSON.stringify(edge));
    // A measurement, not an assertion: the page's worker against the edge worker, same run.
    console.log(`# convert sample: browser ${browserMs.toFixed(0)} ms, edge ${edgeMs.toFixed(0)} ms, `
      + `ratio ${(browserMs / edgeMs).toFixed(2)}`);
    assert.equal(converted.mrenclave, edge.mrenclave);
    assert.equal(converted.mrenclave2, edge.mrenclave2);
    assert.equal(converted.mrsigner, edge.mrsigner);
    assert.equal(converted.digest, edge.digest, 'same request, same key: same output image');
  });

  it('serves the second conversion\'s layers from the IndexedDB layer cache', async () => {
    const t0 = performance.now();
    const events = await job('convert', {
      request: {
        inputImageName: `${t.reg.host}/sample/busybox:1`,
        outputImageName: `${t.reg.host}/out/browser:2`,
      },
      pem: t.pem,
    });
    assert.equal(last(events).type, 'converted', JSON.stringify(last(events)));
    console.log(`# convert sample again (layers cached): browser ${(performance.now() - t0).toFixed(0)} ms`);
    const done = events.filter((e) => e.type === 'progress' && e.event.kind === 'layer-done');
    assert.ok(done.length > 0);
    assert.ok(done.every((e) => e.event.cached === true), JSON.stringify(done));
    assert.equal(last(events).response.mrenclave, converted.mrenclave);
  });

  it('verifies the converted image in the browser', async () => {
    const events = await job('verify', {
      image: `${t.reg.host}/out/browser:1`, expectMrsigner: converted.mrsigner,
    });
    const end = last(events);
    assert.equal(end.type, 'verified', JSON.stringify(end));
    assert.equal(end.report.passed, true, JSON.stringify(end.report));
    const wrong = last(await job('verify', {
      image: `${t.reg.host}/out/browser:1`, expectMrsigner: '00'.repeat(32),
    }));
    assert.equal(wrong.report.passed, false);
  });

  it('fails with the API\'s {errorType, reason}: missing input, sdkms, bad field', async () => {
    let end = last(await job('convert', {
      request: { inputImageName: `${t.reg.host}/no/such:1`, outputImageName: `${t.reg.host}/out/x:1` },
      pem: t.pem,
    }));
    assert.equal(end.type, 'failed');
    assert.equal(end.errorType, 'NotFound', JSON.stringify(end));
    end = last(await job('convert', {
      request: {
        inputImageName: `${t.reg.host}/sample/busybox:1`, outputImageName: `${t.reg.host}/out/x:1`,
        signingKey: { sdkms: { name: 'k', apiKey: 'secret-api-key' } },
      },
      pem: t.pem,
    }));
    assert.equal(end.errorType, 'BadRequest');
    assert.match(end.reason, /sdkms/);
    assert.ok(!JSON.stringify(end).includes('secret-api-key'));
    end = last(await job('convert', {
      request: {
        inputImageName: `${t.reg.host}/sample/busybox:1`, outputImageName: `${t.reg.host}/out/x:1`,
        isvsvn: 70000,
      },
      pem: t.pem,
    }));
    assert.equal(end.errorType, 'BadRequest');
    assert.match(end.reason, /isvsvn/);
  });

  it('cancel terminates the worker: no further event, no output tag', async () => {
    const seen = await t.page.evaluate(([request, pem]) => new Promise((resolve) => {
      const events = [];
      let cancel;
      cancel = window.wasmBindings.kiln_convert(JSON.stringify(request), pem, (json) => {
        events.push(JSON.parse(json));
        if (events.length === 1) setTimeout(() => cancel(), 0);
      });
      setTimeout(() => resolve(events), 4000);
    }), [{
      inputImageName: `${t.reg.host}/sample/busybox:1`,
      outputImageName: `${t.reg.host}/out/cancelled:1`,
    }, t.pem]);
    assert.ok(seen.length >= 1);
    assert.ok(seen.every((e) => e.type === 'progress'), JSON.stringify(seen));
    const r = await fetch(`${t.reg.url}/v2/out/cancelled/manifests/1`);
    assert.equal(r.status, 404);
  });

  it('a registry that stalls mid-blob fails the conversion as a timeout naming the blob', async () => {
    const t0 = performance.now();
    const events = await job('convert', {
      request: {
        inputImageName: `${t.front.host}/sample/busybox:1`,
        outputImageName: `${t.reg.host}/out/stalled:1`,
      },
      pem: t.pem,
    });
    const ms = performance.now() - t0;
    const end = last(events);
    assert.equal(end.type, 'failed', JSON.stringify(end));
    assert.equal(end.errorType, 'RegistryTimeout', JSON.stringify(end));
    // The input's error, not the upload's that it cut short.
    assert.match(end.reason, /^input image \(inputImageName\)/, end.reason);
    assert.match(end.reason, new RegExp(`${t.front.host}/v2/sample/busybox/blobs/sha256:[0-9a-f]{64}: no data for 5 s`));
    assert.ok(t.front.counts.stalled >= 1, 'the front stalled a blob');
    assert.ok(ms >= 5000 && ms < 60000, `failed after ${ms.toFixed(0)} ms`);
    console.log(`# stalled blob: failed after ${ms.toFixed(0)} ms (idle timeout 5 s)`);
    // The page aborted the stalled request (Chromium reports it failed as aborted).
    const aborted = () => t.failedRequests.find((r) => r.url.includes(`/proxy/${t.front.host}/`)
      && r.url.includes('/blobs/sha256:'));
    for (let i = 0; i < 50 && !aborted(); i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.ok(aborted(), JSON.stringify(t.failedRequests));
    assert.match(aborted().error, /ABORTED/, JSON.stringify(aborted()));
    const r = await fetch(`${t.reg.url}/v2/out/stalled/manifests/1`);
    assert.equal(r.status, 404, 'no output tag');
  });

  it('GET /kiln-config.json names the runtime, the proxy, the registries, the idle timeout, the image limits, the retry policy', async () => {
    const c = await (await fetch(`${t.worker.url}/kiln-config.json`)).json();
    // The image limits the page's engine applies: the edge defaults (docs/limits.md).
    assert.deepEqual(c, {
      runtimeImage: `${t.reg.host}/kiln/runtime:fixture`,
      proxy: '/proxy',
      registries: [`http://${t.reg.host}`, `http://${t.front.host}`],
      idleTimeoutSecs: 5,
      limits: {
        pathBytes: 4096,
        pathDepth: 256,
        layerEntries: 40000,
        imageEntries: 40000,
        indexBytes: 64 * 2 ** 20,
        layerBytes: 8 * 2 ** 30,
        imageBytes: 16 * 2 ** 30,
        zstdWindow: 16 * 2 ** 20,
        captureBytes: 32 * 2 ** 20,
        manifestLayers: 1000,
        configBytes: 8 * 2 ** 20,
        manifestBytes: 4 * 2 ** 20,
      },
      // The retry policy (KILN_RETRY_*; the engine's defaults).
      retry: { maxTries: 5, baseDelayMs: 500, maxDelayMs: 30000, maxTotalMs: 120000 },
    });
  });
});
