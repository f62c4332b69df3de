"""What NumPy's bundled OpenBLAS buys the compiled backends over SciPy's: the same epochs under each.

    FASTNN_MNIST=../shared/data/mnist python benchmarks/blas_choice.py [--batches 32,128,512] [--rounds 3]

kernels/blas.py picks the BLAS once per process (FASTNN_BLAS), so each round starts one process per
choice, alternating, and each process times ``--epochs`` MNIST epochs (784-256-128-10, ReLU, plain SGD,
float32) per backend and batch size after a warm-up, with ``fastnn.bench.SETTLE_S`` of pause before
each.  Prints the medians over every epoch of every round and the time ratio scipy/numpy.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CHOICES = ("scipy", "numpy")


def child(args: argparse.Namespace) -> None:
    """Time the epochs under the BLAS this process chose; one JSON line per epoch."""
    from fastnn import bench
    from fastnn.kernels import blas

    X, y = bench.epoch_data(args.data, n=args.rows)
    for name in args.backends.split(","):
        for batch in (int(b) for b in args.batches.split(",")):
            case = bench._epoch_case(name, X, y, batch)
            case.run()  # compile / warm up
            for _ in range(args.epochs):
                time.sleep(bench.SETTLE_S)  # the other pools' threads stop spinning (fastnn/bench.py)
                t0 = time.perf_counter()
                case.run()
                print(json.dumps({"blas": blas.choice().name, "backend": name, "batch": batch,
                                  "seconds": time.perf_counter() - t0}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", default="32,128,512")
    ap.add_argument("--backends", default="numba,cython")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=2, help="timed epochs per process, backend and batch size")
    ap.add_argument("--rows", type=int, default=60000, help="training rows per epoch")
    ap.add_argument("--data", default=None, help="MNIST directory (default: $FASTNN_MNIST, else the bundled subset)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    times: dict[tuple, list[float]] = {}
    passed = [a for a in sys.argv[1:]]
    for _ in range(args.rounds):
        for choice in CHOICES:
            out = subprocess.run([sys.executable, __file__, "--child", *passed], check=True, text=True,
                                 capture_output=True, env={**os.environ, "FASTNN_BLAS": choice}).stdout
            for line in out.splitlines():
                rec = json.loads(line)
                if rec["blas"] != choice:
                    raise SystemExit(f"FASTNN_BLAS={choice} ran on {rec['blas']}'s BLAS: NumPy's is not usable here "
                                     f"(python -c 'from fastnn.kernels import blas; print(blas.choice().describe())')")
                times.setdefault((rec["backend"], rec["batch"], choice), []).append(rec["seconds"])
    print(f"epoch medians over {args.rounds} rounds x {args.epochs} epochs (seconds; scipy/numpy = speed-up):")
    for name in args.backends.split(","):
        for batch in (int(b) for b in args.batches.split(",")):
            med = {c: statistics.median(times[(name, batch, c)]) for c in CHOICES}
            print(f"  {name:6s} batch {batch:4d}: scipy {med['scipy']:.3f}  numpy {med['numpy']:.3f}  "
                  f"scipy/numpy {med['scipy'] / med['numpy']:.2f}", flush=True)


if __name__ == "__main__":
    main()
