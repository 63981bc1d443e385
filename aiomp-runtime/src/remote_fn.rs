//! What a `#[remote]` function looks like from the parent: its argument tuple
//! and output type, and how its calls are encoded.

use std::future::Future;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::chunk::{Encoded, push_args};
use crate::error::Error;
use crate::protocol::{Call, TaskError};
use crate::registry::{FunctionIndex, Registry};

/// Marks the [`RemoteFn`] implementation of an `async fn`.
#[derive(Debug)]
pub enum AsyncFn {}

/// Marks the [`RemoteFn`] implementation of a plain `fn`.
#[derive(Debug)]
pub enum BlockingFn {}

/// A function that can run in a worker, called with the argument tuple `Args`.
///
/// Implemented for every `async fn` and `fn` of up to eight arguments whose
/// arguments and output can cross the process boundary; `Marker` tells the two
/// apart and is always inferred. Whether the function is actually
/// `#[remote]` is checked when it is called: an unregistered function gives
/// [`Error::NotRegistered`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be called remotely with arguments `{Args}`",
    label = "expects a #[remote] fn whose arguments match this tuple",
    note = "pass the argument tuple: `()` for none, `(x,)` for one, `(a, b)` for two"
)]
pub trait RemoteFn<Args, Marker>: Copy + Send + Sync + 'static {
    /// What the function returns (for an `async fn`, what its future yields).
    type Output: DeserializeOwned + Send + 'static;

    /// Whether it is a plain `fn`: it runs on a worker's runtime thread and
    /// holds that thread until it returns.
    #[doc(hidden)]
    const BLOCKING: bool;
}

macro_rules! remote_fn_impls {
    ($($arg:ident),*) => {
        impl<F, Fut, $($arg,)*> RemoteFn<($($arg,)*), AsyncFn> for F
        where
            F: Fn($($arg),*) -> Fut + Copy + Send + Sync + 'static,
            Fut: Future,
            Fut::Output: DeserializeOwned + Send + 'static,
            $($arg: Serialize,)*
        {
            type Output = Fut::Output;
            const BLOCKING: bool = false;
        }

        impl<F, R, $($arg,)*> RemoteFn<($($arg,)*), BlockingFn> for F
        where
            F: Fn($($arg),*) -> R + Copy + Send + Sync + 'static,
            R: DeserializeOwned + Send + 'static,
            $($arg: Serialize,)*
        {
            type Output = R;
            const BLOCKING: bool = true;
        }
    };
}

remote_fn_impls!();
remote_fn_impls!(A1);
remote_fn_impls!(A1, A2);
remote_fn_impls!(A1, A2, A3);
remote_fn_impls!(A1, A2, A3, A4);
remote_fn_impls!(A1, A2, A3, A4, A5);
remote_fn_impls!(A1, A2, A3, A4, A5, A6);
remote_fn_impls!(A1, A2, A3, A4, A5, A6, A7);
remote_fn_impls!(A1, A2, A3, A4, A5, A6, A7, A8);

/// The registry index of the function `F`.
pub(crate) fn function_index<F: 'static>() -> Result<FunctionIndex, Error> {
    Registry::get()?.index_of::<F>()
}

/// The stable ID of the function at `index`, without allocating ("" if unknown).
pub(crate) fn function_name(index: FunctionIndex) -> &'static str {
    Registry::get().ok().and_then(|r| r.id(index)).unwrap_or("")
}

/// Encodes one argument tuple of the function at `function`.
pub(crate) fn encode_args<Args: Serialize>(function: FunctionIndex, args: &Args) -> Result<Vec<u8>, Error> {
    postcard::to_stdvec(args).map_err(|source| unencodable_args(function, source))
}

/// Appends one argument tuple of the function at `function` to a chunk's
/// argument buffer (large buffers by reference); on failure it is as it was.
pub(crate) fn push_call_args<Args: Serialize>(
    function: FunctionIndex,
    args: &Args,
    out: &mut Encoded,
) -> Result<(), Error> {
    push_args(args, out).map_err(|source| unencodable_args(function, source))
}

fn unencodable_args(function: FunctionIndex, source: postcard::Error) -> Error {
    Error::Codec {
        function: function_id(function),
        action: "encode the arguments",
        source,
    }
}

/// The stable ID of the function at `index`, for error messages.
pub(crate) fn function_id(index: FunctionIndex) -> String {
    match function_name(index) {
        "" => format!("#{index}"),
        name => name.to_owned(),
    }
}

/// Encodes a call of the function at `function` with `args`.
pub(crate) fn encode_call<Args: Serialize>(function: FunctionIndex, args: &Args) -> Result<Call, Error> {
    Ok(Call {
        function,
        args: encode_args(function, args)?,
    })
}

/// Decodes the return value of the function at `function` from `bytes`,
/// which lie in `source`: a large [`Buffer`](crate::Buffer) in it shares
/// `source` rather than being copied out.
pub(crate) fn decode_output<R: DeserializeOwned>(
    function: FunctionIndex,
    source: &Bytes,
    bytes: &[u8],
) -> Result<R, Error> {
    crate::buffer::decode_from(source, bytes, crate::codec::decode).map_err(|source| Error::Codec {
        function: function_id(function),
        action: "decode the result",
        source,
    })
}

/// The caller's error from an encoded [`TaskError`].
pub(crate) fn decode_task_error(function: FunctionIndex, bytes: &[u8]) -> Error {
    match crate::codec::decode::<TaskError>(bytes) {
        Ok(error) => task_error(function, error),
        Err(e) => Error::Transport {
            pid: 0,
            reason: format!("a worker sent a failure that does not decode: {e}"),
        },
    }
}

/// The caller's error for a task that failed in the worker.
pub(crate) fn task_error(function: FunctionIndex, error: TaskError) -> Error {
    match error {
        TaskError::Remote(remote) => Error::Remote(Box::new(remote)),
        TaskError::Codec { action, error } => Error::Codec {
            function: function_id(function),
            action: action.describe(),
            source: error,
        },
    }
}
