"""What the fused epochs' sparse first layer buys: the same epochs with it forced off and on.

    FASTNN_MNIST=../shared/data/mnist python benchmarks/experiments/sparse_input.py [--batches 32,128,512] [--rounds 5]

For each batch size, one MNIST epoch (784-256-128-10, ReLU, plain SGD, float32) per backend and
mode, round-robin, ``--rounds`` times; prints the medians.
``fastnn.kernels.sparse_input.SPARSE_MAX_FILL = 0`` makes every batch take the dense path (BLAS on
all 784 input columns); 0.9 is the default.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import fastnn
from fastnn import bench
from fastnn.kernels import sparse_input

FUSED = ("numba", "cython")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", default="32,128,512")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--data", default=None, help="MNIST directory (default: $FASTNN_MNIST, else the bundled subset)")
    args = ap.parse_args()
    X, y = bench.epoch_data(args.data)
    print(f"exact zeros: {(X == 0).mean():.0%} of the inputs")
    names = [n for n in FUSED if n in fastnn.backends.available()]
    for batch in (int(b) for b in args.batches.split(",")):
        order = np.random.default_rng(0).permutation(len(X))
        zero_cols = [float((~(X[order[k:k + batch]] != 0).any(axis=0)).mean()) for k in range(0, len(X), batch)]
        print(f"batch {batch}: on average {statistics.mean(zero_cols):.0%} of the input columns are zero "
              f"in the whole batch")
        models = {n: fastnn.MLP(bench.LAYERS, activation="relu", seed=0, backend=n, dtype="float32") for n in names}
        for m in models.values():  # compile / warm up
            m.fit(X[:2000], y[:2000], epochs=1, batch_size=batch, lr=bench.EPOCH_LR, verbose=0)
        times: dict[str, list[float]] = {}
        for _ in range(args.rounds):
            for n, m in models.items():
                for mode, fill in (("dense", 0.0), ("sparse", 0.9)):
                    sparse_input.SPARSE_MAX_FILL = fill
                    t0 = time.perf_counter()
                    m.fit(X, y, epochs=1, batch_size=batch, lr=bench.EPOCH_LR, verbose=0)
                    times.setdefault(f"{n} {mode}", []).append(time.perf_counter() - t0)
        sparse_input.SPARSE_MAX_FILL = 0.9
        med = {k: statistics.median(v) for k, v in times.items()}
        cells = [f"{n}: dense {med[n + ' dense']:.3f} s, sparse {med[n + ' sparse']:.3f} s "
                 f"({med[n + ' sparse'] / med[n + ' dense'] - 1:+.0%} time)" for n in names]
        print(f"batch {batch}: " + "; ".join(cells), flush=True)


if __name__ == "__main__":
    main()
