//! aiomp: async functions on a pool of worker processes (placeholder docs).
#![forbid(unsafe_code)]

pub use aiomp_macros::{main, remote, test};
pub use aiomp_runtime::{Error, init};

#[doc(hidden)]
pub mod __private {
    //! Not public API. Used by generated code.
    pub use aiomp_runtime::__private::*;
}
