// The web app converting and verifying real images in headless Chromium (Debian's
// /usr/bin/chromium, playwright-core), everything on loopback:
//   docker-registry "plain" (anonymous: the busybox sample, the fixture runtime, most
//   outputs) and "basic" (htpasswd: (d) converts across to it), kiln's
//   worker in workerd serving the built app (dist/)
//   with its registry proxy, and in front of it a small recording HTTP proxy, so that every
//   request the page AND its Web Worker make is seen with its headers and body.
// scripts/test-app.sh builds what this needs and sets KILN_DIST, KILN_REPO, CARGO_TARGET_DIR.
//
// (a) a PEM (the worker's own default key) pasted into the page signs a browser conversion;
//     POST /convert-image of the same request to the worker gives the same mrenclave,
//     mrenclave2, mrsigner and digest;
// (b) a key generated in the page signs: the result's MRSIGNER is the key's;
// (c) the Verify page verifies the converted image (match) and shows a mismatch for a wrong
//     expected MRENCLAVE and for an image whose SIGSTRUCT was altered;
// (d) no request carries "PRIVATE KEY", the PEM body or the key's bytes, and the registry
//     password (typed as input and output credentials) travels only to /proxy/{registry}/
//     URLs: (d) converts from the anonymous registry to the basic-auth one, so the
//     password is sent (to /proxy/{basic}/ only) and the input layers cross registries.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { startRegistry } from "../../worker/test/lib/registry.mjs";
import { startWorker } from "../../worker/test/lib/worker.mjs";
import { freePort } from "../../worker/test/lib/procs.mjs";
import { launchChromium } from "./chromium.mjs";
import { tamperSigstruct } from "./tamper.mjs";

const REPO = process.env.KILN_REPO || path.resolve("../..");
const TARGET = process.env.CARGO_TARGET_DIR || path.join(REPO, "target");
const DIST = process.env.KILN_DIST || path.join(REPO, "dist");
const DEMO_IMAGES = path.join(TARGET, "debug/examples/demo_images");
const SHOTS = path.join(REPO, "target", "app-screenshots");
const CONVERT_TIMEOUT = 120_000;
const BACKUP_PASS = "e2e backup passphrase";

let env;

/**
 * A recording reverse proxy in front of the worker: the page's origin. Keeps method, URL,
 * headers and body of every request; the Host header is passed on, so the worker's
 * rewritten URLs (Location, token realm) point back here.
 */
async function startRecorder(target) {
  const port = await freePort();
  const log = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      log.push({ method: req.method, url: req.url, headers: { ...req.headers }, body });
      const up = http.request(
        { host: "127.0.0.1", port: target.port, method: req.method, path: req.url, headers: req.headers },
        (r) => {
          res.writeHead(r.statusCode, r.headers);
          r.pipe(res);
        },
      );
      up.on("error", (e) => {
        res.writeHead(502);
        res.end(String(e));
      });
      up.end(body);
    });
  });
  await new Promise((resolve) => server.listen(port, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${port}`,
    log,
    stop: () => new Promise((resolve) => server.close(resolve)),
  };
}

before(async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kiln-e2e-convert-"));
  const stops = [];
  const keep = (x) => { stops.push(x.stop); return x; };
  const user = "kiln-e2e";
  const password = `e2e-pw-${crypto.randomBytes(12).toString("hex")}`;
  const plain = keep(await startRegistry(dir, "plain"));
  const basic = keep(await startRegistry(dir, "basic", { basic: { user, password } }));
  execFileSync(DEMO_IMAGES, [plain.host], { stdio: ["ignore", "pipe", "inherit"] });
  const keyFile = path.join(dir, "default-key.pem");
  execFileSync("openssl", ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072",
    "-pkeyopt", "rsa_keygen_pubexp:3", "-out", keyFile], { stdio: "ignore" });
  const worker = keep(await startWorker({
    KILN_ASSETS_DIR: DIST,
    KILN_DEFAULT_SIGNING_KEY_FILE: keyFile,
    KILN_REGISTRY_ALLOWLIST: `http://${plain.host},http://${basic.host}`,
    KILN_ALLOW_LOOPBACK_REGISTRIES: "1",
    KILN_RUNTIME_IMAGE: `${plain.host}/kiln/runtime:fixture`,
    KILN_PROXY_TIMEOUT_SECS: "120",
  }));
  const recorder = keep(await startRecorder(worker));
  const browser = await launchChromium();
  stops.push(() => browser.close());
  const pem = fs.readFileSync(keyFile, "utf8");
  env = {
    dir, plain, basic, user, password, worker, recorder, browser, keyFile, pem,
    async teardown() {
      for (const s of stops.reverse()) await s();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
});

