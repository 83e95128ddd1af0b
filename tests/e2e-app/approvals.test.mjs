// The Approvals page (#/approvals) against kiln's worker in workerd, everything on
// loopback: docker-registry "plain" with the busybox sample and the fixture runtime
// (example demo_images), the worker serving the built app (dist/) with API tokens
// `ci` (conversions) and `ops` (admin scope), its approvals in the in-memory Durable
// Object. scripts/test-app.sh builds what this needs and sets KILN_DIST, KILN_REPO,
// CARGO_TARGET_DIR (KILN_DEMO_IMAGES may name the demo_images binary).
//
// (a) a conversion through POST /convert-image with a MANAGER_CA certificate is listed
//     as pending in the page; the page approves it (the API then answers approved) and
//     revokes it after the confirmation (cancel first leaves it approved);
// (b) a wrong token shows the API's 401 reason, a token without the admin scope its 403
//     reason; no token is in the page's HTML, text, URL, storage, console or the worker's
//     log, and the page sent tokens only in the Authorization header;
// (c) registering an image converted elsewhere shows a new pending record (a bad field
//     shows the API's reason naming it); the status filter lists only that status;
// (d) registering by a verify report: a real report of a converted image (POST
//     /verify-image, the engine's VerifyReport as `kiln verify --json` prints it) dropped
//     on the page registers its enclaves (the record the conversion made, subjects added);
//     a failed report (an --expect-mrenclave that does not match) pasted is refused with
//     the API's reason naming verifyReport.passed.
// Every record shows its times (recorded, last change) in UTC.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { startRegistry } from "../../worker/test/lib/registry.mjs";
import { startWorker } from "../../worker/test/lib/worker.mjs";
import { launchChromium } from "./chromium.mjs";

const REPO = process.env.KILN_REPO || path.resolve("../..");
const TARGET = process.env.CARGO_TARGET_DIR || path.join(REPO, "target");
const DIST = process.env.KILN_DIST || path.join(REPO, "dist");
const DEMO_IMAGES = process.env.KILN_DEMO_IMAGES || path.join(TARGET, "debug/examples/demo_images");
const SHOTS = path.join(REPO, "target", "app-screenshots");
const SUBJECT = "app.example";
const sha256hex = (s) => crypto.createHash("sha256").update(s).digest("hex");

let env;

