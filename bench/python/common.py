"""Shared helpers of the Python peers: the workload functions, calibration,
argument parsing and the one JSON line each run prints.

Every peer script is run by the aiomp-bench suite (aiomp-bench/src/peers/python.rs)
as `python SCRIPT WORKLOAD [--key value ...]` and prints exactly one JSON object
on its last line of stdout.
"""

import argparse
import json
import sys
import time

MIB = 1 << 20


def double(x):
    """W1, W2, W8: the trivial task."""
    return x * 2


def spin(iters):
    """W4: CPU-bound work, the same arithmetic as the Rust `spin`."""
    acc = 0
    for i in range(iters):
        acc = (acc * 31 + i * i % 7) & 0xFFFFFFFFFFFFFFFF
    return acc


def identity(buf):
    """W6: returns its argument."""
    return buf


def calibrate(target_ms):
    """Iterations of `spin` that take about `target_ms` in this process."""
    iters = 10_000
    while True:
        start = time.perf_counter()
        spin(iters)
        elapsed = time.perf_counter() - start
        if elapsed > 0.005:
            break
        iters *= 4
    iters = max(1, int(iters * target_ms / 1000 / elapsed))
    samples = []
    for _ in range(3):
        start = time.perf_counter()
        spin(iters)
        samples.append(time.perf_counter() - start)
    samples.sort()
    return max(1, int(iters * target_ms / 1000 / samples[1]))


def timed(f):
    """`f()` and the seconds it took."""
    start = time.perf_counter()
    result = f()
    return result, time.perf_counter() - start


def median_pair(pairs):
    """W4: of `(serial_seconds, pool_seconds)` pairs, the one whose speedup is
    the median, and a note listing every pair's speedup."""
    ranked = sorted(pairs, key=lambda pair: pair[0] / pair[1])
    speedups = ", ".join(f"{serial / pool:.2f}" for serial, pool in ranked)
    if len(ranked) == 1:
        return ranked[0], f"one pair (speedup {speedups})"
    return ranked[len(ranked) // 2], f"median of {len(pairs)} pairs (speedups {speedups})"


def buffers(count, size):
    """W6: `count` distinct buffers of `size` bytes, made lazily."""
    for i in range(count):
        yield bytes([i % 256]) * size


def vm_hwm_kib():
    """The peak resident set of this process, from /proc/self/status."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def parse(workloads):
    """The workload name and its options."""
    parser = argparse.ArgumentParser()
    parser.add_argument("workload", choices=sorted(workloads))
    parser.add_argument("--n", type=int, default=0)
    parser.add_argument("--method", default="spawn")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--sleep-ms", type=float, default=10.0)
    parser.add_argument("--target-ms", type=float, default=20.0)
    parser.add_argument("--size", type=int, default=MIB)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--chunksizes", default="1,10,100,1000,10000,100000")
    return parser.parse_args()


def emit(**fields):
    """Prints the run's one JSON line."""
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def wait_for_eof():
    """W9: tells the suite the pool is ready, then idles until stdin closes."""
    emit(ready=True)
    sys.stdin.read()
