"""Every ``FASTNN_*`` environment variable fastnn reads: one table, read and checked here and only here.

Each setting is read when it is needed (most once, when the module that uses it is imported; the
build flags when setup.py runs), so a variable set before ``import fastnn`` takes effect.  A bad
value raises :class:`ConfigError`, whose message names the variable, the value and what to set
instead.  ``fastnn info`` prints :func:`table`; the docs print the same table.

Standard library only: setup.py loads this file by path before fastnn is built.
"""
from __future__ import annotations

import os
from dataclasses import dataclass


class ConfigError(ValueError):
    """A FASTNN_* variable holds a value fastnn cannot use; the message says what to set instead."""

    names_its_fix = True  # fastnn.backends reports the message as it is, without its generic install hint


@dataclass(frozen=True)
class Setting:
    """One environment variable: its kind, default, allowed values and what it does."""

    name: str
    kind: str  # "choice", "int", "flag" (1/0, true/false, yes/no, on/off), "text", "path"
    default: str
    help: str
    read_when: str  # "import", "call", "build", "benchmarks"
    choices: tuple[str, ...] = ()
    low: int = 0
    high: int = 0
    power_of_two: bool = False


SETTINGS: dict[str, Setting] = {s.name: s for s in (
    Setting("FASTNN_BACKEND", "text", "", "the backend a model uses when none is named (numpy, numba, cython, "
            "cuda); unset: the fastest available CPU backend", "call"),
    Setting("FASTNN_MNIST", "path", "", "directory with the four MNIST IDX files, for load_mnist() without a "
            "path; unset: ~/.cache/fastnn/mnist", "call"),
    Setting("FASTNN_CIFAR10", "path", "", "directory with CIFAR-10's binary batches (cifar-10-batches-bin or "
            "its parent), for load_cifar10() without a path and fastnn train --dataset cifar10 without --data",
            "call"),
    Setting("FASTNN_BLAS", "choice", "auto", "the BLAS the compiled backends call: NumPy's bundled OpenBLAS, "
            "SciPy's, or auto (NumPy's when usable)", "import", choices=("auto", "numpy", "scipy")),
    Setting("FASTNN_CYTHON_ISA", "choice", "auto", "which build of the Cython extensions to load: avx512 "
            "(AVX-512), avx2 (AVX2 + FMA), baseline (portable), or auto (the widest the CPU runs)", "import",
            choices=("auto", "avx512", "avx2", "baseline")),
    Setting("FASTNN_CUDA_TPB", "int", "128", "CUDA threads per block of the 1-D kernels (a power of two)",
            "import", low=1, high=1024, power_of_two=True),
    Setting("FASTNN_CUDA_TILE", "int", "16", "edge of the CUDA matmul tile (TILE x TILE threads per block)",
            "import", low=1, high=32),
    Setting("FASTNN_CUDA_MAX_BLOCKS", "int", "4096", "most CUDA blocks per grid dimension (grid-stride "
            "loops cover the rest)", "import", low=1, high=65535),
    Setting("FASTNN_OPENMP", "flag", "1", "build the Cython extensions with OpenMP (0: serial build on "
            "purpose)", "build"),
    Setting("FASTNN_MARCH_NATIVE", "flag", "0", "build the Cython extensions with -march=native (a build only "
            "this machine's CPU runs)", "build"),
    Setting("FASTNN_ADAPTIVE_TEAM", "flag", "1", "fit times a few batches of each epoch at each team size "
            "of the compiled backends' fused epoch and trains the rest at the fastest (0: always the "
            "full team, for benchmarks that must not adapt)", "call"),
    Setting("FASTNN_BENCH_LARGE", "flag", "0", "the pytest-benchmark suite also times kernels at batch 1024",
            "benchmarks"),
)}

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def raw(name: str) -> str | None:
    """The variable's text as set (stripped), or None when unset or empty."""
    _setting(name)
    value = os.environ.get(name, "").strip()
    return value or None


def get(name: str):
    """The value in effect for ``name``: str (choice, text, path), int or bool; checked against the table."""
    s = _setting(name)
    text = raw(name)
    if text is None:
        text = s.default
        if s.kind == "text" or s.kind == "path":
            return text
    if s.kind == "choice":
        value = text.lower()
        if value not in s.choices:
            raise ConfigError(f"{name}={text!r} is not valid; set it to one of {', '.join(s.choices)} "
                              f"(or unset it for {s.default!r})")
        return value
    if s.kind == "int":
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not s.low <= value <= s.high or (s.power_of_two and value & (value - 1)):
            two = "a power of two " if s.power_of_two else "an integer "
            raise ConfigError(f"{name}={text!r} is not valid; use {two}from {s.low} to {s.high} "
                              f"(or unset it for the default {s.default})")
        return value
    if s.kind == "flag":
        value = text.lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise ConfigError(f"{name}={text!r} is not valid; set it to 1 or 0 (or unset it for {s.default})")
    return os.path.expanduser(text) if s.kind == "path" else text


def table() -> list[tuple[str, str, str, str]]:
    """(name, value in effect or the error, default, what it does) for every setting, for ``fastnn info``."""
    rows = []
    for name, s in SETTINGS.items():
        try:
            value = get(name)
            shown = ("(unset)" if raw(name) is None else str(value)) if s.kind in ("text", "path") else str(value)
        except ConfigError as exc:
            shown = f"INVALID: {exc}"
        rows.append((name, shown, s.default or "(unset)", s.help))
    return rows


def _setting(name: str) -> Setting:
    if name not in SETTINGS:
        raise KeyError(f"{name} is not a fastnn setting; known: {', '.join(SETTINGS)}")
    return SETTINGS[name]
