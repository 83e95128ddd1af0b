// Makes a tampered copy of a converted image for the Verify tests: one byte of the SGX1
// SIGSTRUCT carried in the config's ENCLAVEOS_SIGNATURE is flipped (the copy the
// compatible platform reads), the config re-pushed, and the manifest pointing at it tagged
// `toTag` in the same repository (so every layer is already there). Talks to the registry
// directly (loopback, basic auth).

/** Returns the tampered manifest's digest. */
export async function tamperSigstruct(registry, repo, tag, toTag, { user, password }) {
  const auth = { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}` };
  const base = `${registry.url}/v2/${repo}`;
  const accept = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";
  const mres = await fetch(`${base}/manifests/${tag}`, { headers: { ...auth, accept } });
  if (!mres.ok) throw new Error(`manifest ${repo}:${tag}: ${mres.status}`);
  const mediaType = mres.headers.get("content-type");
  const manifest = JSON.parse(await mres.text());
  const cres = await fetch(`${base}/blobs/${manifest.config.digest}`, { headers: auth });
  if (!cres.ok) throw new Error(`config: ${cres.status}`);
  const config = JSON.parse(await cres.text());
  const env = config.config.Env;
  const i = env.findIndex((e) => e.startsWith("ENCLAVEOS_SIGNATURE="));
  if (i < 0) throw new Error("no ENCLAVEOS_SIGNATURE in the config");
  const sig = Buffer.from(env[i].slice("ENCLAVEOS_SIGNATURE=".length), "base64");
  sig[960] ^= 0x01; // ENCLAVEHASH (offset 960 of the SIGSTRUCT): the enclave it claims to sign
  env[i] = `ENCLAVEOS_SIGNATURE=${sig.toString("base64")}`;
  const body = Buffer.from(JSON.stringify(config));
  const { createHash } = await import("node:crypto");
  const digest = `sha256:${createHash("sha256").update(body).digest("hex")}`;
  const up = await fetch(`${base}/blobs/uploads/`, { method: "POST", headers: auth });
  if (up.status !== 202) throw new Error(`upload start: ${up.status}`);
  const loc = new URL(up.headers.get("location"), registry.url);
  loc.searchParams.set("digest", digest);
  const put = await fetch(loc, { method: "PUT", headers: { ...auth, "content-type": "application/octet-stream" }, body });
  if (put.status !== 201) throw new Error(`config upload: ${put.status} ${await put.text()}`);
  manifest.config = { ...manifest.config, digest, size: body.length };
  const mbody = Buffer.from(JSON.stringify(manifest));
  const mput = await fetch(`${base}/manifests/${toTag}`, { method: "PUT", headers: { ...auth, "content-type": mediaType }, body: mbody });
  if (mput.status !== 201) throw new Error(`manifest put: ${mput.status} ${await mput.text()}`);
  return `sha256:${createHash("sha256").update(mbody).digest("hex")}`;
}
