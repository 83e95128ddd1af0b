// End-to-end tests of the kiln web app in headless Chromium (Debian's /usr/bin/chromium)
// driven by playwright-core. scripts/test-app.sh builds dist/, serves it on loopback and
// sets KILN_APP_URL. Screenshots of every page at desktop and phone widths are saved
// under target/app-screenshots/.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createHash } from "node:crypto";
import { launchChromium } from "./chromium.mjs";

const URL_BASE = process.env.KILN_APP_URL || "http://127.0.0.1:8780/";
const REPO = process.env.KILN_REPO || path.resolve("../..");
const SHOTS = path.join(REPO, "target", "app-screenshots");
const VECTORS = path.join(REPO, "engine", "testdata", "gramine");
const T1_MRENCLAVE = "deb0d147ec1d47de844d864dd75b7d9169ea0f5bbeacad8c7e2ad3b827fd476b";
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };

let browser;
let profile;

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  profile = mkdtempSync(path.join(tmpdir(), "kiln-e2e-"));
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  rmSync(profile, { recursive: true, force: true });
});

async function open(hash, viewport = DESKTOP) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  // This static server has no /kiln-config.json (the kiln worker serves it): the page
  // asks for it to show the registry allowlist and does without; Chromium logs each 404.
  let configMisses = 0;
  page.on("response", (r) => {
    if (new URL(r.url()).pathname === "/kiln-config.json" && r.status() === 404) configMisses++;
  });
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    if (configMisses > 0 && /Failed to load resource: .*404/.test(m.text())) {
      configMisses--;
      return;
    }
    errors.push(m.text());
  });
  // Only loopback: the app must load nothing from elsewhere.
  const external = [];
  page.on("request", (r) => {
    const u = new URL(r.url());
    if (!["127.0.0.1", "localhost"].includes(u.hostname) && !u.protocol.startsWith("data")) {
      external.push(r.url());
    }
  });
  await page.goto(new URL(hash, URL_BASE).toString());
  await page.waitForSelector("header nav");
  return { context, page, errors, external };
}

async function shot(page, name) {
  // Nothing may overflow sideways (phone widths especially).
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `${name}: the page is ${overflow}px wider than the viewport`);
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

test("convert page: inline error names the field, curl hides the password", async () => {
  const { context, page, errors, external } = await open("#/convert");
  await page.fill("#f-inputImageName", "registry.example/app:1");
  await page.fill("#f-outputImageName", "registry.example/app-sgx:1");
  // The short path first: everything but the images is in collapsed sections.
  for (const d of ["d-creds", "d-enclave", "d-app", "d-fs", "d-adv"]) {
    assert.equal(await page.locator(`details#${d}`).getAttribute("open"), null, `${d} starts collapsed`);
  }
  await page.click("#d-creds > summary");
  await page.click("#d-enclave > summary");
  await page.fill("[id='f-inputAuthConfig.username']", "alice");
  await page.fill("[id='f-inputAuthConfig.password']", "hunter2-secret");
  await page.fill("#f-isvsvn", "70000");
  await page.press("#f-isvsvn", "Tab");
  const err = page.locator("#e-isvsvn .error");
  await err.waitFor();
  assert.match(await err.textContent(), /isvsvn: 70000 is out of range 0\.\.=65535/);
  assert.equal(await page.getAttribute("#f-isvsvn", "aria-invalid"), "true");
  await page.locator("details#d-enclave").screenshot({
    path: path.join(SHOTS, "convert-error-desktop.png"),
  });

  // A non-number is named too.
  await page.fill("#f-isvsvn", "abc");
  assert.match(await page.locator("#e-isvsvn .error").textContent(), /isvsvn: `abc` is not a whole number/);

  // A list row: an add and a relative path.
  await page.click("#d-fs > summary");
  await page.click("fieldset[data-field='roDirs'] button.add");
  await page.fill("fieldset[data-field='roDirs'] li.row input", "relative/dir");
  await page.press("fieldset[data-field='roDirs'] li.row input", "Tab");
  assert.match(await page.locator("#e-roDirs .error").textContent(), /roDirs\[0\]/);

  await page.click("text=Check the request");
  assert.match(await page.locator("[data-testid=form-status]").textContent(), /2 problems/);

  const curl = await page.locator("[data-testid=curl]").textContent();
  assert.match(curl, /curl -sS -X POST 'http:\/\/127\.0\.0\.1:\d+\/convert-image'/);
  assert.ok(!curl.includes("hunter2-secret"), "password leaked into curl");
  assert.ok(curl.includes("<password>"));
  assert.ok(curl.includes("-H 'Authorization: Bearer <your-kiln-api-token>'"), "the token header, as a placeholder");
  const json = JSON.parse(await page.locator("[data-testid=request-json]").textContent());
  assert.equal(json.inputImageName, "registry.example/app:1");
  assert.equal(json.inputAuthConfig.password, "<password>");
  assert.deepEqual(json.roDirs, ["relative/dir"]);

  // Fix both; the request is valid.
  await page.fill("#f-isvsvn", "3");
  await page.fill("fieldset[data-field='roDirs'] li.row input", "/");
  assert.match(await page.locator("[data-testid=form-status]").textContent(), /valid/);
  assert.equal(await page.locator("#e-isvsvn .error").count(), 0);

  // The result panel (stub) shows every response field with a copy button.
  await page.click("text=Preview the result panel");
  const panel = page.locator("[data-testid=result-panel]");
  await panel.waitFor();
  for (const f of ["newImage", "imageSHA", "imageSize", "isvprodid", "isvsvn", "mrenclave", "mrenclave2", "mrsigner"]) {
    assert.equal(await panel.locator(`.kv[data-field='${f}'] button.copy`).count(), 1, f);
  }
  await shot(page, "convert-desktop");
  await page.setViewportSize(PHONE);
  await shot(page, "convert-phone");
  assert.deepEqual(errors, []);
  assert.deepEqual(external, []);
  await context.close();
});