after(async () => { await env?.teardown(); });

/** A new context and page on the app; page errors and non-loopback requests collected. */
async function open(hash) {
  const context = await env.browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  const seen = [];
  // Requests Playwright reports (the page's; the Web Worker's where Chromium reports them).
  context.on("request", (r) => seen.push(r));
  // The worker serves the app with a strict CSP: every violation Chromium reports counts.
  const csp = [];
  page.on("console", (m) => { if (/Content Security Policy|Refused to/i.test(m.text())) csp.push(m.text()); });
  const doc = await page.goto(`${env.recorder.url}/${hash}`);
  await page.waitForSelector("header nav");
  return { context, page, errors, seen, csp, docHeaders: doc.headers() };
}

/** Fills the Convert form and converts in the page; returns the response JSON. */
async function convertInPage(page, { input, output, pem, creds = false }) {
  if (!page.url().endsWith("#/convert")) {
    await page.goto(`${env.recorder.url}/#/convert`);
  }
  await page.fill("#f-inputImageName", input);
  await page.fill("#f-outputImageName", output);
  if (creds) await page.click("#d-creds > summary"); // a collapsed section
  if (creds === true) {
    await page.fill("[id='f-inputAuthConfig.username']", env.user);
    await page.fill("[id='f-inputAuthConfig.password']", env.password);
  }
  if (creds) {
    await page.fill("[id='f-outputAuthConfig.username']", env.user);
    await page.fill("[id='f-outputAuthConfig.password']", env.password);
  }
  if (pem) {
    await page.selectOption("#c-key", "pem");
    await page.fill("#c-pem", pem);
  }
  await page.click("[data-testid=convert]");
  await page.waitForSelector("[data-testid=run-status].ok, [data-testid=run-error]", { timeout: CONVERT_TIMEOUT });
  const err = await page.locator("[data-testid=run-error]").count();
  if (err) {
    assert.fail(`the page's conversion failed: ${await page.locator("[data-testid=run-error]").textContent()}`);
  }
  const panel = page.locator("[data-testid=result-panel]");
  assert.equal(await panel.locator(".badge.warn").count(), 0, "a real result, not the sample");
  const json = await panel.locator("details pre.code").textContent();
  return JSON.parse(json);
}

function field(page, name) {
  return page.locator(`[data-testid=result-panel] .kv[data-field=${name}] dd code`).textContent();
}

let converted; // (a)'s output, verified in (c)

