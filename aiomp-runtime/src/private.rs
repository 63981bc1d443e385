//! Items the macros expand to. Not public API.

pub use ::inventory;
pub use ::serde;
pub use ::tokio;

use std::any::TypeId;
use std::future::Future;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use crate::entry::{Flavor, enter_main, main_runtime, run_test};
pub use crate::registry::Registration;
use crate::registry::{Invocation, InvokeError};

/// `Vec`, for generated code under `#![no_implicit_prelude]`.
pub type Bytes = std::vec::Vec<u8>;

/// The `TypeId` of a function item, by value.
pub fn type_id_of<T: 'static>(_: &T) -> TypeId {
    TypeId::of::<T>()
}

/// A type that can cross the process boundary as an argument or a result.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot cross the process boundary",
    label = "remote arguments and results must be `Serialize + DeserializeOwned + Send + 'static`",
    note = "derive `serde::Serialize` and `serde::Deserialize` for it, and use owned data (`String`, `Vec<T>`) instead of references"
)]
pub trait RemoteValue: Serialize + DeserializeOwned + Send + 'static {}

impl<T: Serialize + DeserializeOwned + Send + 'static> RemoteValue for T {}

/// Checks at compile time that an argument type can cross the boundary.
pub const fn assert_argument<T: RemoteValue>() {}

/// Checks at compile time that a return type can cross the boundary.
pub const fn assert_output<T: RemoteValue>() {}

/// The invoker body of an `async fn`: decode, await, encode.
#[allow(clippy::needless_pass_by_value)] // the invoker type owns its arguments
pub fn invoke_async<A, Fut>(args: Bytes, call: impl FnOnce(A) -> Fut + Send + 'static) -> Invocation
where
    A: DeserializeOwned,
    Fut: Future + Send + 'static,
    Fut::Output: Serialize,
{
    match postcard::from_bytes::<A>(&args) {
        Ok(decoded) => {
            let future = call(decoded);
            Box::pin(async move { encode(&future.await) })
        }
        Err(e) => Box::pin(std::future::ready(Err(InvokeError::DecodeArguments(e)))),
    }
}

/// The invoker body of a plain `fn`: decode, call, encode.
///
/// The call happens when the invocation is first polled, on the worker's
/// runtime, so a panic in it is caught like a panic in an `async fn`.
pub fn invoke_blocking<A, R>(args: Bytes, call: impl FnOnce(A) -> R + Send + 'static) -> Invocation
where
    A: DeserializeOwned + Send + 'static,
    R: Serialize,
{
    Box::pin(async move {
        let decoded = postcard::from_bytes::<A>(&args).map_err(InvokeError::DecodeArguments)?;
        encode(&call(decoded))
    })
}

fn encode<R: Serialize>(value: &R) -> Result<Vec<u8>, InvokeError> {
    postcard::to_stdvec(value).map_err(InvokeError::EncodeResult)
}
