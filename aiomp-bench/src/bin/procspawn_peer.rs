//! The `procspawn` peer of the aiomp benchmarks: its `Pool` (and its one-shot
//! `spawn`) on the workloads that have an equivalent there.
//!
//! A binary of its own, so that procspawn's re-exec entry (`procspawn::init()`)
//! never mixes with aiomp's. Run by the suite as `procspawn_peer WORKLOAD
//! ARGS...` (`w1 N [PROCESSES]`, `w4 N ITERS PAIRS [PROCESSES]`, ...); prints
//! one JSON object on stdout (the same fields as the Python peers).

// Rates, sizes and counts here stay far below 2^52: converting them to f64 loses nothing.
#![allow(clippy::cast_precision_loss)]

use std::io::Read;
use std::time::{Duration, Instant};

use procspawn::{JoinHandle, Pool};
use serde_bytes::ByteBuf;
use serde_json::json;

/// Every join in this peer gives up after this long.
const JOIN_TIMEOUT: Duration = Duration::from_secs(120);

fn main() {
    let started = Instant::now();
    procspawn::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let output = match args.first().map(String::as_str) {
        Some("w1") => w1(number(1, 2000), number(2, 2)),
        Some("w2") => w2(number(1, 2000)),
        Some("w4") => w4(number(1, 100), number(2, 1_000_000), number(3, 1), number(4, 2)),
        Some("w5") => w5(started),
        Some("w6") => w6(number(1, 200), number(2, 1 << 20)),
        Some("w7") => w7(number(1, 10)),
        Some("w9") => w9(),
        other => Err(format!("unknown workload {other:?}")),
    };
    match output {
        Ok(value) => println!("{value}"),
        Err(reason) => {
            eprintln!("procspawn peer: {reason}");
            std::process::exit(1);
        }
    }
}

/// A pool of `processes` workers.
fn pool(processes: u64) -> Result<Pool, String> {
    let pool = Pool::new(processes as usize).map_err(|e| e.to_string())?;
    // Every worker is up once each ran one call.
    let mut warm: Vec<JoinHandle<u64>> = (0..processes).map(|x| pool.spawn(x, |x| x * 2)).collect();
    for handle in &mut warm {
        join(handle)?;
    }
    Ok(pool)
}

fn join<T: serde::Serialize + serde::de::DeserializeOwned>(handle: &mut JoinHandle<T>) -> Result<T, String> {
    handle.join_timeout(JOIN_TIMEOUT).map_err(|e| e.to_string())
}

fn w1(n: u64, processes: u64) -> Result<serde_json::Value, String> {
    let pool = pool(processes)?;
    let started = Instant::now();
    let mut handles: Vec<JoinHandle<u64>> = (0..n).map(|x| pool.spawn(x, |x| x * 2)).collect();
    let mut last = 0;
    for handle in &mut handles {
        last = join(handle)?;
    }
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(last, (n - 1) * 2);
    pool.kill();
    Ok(json!({ "n": n, "seconds": seconds, "config": "Pool::spawn per item, all submitted, then joined" }))
}

fn w2(n: u64) -> Result<serde_json::Value, String> {
    let pool = pool(2)?;
    let mut samples = Vec::new();
    for x in 0..n {
        let started = Instant::now();
        let doubled = join(&mut pool.spawn(x, |x| x * 2))?;
        samples.push(started.elapsed().as_secs_f64() * 1e6);
        assert_eq!(doubled, 2 * x);
    }
    pool.kill();
    Ok(json!({ "samples_us": samples }))
}

fn w4(n: u64, iters: u64, pairs: u64, processes: u64) -> Result<serde_json::Value, String> {
    let pool = pool(processes)?;
    let mut measured = Vec::new();
    for _ in 0..pairs.max(1) {
        let started = Instant::now();
        let serial: Vec<u64> = (0..n).map(|_| aiomp_bench::work::spin(iters)).collect();
        let serial_seconds = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let mut handles: Vec<JoinHandle<u64>> = (0..n).map(|_| pool.spawn(iters, aiomp_bench::work::spin)).collect();
        let parallel = handles.iter_mut().map(join).collect::<Result<Vec<u64>, String>>()?;
        measured.push((serial_seconds, started.elapsed().as_secs_f64()));
        assert_eq!(serial, parallel);
    }
    pool.kill();
    let ((serial_seconds, pool_seconds), note) = aiomp_bench::stats::median_pair(measured);
    Ok(json!({
        "serial_seconds": serial_seconds,
        "pool_seconds": pool_seconds,
        "config": format!("spin({iters}); {note}"),
    }))
}

fn w5(started: Instant) -> Result<serde_json::Value, String> {
    let pool = Pool::new(2).map_err(|e| e.to_string())?;
    assert_eq!(join(&mut pool.spawn(21u64, |x| x * 2))?, 42);
    pool.shutdown();
    Ok(json!({ "seconds": started.elapsed().as_secs_f64() }))
}

fn w6(count: u64, size: u64) -> Result<serde_json::Value, String> {
    /// Buffers in flight at once: one per worker. With more, procspawn 1.0.2
    /// hangs on arguments over ~256 KiB (its IPC send blocks until a worker takes the call).
    const WINDOW: usize = 2;
    let pool = pool(2)?;
    // The same pass twice; the second is timed (the first warms the allocators).
    let mut timed = (0.0, 0);
    for _ in 0..2 {
        let started = Instant::now();
        let mut in_flight = std::collections::VecDeque::new();
        let mut total = 0u64;
        for i in 0..count {
            if in_flight.len() == WINDOW {
                let mut oldest: JoinHandle<ByteBuf> = in_flight.pop_front().expect("window is full");
                total += 2 * join(&mut oldest)?.len() as u64;
            }
            let buffer = ByteBuf::from(vec![i as u8; size as usize]);
            in_flight.push_back(pool.spawn(buffer, |b| b));
        }
        for mut handle in in_flight {
            total += 2 * join(&mut handle)?.len() as u64;
        }
        timed = (started.elapsed().as_secs_f64(), total);
    }
    let (seconds, total) = timed;
    pool.kill();
    Ok(json!({
        "seconds": seconds,
        "bytes": total,
        "config": format!("serde_bytes::ByteBuf, {WINDOW} in flight, second of two passes")
    }))
}

fn w7(reps: u64) -> Result<serde_json::Value, String> {
    let mut samples = Vec::new();
    for _ in 0..=reps {
        let started = Instant::now();
        let mut handle = procspawn::spawn(1u64, |x| x * 2);
        assert_eq!(join(&mut handle)?, 2);
        samples.push(started.elapsed().as_secs_f64() * 1e6);
    }
    samples.remove(0);
    Ok(json!({ "samples_us": samples, "config": "procspawn::spawn(1, double).join()" }))
}

fn w9() -> Result<serde_json::Value, String> {
    let pool = pool(2)?;
    println!("{}", json!({ "ready": true }));
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    pool.kill();
    Ok(json!({ "idle": true }))
}
