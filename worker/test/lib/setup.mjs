// The whole loopback world for the proxy tests: three real registries (plain, basic auth,
// bearer tokens + token server), stub servers for the guard, and the worker in workerd.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startRegistry } from './registry.mjs';
import { startTokenServer } from './tokenserver.mjs';
import { countingServer, rawServer, redirector, silentServer } from './stubs.mjs';
import { startWorker } from './worker.mjs';

export async function setup({ extraOrigins = [] } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-worker-test-'));
  const user = 'kiln-user';
  // Unique per run: the log test looks for it in every line workerd printed.
  const password = `pw-${crypto.randomBytes(12).toString('hex')}`;
  const stops = [];
  const keep = (x) => { stops.push(x.stop); return x; };
  try {
    const plain = keep(await startRegistry(dir, 'plain'));
    const plain6 = keep(await startRegistry(dir, 'plain6', undefined, { ipv6: true }));
    const basic = keep(await startRegistry(dir, 'basic', { basic: { user, password } }));
    const tokens = keep(await startTokenServer(dir, { user, password }));
    const token = keep(await startRegistry(dir, 'token', { token: tokens }));
    const offList = keep(await countingServer());
    const toOffList = keep(await redirector((req) => `${offList.url}${req.url}`));
    const recorder = keep(await countingServer());
    const toRecorder = keep(await redirector((req) => `${recorder.url}${req.url}`));
    const toPlain = keep(await redirector((req) => `${plain.url}${req.url}`));
    const silent = keep(await silentServer());
    const informational = keep(await rawServer('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: kiln-test\r\n\r\n'));
    const allow = [plain, plain6, basic, tokens, token, toOffList, recorder, toRecorder, toPlain, silent, informational]
      .map((s) => `http://${s.host}`).join(',');
    // A stand-in PEM (not a key): only its arrival in the secret binding is checked.
    const pem = `-----BEGIN PRIVATE KEY-----\nkiln-test-${crypto.randomBytes(8).toString('hex')}\n-----END PRIVATE KEY-----\n`;
    const pemFile = path.join(dir, 'default-signing-key.pem');
    fs.writeFileSync(pemFile, pem);
    const worker = keep(await startWorker({
      KILN_DEFAULT_SIGNING_KEY_FILE: pemFile,
      KILN_REGISTRY_ALLOWLIST: allow,
      KILN_ALLOW_LOOPBACK_REGISTRIES: '1',
      KILN_ALLOWED_ORIGINS: extraOrigins.join(','),
      KILN_PROXY_TIMEOUT_SECS: '3',
    }));
    const proxied = (s) => `${worker.url}/proxy/${s.host}`;
    return {
      dir, user, password, pem, plain, plain6, basic, tokens, token, offList, toOffList, recorder, toRecorder,
      toPlain, silent, informational, worker, proxied,
      async teardown() {
        for (const s of stops.reverse()) await s();
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    for (const s of stops.reverse()) await s();
    throw e;
  }
}
