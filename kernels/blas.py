"""Which BLAS the compiled backends' matrix products call: NumPy's bundled OpenBLAS when usable, else SciPy's.

Numba's ``np.dot`` and ``scipy.linalg.cython_blas`` both reach the OpenBLAS inside SciPy's wheel.  NumPy's
wheel bundles a second OpenBLAS (built with 64-bit integers, symbols ``scipy_cblas_sgemm64_`` ...), usually
the newer of the two, and the fused float32 epochs run faster through it (``python
benchmarks/experiments/blas_choice.py`` compares them; its results are in benchmarks/results/).  Both
libraries are loaded in every fastnn process anyway (numpy
imports its own), so using NumPy's costs nothing; SciPy's stays the fallback for NumPy builds without it
(conda's MKL or Accelerate builds, a source build against a system BLAS).

``FASTNN_BLAS`` chooses, read once at import: ``auto`` (the default: NumPy's when found and it passes a
check product, else SciPy's), ``numpy`` (NumPy's or a BlasChoiceError that says why), ``scipy`` (always SciPy's).
Both backends call the chosen functions through CBLAS's row-major interface with 64-bit integers:
the Cython backend through a function pointer (``_core.gemm``), the Numba backend through a symbol
registered with LLVM (kernels/numba_blas.py), which a Numba function of its own implements on SciPy's BLAS
when NumPy's is not used.
"""
from __future__ import annotations

import ctypes
import glob
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache

import numpy as np

from fastnn.kernels import config

CBLAS_ROW_MAJOR, CBLAS_NO_TRANS, CBLAS_TRANS = 101, 111, 112
CHOICES = config.SETTINGS["FASTNN_BLAS"].choices
# Symbol names of an OpenBLAS built with 64-bit integers, as NumPy's wheels bundle it (scipy-openblas64).
SYMBOLS = {"float32": "scipy_cblas_sgemm64_", "float64": "scipy_cblas_dgemm64_"}
_LIB_PATTERNS = ("numpy.libs/libscipy_openblas64_*",  # Linux (auditwheel) and Windows (delvewheel) wheels
                 "numpy/.dylibs/libscipy_openblas64_*")  # macOS (delocate) wheels
# SciPy's wheels bundle an OpenBLAS with 32-bit integers; only its thread count is needed from it here.
_SCIPY_LIB_PATTERNS = ("scipy.libs/libscipy_openblas-*", "scipy/.dylibs/libscipy_openblas*")
# (get, set) of each library's thread count, by the name of the choice
THREAD_SYMBOLS = {"numpy": ("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
                  "scipy": ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads")}


class BlasChoiceError(config.ConfigError):
    """FASTNN_BLAS asks for something this process cannot have; the message says what to set instead."""

    names_its_fix = True  # fastnn.backends reports the message as it is, without its generic install hint


@dataclass(frozen=True)
class Choice:
    """The BLAS in use: ``name`` 'numpy' or 'scipy', the library file, its version, and why it was chosen."""

    name: str
    library: str | None
    version: str | None
    reason: str
    sgemm: int = 0  # addresses of cblas_sgemm / cblas_dgemm with 64-bit integers; 0 for SciPy's BLAS
    dgemm: int = 0

    def describe(self) -> str:
        """One line for ``fastnn info`` and the benchmarks."""
        where = f" ({self.library})" if self.library else ""
        return f"{self.name} {self.version or ''}".rstrip() + where + f": {self.reason}"


def _setting() -> str:
    try:
        return config.get("FASTNN_BLAS")
    except config.ConfigError as exc:
        raise BlasChoiceError(str(exc)) from None


def _numpy_blas_version() -> str | None:
    blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
    return blas.get("version")


def _scipy_blas_version() -> str | None:
    import scipy
    return scipy.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {}).get("version")


def _numpy_library(patterns: tuple[str, ...] = _LIB_PATTERNS) -> str | None:
    """The file of NumPy's bundled 64-bit-integer OpenBLAS (or of the first library matching patterns), or None."""
    site = os.path.dirname(os.path.dirname(os.path.abspath(np.__file__)))
    for pattern in patterns:
        hits = sorted(glob.glob(os.path.join(site, pattern)))
        hits = [h for h in hits if h.endswith((".so", ".dylib", ".dll")) or ".so." in h]
        if hits:
            return hits[0]
    return None


def _check(sgemm, dgemm) -> str | None:
    """Compute a small transposed product with each function; None if both agree with NumPy, else what broke."""
    rng = np.random.default_rng(0)
    for fn, dtype, c_real in ((sgemm, np.float32, ctypes.c_float), (dgemm, np.float64, ctypes.c_double)):
        A = rng.standard_normal((3, 2)).astype(dtype)  # used transposed: op(A) is 2 x 3
        B = rng.standard_normal((3, 4)).astype(dtype)
        C = np.full((2, 4), 7, dtype=dtype)
        ptr = ctypes.c_void_p
        fn.restype = None
        fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
                       c_real, ptr, ctypes.c_int64, ptr, ctypes.c_int64, c_real, ptr, ctypes.c_int64]
        fn(CBLAS_ROW_MAJOR, CBLAS_TRANS, CBLAS_NO_TRANS, 2, 4, 3, 2.0, A.ctypes.data, 2, B.ctypes.data, 4, 0.5,
           C.ctypes.data, 4)
        want = 2.0 * A.T.astype(np.float64) @ B + 0.5 * 7
        if not np.allclose(C, want, rtol=1e-5, atol=1e-5):
            return f"its {np.dtype(dtype).name} check product was wrong (max error {np.abs(C - want).max():.3g})"
    return None


