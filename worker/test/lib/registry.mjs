// Real registries for the tests: Debian's docker-registry (distribution 2.8) on loopback, plain,
// with htpasswd basic auth, or with bearer tokens from the test token server.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { freePort, startChild, waitHttp } from './procs.mjs';

/**
 * Starts `docker-registry serve` in `dir`.
 * auth: undefined | { basic: { user, password } } | { token: { realm, service, issuer, certFile } }
 */
export async function startRegistry(dir, name, auth, { ipv6 = false } = {}) {
  const port = await freePort(ipv6 ? '::1' : '127.0.0.1');
  const hostOnly = ipv6 ? '[::1]' : '127.0.0.1';
  const root = path.join(dir, `data-${name}`);
  fs.mkdirSync(root, { recursive: true });
  let authYaml = '';
  if (auth?.basic) {
    const htpasswd = path.join(dir, `${name}.htpasswd`);
    const line = execFileSync('htpasswd', ['-Bbn', auth.basic.user, auth.basic.password]).toString();
    fs.writeFileSync(htpasswd, line);
    authYaml = `auth: {htpasswd: {realm: basic-realm, path: ${htpasswd}}}`;
  } else if (auth?.token) {
    const t = auth.token;
    authYaml = `auth: {token: {realm: '${t.realm}', service: ${t.service}, issuer: ${t.issuer}, rootcertbundle: ${t.certFile}}}`;
  }
  const cfg = path.join(dir, `${name}.yml`);
  fs.writeFileSync(cfg, [
    'version: 0.1',
    'log: {level: warn, accesslog: {disabled: true}}',
    `storage: {filesystem: {rootdirectory: ${root}}, delete: {enabled: true}}`,
    `http: {addr: "${hostOnly}:${port}", secret: kiln-test-secret}`,
    authYaml,
    '',
  ].join('\n'));
  const proc = startChild('docker-registry', ['serve', cfg]);
  const url = `http://${hostOnly}:${port}`;
  await waitHttp(`${url}/v2/`, { proc });
  return { port, url, host: `${hostOnly}:${port}`, proc, stop: () => proc.stop() };
}
