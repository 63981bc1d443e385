//! Helpers shared by the integration tests.

/// Defines a test once per start method: a module named after the test with
/// `spawn`, `fork` and `forkserver` tests, each an `#[aiomp::test]` that runs
/// the body with that method bound to the given name.
///
/// ```ignore
/// each_start_method! {
///     /// Attributes and doc comments go on each of the three tests.
///     async fn worker_returns(method) {
///         let v: u64 = Worker::with_args(double, (21,)).start_method(method).await.unwrap();
///         assert_eq!(v, 42);
///     }
/// }
/// ```
///
/// defines `worker_returns::spawn`, `worker_returns::fork` and
/// `worker_returns::forkserver`. The body sees the file's items through
/// `use super::*`; it may declare a return type (`-> aiomp::Result<()>`),
/// which the three tests then return. Each test passes its method to every
/// `Pool`, `Process` and `Worker` it builds: never set the global
/// `aiomp::set_start_method` in a test, since tests run in parallel threads
/// of one process.
macro_rules! each_start_method {
    ($(#[$attr:meta])* async fn $name:ident($method:ident) $(-> $ret:ty)? $body:block) => {
        mod $name {
            #[allow(unused_imports, clippy::wildcard_imports)]
            use super::*;

            async fn body($method: ::aiomp::StartMethod) $(-> $ret)? $body

            $(#[$attr])*
            #[::aiomp::test]
            async fn spawn() $(-> $ret)? {
                body(::aiomp::StartMethod::Spawn).await
            }

            $(#[$attr])*
            #[::aiomp::test]
            async fn fork() $(-> $ret)? {
                body(::aiomp::StartMethod::Fork).await
            }

            $(#[$attr])*
            #[::aiomp::test]
            async fn forkserver() $(-> $ret)? {
                body(::aiomp::StartMethod::Forkserver).await
            }
        }
    };
}
pub(crate) use each_start_method;
