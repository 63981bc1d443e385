//! Items the macros expand to. Not public API.

pub use ::inventory;
pub use ::serde;
pub use ::tokio;

use std::any::TypeId;
use std::future::Future;
use std::task::Poll;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::chunk::encode_spliced;
pub use crate::entry::{Flavor, enter_main, main_runtime, run_test};
pub use crate::registry::Registration;
use crate::registry::{InvokeError, Started};

/// The output an invoker appends a return value to, for generated code
/// under `#![no_implicit_prelude]`.
pub type Bytes = crate::chunk::Encoded;

/// A task's context, for generated code under `#![no_implicit_prelude]`.
pub type Context<'a> = std::task::Context<'a>;

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

/// The invoker body of an `async fn`: decode, start, and encode the value
/// at once if it completed at its first poll.
pub fn invoke_async<A, Fut>(
    args: &[u8],
    cx: &mut Context<'_>,
    out: &mut Bytes,
    call: impl FnOnce(A) -> Fut + Send + 'static,
) -> Started
where
    A: DeserializeOwned,
    Fut: Future + Send + 'static,
    Fut::Output: Serialize,
{
    let decoded = match postcard::from_bytes::<A>(args) {
        Ok(decoded) => decoded,
        Err(e) => return Started::Done(Err(InvokeError::DecodeArguments(e))),
    };
    // Boxed before its first poll: if it waits, it must not move again.
    let mut future = Box::pin(call(decoded));
    match future.as_mut().poll(cx) {
        Poll::Ready(value) => Started::Done(encode(&value, out)),
        Poll::Pending => Started::Pending(Box::pin(async move {
            let value = future.await;
            let mut out = Bytes::default();
            encode(&value, &mut out).map(|()| out)
        })),
    }
}

/// The invoker body of a plain `fn`: decode, call, encode. The call runs on
/// the worker's runtime, inside the chunk that carries it, so a panic in it
/// is caught like a panic in an `async fn`.
pub fn invoke_blocking<A, R>(
    args: &[u8],
    _cx: &mut Context<'_>,
    out: &mut Bytes,
    call: impl FnOnce(A) -> R + Send + 'static,
) -> Started
where
    A: DeserializeOwned + Send + 'static,
    R: Serialize,
{
    Started::Done(match postcard::from_bytes::<A>(args) {
        Ok(decoded) => encode(&call(decoded), out),
        Err(e) => Err(InvokeError::DecodeArguments(e)),
    })
}

fn encode<R: Serialize>(value: &R, out: &mut Bytes) -> Result<(), InvokeError> {
    encode_spliced(value, out).map_err(InvokeError::EncodeResult)
}