test("(a) a PEM pasted in the page signs; the worker's POST /convert-image gives the same measurements and digest", { timeout: 2 * CONVERT_TIMEOUT }, async () => {
  const { context, page, errors, csp, docHeaders } = await open("#/convert");
  // Served with the worker's strict CSP (no 'unsafe-inline', no 'unsafe-eval'), and the
  // whole conversion below runs under it without a single violation.
  const policy = docHeaders["content-security-policy"] ?? "";
  assert.match(policy, /^default-src 'none'; script-src 'self' 'wasm-unsafe-eval' 'sha256-/);
  assert.doesNotMatch(policy, /unsafe-inline|'unsafe-eval'/);
  assert.equal(docHeaders["x-content-type-options"], "nosniff");
  const input = `${env.plain.host}/sample/busybox:1`;
  const output = `${env.plain.host}/out/page:1`;
  // The allowlist is shown, and each image's registry checked against it as it is typed.
  await page.locator("[data-testid=allowlist]").waitFor();
  assert.ok((await page.locator("[data-testid=allowlist]").textContent()).includes(env.plain.host));
  await page.fill("#f-outputImageName", "127.0.0.1:1/out/nowhere:1");
  await page.waitForFunction(() => /127\.0\.0\.1:1 is not on this service's registry allowlist/.test(document.querySelector("[data-testid=allow-output]")?.textContent ?? ""));
  const r = await convertInPage(page, { input, output, pem: env.pem });
  assert.match(await page.locator("[data-testid=allow-output]").textContent(), /^✓ 127\.0\.0\.1:\d+ is on this service's registry allowlist/);
  assert.deepEqual(csp, [], "CSP violations");
  assert.equal(r.newImage, output);
  for (const k of ["mrenclave", "mrenclave2", "mrsigner"]) {
    assert.match(r[k], /^[0-9a-f]{64}$/, k);
    assert.equal(await field(page, k), r[k], `${k} shown`);
  }
  assert.match(r.digest, /^sha256:[0-9a-f]{64}$/);
  // Progress was drawn: steps and the layers.
  assert.ok(await page.locator("[data-testid=progress] li[data-step=push]").count() > 0, "push step shown");
  assert.ok(await page.locator("[data-testid=progress] li.layer").count() >= 2, "a row per layer");
  await page.screenshot({ path: path.join(SHOTS, "convert-done.png"), fullPage: true });

  // The same request through the worker's API, signed with its default key (the same PEM).
  const res = await fetch(`${env.worker.url}/convert-image`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      inputImageName: input,
      outputImageName: output,
    }),
  });
  const text = await res.text();
  assert.equal(res.status, 200, text);
  const w = JSON.parse(text);
  for (const k of ["mrenclave", "mrenclave2", "mrsigner", "digest", "imageSize", "memSize"]) {
    assert.equal(r[k], w[k], `${k}: page ${r[k]} vs worker ${w[k]}`);
  }
  converted = r;
  // The result links to verifying that image, pre-filled with the image and both
  // measurements to expect.
  await page.click("[data-testid=verify-link]");
  await page.waitForFunction(() => location.hash.startsWith("#/verify?"));
  await page.locator("#v-image").waitFor();
  assert.equal(await page.inputValue("#v-image"), output);
  assert.equal(await page.inputValue("#v-exp-mrenclave"), r.mrenclave);
  assert.equal(await page.inputValue("#v-exp-mrsigner"), r.mrsigner);
  assert.deepEqual(errors, []);
  await context.close();
});

test("(b) a key generated in the page signs: MRSIGNER is the key's", { timeout: 2 * CONVERT_TIMEOUT }, async () => {
  const { context, page, errors } = await open("#/keys");
  await page.fill("#k-label", "e2e key");
  await page.fill("#k-gen-pass", BACKUP_PASS);
  await page.fill("#k-gen-pass2", BACKUP_PASS);
  await page.click("text=Generate RSA-3072 e=3 key");
  const key = page.locator("[data-testid=key-list] li.key").first();
  await key.waitFor({ timeout: 60_000 });
  const keyMrsigner = (await key.locator("[data-testid=mrsigner]").textContent()).trim();
  assert.match(keyMrsigner, /^[0-9a-f]{64}$/);
  await page.goto(`${env.recorder.url}/#/convert`);
  // The stored key is offered first.
  await page.waitForFunction(() => document.querySelector("#c-key")?.value !== "pem");
  assert.equal((await page.locator("[data-testid=run-mrsigner]").textContent()).trim(), keyMrsigner);
  const r = await convertInPage(page, {
    input: `${env.plain.host}/sample/busybox:1`,
    output: `${env.plain.host}/out/generated:1`,
  });
  assert.equal(r.mrsigner, keyMrsigner);
  assert.notEqual(r.mrsigner, converted?.mrsigner, "another key than the worker's");
  // The result was brought into view when the conversion ended.
  await page.waitForFunction(() => {
    const b = document.querySelector("[data-testid=result-panel]")?.getBoundingClientRect();
    return b && b.top < window.innerHeight && b.bottom > 0;
  }, null, { timeout: 5_000 });
  // The layers are cached now: usage shows them; clearing empties it.
  const usage = page.locator("[data-testid=cache-usage]");
  await page.waitForFunction(() => /^[1-9]\d* layers? cached/.test(document.querySelector("[data-testid=cache-usage]")?.textContent ?? ""));
  await page.click("[data-testid=cache-clear]");
  await page.waitForFunction(() => /^0 layers cached/.test(document.querySelector("[data-testid=cache-usage]")?.textContent ?? ""));
  assert.match(await usage.textContent(), /^0 layers cached/);
  assert.deepEqual(errors, []);
  await context.close();
});

