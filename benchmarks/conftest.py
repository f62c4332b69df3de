"""Shared set-up of the benchmarks: data, backends, and the record of the machine's settings.

Run:  pytest benchmarks/ --benchmark-columns=median,iqr,rounds --benchmark-sort=name
Fast check that they still run (CI):  pytest benchmarks/ --benchmark-disable
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import fastnn
from fastnn import backends

MNIST_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
CPU_BACKENDS = [b for b in backends.available() if b != "cuda"]


def pytest_benchmark_update_machine_info(config, machine_info):
    """Record what decides the speed: threads, BLAS and its settings, backends."""
    from threadpoolctl import threadpool_info

    machine_info["fastnn"] = {
        "version": fastnn.__version__,
        "threads": fastnn.get_num_threads(),
        "backends": backends.available(),
        "blas_env": fastnn.cpu.blas_settings(),
        "pools": [(p.get("internal_api"), p.get("num_threads"), p.get("architecture")) for p in threadpool_info()],
    }


@pytest.fixture(scope="session")
def mnist_train():
    """60,000 MNIST training images, or random data of the same shape when the files are absent."""
    if MNIST_DIR.is_dir():
        from fastnn.datasets import load_mnist

        (X, y), _ = load_mnist(MNIST_DIR)
        return X, y
    rng = np.random.default_rng(0)
    return rng.random((60000, 784), dtype=np.float32), rng.integers(0, 10, 60000)