test("convert page: the form survives a reload without its password; a blocked Convert opens and focuses the field", async () => {
  const { context, page, errors } = await open("#/convert");
  await page.fill("#f-inputImageName", "registry.example/app:1");
  await page.fill("#f-outputImageName", "registry.example/app-sgx:1");
  await page.click("#d-creds > summary");
  await page.fill("[id='f-inputAuthConfig.username']", "alice");
  await page.fill("[id='f-inputAuthConfig.password']", "hunter2-secret");
  await page.click("#d-enclave > summary");
  await page.fill("#f-isvsvn", "70000");
  await page.press("#f-isvsvn", "Tab"); // its error shows (the layout moves) before the next click
  await page.click("#d-fs > summary");
  await page.click("fieldset[data-field='roDirs'] button.add");
  await page.fill("fieldset[data-field='roDirs'] li.row input", "/app");
  const saved = await page.evaluate(() => sessionStorage.getItem("kiln-convert-form"));
  assert.ok(saved.includes("registry.example/app-sgx:1"), saved);
  assert.ok(!saved.includes("hunter2"), "the password is never saved");
  await page.reload();
  await page.waitForSelector("#f-inputImageName");
  assert.equal(await page.inputValue("#f-inputImageName"), "registry.example/app:1");
  assert.equal(await page.inputValue("#f-outputImageName"), "registry.example/app-sgx:1");
  assert.equal(await page.inputValue("[id='f-inputAuthConfig.username']"), "alice");
  assert.equal(await page.inputValue("[id='f-inputAuthConfig.password']"), "", "the password is typed again");
  assert.equal(await page.inputValue("#f-isvsvn"), "70000");
  assert.equal(await page.inputValue("fieldset[data-field='roDirs'] li.row input"), "/app");
  // isvsvn is out of range, in a collapsed section: Convert is blocked and takes the user
  // to the field (section opened, field focused, its error shown).
  assert.equal(await page.locator("details#d-enclave").getAttribute("open"), null);
  await page.click("[data-testid=convert]");
  await page.waitForFunction(() => document.activeElement?.id === "f-isvsvn");
  assert.notEqual(await page.locator("details#d-enclave").getAttribute("open"), null);
  assert.match(await page.locator("#e-isvsvn .error").textContent(), /isvsvn: 70000 is out of range/);
  assert.deepEqual(errors, []);
  await context.close();
});

