//! Criterion micro-benchmarks of the wire codec, through public types only:
//! postcard encode/decode of a `Vec` of small tuples (what `starmap`
//! arguments look like) and of 1 MiB as `serde_bytes::ByteBuf` and as a
//! plain `Vec<u8>` (which serde hands to postcard element by element).

// Rates, sizes and counts here stay far below 2^52: converting them to f64 loses nothing.
#![allow(clippy::cast_precision_loss)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_bytes::ByteBuf;

const MIB: usize = 1 << 20;

fn small_tuples(c: &mut Criterion) {
    let tuples: Vec<(u64, u32, bool)> = (0..1000u64).map(|i| (i * 7919, i as u32, i % 2 == 0)).collect();
    let encoded = postcard::to_stdvec(&tuples).expect("encodes");
    let mut group = c.benchmark_group("codec/1000 small tuples");
    group.throughput(Throughput::Elements(tuples.len() as u64));
    group.bench_function("encode", |b| {
        b.iter(|| postcard::to_stdvec(black_box(&tuples)).expect("encodes"));
    });
    group.bench_function("decode", |b| {
        b.iter(|| postcard::from_bytes::<Vec<(u64, u32, bool)>>(black_box(&encoded)).expect("decodes"));
    });
    group.finish();
}

fn one_mib(c: &mut Criterion) {
    let buffer = ByteBuf::from(vec![0xa5u8; MIB]);
    let vec = vec![0xa5u8; MIB];
    let encoded = postcard::to_stdvec(&buffer).expect("encodes");
    let mut group = c.benchmark_group("codec/1 MiB");
    group.throughput(Throughput::Bytes(MIB as u64));
    group.bench_function("ByteBuf encode", |b| {
        b.iter(|| postcard::to_stdvec(black_box(&buffer)).expect("encodes"));
    });
    group.bench_function("ByteBuf decode", |b| {
        b.iter(|| postcard::from_bytes::<ByteBuf>(black_box(&encoded)).expect("decodes"));
    });
    group.bench_function("Vec<u8> encode", |b| {
        b.iter(|| postcard::to_stdvec(black_box(&vec)).expect("encodes"));
    });
    group.bench_function("Vec<u8> decode", |b| {
        b.iter(|| postcard::from_bytes::<Vec<u8>>(black_box(&encoded)).expect("decodes"));
    });
    group.finish();
}

criterion_group!(benches, small_tuples, one_mib);
criterion_main!(benches);
