"""The one-off experiment scripts in benchmarks/experiments/ still run (tiny sizes; timings not checked).

The two quick ones run by default; blas_choice.py (a process per choice) and team.py (four modes)
are marked slow.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXPERIMENTS = Path(__file__).resolve().parent.parent / "benchmarks" / "experiments"


def _run(*args: str) -> str:
    out = subprocess.run([sys.executable, str(EXPERIMENTS / args[0]), *args[1:], "--data", "/nonexistent"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_activations_script():
    out = _run("activations.py", "--acts", "tanh,relu", "--rows", "640", "--rounds", "1")
    assert "tanh: numpy" in out and "relu: numpy" in out


@pytest.mark.skipif(not {"numba", "cython"} <= set(__import__("fastnn").backends.available()),
                    reason="needs the numba and cython backends")
def test_blas_settle_script():
    out = _run("blas_settle.py", "--rows", "640", "--rounds", "1", "--batch", "64")
    assert "after numpy:" in out and "after cython:" in out


@pytest.mark.skipif(not {"numba", "cython"} <= set(__import__("fastnn").backends.available()),
                    reason="needs the numba and cython backends")
@pytest.mark.slow
def test_blas_choice_script():
    from fastnn.kernels import blas

    if blas._numpy_library() is None:
        pytest.skip("this NumPy bundles no OpenBLAS of its own: nothing to compare")
    out = _run("blas_choice.py", "--rows", "640", "--rounds", "1", "--epochs", "1", "--batches", "64")
    assert "numba  batch   64: scipy" in out and "cython batch   64: scipy" in out


@pytest.mark.skipif(not {"numba", "cython"} & set(__import__("fastnn").backends.available()),
                    reason="needs a compiled CPU backend")
@pytest.mark.slow
def test_team_script():
    out = _run("team.py", "--rows", "640", "--rounds", "1", "--batches", "64")
    assert "batch   64: team / no team:" in out
    out = _run("team.py", "--small", "--rows", "200", "--rounds", "1")
    assert "8-16-4 batch   32" in out
    assert "GFLOP/s" in _run("team.py", "--gemm", "--rounds", "1")
    assert "scope on" in _run("team.py", "--validation", "--rows", "640", "--rounds", "1", "--batches", "64")


@pytest.mark.skipif(not {"numba", "cython"} & set(__import__("fastnn").backends.available()),
                    reason="needs a compiled CPU backend")
def test_busy_script():
    out = _run("busy.py", "--rows", "1280", "--rounds", "1", "--batch", "64")
    assert "idle, " in out and "1 busy neighbour(s), " in out and "1 thread" in out


def test_dense_script():
    out = _run("dense.py", "--rows", "640", "--batches", "64", "--rounds", "1", "--peers", "")
    assert "784-256-128-10 batch 64" in out and "% of GEMM" in out
    out = _run("dense.py", "--wide", "--widths", "48", "--rows", "300", "--batch", "32", "--rounds", "1",
               "--peers", "")
    assert "784-48-48-10 batch 32" in out


def test_dense_script_flop_count():
    """The dense flop count behind its GFLOP/s (fastnn.bench.epoch_gflop): 60.4 GFLOP for MNIST's epoch."""
    sys.path.insert(0, str(EXPERIMENTS))
    try:
        import dense
    finally:
        sys.path.remove(str(EXPERIMENTS))
    from fastnn import bench

    # 2 x 60,000 x (2 x 784 x 256 + 3 x 256 x 128 + 3 x 128 x 10): the products, the input delta of layers 2-3
    assert bench.epoch_gflop([784, 256, 128, 10], 60000) == pytest.approx(bench.GFLOP_PER_EPOCH)
    assert bench.GFLOP_PER_EPOCH == pytest.approx(2 * 60000 * (2 * 784 * 256 + 3 * 256 * 128 + 3 * 128 * 10) / 1e9)
    X, y = dense.dense_data(500)
    assert X.dtype == np.float32 and (X != 0).all() and len(np.unique(y)) == 10
