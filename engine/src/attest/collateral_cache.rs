//! Collateral fetched from a PCCS, kept in a byte store and reused while it is fresh, so
//! verifying many quotes of one platform costs one round of PCCS requests, not one per
//! quote.
//!
//! An entry is reused only when it is for the same PCCS, FMSPC and PCK CA
//! ([`CollateralKey`]), was fetched at most `max_age_secs` ago (and not in the future),
//! and its TCB info and QE identity are before their `nextUpdate`. The quote's own PCK
//! chain replaces the stored one. A store that fails is treated as a miss and the
//! collateral is fetched: a cache can make verification cheaper, never different.
//! Nothing here verifies: [`super::verify_evidence`] checks whatever is returned.
//!
//! The store is the engine's byte store ([`LayerCacheStore`], keyed by `sha256:<hex>`):
//! a directory natively (`kiln attest verify`), memory in the worker.

use serde::{Deserialize, Serialize};

use super::pccs::{fetch_for, CollateralKey};
use super::{parse_time, AttestError, QuoteCollateralV3};
use crate::image::cache::LayerCacheStore;
use crate::image::transport::Transport;

/// How long fetched collateral is reused at most: one hour (Intel's PCS publishes new
/// TCB info at most daily; a PCCS caches it for a day).
pub const DEFAULT_MAX_AGE_SECS: u64 = 3600;

/// Where the collateral came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollateralSource {
    /// A fresh cache entry.
    Cache,
    /// The PCCS (and it was stored).
    Pccs,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    pccs: String,
    fmspc: String,
    ca: String,
    fetched_at: u64,
    collateral: QuoteCollateralV3,
}

/// `nextUpdate` of a signed JSON body (TCB info, QE identity), Unix seconds.
fn next_update(signed_json: &str) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_str(signed_json).ok()?;
    parse_time(v.get("nextUpdate")?.as_str()?).ok()
}

impl Entry {
    fn fresh_for(&self, key: &CollateralKey, now: u64, max_age_secs: u64) -> bool {
        let before_next_update = |json: &str| next_update(json).is_some_and(|t| now < t);
        self.pccs == key.pccs
            && self.fmspc == key.fmspc
            && self.ca == key.ca
            && self.fetched_at <= now
            && now - self.fetched_at < max_age_secs
            && before_next_update(&self.collateral.tcb_info)
            && before_next_update(&self.collateral.qe_identity)
    }
}

/// The collateral for `quote` from the PCCS at `pccs`: a fresh entry of `store`, or
/// fetched through `transport` and stored, at time `now` (Unix seconds).
pub async fn collateral<S: LayerCacheStore + ?Sized>(
    transport: &dyn Transport,
    store: &S,
    pccs: &str,
    quote: &[u8],
    now: u64,
    max_age_secs: u64,
) -> Result<(QuoteCollateralV3, CollateralSource), AttestError> {
    let key = CollateralKey::of(pccs, quote)?;
    let id = key.cache_key();
    let cached = store
        .get_bytes(&id)
        .await
        .ok()
        .flatten()
        .and_then(|b| serde_json::from_slice::<Entry>(&b).ok())
        .filter(|e| e.fresh_for(&key, now, max_age_secs));
    if let Some(mut e) = cached {
        e.collateral.pck_certificate_chain = Some(key.pck_chain.clone());
        return Ok((e.collateral, CollateralSource::Cache));
    }
    let collateral = fetch_for(transport, &key).await?;
    let entry = Entry {
        pccs: key.pccs.clone(),
        fmspc: key.fmspc.clone(),
        ca: key.ca.clone(),
        fetched_at: now,
        collateral,
    };
    if let Ok(bytes) = serde_json::to_vec(&entry) {
        // A store that cannot keep it only costs a fetch next time.
        let _ = store.put_bytes(&id, bytes).await;
    }
    Ok((entry.collateral, CollateralSource::Pccs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::cache::MemoryCacheStore;
    use crate::image::transport::{Headers, Request, Response, TransportError};
    use std::sync::atomic::{AtomicUsize, Ordering};

    const QUOTE: &[u8] = include_bytes!("../../testdata/attest/sgx_quote");
    const COLLATERAL: &[u8] = include_bytes!("../../testdata/attest/sgx_quote_collateral.json");
    const PCCS: &str = "https://pccs.example";

    /// A PCCS that is down: every request is a 503, counted.
    #[derive(Default)]
    struct Down(AtomicUsize);

    #[kiln_macros::async_trait]
    impl Transport for Down {
        async fn send(&self, _: Request) -> Result<Response, TransportError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(Response::from_bytes(503, Headers::default(), Vec::new()))
        }
    }

    /// Runs a future that completes on its first poll (nothing here really waits).
    fn run<F: std::future::Future>(f: F) -> F::Output {
        futures_util::FutureExt::now_or_never(f).expect("the future never pends")
    }

    fn stored(store: &MemoryCacheStore, fetched_at: u64, pccs: &str) {
        let key = CollateralKey::of(pccs, QUOTE).unwrap();
        let entry = Entry {
            pccs: key.pccs.clone(),
            fmspc: key.fmspc.clone(),
            ca: key.ca.clone(),
            fetched_at,
            collateral: super::super::read_collateral(COLLATERAL).unwrap(),
        };
        run(store.put_bytes(
            &CollateralKey::of(PCCS, QUOTE).unwrap().cache_key(),
            serde_json::to_vec(&entry).unwrap(),
        ))
        .unwrap();
    }

    #[test]
    fn a_fresh_entry_is_reused_without_a_request() {
        // The sample's TCB info is valid until 2025-07-19T10:56:11Z.
        let at = parse_time("2025-07-01T00:00:00Z").unwrap();
        let store = MemoryCacheStore::default();
        stored(&store, at - 60, PCCS);
        let down = Down::default();
        let (c, source) = run(collateral(
            &down,
            &store,
            PCCS,
            QUOTE,
            at,
            DEFAULT_MAX_AGE_SECS,
        ))
        .unwrap();
        assert_eq!(source, CollateralSource::Cache);
        assert_eq!(down.0.load(Ordering::SeqCst), 0);
        assert!(c
            .pck_certificate_chain
            .is_some_and(|p| p.contains("BEGIN CERTIFICATE")));
    }

    #[test]
    fn stale_or_foreign_entries_are_fetched_again() {
        let at = parse_time("2025-07-01T00:00:00Z").unwrap();
        let after_next_update = parse_time("2025-07-20T00:00:00Z").unwrap();
        for (fetched_at, now, pccs) in [
            (at - DEFAULT_MAX_AGE_SECS, at, PCCS),             // too old
            (at + 60, at, PCCS),                               // fetched in the future
            (after_next_update - 60, after_next_update, PCCS), // past nextUpdate
            (at - 60, at, "https://other.example"),            // another PCCS's entry
        ] {
            let store = MemoryCacheStore::default();
            stored(&store, fetched_at, pccs);
            let down = Down::default();
            let e = run(collateral(
                &down,
                &store,
                PCCS,
                QUOTE,
                now,
                DEFAULT_MAX_AGE_SECS,
            ))
            .unwrap_err()
            .to_string();
            assert!(e.contains("HTTP 503"), "{e}");
            assert_eq!(
                down.0.load(Ordering::SeqCst),
                1,
                "{fetched_at} {now} {pccs}"
            );
        }
    }
}
