//! Procedural macros of [`aiomp`](https://docs.rs/aiomp): `#[remote]`,
//! `#[aiomp::main]` and `#[aiomp::test]`.
//!
//! This crate is an implementation detail of `aiomp`: depend on `aiomp` and use
//! the macros through its re-exports, where they are documented. The expansion
//! names only `::aiomp::__private::…` items, which are not public API.
//!
//! The work is split as the tree shows: `parse` reads the attribute arguments,
//! `validate` checks the function, `expand` writes the registration of a
//! `#[remote]` function, and `entry` writes the `main` and test wrappers.
#![forbid(unsafe_code)]

mod entry;
mod error;
mod expand;
mod parse;
mod validate;

use proc_macro::TokenStream;

/// Registers a function so that a pool can run it in a worker process.
///
/// Applies to a free `async fn` or plain `fn` whose arguments and return value
/// are `Serialize + DeserializeOwned + Send + 'static`, and whose future, for an
/// `async fn`, is `Send`. The function stays as written and callable locally
/// (the expansion only adds `#[allow(clippy::needless_pass_by_value)]`, since
/// the arguments must be owned); after it comes its registration under the ID
/// `module_path::name`.
///
/// Arguments: `id = "custom::id"` sets the ID; `crate = "path::to::aiomp"`
/// names the `aiomp` crate when it was renamed.
///
/// Misuse is a compile error on the offending token: generic parameters, a
/// `self` receiver, borrowed or `impl Trait` arguments and results, `unsafe`,
/// `extern` or variadic functions, unknown arguments, and types that cannot be
/// serialized.
///
/// ```ignore
/// #[aiomp::remote]
/// async fn add(a: u64, b: u64) -> u64 {
///     a + b
/// }
/// ```
#[proc_macro_attribute]
pub fn remote(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::remote(args.into(), item.into()).into()
}

/// Runs `async fn main` on a tokio runtime; in a spawned worker, serves tasks instead.
///
/// A drop-in for `#[tokio::main]`: accepts `flavor = "multi_thread"` (the
/// default) or `"current_thread"`, `worker_threads = N`, and
/// `crate = "path::to::aiomp"`. The first statement of the generated `main`
/// is `aiomp::init()`, so a spawned worker never runs the program's own code.
///
/// ```ignore
/// #[aiomp::main]
/// async fn main() {
///     // create pools here
/// }
/// ```
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::main(args.into(), item.into()).into()
}

/// Runs an `async fn` test on a tokio runtime; in a spawned worker, serves tasks instead.
///
/// A drop-in for `#[tokio::test]`: accepts `flavor = "current_thread"` (the
/// default) or `"multi_thread"`, `worker_threads = N`, and
/// `crate = "path::to::aiomp"`. Works in any integration test file; a spawned
/// worker re-runs only this test, which serves tasks instead of its body.
///
/// ```ignore
/// #[aiomp::test]
/// async fn doubles() {
///     // use a pool here
/// }
/// ```
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::test(args.into(), item.into()).into()
}
