// Hostile images and failing registries in the page's Web Worker (issue 16), in headless
// Chromium: the built web app served by kiln's worker in bare workerd (same origin: /proxy,
// /kiln-config.json), docker-registry on loopback, and the fault front (example fault_front)
// before it.
//   - 20% of GET/HEAD failing transiently: the conversion succeeds and every retry reaches the
//     page as a progress event of kind `retry`, and the progress panel shows each as a line in
//     plain words (app/src/ui/progress.rs); at most one per fault the front injected (workerd's
//     proxy may itself retry a reset on a reused connection);
//   - 100%: a clear failure and no tag;
//   - the deep-path and the gzip bombs (kiln_tests::bombs, example hostile_images): a failure
//     naming the layer and the limit, the Web Worker's wasm memory (reported in its console at
//     the end of a job, `kiln-engine-worker wasm memory: N bytes`) under 64 MB more than a
//     normal conversion's, and no tag.
// Needs what runtime.test.mjs needs plus the examples hostile_images and fault_front.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { chromium } from 'playwright-core';
import { startFaultFront } from '../../worker/test/lib/faultfront.mjs';
import { startRegistry } from '../../worker/test/lib/registry.mjs';
import { startWorker } from '../../worker/test/lib/worker.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const TARGET = process.env.CARGO_TARGET_DIR ?? path.join(ROOT, 'target');
const DIST = path.resolve(ROOT, process.env.KILN_APP_DIST ?? 'dist');
const EXAMPLES = path.join(TARGET, 'debug/examples');
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run'];
const MB = 1e6;
const MEMORY_LINE = /kiln-engine-worker wasm memory: (\d+) bytes/;

