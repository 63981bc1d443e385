//! W6: identity over 200 byte buffers of 1 MiB each on 2 processes; MB/s of
//! bytes sent + received (MB = 10⁶ bytes).
//!
//! Three aiomp rows: `aiomp::Buffer`, which crosses without a copy in user
//! space (the idiomatic type, which the target is for); `serde_bytes::ByteBuf`,
//! which postcard writes as a length and the bytes, copied into and out of
//! each frame; and a plain `Vec<u8>`, which serde hands to postcard one
//! element at a time (the trap).

use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_bytes::ByteBuf;

use crate::limits::{self, FRAME_BYTES};
use crate::peers::python::Library;
use crate::peers::{self, PeerOutput};
use crate::remote::{identity_buffer, identity_bytes, identity_vec};
use crate::row::{Row, System, Value, Workload};
use crate::suite::{Context, deadline};
use crate::workloads::{PoolConfig, measure, shut_down};

/// The size of each buffer: 1 MiB.
pub const BUFFER_BYTES: usize = 1 << 20;

/// Runs W6 on every system.
pub async fn run(context: &Context) -> Vec<Row> {
    let count = context.scale.w6_buffers;
    let limit = deadline(context, Duration::from_secs(180));
    let config = PoolConfig::new(2, 16);
    let base = format!("{count} buffers of 1 MiB, results streamed");
    let warmed = format!("{base}, second of two passes");
    let mut rows = vec![
        Row::new(
            Workload::W6,
            System::Aiomp,
            Some("Buffer"),
            format!("{warmed}, aiomp::Buffer, {}", config.describe()),
            measure(
                limit,
                aiomp_identity(
                    config,
                    count,
                    |i| aiomp::Buffer::from(buffer(i)),
                    |pool, items| pool.map(identity_buffer, items),
                ),
            )
            .await,
        ),
        Row::new(
            Workload::W6,
            System::Aiomp,
            Some("ByteBuf"),
            format!("{warmed}, serde_bytes::ByteBuf, {}", config.describe()),
            measure(
                limit,
                aiomp_identity(
                    config,
                    count,
                    |i| ByteBuf::from(buffer(i)),
                    |pool, items| pool.map(identity_bytes, items),
                ),
            )
            .await,
        ),
        Row::new(
            Workload::W6,
            System::Aiomp,
            Some("Vec<u8>"),
            format!("{warmed}, plain Vec<u8>, {}", config.describe()),
            measure(
                limit,
                aiomp_identity(config, count, buffer, |pool, items| pool.map(identity_vec, items)),
            )
            .await,
        ),
    ];
    let options = [("n", count.to_string()), ("size", BUFFER_BYTES.to_string())];
    for (system, library) in [
        (System::Aiomultiprocess, Library::Aiomultiprocess),
        (System::MpPool, Library::Multiprocessing),
    ] {
        let run = context.python.run(library, "w6", &options, limit).await;
        rows.push(peers::row(
            Workload::W6,
            system,
            None,
            &base,
            run,
            PeerOutput::throughput,
        ));
    }
    let run = context.procspawn.run("w6", &[count, BUFFER_BYTES as u64], limit).await;
    rows.push(peers::row(
        Workload::W6,
        System::Procspawn,
        None,
        &base,
        run,
        PeerOutput::throughput,
    ));
    let frames = context.scale.stream_frames;
    rows.push(Row::new(
        Workload::W6,
        System::Limit,
        Some("one-way Unix-socket stream"),
        format!(
            "{frames} frames of {} MiB, blocking std I/O, two processes (one direction only), median of {} passes",
            FRAME_BYTES >> 20,
            limits::STREAM_PASSES
        ),
        limits::one_way_stream(frames, limit).await,
    ));
    rows
}

/// Buffer `i`: 1 MiB of the byte `i`.
fn buffer(i: u64) -> Vec<u8> {
    vec![i as u8; BUFFER_BYTES]
}

async fn aiomp_identity<B, M>(config: PoolConfig, count: u64, make: fn(u64) -> B, map: M) -> Result<Value, String>
where
    B: Serialize + DeserializeOwned + AsRef<[u8]> + Send + 'static,
    M: Fn(&aiomp::Pool, std::iter::Map<std::ops::Range<u64>, fn(u64) -> B>) -> aiomp::PoolResult<B>,
{
    let pool = config.build().await.map_err(|e| e.to_string())?;
    pool.apply(crate::remote::double, (1,))
        .await
        .map_err(|e| e.to_string())?;
    // The same pass twice; the second is timed (the first warms the allocators).
    let mut timed = Err("no pass".to_owned());
    for _ in 0..2 {
        timed = identity_pass(&pool, count, make, &map).await;
    }
    shut_down(pool).await?;
    timed
}

/// One map of `count` buffers through `map`, checked; its throughput.
async fn identity_pass<B, M>(pool: &aiomp::Pool, count: u64, make: fn(u64) -> B, map: &M) -> Result<Value, String>
where
    B: Serialize + DeserializeOwned + AsRef<[u8]> + Send + 'static,
    M: Fn(&aiomp::Pool, std::iter::Map<std::ops::Range<u64>, fn(u64) -> B>) -> aiomp::PoolResult<B>,
{
    let started = Instant::now();
    let mut results = map(pool, (0..count).map(make));
    let mut bytes = 0u64;
    let mut index = 0u64;
    while let Some(result) = results.next().await {
        let buffer = result.map_err(|e| e.to_string())?;
        let buffer = buffer.as_ref();
        if buffer.len() != BUFFER_BYTES || buffer.first() != Some(&(index as u8)) {
            return Err(format!("buffer {index} came back wrong"));
        }
        bytes += 2 * buffer.len() as u64;
        index += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    drop(results);
    if index != count {
        return Err(format!("{index} of {count} buffers came back"));
    }
    Ok(Value::Throughput {
        mb_per_second: bytes as f64 / seconds / 1e6,
    })
}
