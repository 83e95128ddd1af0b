// A minimal distribution token server (RS256 JWT with an x5c header) for the bearer-auth tests.
// Grants pull+push to the one known user, pull to anonymous callers.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

const b64u = (b) => Buffer.from(b).toString('base64url');

/** Starts the token server; returns { port, realm, certFile, issuer, service, requests, stop }. */
export async function startTokenServer(dir, { user, password, service = 'kiln-test-registry', issuer = 'kiln-test-issuer' }) {
  const keyFile = path.join(dir, 'token.key');
  const certFile = path.join(dir, 'token.crt');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
    '-subj', `/CN=${issuer}`, '-keyout', keyFile, '-out', certFile], { stdio: 'ignore' });
  const key = fs.readFileSync(keyFile);
  const x5c = [new crypto.X509Certificate(fs.readFileSync(certFile)).raw.toString('base64')];
  const requests = [];
  const server = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://x');
    requests.push({ method: req.method, path: u.pathname, headers: req.headers });
    const auth = req.headers.authorization || '';
    let who = '';
    if (auth.startsWith('Basic ')) {
      if (Buffer.from(auth.slice(6), 'base64').toString() !== `${user}:${password}`) {
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end('{"details":"bad credentials"}');
        return;
      }
      who = user;
    }
    const access = u.searchParams.getAll('scope').map((s) => {
      const [type, rest] = [s.slice(0, s.indexOf(':')), s.slice(s.indexOf(':') + 1)];
      const i = rest.lastIndexOf(':');
      const actions = rest.slice(i + 1).split(',').filter((a) => who || a === 'pull');
      return { type, name: rest.slice(0, i), actions };
    });
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: 'JWT', alg: 'RS256', x5c };
    const claims = { iss: issuer, sub: who, aud: u.searchParams.get('service') || '', exp: now + 300,
      nbf: now - 10, iat: now, jti: crypto.randomUUID(), access };
    const signingInput = `${b64u(JSON.stringify(header))}.${b64u(JSON.stringify(claims))}`;
    const sig = crypto.sign('sha256', Buffer.from(signingInput), key);
    const token = `${signingInput}.${b64u(sig)}`;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token, access_token: token, expires_in: 300 }));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  return {
    port, host: `127.0.0.1:${port}`, realm: `http://127.0.0.1:${port}/token`, certFile, issuer, service, requests,
    stop: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }),
  };
}