async function verifyInPage(page, { image, mrenclave, mrsigner }) {
  await page.fill("#v-image", image);
  await page.fill("#v-user", env.user);
  await page.fill("#v-pass", env.password);
  await page.fill("#v-exp-mrenclave", mrenclave ?? "");
  await page.fill("#v-exp-mrsigner", mrsigner ?? "");
  await page.click("[data-testid=verify-image]");
  await page.waitForSelector("[data-testid=image-report], [data-testid=verify-error]", { timeout: CONVERT_TIMEOUT });
  const err = page.locator("[data-testid=verify-error]");
  if (await err.count()) assert.fail(`verification failed to run: ${await err.textContent()}`);
  return page.locator("[data-testid=image-report]");
}

test("(c) Verify page: the converted image matches; a wrong MRENCLAVE and an altered SIGSTRUCT do not", { timeout: 3 * CONVERT_TIMEOUT }, async () => {
  assert.ok(converted, "(a) ran first");
  const { context, page, errors } = await open("#/verify");
  const image = `${env.plain.host}/out/page:1`;
  let rep = await verifyInPage(page, { image, mrenclave: converted.mrenclave, mrsigner: converted.mrsigner });
  assert.equal(await rep.getAttribute("data-passed"), "true", await rep.textContent());
  assert.match(await page.locator("[data-testid=image-verdict]").textContent(), /^Verified/);
  assert.equal((await page.locator("[data-testid=v-mrenclave-sgx1]").textContent()).trim(), converted.mrenclave);
  assert.equal((await page.locator("[data-testid=v-mrenclave-edmm]").textContent()).trim(), converted.mrenclave2);
  assert.equal((await page.locator("[data-testid=v-mrsigner]").textContent()).trim(), converted.mrsigner);
  assert.ok(await page.locator("tr.check[data-status=pass]").count() >= 5, "every check listed");
  assert.equal(await page.locator("tr.check[data-check=expected-mrenclave][data-status=pass]").count(), 1);
  // Both SIGSTRUCTs with every field: their ENCLAVEHASH is the response's measurement.
  for (const [name, hash] of [["sgx1", converted.mrenclave], ["edmm", converted.mrenclave2]]) {
    const sig = page.locator(`[data-testid=v-sigstructs] details[data-enclave=${name}]`);
    await sig.locator(":scope > summary").click();
    assert.equal((await sig.locator("[data-testid=sig-mrenclave]").textContent()).trim(), hash);
    assert.equal((await sig.locator("[data-testid=sig-mrsigner]").textContent()).trim(), converted.mrsigner);
    assert.match(await sig.locator("[data-testid=sig-verdict]").textContent(), /Signature valid/);
    assert.match(await sig.textContent(), /ATTRIBUTES\.FLAGS/);
  }
  await page.screenshot({ path: path.join(SHOTS, "verify-image-match.png"), fullPage: true });

  // A wrong expected MRENCLAVE.
  const wrong = converted.mrenclave.replace(/^./, (c) => (c === "0" ? "1" : "0"));
  rep = await verifyInPage(page, { image, mrenclave: wrong });
  assert.equal(await rep.getAttribute("data-passed"), "false");
  assert.match(await page.locator("[data-testid=image-verdict]").textContent(), /^Mismatch: .*expected-mrenclave.*not the one you expected/);
  assert.equal(await page.locator("tr.check[data-check=expected-mrenclave][data-status=fail]").count(), 1);
  await page.screenshot({ path: path.join(SHOTS, "verify-image-mismatch.png"), fullPage: true });

  // The same image with one byte of its SGX1 SIGSTRUCT altered, pushed as another tag.
  const tampered = await tamperSigstruct(env.plain, "out/page", "1", "tampered", { user: env.user, password: env.password });
  rep = await verifyInPage(page, { image: `${env.plain.host}/out/page:tampered` });
  assert.equal(await rep.getAttribute("data-passed"), "false", `tampered ${tampered}`);
  assert.match(await page.locator("[data-testid=image-verdict]").textContent(), /^Mismatch: .*(altered|SIGSTRUCT)/);
  assert.deepEqual(errors, []);
  await context.close();
});

