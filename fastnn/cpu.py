"""CPU settings in one place: the thread pools of Numba, BLAS and OpenMP, and what BLAS runs."""
from __future__ import annotations

import os


def blas_settings() -> dict[str, str]:
    """The OpenBLAS environment knobs in effect (they are read when OpenBLAS loads).

    OPENBLAS_CORETYPE matters a lot on AMD Zen 4: OpenBLAS 0.3.31 (numpy/scipy wheels) runs its
    Haswell kernels there unless told otherwise, and OPENBLAS_CORETYPE=SkylakeX measured 1.5-1.8x
    faster float32 GEMMs (docs/performance.rst, "Which BLAS").  fastnn reports these settings; it never changes them.
    """
    return {k: v for k, v in sorted(os.environ.items()) if k.startswith(("OPENBLAS_", "OMP_", "NUMBA_NUM"))}


_threads: int | None = None


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in every pool fastnn touches: Numba's, BLAS's and OpenMP's (Cython).

    One setting for all pools so they never oversubscribe the cores: a kernel that is already
    parallel must not also get a multi-threaded BLAS underneath it.
    """
    global _threads
    from fastnn.validation import check_positive_int

    n = check_positive_int("n", n)
    cores = os.cpu_count() or 1
    if n > cores:
        raise ValueError(f"n={n} threads is more than the {cores} CPU cores here; use at most {cores}")
    # Load every pool first (SciPy's BLAS, which the compiled backends call when NumPy's is not
    # usable: kernels/blas.py; Numba's threading layer may bring in libgomp), then limit them all.
    import scipy.linalg.cython_blas  # noqa: F401
    from threadpoolctl import threadpool_limits

    from fastnn import backends
    from fastnn.kernels import contract

    try:
        import numba

        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    except ImportError:
        pass
    for name in backends.available():
        contract.hook(backends.get(name), "set_num_threads")(n)
    threadpool_limits(limits=n)  # every BLAS and OpenMP pool loaded in the process
    _threads = n


def get_num_threads() -> int:
    """The thread count set by :func:`set_num_threads`, else the number of CPU cores."""
    return _threads if _threads is not None else (os.cpu_count() or 1)
