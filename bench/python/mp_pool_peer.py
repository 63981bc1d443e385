"""The multiprocessing.Pool peer of the aiomp benchmarks (see common.py)."""

import multiprocessing
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import (  # noqa: E402
    MIB,
    buffers,
    calibrate,
    double,
    emit,
    identity,
    median_pair,
    parse,
    spin,
    timed,
    vm_hwm_kib,
    wait_for_eof,
)


def w1(args, ctx):
    tries = []
    for chunksize in (int(c) for c in args.chunksizes.split(",")):
        # A chunksize of 1 costs a round trip per item: fewer items keep it short.
        n = min(args.n, chunksize * 20_000)
        with ctx.Pool(args.processes) as pool:
            pool.apply(double, (1,))
            start = time.perf_counter()
            results = pool.map(double, range(n), chunksize=chunksize)
            seconds = time.perf_counter() - start
        assert results[-1] == (n - 1) * 2
        tries.append({"chunksize": chunksize, "n": n, "seconds": seconds, "rate": n / seconds})
    best = max(tries, key=lambda t: t["rate"])
    others = ", ".join(f"{t['chunksize']}: {t['rate']:,.0f}/s" for t in tries)
    emit(n=best["n"], seconds=best["seconds"], config=f"best chunksize {best['chunksize']} (tried {others})")


def w2(args, ctx):
    samples = []
    with ctx.Pool(args.processes) as pool:
        pool.apply(double, (1,))
        for x in range(args.n):
            start = time.perf_counter()
            assert pool.apply(double, (x,)) == 2 * x
            samples.append((time.perf_counter() - start) * 1e6)
    emit(samples_us=samples)


def w4(args, ctx):
    iters = calibrate(args.target_ms)
    pairs = []
    with ctx.Pool(args.processes) as pool:
        pool.apply(double, (1,))
        for _ in range(args.reps):
            serial, serial_seconds = timed(lambda: [spin(iters) for _ in range(args.n)])
            parallel, pool_seconds = timed(lambda: pool.map(spin, [iters] * args.n, chunksize=1))
            assert serial == parallel
            pairs.append((serial_seconds, pool_seconds))
    (serial_seconds, pool_seconds), note = median_pair(pairs)
    emit(serial_seconds=serial_seconds, pool_seconds=pool_seconds, config=f"spin({iters}), chunksize 1; {note}")


def w5(args, ctx):
    start = time.perf_counter()
    pool = ctx.Pool(args.processes)
    assert pool.apply(double, (21,)) == 42
    pool.close()
    pool.join()
    emit(seconds=time.perf_counter() - start)


def w6(args, ctx):
    total = 0
    with ctx.Pool(args.processes) as pool:
        pool.apply(double, (1,))
        start = time.perf_counter()
        for buf in pool.imap(identity, buffers(args.n, args.size), chunksize=1):
            total += 2 * len(buf)
        seconds = time.perf_counter() - start
    emit(seconds=seconds, bytes=total, config="bytes, pickled; imap, chunksize 1")


def child_double(conn, x):
    conn.send(double(x))
    conn.close()


def w7(args, ctx):
    samples = []
    for _ in range(args.reps + 1):
        start = time.perf_counter()
        parent, child = ctx.Pipe(duplex=False)
        process = ctx.Process(target=child_double, args=(child, 1))
        process.start()
        child.close()
        assert parent.recv() == 2
        process.join()
        samples.append((time.perf_counter() - start) * 1e6)
    emit(samples_us=samples[1:], config="Process + Pipe, start, recv, join")


def w8(args, ctx):
    chunksize = 1000
    start = time.perf_counter()
    count = 0
    with ctx.Pool(args.processes) as pool:
        for value in pool.imap(double, range(args.n), chunksize=chunksize):
            count += 1
        seconds = time.perf_counter() - start
    assert count == args.n
    emit(n=args.n, seconds=seconds, vm_hwm_kib=vm_hwm_kib(), config=f"imap, chunksize {chunksize}")


def w9(args, ctx):
    with ctx.Pool(args.processes) as pool:
        pool.apply(double, (1,))
        wait_for_eof()


def recycling(args, ctx):
    with ctx.Pool(args.processes, maxtasksperchild=1) as pool:
        start = time.perf_counter()
        results = pool.map(double, range(args.n), chunksize=1)
        seconds = time.perf_counter() - start
    assert results[-1] == (args.n - 1) * 2
    emit(n=args.n, seconds=seconds, config="maxtasksperchild=1, chunksize 1")


WORKLOADS = {"w1": w1, "w2": w2, "w4": w4, "w5": w5, "w6": w6, "w7": w7, "w8": w8, "w9": w9, "recycling": recycling}

if __name__ == "__main__":
    args = parse(WORKLOADS)
    WORKLOADS[args.workload](args, multiprocessing.get_context(args.method))
