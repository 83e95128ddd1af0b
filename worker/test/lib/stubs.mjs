// Tiny loopback HTTP servers for the guard tests: one that counts every TCP connection it
// accepts (an off-allowlist "registry"), a redirector, a header recorder, a silent server.
import http from 'node:http';

async function listen(server) {
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  return { port, host: `127.0.0.1:${port}`, url: `http://127.0.0.1:${port}` };
}

function closer(server) {
  return () => new Promise((r) => { server.closeAllConnections?.(); server.close(r); });
}

/** A server answering like a registry's /v2/; `connections` counts accepted TCP connections. */
export async function countingServer() {
  const state = { connections: 0, requests: [] };
  const server = http.createServer((req, res) => {
    state.requests.push({ method: req.method, url: req.url, headers: req.headers });
    res.writeHead(200, { 'content-type': 'application/json', 'docker-distribution-api-version': 'registry/2.0' });
    res.end('{}');
  });
  server.on('connection', () => { state.connections++; });
  return { ...(await listen(server)), state, stop: closer(server) };
}

/** Answers every request with `status` and `Location: target(req)`. */
export async function redirector(target, status = 307) {
  const state = { requests: [] };
  const server = http.createServer((req, res) => {
    state.requests.push({ method: req.method, url: req.url, headers: req.headers });
    res.writeHead(status, { location: target(req) });
    res.end();
  });
  return { ...(await listen(server)), state, stop: closer(server) };
}

/** Accepts connections and never answers. */
export async function silentServer() {
  const server = http.createServer(() => {});
  return { ...(await listen(server)), stop: closer(server) };
}

/** Answers every connection with `raw` bytes once the request head has arrived, then closes. */
export async function rawServer(raw) {
  const net = await import('node:net');
  const server = net.createServer((sock) => {
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      if (buf.includes('\r\n\r\n')) sock.end(raw);
    });
    sock.on('error', () => {});
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  return { port, host: `127.0.0.1:${port}`, url: `http://127.0.0.1:${port}`, stop: () => new Promise((r) => server.close(r)) };
}

/**
 * A counting front for a registry: forwards every request to `target` (`http://host:port`,
 * Host header kept, so the registry's Locations point back at the front), bodies streamed
 * both ways, and records each request's method, path, body framing and the bytes it carried.
 * `cutPutAfter`: a PUT's connection is destroyed once that many body bytes have arrived.
 */
export async function countingFront(target, { cutPutAfter } = {}) {
  const state = { requests: [] };
  const up = new URL(target);
  const server = http.createServer((req, res) => {
    const rec = {
      method: req.method, url: req.url, bytes: 0,
      contentLength: req.headers['content-length'], chunked: /chunked/i.test(req.headers['transfer-encoding'] ?? ''),
    };
    state.requests.push(rec);
    req.on('data', (d) => {
      rec.bytes += d.length;
      if (cutPutAfter !== undefined && req.method === 'PUT' && rec.bytes > cutPutAfter) {
        rec.cut = true;
        req.socket.destroy();
      }
    });
    const fwd = http.request({
      host: up.hostname, port: up.port, method: req.method, path: req.url, headers: req.headers,
    }, (r) => {
      rec.status = r.statusCode;
      res.writeHead(r.statusCode, r.headers);
      r.pipe(res);
    });
    fwd.on('error', () => { res.destroy(); });
    req.pipe(fwd);
  });
  return { ...(await listen(server)), state, stop: closer(server) };
}