test("(d) no key material leaves the page; the registry password goes only to /proxy/ of its registry", { timeout: 2 * CONVERT_TIMEOUT }, async () => {
  const { context, page, errors, seen } = await open("#/convert");
  const start = env.recorder.log.length;
  await convertInPage(page, {
    input: `${env.plain.host}/sample/busybox:1`,
    output: `${env.basic.host}/out/watched:1`,
    pem: env.pem,
    creds: "output",
  });
  const recorded = env.recorder.log.slice(start);
  assert.ok(recorded.some((r) => r.url.startsWith(`/proxy/${env.basic.host}/`) && r.method === "PUT"),
    "the Web Worker's registry traffic went through the recorder");

  // What must never leave: the PEM's text and body lines, and the key's bytes (PKCS#8 DER,
  // the private exponent and primes), raw, hex and base64.
  const key = crypto.createPrivateKey(env.pem);
  const der = key.export({ type: "pkcs8", format: "der" });
  const jwk = key.export({ format: "jwk" });
  const pemBody = env.pem.split("\n").filter((l) => l && !l.startsWith("-----"));
  const secrets = ["PRIVATE KEY", ...pemBody.slice(1, -1)];
  const b64url = (s) => Buffer.from(s, "base64url");
  const keyBytes = [der.subarray(40, 72), b64url(jwk.d).subarray(8, 40), b64url(jwk.p).subarray(8, 40), b64url(jwk.q).subarray(8, 40)];
  for (const b of keyBytes) secrets.push(b.toString("hex"), b.toString("base64").slice(4, 36), b.toString("base64url").slice(4, 36));
  const pw = env.password;
  const basicB64 = Buffer.from(`${env.user}:${pw}`).toString("base64");

  const problems = [];
  let passwordSeen = 0;
  const check = (where, url, headers, body) => {
    const text = [url, JSON.stringify(headers), body.toString("latin1")].join("\n");
    for (const s of secrets) if (text.includes(s)) problems.push(`${where} ${url}: carries key material (${s.slice(0, 12)}…)`);
    for (const b of keyBytes) if (body.includes(b)) problems.push(`${where} ${url}: body carries key bytes`);
    const hasPw = text.includes(pw) || text.includes(basicB64) || text.includes(encodeURIComponent(pw));
    if (hasPw) {
      passwordSeen++;
      if (!url.startsWith(`/proxy/${env.basic.host}/`)) problems.push(`${where} ${url}: carries the registry password`);
    }
  };
  for (const r of recorded) check("recorded", r.url, r.headers, r.body);
  // Playwright's view too (page requests; the Web Worker's if Chromium reports them).
  for (const r of seen) {
    const u = new URL(r.url());
    assert.ok(["127.0.0.1", "localhost"].includes(u.hostname) || u.protocol === "data:" || u.protocol === "blob:", `non-loopback request ${r.url()}`);
    const headers = await r.allHeaders().catch(() => ({}));
    check("playwright", u.pathname + u.search, headers, r.postDataBuffer() ?? Buffer.alloc(0));
  }
  assert.deepEqual(problems, []);
  assert.ok(passwordSeen > 0, "the output registry's challenge was answered with the password");
  console.log(`(d) ${recorded.length} requests recorded, ${seen.length} seen by Playwright, ${passwordSeen} carried the password (all to /proxy/)`);
  await page.screenshot({ path: path.join(SHOTS, "convert-watched.png"), fullPage: true });
  assert.deepEqual(errors, []);
  await context.close();
});