test("keys page: generate a WebCrypto key and see its MRSIGNER", async () => {
  const { context, page, errors } = await open("#/keys");
  await page.fill("#k-label", "e2e key");
  // A backup passphrase is required: too short and mistyped ones are refused, nothing made.
  await page.fill("#k-gen-pass", "too short");
  await page.fill("#k-gen-pass2", "too short");
  await page.click("text=Generate RSA-3072 e=3 key");
  assert.match(await page.locator("[data-testid=gen-error]").textContent(), /at least 12 characters/);
  await page.fill("#k-gen-pass", "e2e backup passphrase");
  await page.fill("#k-gen-pass2", "e2e backup passphrase.");
  await page.click("text=Generate RSA-3072 e=3 key");
  assert.match(await page.locator("[data-testid=gen-error]").textContent(), /differ/);
  assert.equal(await page.locator("li.key").count(), 0);
  await page.fill("#k-gen-pass2", "e2e backup passphrase");
  await page.click("text=Generate RSA-3072 e=3 key");
  const item = page.locator("li.key", { hasText: "e2e key" });
  await item.waitFor({ timeout: 60000 });
  // Its encrypted backup is offered at once; the passphrase fields are emptied.
  const link = page.locator("[data-testid=backup-download]");
  await link.waitFor();
  assert.match(await link.getAttribute("download"), /^kiln-key-e2e-key-[0-9a-f]{12}\.kilnkey\.json$/);
  const backup = JSON.parse(decodeURIComponent((await link.getAttribute("href")).replace(/^data:[^,]*,/, "")));
  assert.equal(backup.format, "kiln-signing-key-backup");
  assert.equal(backup.kdf.iterations, 600000);
  assert.equal(await page.inputValue("#k-gen-pass"), "");
  await shot(page, "keys-backup");
  const mrsigner = (await item.locator("[data-testid=mrsigner]").textContent()).trim();
  assert.match(mrsigner, /^[0-9a-f]{64}$/);
  assert.equal(await item.getAttribute("data-kind"), "webcrypto");
  assert.equal(backup.mrsigner, mrsigner);

  // The key persists (IndexedDB) across a reload.
  await page.reload();
  await page.locator("li.key", { hasText: "e2e key" }).waitFor();

  // Public key export as PEM SPKI.
  const again = page.locator("li.key", { hasText: "e2e key" });
  await again.locator("text=Export public key").click();
  const pem = await again.locator("pre.code").textContent();
  assert.match(pem, /^-----BEGIN PUBLIC KEY-----\n/);

  // A PEM with e = 65537 is refused, saying why (SGX needs e = 3); nothing is listed.
  const fs = await import("node:fs");
  const { generateKeyPairSync } = await import("node:crypto");
  const rsa65537 = generateKeyPairSync("rsa", { modulusLength: 3072, publicExponent: 65537 })
    .privateKey.export({ type: "pkcs8", format: "pem" });
  await page.fill("#k-pem", rsa65537);
  await page.fill("#k-imp-label", "e65537 key");
  await page.click("button:text-is('Import')");
  assert.match(await page.locator("[data-testid=import-error]").textContent(), /exponent is 65537; SGX needs e = 3/);
  assert.equal(await page.locator("li.key", { hasText: "e65537 key" }).count(), 0);
  // Its own backup while the key is stored: refused as a duplicate, naming the stored key.
  await page.fill("#k-pem", JSON.stringify(backup));
  await page.fill("#k-pem-pass", "e2e backup passphrase");
  await page.fill("#k-imp-label", "");
  await page.click("button:text-is('Import')");
  await page.waitForFunction(() => /already stored here as “e2e key”/.test(document.querySelector("[data-testid=import-error]")?.textContent ?? ""));
  assert.equal(await page.locator("li.key").count(), 1);
  await page.fill("#k-pem-pass", "");

  // Import the Gramine test key for this tab: its MRSIGNER is the t1 SIGSTRUCT's.
  await page.fill("#k-pem", fs.readFileSync(path.join(VECTORS, "test-key.pem"), "utf8"));
  await page.fill("#k-imp-label", "gramine test key");
  await page.click("button:text-is('Import')");
  const imported = page.locator("li.key", { hasText: "gramine test key" });
  await imported.waitFor();
  assert.equal(await imported.getAttribute("data-kind"), "session-pem");
  // MRSIGNER = SHA-256 of the little-endian modulus, stored at offset 128 of the SIGSTRUCT.
  const sig = fs.readFileSync(path.join(VECTORS, "t1.sig"));
  const t1Mrsigner = createHash("sha256").update(sig.subarray(128, 512)).digest("hex");
  assert.equal((await imported.locator("[data-testid=mrsigner]").textContent()).trim(), t1Mrsigner);
  // Kept encrypted under a passphrase: it survives a reload, the tab-only one does not.
  await page.fill("#k-pem", fs.readFileSync(path.join(VECTORS, "test-key.pem"), "utf8"));
  await page.fill("#k-imp-label", "sealed test key");
  await page.check("#k-keep");
  await page.fill("#k-store-pass", "short");
  await page.click("button:text-is('Import')");
  assert.match(await page.locator("#k-imp ~ .error, section[aria-labelledby=k-imp] .error").first().textContent(), /at least 8/);
  await page.fill("#k-store-pass", "a long enough passphrase");
  await page.click("button:text-is('Import')");
  const sealed = page.locator("li.key", { hasText: "sealed test key" });
  await sealed.waitFor({ timeout: 60000 });
  assert.equal(await sealed.getAttribute("data-kind"), "sealed-pem");
  assert.equal((await sealed.locator("[data-testid=mrsigner]").textContent()).trim(), t1Mrsigner);
  assert.equal(await page.inputValue("#k-pem"), "", "the PEM is cleared from the form after import");
  await shot(page, "keys-desktop");
  await page.setViewportSize(PHONE);
  await shot(page, "keys-phone");

  // Delete the generated key.
  page.once("dialog", (d) => d.accept());
  await again.locator("text=Delete").click();
  await page.locator("li.key", { hasText: "e2e key" }).waitFor({ state: "detached" });
  await page.reload();
  await page.locator("li.key", { hasText: "sealed test key" }).waitFor();
  assert.equal(await page.locator("li.key", { hasText: "gramine test key" }).count(), 0);
  assert.deepEqual(errors, []);
  await context.close();
});

