"""The fused epochs on a thread team against the same epochs on the BLAS's threads, round-robin.

    FASTNN_MNIST=../shared/data/mnist python benchmarks/experiments/team.py [--batches 32,128,512] [--rounds 5]
    python benchmarks/experiments/team.py --small        # small networks on random data: where a team stops paying
    python benchmarks/experiments/team.py --gemm         # does splitting a product across threads cost the BLAS speed?
    FASTNN_MNIST=../shared/data/mnist python benchmarks/experiments/team.py --validation   # fit's BLAS scope on / off

Each backend's fused epoch runs on a team of fastnn's thread count (kernels/team.py) when a batch
carries at least ``TEAM_MIN_WORK`` multiply-adds; this sets that threshold to 0 (always a team) or
out of reach (never) in turn, with ``fastnn.bench.SETTLE_S`` of pause before each epoch, and prints
the medians.  The epoch is one ``fit(epochs=1)``, as ``fastnn bench`` times it (that includes
fit's own setup, about a millisecond, which dominates the smallest networks).
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import fastnn
from fastnn import backends, bench
from fastnn.kernels import team

SMALL = [([8, 16, 4], 32), ([64, 64, 10], 32), ([64, 64, 10], 128), ([64, 64, 10], 512), ([128, 128, 10], 32),
         ([784, 32, 10], 32), ([784, 64, 10], 128)]


def _compare(run, module, rounds: int) -> tuple[float, float]:
    """(team, no team) medians of ``run()`` with module.TEAM_MIN_WORK forced each way, alternating."""
    saved = module.TEAM_MIN_WORK
    res: dict[bool, list[float]] = {True: [], False: []}
    try:
        for _ in range(rounds):
            for on in (True, False):
                module.TEAM_MIN_WORK = 0 if on else 1 << 62
                time.sleep(bench.SETTLE_S)
                t0 = time.perf_counter()
                run()
                res[on].append(time.perf_counter() - t0)
    finally:
        module.TEAM_MIN_WORK = saved
    return statistics.median(res[True]), statistics.median(res[False])


def split_gemm(rounds: int, reps: int = 200) -> None:
    """(512 x 784) @ (784 x 256): the BLAS on 2 threads, against 2 threads each computing half the rows on a
    1-thread BLAS (what a team does), against 1 thread; GFLOP/s of the medians."""
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    A = rng.random((512, 784), dtype=np.float32)
    W = rng.random((784, 256), dtype=np.float32)
    C = np.empty((512, 256), dtype=np.float32)
    pool = ThreadPoolExecutor(2)

    def half(i: int) -> None:
        np.matmul(A[i * 256:(i + 1) * 256], W, out=C[i * 256:(i + 1) * 256])

    def blas_threads() -> None:
        with threadpool_limits(2):
            for _ in range(reps):
                np.matmul(A, W, out=C)

    def halves() -> None:
        with threadpool_limits(1):
            for _ in range(reps):
                list(pool.map(half, (0, 1)))

    def one() -> None:
        with threadpool_limits(1):
            for _ in range(reps):
                np.matmul(A, W, out=C)

    runs = {"BLAS on 2 threads": blas_threads, "2 Python threads, half the rows each, BLAS on 1": halves,
            "1 thread": one}
    times: dict[str, list[float]] = {k: [] for k in runs}
    for f in runs.values():
        f()  # warm up
    for _ in range(rounds):
        for name, f in runs.items():
            time.sleep(bench.SETTLE_S)
            t0 = time.perf_counter()
            f()
            times[name].append((time.perf_counter() - t0) / reps)
    for name, v in times.items():
        print(f"{name}: {2 * 512 * 784 * 256 / statistics.median(v) / 1e9:.0f} GFLOP/s")


def validation_scope(X, y, names: list[str], batch: int, rounds: int, epochs: int = 4) -> None:
    """Epoch times of fits with 10,000 validation rows, the backend's fit_scope (the BLAS held at one
    thread for the whole fit) on and replaced by a no-op, alternating; each epoch includes its validation pass."""
    import contextlib

    Xv, yv = X[:10000], y[:10000]
    for name in names:
        module = backends.get(name)
        scope = module.fit_scope
        m = fastnn.MLP([784, 256, 128, 10], dtype="float32", backend=name, seed=0)
        m.fit(X, y, epochs=1, batch_size=batch, verbose=0)  # compile, warm up
        res: dict[bool, list[float]] = {True: [], False: []}
        try:
            for _ in range(rounds):
                for on in (True, False):
                    module.fit_scope = scope if on else (lambda spec, b: contextlib.nullcontext(False))
                    time.sleep(bench.SETTLE_S)
                    h = m.fit(X, y, epochs=epochs, batch_size=batch, lr=0.01, verbose=0, validation_data=(Xv, yv))
                    res[on] += h.epoch_time[1:]  # the first epoch may meet threads spinning from before
        finally:
            module.fit_scope = scope
        print(f"{name} batch {batch}: epoch + validation, scope on {statistics.median(res[True]):.3f} s, "
              f"off {statistics.median(res[False]):.3f} s (medians of {len(res[True])})", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", default="32,128,512")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--rows", type=int, default=60000, help="training rows per epoch")
    ap.add_argument("--data", default=None, help="MNIST directory (default: $FASTNN_MNIST, else the bundled subset)")
    ap.add_argument("--small", action="store_true", help="small networks on random data instead of MNIST")
    ap.add_argument("--gemm", action="store_true", help="one product split across threads, against the BLAS's threads")
    ap.add_argument("--validation", action="store_true",
                    help="fits with validation data, fit's BLAS scope on and off (784-256-128-10)")
    args = ap.parse_args()
    if args.gemm:
        split_gemm(args.rounds)
        return
    names = [n for n in ("numba", "cython") if n in backends.available()]
    if not args.validation:
        print(f"{fastnn.get_num_threads()} threads; team vs no team, medians of {args.rounds} epochs")
    if args.small:
        rng = np.random.default_rng(0)
        for sizes, batch in SMALL:
            X = rng.random((min(args.rows, 20000), sizes[0]), dtype=np.float32)
            y = rng.integers(0, sizes[-1], X.shape[0])
            cells = []
            for name in names:
                m = fastnn.MLP(sizes, dtype="float32", backend=name, seed=0)
                m.fit(X, y, epochs=1, batch_size=batch, verbose=0)  # compile, warm up
                on, off = _compare(lambda m=m, X=X, y=y, batch=batch: m.fit(X, y, epochs=1, batch_size=batch,
                                                                            verbose=0),
                                   backends.get(name), args.rounds)
                cells.append(f"{name} {on * 1e3:.1f} / {off * 1e3:.1f} ms")
            w = team.work(fastnn.MLP(sizes)._spec, batch)
            print(f"{'-'.join(map(str, sizes)):>12} batch {batch:>4} ({w / 1e6:.2f} M multiply-adds): "
                  f"team / no team: {', '.join(cells)}", flush=True)
        return
    X, y = bench.epoch_data(args.data, n=args.rows)
    if args.validation:
        for batch in (int(b) for b in args.batches.split(",")):
            validation_scope(X, y, names, batch, args.rounds)
        return
    for batch in (int(b) for b in args.batches.split(",")):
        cells = []
        for name in names:
            case = bench._epoch_case(name, X, y, batch)
            case.run()  # compile, warm up
            on, off = _compare(case.run, backends.get(name), args.rounds)
            cells.append(f"{name} {on:.3f} / {off:.3f} s ({off / on:.2f}x)")
        print(f"batch {batch:>4}: team / no team: {', '.join(cells)}", flush=True)


if __name__ == "__main__":
    main()
