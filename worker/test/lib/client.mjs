// A small OCI distribution client for the tests: pulls and pushes through a base URL (the
// proxy's /proxy/{host} or the registry directly), handling basic and bearer challenges the
// way registry clients do (token requests go to whatever realm the challenge names).
import crypto from 'node:crypto';

export const sha256 = (b) => `sha256:${crypto.createHash('sha256').update(b).digest('hex')}`;

/** Parses `Scheme k="v",k2=v2` into { scheme, params }. */
export function parseChallenge(value) {
  const m = /^\s*(\w+)\s*(.*)$/s.exec(value || '');
  if (!m) return null;
  const params = {};
  const re = /(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g;
  let p;
  while ((p = re.exec(m[2]))) params[p[1].toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3];
  return { scheme: m[1].toLowerCase(), params };
}

export class RegistryClient {
  /** base: e.g. `http://127.0.0.1:8787/proxy/127.0.0.1:5000`; creds: { username, password } */
  constructor(base, creds) {
    this.base = base.replace(/\/$/, '');
    this.creds = creds;
    this.auth = null; // header value for the next request
    this.realms = []; // token realms seen, for the tests
    this.log = []; // [method, url, status]
  }

  basic() {
    return `Basic ${Buffer.from(`${this.creds.username}:${this.creds.password}`).toString('base64')}`;
  }

  async token(params) {
    const u = new URL(params.realm);
    if (params.service) u.searchParams.set('service', params.service);
    if (params.scope) for (const s of params.scope.split(' ')) u.searchParams.append('scope', s);
    this.realms.push(params.realm);
    const r = await fetch(u, { headers: this.creds ? { authorization: this.basic() } : {} });
    if (r.status !== 200) throw new Error(`token endpoint ${u}: ${r.status}`);
    const j = await r.json();
    return j.token || j.access_token;
  }

  /** One request with challenge handling; `body` must be re-sendable (Buffer/string). */
  async request(method, pathOrUrl, { headers = {}, body } = {}) {
    const url = /^https?:/.test(pathOrUrl) ? pathOrUrl : `${this.base}${pathOrUrl}`;
    for (let attempt = 0; ; attempt++) {
      const h = { ...headers };
      if (this.auth) h.authorization = this.auth;
      const r = await fetch(url, { method, headers: h, body, redirect: 'manual' });
      this.log.push([method, url, r.status]);
      if (r.status === 401 && attempt === 0) {
        const ch = parseChallenge(r.headers.get('www-authenticate'));
        await r.arrayBuffer();
        if (ch?.scheme === 'basic' && this.creds) this.auth = this.basic();
        else if (ch?.scheme === 'bearer') this.auth = `Bearer ${await this.token(ch.params)}`;
        else throw new Error(`${method} ${url}: 401 without a usable challenge`);
        continue;
      }
      return r;
    }
  }

  async expect(r, want, what) {
    if (r.status !== want) throw new Error(`${what}: status ${r.status} (want ${want}): ${await r.text()}`);
    return r;
  }

  async blobExists(repo, digest) {
    const r = await this.request('HEAD', `/v2/${repo}/blobs/${digest}`);
    return r.status === 200;
  }

  /** Pushes a blob; mode 'monolithic' (POST + PUT) or 'chunked' (POST + PATCH... + PUT). */
  async pushBlob(repo, bytes, { mode = 'monolithic', chunkSize = 256 * 1024 } = {}) {
    const digest = sha256(bytes);
    let r = await this.expect(await this.request('POST', `/v2/${repo}/blobs/uploads/`), 202, 'start upload');
    let loc = new URL(r.headers.get('location'), r.url).href;
    await r.arrayBuffer();
    let body;
    if (mode === 'chunked') {
      for (let off = 0; off < bytes.length; off += chunkSize) {
        const chunk = bytes.subarray(off, Math.min(off + chunkSize, bytes.length));
        r = await this.expect(await this.request('PATCH', loc, {
          headers: { 'content-type': 'application/octet-stream', 'content-range': `${off}-${off + chunk.length - 1}` },
          body: chunk,
        }), 202, `PATCH chunk at ${off}`);
        loc = new URL(r.headers.get('location'), r.url).href;
        await r.arrayBuffer();
      }
      body = Buffer.alloc(0);
    } else {
      body = bytes;
    }
    const u = new URL(loc);
    u.searchParams.set('digest', digest);
    r = await this.expect(await this.request('PUT', u.href, {
      headers: { 'content-type': 'application/octet-stream' }, body,
    }), 201, 'finish upload');
    await r.arrayBuffer();
    if (r.headers.get('docker-content-digest') !== digest) throw new Error(`upload digest ${r.headers.get('docker-content-digest')} != ${digest}`);
    return { digest, location: r.headers.get('location') };
  }

  async pushManifest(repo, ref, bytes, mediaType) {
    const r = await this.expect(await this.request('PUT', `/v2/${repo}/manifests/${ref}`, {
      headers: { 'content-type': mediaType }, body: bytes,
    }), 201, 'manifest PUT');
    await r.arrayBuffer();
    return { digest: r.headers.get('docker-content-digest'), location: r.headers.get('location') };
  }

  async getManifest(repo, ref, accept) {
    const r = await this.expect(await this.request('GET', `/v2/${repo}/manifests/${ref}`, { headers: { accept } }), 200, 'manifest GET');
    return { bytes: Buffer.from(await r.arrayBuffer()), digest: r.headers.get('docker-content-digest'), contentType: r.headers.get('content-type') };
  }

  async getBlob(repo, digest) {
    const r = await this.expect(await this.request('GET', `/v2/${repo}/blobs/${digest}`), 200, `blob GET ${digest}`);
    return Buffer.from(await r.arrayBuffer());
  }

  /** Pushes a whole image (layers alternate monolithic/chunked), tag last. */
  async pushImage(repo, tag, image) {
    for (const [i, layer] of image.layers.entries()) {
      if (!(await this.blobExists(repo, sha256(layer)))) await this.pushBlob(repo, layer, { mode: i % 2 ? 'chunked' : 'monolithic', chunkSize: 200 * 1024 });
    }
    await this.pushBlob(repo, image.config);
    return this.pushManifest(repo, tag, image.manifest, image.mediaType);
  }

  /** Pulls an image by tag: manifest bytes, config and layers, every digest checked. */
  async pullImage(repo, ref) {
    const m = await this.getManifest(repo, ref, 'application/vnd.oci.image.manifest.v1+json');
    if (sha256(m.bytes) !== m.digest) throw new Error('manifest digest mismatch');
    const manifest = JSON.parse(m.bytes);
    const config = await this.getBlob(repo, manifest.config.digest);
    if (sha256(config) !== manifest.config.digest) throw new Error('config digest mismatch');
    const layers = [];
    for (const l of manifest.layers) {
      const b = await this.getBlob(repo, l.digest);
      if (sha256(b) !== l.digest || b.length !== l.size) throw new Error(`layer ${l.digest} mismatch`);
      layers.push(b);
    }
    return { manifest: m.bytes, digest: m.digest, config, layers };
  }
}

/** A small OCI image: two layers of random bytes, a config and the manifest's exact bytes. */
export function makeImage(sizes = [300 * 1024, 700 * 1024 + 17]) {
  const layers = sizes.map((n) => crypto.randomBytes(n));
  const config = Buffer.from(JSON.stringify({
    architecture: 'amd64', os: 'linux', config: { Cmd: ['/bin/true'] },
    rootfs: { type: 'layers', diff_ids: layers.map(sha256) },
  }));
  const mediaType = 'application/vnd.oci.image.manifest.v1+json';
  // Deliberately unusual formatting: a proxy that re-serialised JSON would change the digest.
  const manifest = Buffer.from(`{"schemaVersion": 2,\n  "mediaType": "${mediaType}",\n  "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "${sha256(config)}", "size": ${config.length}},\n  "layers": [${layers.map((l) => `{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "${sha256(l)}", "size": ${l.length}}`).join(', ')}]}\n`);
  return { layers, config, manifest, mediaType, digest: sha256(manifest) };
}