before(async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kiln-e2e-approvals-"));
  const stops = [];
  const keep = (x) => { stops.push(x.stop); return x; };
  try {
    const plain = keep(await startRegistry(dir, "plain"));
    execFileSync(DEMO_IMAGES, [plain.host], { stdio: ["ignore", "pipe", "inherit"] });
    const keyFile = path.join(dir, "default-key.pem");
    execFileSync("openssl", ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072",
      "-pkeyopt", "rsa_keygen_pubexp:3", "-out", keyFile], { stdio: "ignore" });
    const ciToken = `ci-${crypto.randomBytes(16).toString("hex")}`;
    const opsToken = `ops-${crypto.randomBytes(16).toString("hex")}`;
    const wrongToken = `wrong-${crypto.randomBytes(16).toString("hex")}`;
    const worker = keep(await startWorker({
      KILN_ASSETS_DIR: DIST,
      KILN_DEFAULT_SIGNING_KEY_FILE: keyFile,
      KILN_REGISTRY_ALLOWLIST: `http://${plain.host}`,
      KILN_ALLOW_LOOPBACK_REGISTRIES: "1",
      KILN_RUNTIME_IMAGE: `${plain.host}/kiln/runtime:fixture`,
      KILN_PROXY_TIMEOUT_SECS: "60",
      KILN_API_TOKENS: `ci ${sha256hex(ciToken)}\nops ${sha256hex(opsToken)} admin\n`,
    }));
    const browser = await launchChromium();
    stops.push(() => browser.close());
    env = {
      plain, worker, browser, ciToken, opsToken, wrongToken,
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

after(async () => { await env?.teardown(); });

/** The operator API, called directly (the test's check of what the page did). */
async function api(method, p, { token = env.opsToken, body } = {}) {
  const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };
  const res = await fetch(`${env.worker.url}${p}`, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: JSON.parse(text), text };
}

const recordOf = async (id) => (await api("GET", "/approvals")).json.records.find((r) => r.id === id);

/** The page, with its console, errors and requests collected. */
async function open() {
  const context = await env.browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  const console = [];
  page.on("console", (m) => console.push(m.text()));
  page.on("pageerror", (e) => console.push(`pageerror: ${e}`));
  const requests = [];
  page.on("request", (r) => requests.push(r));
  await page.goto(`${env.worker.url}/#/approvals`);
  await page.waitForSelector("#ap-token");
  return { context, page, console, requests };
}

/** Types a token and loads the records; waits for the table or the error. */
async function load(page, token) {
  await page.fill("#ap-token", token);
  await page.click("[data-testid=ap-load]");
  await page.waitForFunction(() =>
    document.querySelector("[data-testid=ap-table], [data-testid=ap-empty]")
    || document.querySelector("[data-testid=ap-error]")?.textContent);
}

/** Unix seconds as the page shows them: `2026-12-07 20:55Z`. */
const utc = (secs) => `${new Date(secs * 1000).toISOString().slice(0, 16).replace("T", " ")}Z`;

const row = (page, id) => page.locator(`tr[data-id="${id}"]`);

async function waitStatus(page, id, status) {
  await page.waitForSelector(`tr[data-id="${id}"][data-status="${status}"]`, { timeout: 15_000 });
}

test("a conversion with a MANAGER_CA certificate is approved, then revoked after confirming", async () => {
  const r = await fetch(`${env.worker.url}/convert-image`, {
    method: "POST",
    headers: { authorization: `Bearer ${env.ciToken}`, "content-type": "application/json" },
    body: JSON.stringify({
      inputImageName: `${env.plain.host}/sample/busybox:1`,
      outputImageName: `${env.plain.host}/out/managed:1`,
      certificates: [{ issuer: "MANAGER_CA", subject: SUBJECT, keyPath: "/tmp/k.pem", certPath: "/tmp/c.pem" }],
    }),
  });
  const conv = await r.json();
  assert.equal(r.status, 200, JSON.stringify(conv));
  const listed = (await api("GET", "/approvals")).json.records.find((x) => x.mrenclave === conv.mrenclave);
  assert.ok(listed, "the conversion is recorded");

  const { context, page, console } = await open();
  // The edge URL is the worker serving the page.
  assert.equal(await page.inputValue("#ap-origin"), env.worker.url);
  await load(page, env.opsToken);
  const tr = row(page, listed.id);
  await waitStatus(page, listed.id, "pending");
  const cells = await tr.locator("code[data-full]").evaluateAll((els) => els.map((e) => [e.dataset.full, e.title, e.textContent]));
  assert.deepEqual(cells.map((c) => c[0]), [conv.mrenclave, conv.mrenclave2, conv.mrsigner]);
  for (const [full, title, shown] of cells) {
    assert.equal(title, full, "the full value on hover");
    assert.equal(shown, `${full.slice(0, 8)}…${full.slice(-8)}`);
  }
  const text = await tr.innerText();
  assert.match(text, new RegExp(`${conv.isvprodid} / ${conv.isvsvn}`));
  // The times: the API's Unix seconds, shown in UTC to the minute.
  assert.ok(listed.createdAt > 1_700_000_000 && listed.updatedAt >= listed.createdAt, JSON.stringify(listed));
  assert.ok(Math.abs(listed.createdAt - Date.now() / 1000) < 600, "createdAt is now");
  const shownTime = await tr.locator("[data-testid=ap-created]").innerText();
  assert.equal(shownTime, utc(listed.createdAt));
  assert.match(shownTime, /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}Z$/);
  assert.ok(text.includes(`${env.plain.host}/out/managed:1`), text);
  assert.ok(text.includes(SUBJECT), text);
  // Accessible: headers with scope, labelled inputs, named buttons.
  assert.ok((await page.locator("table[data-testid=ap-table] th[scope=col]").count()) >= 9);
  assert.equal(await page.getByLabel("API token (admin scope)").count(), 1);
  assert.equal(await page.getByRole("button", { name: `Approve record ${listed.id}` }).count(), 1);

  await tr.locator("[data-testid=ap-approve]").click();
  await waitStatus(page, listed.id, "approved");
  const approved = await recordOf(listed.id);
  assert.equal(approved.status, "approved");
  assert.equal(approved.createdAt, listed.createdAt, "createdAt kept");
  assert.ok(approved.updatedAt >= listed.updatedAt);
  assert.equal(await tr.locator("[data-testid=ap-updated]").innerText(), utc(approved.updatedAt));
  assert.equal(await tr.locator("[data-testid=ap-approve]").count(), 0);

  // Revoke asks first and says it is final; Cancel changes nothing.
  await tr.locator("[data-testid=ap-revoke]").click();
  const confirm = page.locator("[data-testid=ap-confirm]");
  await confirm.waitFor();
  assert.match(await confirm.innerText(), /final/);
  assert.equal(await page.getByRole("alertdialog").count(), 1);
  await page.click("[data-testid=ap-revoke-cancel]");
  assert.equal(await confirm.count(), 0);
  assert.equal((await recordOf(listed.id)).status, "approved");
  await tr.locator("[data-testid=ap-revoke]").click();
  await page.screenshot({ path: path.join(SHOTS, "approvals-confirm.png"), fullPage: true });
  await page.click("[data-testid=ap-revoke-confirm]");
  await waitStatus(page, listed.id, "revoked");
  assert.equal((await recordOf(listed.id)).status, "revoked");
  assert.equal(await tr.locator("button").filter({ hasText: /Approve|Revoke/ }).count(), 0);
  assert.deepEqual(console.filter((m) => /error|panic/i.test(m)), []);
  await context.close();
});

