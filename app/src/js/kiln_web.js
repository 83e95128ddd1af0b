// kiln's browser glue: WebCrypto (SGX signing keys) and IndexedDB (the key store).
// Bundled by wasm-bindgen as a snippet; no external script is loaded.
//
// Private keys: the page stores only non-extractable CryptoKey objects (structured clone
// keeps them non-extractable). A key made here is generated extractable only to be wrapped
// into its encrypted backup (`wrap_pkcs8`); the stored key is that backup unwrapped
// (`unwrap_pkcs8`, non-extractable). Imported PEM keys are stored only on request, as
// PKCS#8 encrypted with AES-256-GCM under a PBKDF2-SHA-256 key.

const ALG = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" };
const DB_NAME = "kiln";
const STORE = "keys";
const PBKDF2_ITERATIONS = 600000;

function subtle() {
  if (!globalThis.crypto || !globalThis.crypto.subtle) {
    throw new Error("WebCrypto is not available (the page must be served over https or from localhost)");
  }
  return globalThis.crypto.subtle;
}

/// Generates a non-extractable RSA-3072, e = 3 key pair. Returns {privateKey, publicKey, n, e}
/// with n and e as base64url (from the public JWK).
export async function generate_sgx_key() {
  const pair = await subtle().generateKey(
    { ...ALG, modulusLength: 3072, publicExponent: new Uint8Array([3]) },
    false,
    ["sign", "verify"],
  );
  const jwk = await subtle().exportKey("jwk", pair.publicKey);
  return { privateKey: pair.privateKey, publicKey: pair.publicKey, n: jwk.n, e: jwk.e };
}

/// The public JWK's n and e (base64url) of a public CryptoKey.
export async function public_jwk(publicKey) {
  const jwk = await subtle().exportKey("jwk", publicKey);
  return { n: jwk.n, e: jwk.e };
}

/// Signs data (Uint8Array) with a private CryptoKey; returns the signature bytes.
export async function sign(privateKey, data) {
  const sig = await subtle().sign(ALG, privateKey, data);
  return new Uint8Array(sig);
}

/// Imports an unencrypted PKCS#8 DER private key as a non-extractable signing key.
export async function import_pkcs8(der) {
  return subtle().importKey("pkcs8", der, ALG, false, ["sign"]);
}

