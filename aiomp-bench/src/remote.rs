//! The `#[remote]` functions the workloads run on aiomp's workers.

use std::time::Duration;

use aiomp::remote;
use serde_bytes::ByteBuf;

/// W1, W2, W5, W7, W8, W9, recycling: the trivial task.
#[remote]
pub async fn double(x: u64) -> u64 {
    x * 2
}

/// W3: an I/O-bound task that sleeps `ms` milliseconds and returns `x`.
#[remote]
pub async fn sleep_ms(x: u64, ms: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    x
}

/// W3 (precise): sleeps `ms` milliseconds on a timerfd, to the microsecond,
/// and returns `x`.
///
/// # Panics
///
/// If the kernel refuses a timerfd (never on Linux ≥ 2.6.25).
#[remote]
pub async fn sleep_precisely_ms(x: u64, ms: u64) -> u64 {
    crate::timer::sleep(Duration::from_millis(ms))
        .await
        .expect("a timerfd works on Linux");
    x
}

/// W4: CPU-bound work on the worker's thread (a plain `fn`).
#[remote]
pub fn spin(iters: u64) -> u64 {
    crate::work::spin(iters)
}

/// W6: the idiomatic byte buffer, which postcard encodes as one length and the bytes.
#[remote]
pub async fn identity_bytes(buf: ByteBuf) -> ByteBuf {
    buf
}

/// W6: aiomp's own buffer, which crosses without a copy in user space.
#[remote]
pub async fn identity_buffer(buf: aiomp::Buffer) -> aiomp::Buffer {
    buf
}

/// W6: a plain `Vec<u8>`, which serde hands to postcard element by element.
#[remote]
pub async fn identity_vec(buf: Vec<u8>) -> Vec<u8> {
    buf
}
