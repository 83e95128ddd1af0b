// kiln's layer cache on IndexedDB (database `kiln-layer-cache`, object store `layers`):
// layer summaries keyed by compressed layer digest. Works in a page and in a Web Worker.
// Its own database, so the key store's (`kiln`) versioning is not touched.

const DB_NAME = "kiln-layer-cache";
const STORE = "layers";

function open_db() {
  return new Promise((resolve, reject) => {
    if (!globalThis.indexedDB) {
      reject(new Error("IndexedDB is not available here"));
      return;
    }
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => {
      const db = req.result;
      if (!db.objectStoreNames.contains(STORE)) db.createObjectStore(STORE);
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
    req.onblocked = () => reject(new Error("the layer cache database is blocked by another tab"));
  });
}

// Runs f(store, done) in one transaction; resolves with what `done` was given once the
// transaction has committed.
async function with_store(mode, f) {
  const db = await open_db();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      let result;
      f(tx.objectStore(STORE), (v) => { result = v; });
      tx.oncomplete = () => resolve(result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error || new Error("transaction aborted"));
    });
  } finally {
    db.close();
  }
}

/// The bytes stored for `key` (a Uint8Array), or undefined.
export function lc_get(key) {
  return with_store("readonly", (s, done) => {
    const r = s.get(key);
    r.onsuccess = () => done(r.result ? r.result.bytes : undefined);
  });
}

/// Stores `bytes` (Uint8Array) for `key`, replacing any previous value.
export function lc_put(key, bytes) {
  return with_store("readwrite", (s) => {
    s.put({ bytes, size: bytes.length, stored: Date.now() }, key);
  });
}

/// Deletes every entry.
export function lc_clear() {
  return with_store("readwrite", (s) => { s.clear(); });
}

/// [entries, bytes] over every entry.
export function lc_usage() {
  return with_store("readonly", (s, done) => {
    let entries = 0;
    let bytes = 0;
    done([0, 0]);
    const c = s.openCursor();
    c.onsuccess = () => {
      const cur = c.result;
      if (cur) {
        entries += 1;
        bytes += (cur.value && cur.value.size) || 0;
        cur.continue();
      } else {
        done([entries, bytes]);
      }
    };
  });
}