function b64(bytes) {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

/// A public key (base64url n, e) as a PEM SubjectPublicKeyInfo.
export async function spki_pem(n, e) {
  const key = await subtle().importKey(
    "jwk",
    { kty: "RSA", n, e, alg: "RS256", ext: true },
    ALG,
    true,
    ["verify"],
  );
  const der = new Uint8Array(await subtle().exportKey("spki", key));
  const body = b64(der).replace(/(.{64})/g, "$1\n").replace(/\n$/, "");
  return `-----BEGIN PUBLIC KEY-----\n${body}\n-----END PUBLIC KEY-----\n`;
}

/// Generates an RSA-3072, e = 3 key pair whose private key is extractable, for one use
/// only: `wrap_pkcs8` wraps it into an encrypted backup, the page unwraps that backup as a
/// non-extractable key and stores that one; this extractable key is never stored and
/// dropped at once. Returns {privateKey, n, e}.
export async function generate_extractable_sgx_key() {
  const pair = await subtle().generateKey(
    { ...ALG, modulusLength: 3072, publicExponent: new Uint8Array([3]) },
    true,
    ["sign", "verify"],
  );
  const jwk = await subtle().exportKey("jwk", pair.publicKey);
  return { privateKey: pair.privateKey, n: jwk.n, e: jwk.e };
}

async function backup_key(passphrase, salt, iterations, usage) {
  const base = await subtle().importKey(
    "raw", new TextEncoder().encode(passphrase), "PBKDF2", false, ["deriveKey"]);
  return subtle().deriveKey(
    { name: "PBKDF2", salt, iterations, hash: "SHA-256" },
    base,
    { name: "AES-GCM", length: 256 },
    false,
    [usage],
  );
}

/// Wraps an extractable private key as PKCS#8 under AES-256-GCM with a PBKDF2-SHA-256 key
/// from the passphrase (fresh 16-byte salt and 12-byte IV, `aad` as additional data).
/// WebCrypto exports and encrypts in one step: the PKCS#8 bytes never reach JavaScript.
/// Returns {salt, iv, iterations, wrapped}.
export async function wrap_pkcs8(privateKey, passphrase, iterations, aad) {
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const key = await backup_key(passphrase, salt, iterations, "wrapKey");
  const wrapped = await subtle().wrapKey(
    "pkcs8", privateKey, key, { name: "AES-GCM", iv, additionalData: aad });
  return { salt, iv, iterations, wrapped: new Uint8Array(wrapped) };
}

/// Unwraps what `wrap_pkcs8` made into a NON-extractable RSASSA-PKCS1-v1_5 SHA-256 signing
/// key. Throws "wrong passphrase..." when the GCM tag fails.
export async function unwrap_pkcs8(passphrase, salt, iterations, iv, aad, wrapped) {
  const key = await backup_key(passphrase, salt, iterations, "unwrapKey");
  try {
    return await subtle().unwrapKey(
      "pkcs8", wrapped, key, { name: "AES-GCM", iv, additionalData: aad }, ALG, false, ["sign"]);
  } catch (e) {
    if (e && e.name === "OperationError") {
      throw new Error("wrong passphrase, or the backup file was altered");
    }
    throw new Error(`the backup's private key is not an RSA PKCS#8 key WebCrypto accepts (${e && e.name})`);
  }
}

async function passphrase_key(passphrase, salt, iterations) {
  const base = await subtle().importKey(
    "raw", new TextEncoder().encode(passphrase), "PBKDF2", false, ["deriveKey"]);
  return subtle().deriveKey(
    { name: "PBKDF2", salt, iterations, hash: "SHA-256" },
    base,
    { name: "AES-GCM", length: 256 },
    false,
    ["encrypt", "decrypt"],
  );
}

/// Encrypts bytes with a passphrase: {salt, iv, iterations, ciphertext}.
export async function seal(passphrase, plaintext) {
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const key = await passphrase_key(passphrase, salt, PBKDF2_ITERATIONS);
  const ct = await subtle().encrypt({ name: "AES-GCM", iv }, key, plaintext);
  return { salt, iv, iterations: PBKDF2_ITERATIONS, ciphertext: new Uint8Array(ct) };
}

/// Decrypts what `seal` produced; throws on a wrong passphrase.
export async function unseal(passphrase, sealed) {
  const key = await passphrase_key(passphrase, sealed.salt, sealed.iterations);
  try {
    const pt = await subtle().decrypt({ name: "AES-GCM", iv: sealed.iv }, key, sealed.ciphertext);
    return new Uint8Array(pt);
  } catch (_) {
    throw new Error("wrong passphrase (or the stored key is damaged)");
  }
}

function open_db() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => {
      const db = req.result;
      if (!db.objectStoreNames.contains(STORE)) db.createObjectStore(STORE, { keyPath: "id" });
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function with_store(mode, f) {
  const db = await open_db();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const req = f(tx.objectStore(STORE));
      let result;
      req.onsuccess = () => { result = req.result; };
      tx.oncomplete = () => resolve(result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

/// Stores a key record (an object with an `id`).
export function db_put(record) {
  return with_store("readwrite", (s) => s.put(record));
}

/// All key records, oldest first.
export async function db_list() {
  const all = await with_store("readonly", (s) => s.getAll());
  return (all || []).sort((a, b) => (a.created || 0) - (b.created || 0));
}

/// One key record, or undefined.
export function db_get(id) {
  return with_store("readonly", (s) => s.get(id));
}

/// Deletes a key record.
export function db_delete(id) {
  return with_store("readwrite", (s) => s.delete(id));
}

/// A random id.
export function new_id() {
  return crypto.randomUUID();
}

/// Copies text to the clipboard; resolves to true on success (falls back to a hidden
/// textarea and execCommand where the Clipboard API is unavailable).
export async function copy_text(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch (_) {
    const ta = document.createElement("textarea");
    ta.value = text;
    ta.setAttribute("readonly", "");
    ta.style.position = "fixed";
    ta.style.opacity = "0";
    document.body.appendChild(ta);
    ta.select();
    let ok = false;
    try { ok = document.execCommand("copy"); } catch (_) { ok = false; }
    ta.remove();
    return ok;
  }
}

/// Reads a File (or Blob) into a Uint8Array.
export async function read_file(file) {
  return new Uint8Array(await file.arrayBuffer());
}

/// sessionStorage.getItem, or null where storage is unavailable (never throws).
export function session_get(key) {
  try { return globalThis.sessionStorage ? sessionStorage.getItem(key) : null; } catch (_) { return null; }
}

/// sessionStorage.setItem; false where storage is unavailable or full (never throws).
export function session_set(key, value) {
  try { sessionStorage.setItem(key, value); return true; } catch (_) { return false; }
}

/// After the next render: opens the collapsed sections around the first invalid field of
/// the page, scrolls it into view and focuses it (a blocked Convert takes the user there).
export function focus_first_invalid_soon() {
  setTimeout(() => {
    const bad = document.querySelector(".invalid");
    if (!bad) return;
    for (let d = bad.closest("details"); d; d = d.parentElement && d.parentElement.closest("details")) {
      d.open = true;
    }
    const el = bad.matches("input, textarea, select") ? bad : bad.querySelector("input, textarea, select");
    (el || bad).scrollIntoView({ block: "center" });
    if (el) el.focus({ preventScroll: true });
  }, 0);
}

/// After the next render: scrolls the first element matching `selector` into view (the
/// progress when a job starts, the result when it ends), unless it is already fully shown.
export function scroll_into_view_soon(selector) {
  setTimeout(() => {
    const el = document.querySelector(selector);
    if (!el) return;
    const r = el.getBoundingClientRect();
    if (r.top >= 0 && r.bottom <= window.innerHeight) return;
    el.scrollIntoView({ block: "start", behavior: "smooth" });
  }, 0);
}
