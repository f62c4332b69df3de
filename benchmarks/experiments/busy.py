"""Epochs on a busy machine: the default (a team that adapts each epoch) against the full team and one thread.

    FASTNN_MNIST=../shared/data/mnist python benchmarks/experiments/busy.py [--rows 20000] [--batch 128]
        [--rounds 5] [--epochs 3] [--neighbours 1] [--backends cython,numba]

For each backend, a fit of ``--epochs`` epochs of 784-256-128-10 (float32, plain SGD) three ways,
round-robin, ``--rounds`` times, every epoch's time counted (the median is over all of them):
``default`` (fastnn's own choice: each epoch times a few batches at each team size and trains the
rest on the fastest, kernels/team.py), ``full team`` (FASTNN_ADAPTIVE_TEAM=0: every thread, always)
and ``1 thread`` (fastnn.set_num_threads(1)).  First on the machine as it is ("idle"), then with
``--neighbours`` CPU-bound processes that this script starts and stops (each ends by itself after 10
minutes at most).  Prints the medians and each one's ratio to the 1-thread time of the same condition.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import numpy as np

import fastnn
from fastnn import bench

ADAPT = "FASTNN_ADAPTIVE_TEAM"  # set here, per variant; fit reads it through kernels/config.py
SPIN = "import time\nend = time.time() + 600\nwhile time.time() < end:\n    pass\n"


def _variants(model, X, y, batch: int, epochs: int) -> dict:
    full_threads = fastnn.get_num_threads()
    fit = dict(epochs=epochs, batch_size=batch, lr=bench.EPOCH_LR, verbose=0)

    def default():
        os.environ.pop(ADAPT, None)
        return model.fit(X, y, **fit)

    def full():
        os.environ[ADAPT] = "0"
        try:
            return model.fit(X, y, **fit)
        finally:
            os.environ.pop(ADAPT, None)

    def one():
        fastnn.set_num_threads(1)
        try:
            return model.fit(X, y, **fit)
        finally:
            fastnn.set_num_threads(full_threads)

    return {"default": default, "full team": full, "1 thread": one}


def _measure(runs: dict, rounds: int) -> tuple[dict[str, float], list[int]]:
    times: dict[str, list[float]] = {k: [] for k in runs}
    chosen: list[int] = []
    for _ in range(rounds):
        for name, run in runs.items():
            time.sleep(bench.SETTLE_S)  # another pool's threads stop spinning first
            history = run()
            times[name] += history.epoch_time
            if name == "default":
                chosen += history.threads
    return {k: statistics.median(v) for k, v in times.items()}, chosen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=3, help="epochs per fit")
    ap.add_argument("--neighbours", type=int, default=1)
    ap.add_argument("--backends", default="cython,numba")
    ap.add_argument("--data", default=None, help="MNIST directory (default: $FASTNN_MNIST, else the bundled subset)")
    args = ap.parse_args()
    X, y = bench.epoch_data(args.data, n=args.rows)
    X = np.ascontiguousarray(X, dtype=np.float32)
    names = [n for n in args.backends.split(",") if n in fastnn.backends.available()]
    print(f"{bench.cpu_model()}, {os.cpu_count()} cores, {fastnn.get_num_threads()} threads; {len(X)} rows, "
          f"batch {args.batch}, float32, medians of {args.rounds} round-robin fits x {args.epochs} epochs")
    for condition in ("idle", f"{args.neighbours} busy neighbour(s)"):
        neighbours = []
        if condition != "idle":
            neighbours = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(args.neighbours)]
            time.sleep(0.5)
        try:
            for name in names:
                model = fastnn.MLP(bench.LAYERS, seed=0, backend=name, dtype="float32")
                model.fit(X[:2000], y[:2000], epochs=1, batch_size=args.batch, verbose=0)  # compile
                med, chosen = _measure(_variants(model, X, y, args.batch, args.epochs), args.rounds)
                one = med["1 thread"]
                cells = "; ".join(f"{k} {t:.3f} s ({t / one:.2f}x)" for k, t in med.items())
                print(f"{condition}, {name}: {cells}; default's team per epoch {chosen}", flush=True)
        finally:
            for p in neighbours:
                p.kill()
            for p in neighbours:
                p.wait()


if __name__ == "__main__":
    main()
