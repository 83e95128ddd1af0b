// Benchmark (numbers, no assertions): the same large image converted by the web app in
// headless Chromium (through the worker's proxy, engine in a Web Worker) and by the
// native `kiln convert`, in the same run, both cold (no layer cache) and to the same
// loopback registry. scripts/bench-app.sh builds what it needs and runs this.
// Env: KILN_REPO, KILN_DIST, KILN_BENCH_MIB (default 220), KILN_BIN (the native kiln).
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import { startRegistry } from "../../worker/test/lib/registry.mjs";
import { startWorker } from "../../worker/test/lib/worker.mjs";

const REPO = process.env.KILN_REPO || path.resolve("../..");
const TARGET = process.env.CARGO_TARGET_DIR || path.join(REPO, "target");
const DIST = process.env.KILN_DIST || path.join(REPO, "dist");
const KILN = process.env.KILN_BIN || path.join(TARGET, "release/kiln");
const MIB = process.env.KILN_BENCH_MIB || "220";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kiln-bench-app-"));
const stops = [];
try {
  const reg = await startRegistry(dir, "plain");
  stops.push(reg.stop);
  execFileSync(path.join(TARGET, "debug/examples/demo_images"), [reg.host], { stdio: "inherit" });
  execFileSync(path.join(TARGET, "debug/examples/bench_app_image"), [reg.host, MIB], { stdio: "inherit" });
  const keyFile = path.join(dir, "key.pem");
  execFileSync("openssl", ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072",
    "-pkeyopt", "rsa_keygen_pubexp:3", "-out", keyFile], { stdio: "ignore" });
  const runtime = `${reg.host}/kiln/runtime:fixture`;
  const worker = await startWorker({
    KILN_ASSETS_DIR: DIST,
    KILN_REGISTRY_ALLOWLIST: `http://${reg.host}`,
    KILN_ALLOW_LOOPBACK_REGISTRIES: "1",
    KILN_RUNTIME_IMAGE: runtime,
    KILN_PROXY_TIMEOUT_SECS: "600",
    KILN_PROXY_UPLOAD_TIMEOUT_SECS: "600",
  });
  stops.push(worker.stop);
  const input = `${reg.host}/bench/random:1`;

  // Native baseline.
  let t = performance.now();
  const cli = JSON.parse(execFileSync(KILN, ["convert", "--input", input, "--output", `${reg.host}/bench/out:1`,
    "--runtime", runtime, "--key", keyFile, "--insecure-registry", reg.host,
    "--state-dir", path.join(dir, "state"), "--no-bars"], { env: { ...process.env, DOCKER_CONFIG: path.join(dir, "docker") } }).toString());
  const nativeS = (performance.now() - t) / 1000;

  // The web app.
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium", headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"],
  });
  stops.push(() => browser.close());
  const page = await (await browser.newContext()).newPage();
  await page.goto(`${worker.url}/#/convert`);
  await page.fill("#f-inputImageName", input);
  // The same output reference (the image name is part of the output).
  await page.fill("#f-outputImageName", `${reg.host}/bench/out:1`);
  await page.selectOption("#c-key", "pem");
  await page.fill("#c-pem", fs.readFileSync(keyFile, "utf8"));
  t = performance.now();
  await page.click("[data-testid=convert]");
  await page.waitForSelector("[data-testid=run-status].ok, [data-testid=run-error]", { timeout: 1_800_000 });
  const pageS = (performance.now() - t) / 1000;
  const err = await page.locator("[data-testid=run-error]").count();
  if (err) throw new Error(`page conversion failed: ${await page.locator("[data-testid=run-error]").textContent()}`);
  const r = JSON.parse(await page.locator("[data-testid=result-panel] details pre.code").textContent());
  const differ = ["mrenclave", "mrenclave2", "mrsigner", "digest"].filter((k) => r[k] !== cli[k]);
  const same = differ.length === 0 ? "true" : `false (${differ.map((k) => `${k}: page ${r[k]} vs native ${cli[k]}`).join("; ")})`;
  const mib = Number(MIB);
  console.log(`image: ${input} (~${mib} MiB of random layers)`);
  console.log(`native kiln convert: ${nativeS.toFixed(1)} s (${(mib / nativeS).toFixed(1)} MiB/s)`);
  console.log(`browser (web app):   ${pageS.toFixed(1)} s (${(mib / pageS).toFixed(1)} MiB/s)`);
  console.log(`ratio browser/native: ${(pageS / nativeS).toFixed(2)}x; same mrenclave, mrenclave2, mrsigner, digest: ${same}`);
} finally {
  for (const s of stops.reverse()) await s();
  fs.rmSync(dir, { recursive: true, force: true });
}