test("(e) a generated key's encrypted backup restores it in a fresh browser profile: same MRSIGNER; a wrong passphrase stores nothing", { timeout: 3 * CONVERT_TIMEOUT }, async () => {
  // Profile 1: generate with a backup, download the file, convert, then delete the key.
  const one = await open("#/keys");
  await one.page.fill("#k-label", "backed up key");
  await one.page.fill("#k-gen-pass", BACKUP_PASS);
  await one.page.fill("#k-gen-pass2", BACKUP_PASS);
  await one.page.click("text=Generate RSA-3072 e=3 key");
  const link = one.page.locator("[data-testid=backup-download]");
  await link.waitFor({ timeout: 60_000 });
  const [download] = await Promise.all([one.page.waitForEvent("download"), link.click()]);
  const file = path.join(env.dir, download.suggestedFilename());
  await download.saveAs(file);
  const text = fs.readFileSync(file, "utf8");
  assert.ok(!text.includes(BACKUP_PASS), "the passphrase is not in the file");
  assert.doesNotMatch(text, /PRIVATE KEY/);
  const keyMrsigner = (await one.page.locator("li.key", { hasText: "backed up key" }).locator("[data-testid=mrsigner]").textContent()).trim();
  assert.equal(JSON.parse(text).mrsigner, keyMrsigner);
  await one.page.goto(`${env.recorder.url}/#/convert`);
  await one.page.waitForFunction(() => document.querySelector("#c-key")?.value !== "pem");
  const before = await convertInPage(one.page, {
    input: `${env.plain.host}/sample/busybox:1`,
    output: `${env.plain.host}/out/backed-up:1`,
  });
  assert.equal(before.mrsigner, keyMrsigner);
  await one.page.goto(`${env.recorder.url}/#/keys`);
  one.page.once("dialog", (d) => d.accept());
  await one.page.locator("li.key", { hasText: "backed up key" }).locator("text=Delete").click();
  await one.page.locator("li.key", { hasText: "backed up key" }).waitFor({ state: "detached" });
  assert.deepEqual(one.errors, []);
  await one.context.close();

  // Profile 2 (a new browser context: empty IndexedDB, as after clearing site data).
  const two = await open("#/keys");
  const { page } = two;
  await page.setInputFiles("#k-file", file);
  await page.waitForFunction(() => document.querySelector("#k-pem")?.value.includes("kiln-signing-key-backup"));
  await page.locator("[data-testid=import-kind]").waitFor();
  await page.fill("#k-pem-pass", "not the passphrase");
  await page.click("button:text-is('Import')");
  await page.waitForFunction(() => /wrong passphrase.*Nothing was stored/.test(document.querySelector("[data-testid=import-error]")?.textContent ?? ""), null, { timeout: 30_000 });
  assert.equal(await page.locator("li.key").count(), 0, "nothing stored on a wrong passphrase");
  await page.fill("#k-pem-pass", BACKUP_PASS);
  await page.click("button:text-is('Import')");
  const restored = page.locator("li.key", { hasText: "backed up key" });
  await restored.waitFor({ timeout: 30_000 });
  assert.equal(await restored.getAttribute("data-kind"), "webcrypto");
  assert.equal((await restored.locator("[data-testid=mrsigner]").textContent()).trim(), keyMrsigner);
  assert.equal(await page.inputValue("#k-pem-pass"), "", "the passphrase is cleared");
  await page.screenshot({ path: path.join(SHOTS, "keys-restored.png"), fullPage: true });
  await page.goto(`${env.recorder.url}/#/convert`);
  await page.waitForFunction(() => document.querySelector("#c-key")?.value !== "pem");
  const after = await convertInPage(page, {
    input: `${env.plain.host}/sample/busybox:1`,
    output: `${env.plain.host}/out/restored:1`,
  });
  assert.equal(after.mrsigner, keyMrsigner, "the restored key signs with the same MRSIGNER");
  assert.equal(after.mrenclave, before.mrenclave);
  assert.deepEqual(two.errors, []);
  await two.context.close();
});