test("verify page: t1 SIGSTRUCT and MRENCLAVE offline", async () => {
  const { context, page, errors } = await open("#/verify");
  await page.setInputFiles("#v-sig-file", path.join(VECTORS, "t1.sig"));
  await page.locator("[data-testid=sig-verdict]").waitFor();
  assert.match(await page.locator("[data-testid=sig-verdict]").textContent(), /Signature valid/);
  assert.equal((await page.locator("[data-testid=sig-mrenclave]").textContent()).trim(), T1_MRENCLAVE);

  await page.setInputFiles("#v-manifest", path.join(VECTORS, "t1.manifest.sgx"));
  await page.setInputFiles("#v-libpal", path.join(VECTORS, "libpal_test.so"));
  await page.locator("[data-testid=mrenclave]").waitFor();
  assert.equal((await page.locator("[data-testid=mrenclave]").textContent()).trim(), T1_MRENCLAVE);

  await page.fill("#v-expected", T1_MRENCLAVE.toUpperCase());
  assert.match(await page.locator("[data-testid=mrenclave-compare]").textContent(), /^Match/);
  await page.fill("#v-expected", "00".repeat(32));
  assert.match(await page.locator("[data-testid=mrenclave-compare]").textContent(), /^Mismatch/);
  await page.fill("#v-expected", T1_MRENCLAVE);

  // The registry part is there and enabled (convert.test.mjs drives it against a registry).
  assert.equal(await page.locator("#v-image").isDisabled(), false);
  assert.equal(await page.locator("[data-testid=verify-image]").isEnabled(), true);
  await shot(page, "verify-desktop");
  await page.setViewportSize(PHONE);
  await shot(page, "verify-phone");
  assert.deepEqual(errors, []);
  await context.close();
});

