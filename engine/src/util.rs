//! Small helpers shared by several modules.

/// Marker for futures and trait objects that must be `Send` natively but cannot be on
/// wasm32 (browser and worker futures are `!Send`).
///
/// Async traits in the engine use
/// `#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]` and
/// `#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]`, and bound
/// their objects with `MaybeSend`.
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSend: Send + Sync {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Send + Sync + ?Sized> MaybeSend for T {}

/// On wasm32 nothing needs to be `Send`.
#[cfg(target_arch = "wasm32")]
pub trait MaybeSend {}
#[cfg(target_arch = "wasm32")]
impl<T: ?Sized> MaybeSend for T {}