test("a wrong token shows the API's reason, and no token is shown or kept", async () => {
  const { context, page, console, requests } = await open();
  await load(page, env.wrongToken);
  const err = page.locator("[data-testid=ap-error]");
  assert.match(await err.innerText(), /^401 Unauthorized: \S/);
  await load(page, env.ciToken);
  await page.waitForFunction(() => /^403/.test(document.querySelector("[data-testid=ap-error]").textContent));
  assert.match(await err.innerText(), /^403 Forbidden: .*admin scope/);
  assert.equal(await page.locator("[data-testid=ap-table]").count(), 0);
  // A token the browser could not put in a header is refused before any request.
  const before = requests.length;
  await page.fill("#ap-token", `${env.opsToken} x`);
  await page.click("[data-testid=ap-load]");
  assert.match(await err.innerText(), /^API token: only visible ASCII/);
  assert.equal(requests.length, before);
  // Loaded with the right one, then forgotten.
  await load(page, env.opsToken);
  await page.waitForSelector("[data-testid=ap-table]");
  await page.screenshot({ path: path.join(SHOTS, "approvals.png"), fullPage: true });
  const html = await page.content();
  const shown = await page.locator("body").innerText();
  const storage = await page.evaluate(() => JSON.stringify([{ ...localStorage }, { ...sessionStorage }, location.href]));
  for (const t of [env.opsToken, env.ciToken, env.wrongToken]) {
    for (const [where, s] of [["HTML", html], ["text", shown], ["storage/URL", storage],
      ["console", console.join("\n")], ["worker log", env.worker.lines.join("\n")]]) {
      assert.ok(!s.includes(t), `a token is in the page's ${where}`);
    }
  }
  const apiCalls = requests.filter((r) => new URL(r.url()).pathname.startsWith("/approvals"));
  assert.ok(apiCalls.length >= 3);
  for (const r of apiCalls) {
    assert.ok(!r.url().includes("ops-") && !r.url().includes("ci-"), r.url());
    assert.match((await r.allHeaders()).authorization ?? "", /^Bearer /);
  }
  await page.click("[data-testid=ap-forget]");
  assert.equal(await page.inputValue("#ap-token"), "");
  assert.equal(await page.locator("[data-testid=ap-table]").count(), 0);
  await context.close();
});