let t;
before(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-app-hostile-'));
  const stops = [];
  const keep = (x) => { stops.push(x.stop); return x; };
  try {
    const reg = keep(await startRegistry(dir, 'plain'));
    execFileSync(path.join(EXAMPLES, 'demo_images'), [reg.host], { stdio: ['ignore', 'pipe', 'inherit'] });
    const bombs = JSON.parse(execFileSync(path.join(EXAMPLES, 'hostile_images'),
      [reg.host, 'deep-path', 'gzip-bomb'], { stdio: ['ignore', 'pipe', 'inherit'] }).toString());
    const f20 = keep(await startFaultFront(reg.port, 20));
    const f100 = keep(await startFaultFront(reg.port, 100));
    const keyFile = path.join(dir, 'key.pem');
    execFileSync('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:3072',
      '-pkeyopt', 'rsa_keygen_pubexp:3', '-out', keyFile], { stdio: 'ignore' });
    const worker = keep(await startWorker({
      KILN_ASSETS_DIR: DIST,
      KILN_DEFAULT_SIGNING_KEY_FILE: keyFile,
      KILN_REGISTRY_ALLOWLIST: [reg, f20, f100].map((s) => `http://${s.host}`).join(','),
      KILN_ALLOW_LOOPBACK_REGISTRIES: '1',
      // The runtime image is read through the 20% front too.
      KILN_RUNTIME_IMAGE: `${f20.host}/kiln/runtime:fixture`,
      KILN_PROXY_TIMEOUT_SECS: '60',
      // Short waits between tries (sent to the page in /kiln-config.json).
      KILN_RETRY_BASE: '5ms',
      KILN_RETRY_CAP: '50ms',
    }));
    const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: FLAGS });
    const page = await browser.newPage();
    const console = [];
    page.on('console', (m) => console.push(m.text()));
    page.on('pageerror', (e) => console.push(`pageerror: ${e.message}`));
    await page.goto(`${worker.url}/`);
    await page.waitForFunction(() => window.wasmBindings && window.wasmBindings.kiln_convert, null,
      { timeout: 60000 });
    t = {
      reg, bombs, f20, f100, worker, page, console, pem: fs.readFileSync(keyFile, 'utf8'),
      async teardown() {
        await browser.close();
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
after(async () => { await t?.teardown(); });

/** Converts in the page's engine worker; resolves with every event (the last is terminal). */
function convert(request) {
  return t.page.evaluate(([request, pem]) => new Promise((resolve, reject) => {
    const events = [];
    const on = (json) => {
      const m = JSON.parse(json);
      events.push(m);
      if (m.type !== 'progress') resolve(events);
    };
    try {
      window.wasmBindings.kiln_convert(JSON.stringify(request), pem, on);
    } catch (e) { reject(new Error(String(e))); }
  }), [request, t.pem]);
}

/** The wasm memory the job's worker reported in its console after console line `from`. */
async function workerMemory(from) {
  for (let i = 0; i < 100; i += 1) {
    const line = t.console.slice(from).find((l) => MEMORY_LINE.test(l));
    if (line) return Number(MEMORY_LINE.exec(line)[1]);
    await sleep(50);
  }
  throw new Error(`no wasm memory line in the console:\n${t.console.slice(from).join('\n')}`);
}

const last = (events) => events[events.length - 1];
const tagged = async (repo, tag) => (await fetch(`${t.reg.url}/v2/${repo}/manifests/${tag}`, {
  method: 'HEAD',
  headers: { accept: 'application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json' },
})).status === 200;

let baseline;

describe('registry faults in the page', () => {
  it('20% transient faults: the conversion succeeds and the page gets every retry', async () => {
    const from = t.console.length;
    const events = await convert({
      inputImageName: `${t.f20.host}/sample/busybox:1`,
      outputImageName: `${t.f20.host}/out/faults:1`,
    });
    const end = last(events);
    assert.equal(end.type, 'converted', `${JSON.stringify(end)}\n${t.console.join('\n')}`);
    const stats = await t.f20.stats();
    const retries = events.filter((e) => e.type === 'progress' && e.event.kind === 'retry').map((e) => e.event);
    console.log(`# page through 20% faults: front ${JSON.stringify(stats)}, ${retries.length} retry events; first: ${JSON.stringify(retries[0])}`);
    assert.ok(stats.faults > 0, JSON.stringify(stats));
    // One event per retry the engine made: at most one per fault (a reset on a reused
    // connection may be retried by workerd's own HTTP client in the proxy, below the engine).
    assert.ok(retries.length >= 1 && retries.length <= stats.faults, JSON.stringify(retries));
    for (const r of retries) {
      assert.ok(r.operation && r.reason && r.attempt >= 2 && r.tries >= r.attempt, JSON.stringify(r));
      assert.ok(!/sha256:[0-9a-f]{13}/.test(r.operation), `digest shortened: ${r.operation}`);
    }
    assert.equal(await tagged('out/faults', '1'), true);
    baseline = await workerMemory(from);
    console.log(`# a normal conversion's worker: wasm memory ${(baseline / MB).toFixed(1)} MB`);
  });

  it('persistent faults: a clear failure, no tag', async () => {
    const events = await convert({
      inputImageName: `${t.f100.host}/sample/busybox:1`,
      outputImageName: `${t.reg.host}/out/persistent:1`,
    });
    const end = last(events);
    console.log(`# page through 100% faults: ${JSON.stringify(end).slice(0, 300)}`);
    assert.equal(end.type, 'failed', JSON.stringify(end));
    assert.equal(end.errorType, 'RegistryError', JSON.stringify(end));
    assert.match(end.reason, /input image/, JSON.stringify(end));
    assert.ok(events.some((e) => e.type === 'progress' && e.event.kind === 'retry'));
    assert.equal(await tagged('out/persistent', '1'), false);
  });
});

describe('bombs in the page', () => {
  for (const [name, limit] of [['deep-path', 'path-bytes'], ['gzip-bomb', 'layer-bytes']]) {
    it(`${name}: refused naming the layer and ${limit}, wasm memory flat, no tag`, async () => {
      const from = t.console.length;
      const t0 = performance.now();
      const events = await convert({
        inputImageName: t.bombs[name],
        outputImageName: `${t.reg.host}/out/${name}:1`,
      });
      const secs = (performance.now() - t0) / 1000;
      const end = last(events);
      const mem = await workerMemory(from);
      console.log(`# page ${name}: ${end.type} in ${secs.toFixed(1)} s, worker wasm memory ` +
        `${(mem / MB).toFixed(1)} MB: ${JSON.stringify(end).slice(0, 300)}`);
      assert.equal(end.type, 'failed', JSON.stringify(end));
      assert.equal(end.errorType, 'BadRequest', JSON.stringify(end));
      assert.match(end.reason, new RegExp(`${limit}=\\d+`), end.reason);
      assert.match(end.reason, /sha256:[0-9a-f]{12}/, end.reason);
      assert.ok(baseline, 'the normal conversion ran first');
      assert.ok(mem - baseline < 64 * MB, `worker wasm memory ${mem} vs ${baseline} for a normal conversion`);
      assert.equal(await tagged(`out/${name}`, '1'), false);
    });
  }
});

describe('the progress panel', () => {
  it('shows one line per retry in plain words', async () => {
    const before = (await t.f20.stats()).faults;
    await t.page.goto(`${t.worker.url}/#/convert`);
    await t.page.fill('#f-inputImageName', `${t.f20.host}/sample/busybox:1`);
    await t.page.fill('#f-outputImageName', `${t.f20.host}/out/faults-ui:1`);
    await t.page.selectOption('#c-key', 'pem');
    await t.page.fill('#c-pem', t.pem);
    await t.page.click('[data-testid=convert]');
    await t.page.waitForSelector('[data-testid=run-status].ok, [data-testid=run-error]', { timeout: 300000 });
    const err = await t.page.locator('[data-testid=run-error]').count();
    if (err) assert.fail(`failed: ${await t.page.locator('[data-testid=run-error]').textContent()}`);
    const faults = (await t.f20.stats()).faults - before;
    const lines = await t.page.locator('[data-testid=retries] li.retry').allTextContents();
    console.log(`# progress panel: ${faults} faults, ${lines.length} retry lines; first: ${lines[0]}`);
    // One line per retry the engine made: at most one per fault (a reset on a reused
    // connection may be retried by workerd's own HTTP client, below the engine), at least one.
    assert.ok(lines.length >= 1 && lines.length <= faults, `${faults} faults:\n${lines.join('\n')}`);
    for (const l of lines) {
      assert.match(l, /^Registry (busy|rate limit|error|request failed) \(.+\), retrying (GET|HEAD) .+ in \d+\.\d s, attempt \d of \d$/, l);
    }
    assert.equal(await tagged('out/faults-ui', '1'), true);
  });
});
