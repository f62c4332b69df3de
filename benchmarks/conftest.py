"""Shared set-up of the benchmarks: where the real MNIST is, and the record of the machine."""
from __future__ import annotations

from pathlib import Path

MNIST_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"


def pytest_benchmark_update_machine_info(config, machine_info):
    """Record what decides the speed: threads, BLAS pools and their settings, backends."""
    from fastnn.bench import machine_info as fastnn_machine_info

    machine_info["fastnn"] = fastnn_machine_info()