test("registering an image converted elsewhere shows a new pending record; the filter", async () => {
  const hex = () => crypto.randomBytes(32).toString("hex");
  const mrenclave = hex();
  const mrenclave2 = hex();
  const mrsigner = hex();
  const { context, page } = await open();
  await load(page, env.opsToken);
  await page.fill("#ap-r-mrenclave", mrenclave);
  await page.fill("#ap-r-mrenclave2", mrenclave2);
  await page.fill("#ap-r-mrsigner", "00");
  await page.fill("#ap-r-isvprodid", "7");
  await page.fill("#ap-r-isvsvn", "3");
  await page.fill("#ap-r-image", "registry.example/elsewhere-sgx:2");
  await page.fill("#ap-r-subjects", "a.example, b.example");
  await page.click("[data-testid=ap-register]");
  const err = page.locator("[data-testid=ap-error]");
  await page.waitForFunction(() => document.querySelector("[data-testid=ap-error]").textContent);
  assert.match(await err.innerText(), /^400 BadRequest: mrsigner: expected 64 hex digits/);
  // The form keeps what was typed; a number out of range is named before sending.
  await page.fill("#ap-r-isvsvn", "70000");
  await page.click("[data-testid=ap-register]");
  assert.match(await err.innerText(), /^isvSvn: /);
  await page.fill("#ap-r-isvsvn", "3");
  await page.fill("#ap-r-mrsigner", mrsigner);
  await page.click("[data-testid=ap-register]");
  await page.waitForFunction(() => /Registered as record/.test(document.querySelector("[data-testid=ap-status]").textContent));
  const rec = (await api("GET", "/approvals")).json.records.find((r) => r.mrenclave === mrenclave);
  assert.ok(rec, "registered");
  assert.deepEqual(
    [rec.status, rec.mrenclave2, rec.mrsigner, rec.isvProdId, rec.isvSvn, rec.image, rec.allowedSubjects],
    ["pending", mrenclave2, mrsigner, 7, 3, "registry.example/elsewhere-sgx:2", ["a.example", "b.example"]]);
  await waitStatus(page, rec.id, "pending");
  assert.equal(await err.isVisible(), false);
  // The filter: only pending records, then only revoked ones.
  await page.selectOption("#ap-filter", "pending");
  const statuses = () => page.locator("tr[data-id]").evaluateAll((els) => els.map((e) => e.dataset.status));
  assert.ok((await statuses()).length >= 1);
  assert.ok((await statuses()).every((s) => s === "pending"));
  await page.selectOption("#ap-filter", "revoked");
  assert.ok((await statuses()).every((s) => s === "revoked"));
  assert.equal(await row(page, rec.id).count(), 0);
  await context.close();
});