@cache
def choice() -> Choice:
    """Decide once per process (FASTNN_BLAS, then what NumPy bundles)."""
    setting = _setting()
    scipy_version = _scipy_blas_version()
    if setting == "scipy":
        return Choice("scipy", None, scipy_version, "FASTNN_BLAS=scipy")
    path = _numpy_library()
    problem = None
    if path is None:
        problem = "NumPy bundles no 64-bit-integer OpenBLAS (libscipy_openblas64_) beside it"
    else:
        try:
            lib = ctypes.CDLL(path)  # already loaded by numpy: this returns the same library
            sgemm, dgemm = (getattr(lib, SYMBOLS["float32"]), getattr(lib, SYMBOLS["float64"]))
        except (OSError, AttributeError) as exc:
            problem = f"NumPy's OpenBLAS at {path} does not load or lacks the CBLAS gemm symbols ({exc})"
        else:
            problem = _check(sgemm, dgemm)
            if problem is None:
                return Choice("numpy", path, _numpy_blas_version(), f"FASTNN_BLAS={setting}",
                              ctypes.cast(sgemm, ctypes.c_void_p).value, ctypes.cast(dgemm, ctypes.c_void_p).value)
            problem = f"NumPy's OpenBLAS at {path}: {problem}"
    if setting == "numpy":
        raise BlasChoiceError(f"FASTNN_BLAS=numpy, but {problem}; unset FASTNN_BLAS (or set it to 'scipy') "
                              f"to use SciPy's BLAS")
    return Choice("scipy", None, scipy_version, f"fallback: {problem}")


def summary(short: bool = False) -> str:
    """The choice for reports: describe() (or 'numpy 0.3.31' with ``short``), or 'none: why' if FASTNN_BLAS is bad."""
    try:
        c = choice()
    except BlasChoiceError as exc:
        return f"none: {exc}"
    return f"{c.name} {c.version or ''}".rstrip() if short else c.describe()


@cache
def thread_control() -> tuple | None:
    """(get, set) ctypes functions for the chosen BLAS's thread count, or None where fastnn cannot set it.

    The Cython backend's fused epoch runs on its own OpenMP team and calls the BLAS from each thread on
    a slice of every product, so the BLAS must not start threads of its own meanwhile.
    """
    try:
        c = choice()
    except BlasChoiceError:
        return None
    path = c.library if c.name == "numpy" else _numpy_library(_SCIPY_LIB_PATTERNS)
    if path is None:
        return None
    try:
        lib = ctypes.CDLL(path)  # already loaded (by numpy or scipy.linalg): the same library
        get, set_ = (getattr(lib, name) for name in THREAD_SYMBOLS[c.name])
    except (OSError, AttributeError):
        return None
    get.restype, get.argtypes = ctypes.c_int, []
    set_.restype, set_.argtypes = None, [ctypes.c_int]
    return get, set_


@contextmanager
def single_threaded() -> Iterator[bool]:
    """Run the block with the chosen BLAS on one thread (restored after); yields False if it cannot be set."""
    control = thread_control()
    if control is None:
        yield False
        return
    get, set_ = control
    before = get()
    set_(1)
    try:
        yield True
    finally:
        set_(before)
