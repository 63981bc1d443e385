"""The aiomultiprocess 0.9.1 peer of the aiomp benchmarks (see common.py)."""

import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import aiomultiprocess  # noqa: E402
from aiomultiprocess import Pool, Worker  # noqa: E402

from common import MIB, buffers, calibrate, emit, median_pair, parse, spin, timed, vm_hwm_kib, wait_for_eof  # noqa: E402


async def double(x):
    return x * 2


async def sleeper(x, seconds):
    await asyncio.sleep(seconds)
    return x


async def spin_async(iters):
    return spin(iters)


async def identity(buf):
    return buf


async def w1(args):
    async with Pool(args.processes, childconcurrency=args.concurrency) as pool:
        await pool.apply(double, (1,))
        start = time.perf_counter()
        results = await pool.map(double, range(args.n))
        seconds = time.perf_counter() - start
    assert results[-1] == (args.n - 1) * 2
    emit(n=args.n, seconds=seconds, config=f"childconcurrency {args.concurrency}")


async def w2(args):
    samples = []
    async with Pool(args.processes) as pool:
        await pool.apply(double, (1,))
        for x in range(args.n):
            start = time.perf_counter()
            assert await pool.apply(double, (x,)) == 2 * x
            samples.append((time.perf_counter() - start) * 1e6)
    emit(samples_us=samples)


async def w3(args):
    async with Pool(args.processes, childconcurrency=args.concurrency) as pool:
        await pool.apply(double, (1,))
        start = time.perf_counter()
        results = await pool.starmap(sleeper, [(x, args.sleep_ms / 1000) for x in range(args.n)])
        seconds = time.perf_counter() - start
    assert len(results) == args.n
    emit(seconds=seconds, config=f"childconcurrency {args.concurrency}")


async def w4(args):
    iters = calibrate(args.target_ms)
    pairs = []
    async with Pool(args.processes) as pool:
        await pool.apply(double, (1,))
        for _ in range(args.reps):
            serial, serial_seconds = timed(lambda: [spin(iters) for _ in range(args.n)])
            start = time.perf_counter()
            parallel = await pool.map(spin_async, [iters] * args.n)
            pool_seconds = time.perf_counter() - start
            assert list(serial) == list(parallel)
            pairs.append((serial_seconds, pool_seconds))
    (serial_seconds, pool_seconds), note = median_pair(pairs)
    emit(serial_seconds=serial_seconds, pool_seconds=pool_seconds, config=f"spin({iters}); {note}")


async def w5(args):
    start = time.perf_counter()
    pool = Pool(args.processes)
    assert await pool.apply(double, (21,)) == 42
    pool.close()
    await pool.join()
    emit(seconds=time.perf_counter() - start)


async def w6(args):
    async with Pool(args.processes) as pool:
        await pool.apply(double, (1,))
        start = time.perf_counter()
        total = sum(2 * len(buf) for buf in await pool.map(identity, buffers(args.n, args.size)))
        seconds = time.perf_counter() - start
    # Awaited, not `async for`: its async iteration polls each result every 5 ms.
    emit(seconds=seconds, bytes=total, config="bytes, pickled; awaited as a list")


async def w7(args):
    samples = []
    for _ in range(args.reps + 1):
        start = time.perf_counter()
        assert await Worker(target=double, args=(1,)) == 2
        samples.append((time.perf_counter() - start) * 1e6)
    emit(samples_us=samples[1:], config="await Worker(target=double, args=(1,))")


async def w8(args):
    start = time.perf_counter()
    count = 0
    async with Pool(args.processes) as pool:
        # Awaited, not `async for`: its async iteration polls each result every 5 ms
        # (25 s for 5,000 items), and it queues every task up front either way.
        for value in await pool.map(double, range(args.n)):
            count += 1
        seconds = time.perf_counter() - start
    assert count == args.n
    emit(n=args.n, seconds=seconds, vm_hwm_kib=vm_hwm_kib(), config="pool.map awaited as a list")


async def w9(args):
    async with Pool(args.processes) as pool:
        await pool.apply(double, (1,))
        await asyncio.get_running_loop().run_in_executor(None, wait_for_eof)


async def recycling(args):
    async with Pool(args.processes, maxtasksperchild=1) as pool:
        start = time.perf_counter()
        results = await pool.map(double, range(args.n))
        seconds = time.perf_counter() - start
    assert results[-1] == (args.n - 1) * 2
    emit(n=args.n, seconds=seconds, config="maxtasksperchild=1")


WORKLOADS = {
    "w1": w1, "w2": w2, "w3": w3, "w4": w4, "w5": w5, "w6": w6, "w7": w7, "w8": w8, "w9": w9, "recycling": recycling,
}

if __name__ == "__main__":
    args = parse(WORKLOADS)
    aiomultiprocess.set_start_method(args.method)
    asyncio.run(WORKLOADS[args.workload](args))
