"""Why ``fastnn bench`` pauses before each epoch: another library's OpenBLAS threads keep spinning.

    FASTNN_MNIST=../shared/data/mnist python benchmarks/experiments/blas_settle.py [--batch 512] [--rounds 5]

NumPy and SciPy each bundle their own OpenBLAS; after its last product a worker thread spins for
2^28 cycles (about 0.1 s) before it sleeps.  NumPy's reference backend calls NumPy's; the Numba and
Cython backends call NumPy's too by default (kernels/blas.py), SciPy's with FASTNN_BLAS=scipy, which
shows the effect.  This times one fastnn epoch (numba backend) right after a NumPy epoch,
after a NumPy epoch and a pause of ``fastnn.bench.SETTLE_S``, and right after a Cython epoch (the
same OpenBLAS as numba's), round-robin; prints the medians.
"""
from __future__ import annotations

import argparse
import statistics
import time

import fastnn
from fastnn import bench


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--rows", type=int, default=60000, help="training rows per epoch")
    ap.add_argument("--data", default=None, help="MNIST directory (default: $FASTNN_MNIST, else the bundled subset)")
    args = ap.parse_args()
    X, y = bench.epoch_data(args.data, n=args.rows)
    cases = {n: bench._epoch_case(n, X, y, args.batch) for n in ("numpy", "numba", "cython")}

    def timed(name: str) -> float:
        t0 = time.perf_counter()
        cases[name].run()
        return time.perf_counter() - t0

    for name in cases:  # compile, warm up
        timed(name)
    res: dict[str, list[float]] = {"after numpy": [], f"after numpy + {bench.SETTLE_S} s pause": [], "after cython": []}
    for _ in range(args.rounds):
        timed("numpy")
        res["after numpy"].append(timed("numba"))
        timed("numpy")
        time.sleep(bench.SETTLE_S)
        res[f"after numpy + {bench.SETTLE_S} s pause"].append(timed("numba"))
        timed("cython")
        res["after cython"].append(timed("numba"))
    print(f"numba epoch, batch {args.batch}, {fastnn.get_num_threads()} threads, medians of {args.rounds}:")
    for k, v in res.items():
        print(f"  {k}: {statistics.median(v):.3f} s  ({', '.join(f'{t:.3f}' for t in v)})")


if __name__ == "__main__":
    main()
