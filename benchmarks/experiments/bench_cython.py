"""One training epoch of 784-256-128-10 float32 on the 60,000 MNIST images, per backend and batch.

    python benchmarks/experiments/bench_cython.py [--backends numpy,cython] [--batches 32,128,512] [--epochs 3]
                                                  [--data ../shared/data/mnist]

Each backend trains through ``MLP.fit`` (so the Cython and Numba backends run their fused
``train_epoch``); a short warm-up fit comes first (compilation, caches), then the median of the
epoch times of one ``fit(epochs=N)``.  All backends run in this one process, interleaved batch by
batch, so the ratios compare like with like; the thread count and BLAS libraries are printed with
them.  The full benchmark suite (every kernel, peers, JSON reports) is ``fastnn bench``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import fastnn
from fastnn.datasets import load_mnist
from fastnn.kernels import config


def main() -> None:
    here = Path(__file__).resolve().parents[2]  # the repository root
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default="numpy,cython")
    parser.add_argument("--batches", default="32,128,512")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="fastnn.set_num_threads(n) first")
    parser.add_argument("--data", default=config.get("FASTNN_MNIST") or str(here.parent / "shared" / "data" / "mnist"))
    args = parser.parse_args()
    names = args.backends.split(",")
    (X, y), _ = load_mnist(args.data)
    if args.threads:
        fastnn.set_num_threads(args.threads)
    print(f"threads: {fastnn.get_num_threads()}")
    for batch in (int(b) for b in args.batches.split(",")):
        median = {}
        for name in names:
            m = fastnn.MLP([784, 256, 128, 10], activation="relu", dtype="float32", seed=0, backend=name)
            m.fit(X[:2048], y[:2048], epochs=1, batch_size=batch, lr=0.05, verbose=0)  # warm-up
            h = m.fit(X, y, epochs=args.epochs, batch_size=batch, lr=0.05, verbose=0)
            median[name] = float(np.median(h.epoch_time))
            times = ", ".join(f"{t:.3f}" for t in h.epoch_time)
            print(f"batch {batch:4d}  {name:7s} median {median[name]:.3f} s/epoch  ({times}; "
                  f"train accuracy {h.accuracy[-1]:.4f})", flush=True)
        if "numpy" in median:
            print("            " + ", ".join(f"{n} {median['numpy'] / t:.2f}x numpy"
                                            for n, t in median.items() if n != "numpy"))

    from threadpoolctl import threadpool_info

    print("pools: " + "; ".join(f"{p['internal_api']} {p.get('version')} x{p['num_threads']} "
                                f"({Path(p['filepath']).name})" for p in threadpool_info()))


if __name__ == "__main__":
    main()
