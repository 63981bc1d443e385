//! The runtime behind [`aiomp`](https://docs.rs/aiomp): registry, wire protocol,
//! transport, the worker side, `Pool`, `Process` and `Worker`.
//!
//! Depend on `aiomp`, not on this crate: its API is re-exported and documented there.

mod child;
mod entry;
mod error;
mod registry;

#[doc(hidden)]
pub mod __private {
    //! Not public API. Used by generated code.
    pub use crate::private::*;
}
mod private;

pub use entry::init;
pub use error::Error;
