//! Small helpers shared by several modules.

/// async-trait with `Send` futures natively and `?Send` on wasm32: the one place of the
/// switch (crate `kiln-macros`). Users need `async-trait` as a dependency too.
pub use kiln_macros::async_trait;

/// Marker for futures and trait objects that must be `Send` natively but cannot be on
/// wasm32 (browser and worker futures are `!Send`).
///
/// Async traits in the engine use [`async_trait`](macro@async_trait) (`Send` natively, `?Send` on wasm32) and
/// bound their objects with `MaybeSend`.
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSend: Send + Sync {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Send + Sync + ?Sized> MaybeSend for T {}

/// On wasm32 nothing needs to be `Send`.
#[cfg(target_arch = "wasm32")]
pub trait MaybeSend {}
#[cfg(target_arch = "wasm32")]
impl<T: ?Sized> MaybeSend for T {}