test("verify page: a running enclave's quote and collateral (dcap-qvl's real sample) in the tab", async () => {
  const ATTEST = path.join(REPO, "engine", "testdata", "attest");
  const SAMPLE_MRENCLAVE = "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb";
  const { context, page, errors } = await open("#/verify");
  const verdict = page.locator("[data-testid=attest-verdict]");
  // Nothing chosen: a message, no report.
  await page.click("[data-testid=attest-verify]");
  assert.match(await page.locator("[data-testid=attest-error]").textContent(), /certificate or quote/);

  await page.setInputFiles("#a-evidence", path.join(ATTEST, "sgx_quote"));
  await page.setInputFiles("#a-collateral", path.join(ATTEST, "sgx_quote_collateral.json"));
  await page.waitForFunction(() => /sgx_quote \(\d+ bytes\)/.test(document.body.textContent)
    && /sgx_quote_collateral\.json \(\d+ bytes\)/.test(document.body.textContent));
  await page.fill("#a-at", "2025-07-01T00:00:00Z");
  // Default policy: only UpToDate; the sample platform needs configuration and SW hardening.
  await page.click("[data-testid=attest-verify]");
  await verdict.waitFor();
  assert.match(await verdict.textContent(), /^Not verified: 1 check failed \(tcb-status\)/);
  assert.equal(await page.locator("[data-testid=attest-report]").getAttribute("data-passed"), "false");
  assert.equal((await page.locator("[data-testid=a-mrenclave]").textContent()).trim(), SAMPLE_MRENCLAVE);
  assert.equal((await page.locator("[data-testid=a-tcb-status]").textContent()).trim(), "ConfigurationAndSWHardeningNeeded");
  assert.match(await page.locator("[data-testid=a-advisories]").textContent(), /INTEL-SA-00289.*INTEL-SA-00615/);

  // Accept that status and pin the MRENCLAVE: every check passes.
  await page.check("#a-tcb-ConfigurationAndSWHardeningNeeded");
  await page.fill("#a-expect-mrenclave", SAMPLE_MRENCLAVE.toUpperCase());
  await page.click("[data-testid=attest-verify]");
  await page.waitForFunction(() => document.querySelector("[data-testid=attest-report]")?.dataset.passed === "true");
  assert.match(await verdict.textContent(), /^Verified: all \d+ checks passed/);
  assert.equal(await page.locator("[data-testid=attest-report] tr[data-check=expected-mrenclave]").getAttribute("data-status"), "pass");

  // Another MRENCLAVE expected: that check fails and names it.
  await page.fill("#a-expect-mrenclave", "00".repeat(32));
  await page.click("[data-testid=attest-verify]");
  await page.waitForFunction(() => document.querySelector("[data-testid=attest-report]")?.dataset.passed === "false");
  assert.match(await verdict.textContent(), /expected-mrenclave/);

  // One byte of the quote's signed body changed: refused by the verifier in the tab.
  const quote = readFileSync(path.join(ATTEST, "sgx_quote"));
  quote[100] ^= 0x01;
  await page.fill("#a-expect-mrenclave", "");
  await page.setInputFiles("#a-evidence", { name: "tampered.bin", mimeType: "application/octet-stream", buffer: quote });
  await page.waitForFunction(() => /tampered\.bin/.test(document.body.textContent));
  await page.click("[data-testid=attest-verify]");
  await page.waitForFunction(() => document.querySelector("[data-testid=attest-report]")?.dataset.passed === "false");
  assert.equal(await page.locator("[data-testid=attest-report] tr[data-check=quote-signature]").getAttribute("data-status"), "fail");

  // A time that is not one: the field is named.
  await page.fill("#a-at", "yesterday");
  await page.click("[data-testid=attest-verify]");
  assert.match(await page.locator("[data-testid=attest-error]").textContent(), /^Verify at: expected RFC 3339/);
  await shot(page, "verify-attest-desktop");
  assert.deepEqual(errors, []);
  await context.close();
});

test("keyboard: the sections are reachable and focus is visible", async () => {
  const { context, page } = await open("#/convert");
  await page.keyboard.press("Tab"); // skip link
  await page.keyboard.press("Tab");
  const focused = await page.evaluate(() => document.activeElement?.textContent);
  assert.equal(focused, "Convert");
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.notEqual(outline, "none");
  await page.keyboard.press("Tab");
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => location.hash === "#/keys");
  await page.locator("h1", { hasText: "Signing keys" }).waitFor();
  await context.close();
});