test("registering by a kiln verify report: a real report registers, a failed one is refused", async () => {
  // A conversion (no certificates): the worker records it as pending without subjects.
  const out = `${env.plain.host}/out/reported:1`;
  const r = await fetch(`${env.worker.url}/convert-image`, {
    method: "POST",
    headers: { authorization: `Bearer ${env.ciToken}`, "content-type": "application/json" },
    body: JSON.stringify({ inputImageName: `${env.plain.host}/sample/busybox:1`, outputImageName: out }),
  });
  const conv = await r.json();
  assert.equal(r.status, 200, JSON.stringify(conv));
  // Its verify report, from the worker's POST /verify-image (the engine's `verify`, the
  // report `kiln verify --json` prints); and a failed one.
  const verify = async (extra) => {
    const res = await fetch(`${env.worker.url}/verify-image`, {
      method: "POST",
      headers: { authorization: `Bearer ${env.ciToken}`, "content-type": "application/json" },
      body: JSON.stringify({ image: out, ...extra }),
    });
    const text = await res.text();
    assert.equal(res.status, 200, text);
    return JSON.parse(text);
  };
  const report = await verify({});
  assert.equal(report.passed, true, JSON.stringify(report.checks.filter((c) => c.status === "fail")));
  assert.equal(report.isvProdId, conv.isvprodid);
  assert.equal(report.isvSvn, conv.isvsvn);
  const failed = await verify({ expectMrenclave: "00".repeat(32) });
  assert.equal(failed.passed, false);
  const recorded = (await api("GET", "/approvals")).json.records.find((x) => x.mrenclave === conv.mrenclave);
  assert.deepEqual([recorded?.status, recorded?.allowedSubjects], ["pending", []]);

  const { context, page, console } = await open();
  await load(page, env.opsToken);
  const err = page.locator("[data-testid=ap-error]");
  // The failed report, pasted: the API's reason names verifyReport.passed.
  await page.fill("#ap-r-report", JSON.stringify(failed, null, 2));
  await page.fill("#ap-r-subjects", "rep.example");
  await page.click("[data-testid=ap-register]");
  await page.waitForFunction(() => document.querySelector("[data-testid=ap-error]").textContent);
  assert.match(await err.innerText(), /^400 BadRequest: verifyReport\.passed: the image failed verification/);
  // Not JSON: named before sending.
  await page.fill("#ap-r-report", "{ not json");
  await page.click("[data-testid=ap-register]");
  assert.match(await err.innerText(), /^verifyReport: not JSON/);
  await page.fill("#ap-r-report", "");
  // The real report, dropped on the textarea as a file (as a file manager drops it).
  const drop = await page.evaluateHandle((text) => {
    const dt = new DataTransfer();
    dt.items.add(new File([text], "report.json", { type: "application/json" }));
    return dt;
  }, JSON.stringify(report, null, 2));
  await page.dispatchEvent("#ap-r-report", "drop", { dataTransfer: drop });
  await page.waitForFunction(() => document.querySelector("#ap-r-report").value.includes("mrenclaves"));
  await page.fill("#ap-r-image", out);
  await page.click("[data-testid=ap-register]");
  await page.waitForFunction(() => /Registered as record/.test(document.querySelector("[data-testid=ap-status]").textContent));
  assert.equal(await err.isVisible(), false);
  const rec = (await api("GET", "/approvals")).json.records.find((x) => x.mrenclave === conv.mrenclave);
  assert.ok(rec, "the report's enclaves are recorded");
  assert.deepEqual(
    [rec.status, rec.mrenclave2, rec.mrsigner, rec.isvProdId, rec.isvSvn, rec.allowedSubjects],
    ["pending", conv.mrenclave2, conv.mrsigner, conv.isvprodid, conv.isvsvn, ["rep.example"]]);
  assert.ok(rec.image.startsWith(out), rec.image);
  // The conversion's record, its subjects added: createdAt kept, updatedAt the registration.
  assert.equal(rec.createdAt, recorded.createdAt);
  assert.ok(rec.updatedAt >= recorded.updatedAt);
  await waitStatus(page, rec.id, "pending");
  const tr = row(page, rec.id);
  assert.ok((await tr.innerText()).includes("rep.example"));
  assert.equal(await tr.locator("[data-testid=ap-created]").innerText(), utc(rec.createdAt));
  assert.equal(await tr.locator("[data-testid=ap-updated]").innerText(), utc(rec.updatedAt));
  // The form was reset.
  assert.equal(await page.inputValue("#ap-r-report"), "");
  await page.screenshot({ path: path.join(SHOTS, "approvals-report.png"), fullPage: true });
  // (The refused POST's 400 is the browser's own resource line.)
  assert.deepEqual(console.filter((m) => /error|panic/i.test(m) && !/^Failed to load resource/.test(m)), []);
  await context.close();
});
