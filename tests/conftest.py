"""Shared fixtures: every test that takes ``backend`` runs on every available backend.

A failure reads like ``test_linear_forward[numba-float32-odd]``.

Plain ``pytest`` leaves out the tests marked ``slow`` (full MNIST training, the whole CUDA-simulator
suite, the benchmark scripts' longer modes); ``pytest -m slow`` runs only those, ``pytest --runslow``
everything.  CI runs ``pytest`` and then ``pytest -m slow``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import fastnn
from fastnn import backends

BACKENDS = backends.available()
# tests/cuda_backend needs the cuda backend: a GPU, or Numba's CUDA simulator, which must be switched on
# before numba is imported, so tests/test_cuda.py runs that directory in a subprocess with it on.
# Elsewhere it is not collected at all (it would only be ~400 skips).
collect_ignore = [] if "cuda" in BACKENDS else ["cuda_backend"]
DTYPES = [np.float32, np.float64]
# Relative tolerance of a backend against the float64 reference, by the backend's dtype.
RTOL = {np.float32: 1e-5, np.float64: 1e-12}
ATOL = {np.float32: 1e-6, np.float64: 1e-12}

MNIST_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"

# The worked example of the course's backpropagation lecture (3-3-2 sigmoid network, MSE, one sample).
WORKED = {
    "x": [[0.02, 0.04, 0.01]],
    "y": [[0.9, 0.5]],
    "W1": [[0.25, 0.15, 0.30], [0.25, 0.20, 0.35], [0.10, 0.25, 0.15]],
    "b1": [0.4, 0.4, 0.4],
    "W2": [[0.40, 0.25], [0.35, 0.30], [0.01, 0.35]],
    "b2": [0.7, 0.7],
}


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true",
                     help="also run the tests marked slow (left out by default; -m slow runs only those)")


def pytest_collection_modifyitems(config, items):
    """Leave out the slow tests unless --runslow or a -m expression (e.g. -m slow) says otherwise."""
    if config.getoption("--runslow") or config.getoption("markexpr"):
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]


def pytest_report_header(config):
    if not (config.getoption("--runslow") or config.getoption("markexpr")):
        return "slow tests left out: pytest -m slow runs them, pytest --runslow runs everything"


@pytest.fixture(scope="session", autouse=True)
def warm_up_backends():
    """Compile (or load from the cache) every backend's kernels once, before any test runs.

    Keeps compile time out of the individual tests; ``pytest -s`` shows how long it took.
    """
    from fastnn.cli import warmup_seconds

    for name in BACKENDS:
        print(f"\nwarm-up {name}: {warmup_seconds(name):.1f} s", end="")


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture(params=DTYPES, ids=["float32", "float64"])
def dtype(request):
    return request.param


@pytest.fixture(scope="session")
def mnist():
    """The real MNIST from ../shared/data/mnist, read once per session."""
    if not MNIST_DIR.is_dir():
        pytest.skip(f"real MNIST not found at {MNIST_DIR}")
    from fastnn.datasets import load_mnist

    return load_mnist(MNIST_DIR)


def worked_model(backend: str | None = None, dtype="float64") -> fastnn.MLP:
    m = fastnn.MLP([3, 3, 2], activation="sigmoid", output="sigmoid", loss="mse",
                   backend=backend, dtype=dtype, seed=0)
    m.weights = [WORKED["W1"], WORKED["W2"]]
    m.biases = [WORKED["b1"], WORKED["b2"]]
    return m
