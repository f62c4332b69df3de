"""GFLOP/s of the float32 products of the MNIST network's first layer, per BLAS entry point.

    python benchmarks/experiments/gemm_rate.py                            # with the environment as it is
    OPENBLAS_CORETYPE=SkylakeX python benchmarks/experiments/gemm_rate.py  # AVX-512 kernels (Zen 4, Intel)

Compares np.matmul (numpy's OpenBLAS, what the compiled backends call by default: kernels/blas.py) with
np.dot inside njit (scipy's OpenBLAS, their fallback, FASTNN_BLAS=scipy), forward (B x 784 @ 784 x 256)
and weight gradient (784 x B @ B x 256).
"""
from __future__ import annotations

import os
import time

import numpy as np
from numba import njit


@njit(cache=True)
def _dot(A, B, C):
    np.dot(A, B, out=C)


@njit(cache=True)
def _dot_tn(A, D, C):
    np.dot(A.T, D, out=C)


def _rate(fn, flop: float, seconds: float = 0.3) -> float:
    # NumPy and SciPy bundle separate OpenBLAS builds; the previous measurement's threads spin for
    # about 0.1 s before they sleep (fastnn/bench.py, SETTLE_S): let them, or they steal a core.
    time.sleep(0.3)
    fn()
    t0, k = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        fn()
        k += 1
    return flop * k / (time.perf_counter() - t0) / 1e9


def main() -> None:
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")
    rng = np.random.default_rng(0)
    for B in (32, 128, 512):
        A = rng.random((B, 784), dtype=np.float32)
        W = rng.random((784, 256), dtype=np.float32)
        C, dW = np.empty((B, 256), np.float32), np.empty((784, 256), np.float32)
        flop = 2.0 * B * 784 * 256
        forward_np = _rate(lambda A=A, W=W, C=C: np.matmul(A, W, out=C), flop)
        forward_njit = _rate(lambda A=A, W=W, C=C: _dot(A, W, C), flop)
        grad_np = _rate(lambda A=A, C=C, dW=dW: np.matmul(A.T, C, out=dW), flop)
        grad_njit = _rate(lambda A=A, C=C, dW=dW: _dot_tn(A, C, dW), flop)
        print(f"batch {B:>3}: forward numpy {forward_np:5.0f}, njit {forward_njit:5.0f} | weight gradient numpy "
              f"{grad_np:5.0f}, njit {grad_njit:5.0f} GFLOP/s")


if __name__ == "__main__":
    main()
