"""What NumPy's bundled OpenBLAS buys the compiled backends over SciPy's: the same epochs under each.

    FASTNN_MNIST=../shared/data/mnist python benchmarks/experiments/blas_choice.py [--batches 32,128,512] [--rounds 3]
    FASTNN_MNIST=... python benchmarks/experiments/blas_choice.py --var FASTNN_CYTHON_ISA --values baseline,avx2
                                                    --backends cython

kernels/blas.py picks the BLAS once per process (FASTNN_BLAS), so each round starts one process per
choice, alternating, and each process times ``--epochs`` MNIST epochs (784-256-128-10, ReLU, plain SGD,
float32) per backend and batch size after a warm-up, with ``fastnn.bench.SETTLE_S`` of pause before
each.  Prints the medians over every epoch of every round and the time ratio first/second value.
``--var``/``--values`` compare any other once-per-process choice the same way: FASTNN_CYTHON_ISA picks
the Cython build (kernels/cython_cpu.py).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def _effective(var: str) -> str:
    """What this process actually runs under ``var`` (a choice may fall back), to check against the request."""
    if var == "FASTNN_BLAS":
        from fastnn.kernels import blas
        return blas.choice().name
    if var == "FASTNN_CYTHON_ISA":
        from fastnn.kernels import cython_cpu
        return cython_cpu.ISA
    return os.environ.get(var, "")


def child(args: argparse.Namespace) -> None:
    """Time the epochs under the choice this process made; one JSON line per epoch."""
    from fastnn import bench

    X, y = bench.epoch_data(args.data, n=args.rows)
    for name in args.backends.split(","):
        for batch in (int(b) for b in args.batches.split(",")):
            case = bench._epoch_case(name, X, y, batch)
            case.run()  # compile / warm up
            for _ in range(args.epochs):
                time.sleep(bench.SETTLE_S)  # the other pools' threads stop spinning (fastnn/bench.py)
                t0 = time.perf_counter()
                case.run()
                print(json.dumps({"choice": _effective(args.var), "backend": name, "batch": batch,
                                  "seconds": time.perf_counter() - t0}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", default="32,128,512")
    ap.add_argument("--backends", default="numba,cython")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=2, help="timed epochs per process, backend and batch size")
    ap.add_argument("--rows", type=int, default=60000, help="training rows per epoch")
    ap.add_argument("--data", default=None, help="MNIST directory (default: $FASTNN_MNIST, else the bundled subset)")
    ap.add_argument("--var", default="FASTNN_BLAS", help="the environment variable that chooses")
    ap.add_argument("--values", default="scipy,numpy", help="its two values, the slower-expected first")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    first, second = choices = tuple(args.values.split(","))
    times: dict[tuple, list[float]] = {}
    passed = sys.argv[1:]
    for _ in range(args.rounds):
        for choice in choices:
            out = subprocess.run([sys.executable, __file__, "--child", *passed], check=True, text=True,
                                 capture_output=True, env={**os.environ, args.var: choice}).stdout
            for line in out.splitlines():
                rec = json.loads(line)
                if rec["choice"] != choice:
                    raise SystemExit(f"{args.var}={choice} ran as {rec['choice']!r}: that choice is not usable "
                                     f"here (fastnn info says why)")
                times.setdefault((rec["backend"], rec["batch"], choice), []).append(rec["seconds"])
    print(f"{args.var}: epoch medians over {args.rounds} rounds x {args.epochs} epochs "
          f"(seconds; {first}/{second} = speed-up):")
    for name in args.backends.split(","):
        for batch in (int(b) for b in args.batches.split(",")):
            med = {c: statistics.median(times[(name, batch, c)]) for c in choices}
            print(f"  {name:6s} batch {batch:4d}: {first} {med[first]:.3f}  {second} {med[second]:.3f}  "
                  f"{first}/{second} {med[first] / med[second]:.2f}", flush=True)


if __name__ == "__main__":
    main()
