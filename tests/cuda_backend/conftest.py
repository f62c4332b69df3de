"""The CUDA backend's own tests: in Numba's CUDA simulator on any machine, or on a real GPU.

``tests/test_cuda.py`` runs this directory in a subprocess with the simulator switched on (it
must be on before numba is first imported, so the normal test session cannot switch it on):

    NUMBA_ENABLE_CUDASIM=1 pytest tests/cuda_backend

In the simulator the launch sizes are made tiny (4 threads per 1-D block, 2 x 2 matmul tiles, at
most 2 blocks per grid dimension) unless FASTNN_CUDA_* says otherwise, so that inputs of 3 to 9
rows and columns cross block and tile edges and every grid-stride loop goes round several times.
(The simulator reads these module constants at run time; a real GPU compiles them in, so there
the environment variables are the way to change them.)  Without a GPU or the simulator every test
here is skipped.  (The directory is a package, so that this conftest never clashes with
tests/conftest.py, which other test modules import as ``conftest``.)
"""
from __future__ import annotations

import os
import sys

import pytest

from fastnn import backends

SIM_LAUNCH = {"TPB": 4, "TILE": 2, "MAX_BLOCKS": 2}

CUDA_OK = "cuda" in backends.available()
if CUDA_OK:
    from fastnn.kernels import numba_cuda as cu

    if cu.SIMULATOR:
        for name, value in SIM_LAUNCH.items():
            if f"FASTNN_CUDA_{name}" not in os.environ:
                setattr(cu, name, value)
        cu.TILE_PAD = cu.TILE + 1
        # The simulator runs each block's threads as Python threads and polls them at every
        # syncthreads(); a short GIL switch interval hands the GIL over promptly (several times
        # faster for the tiled kernels than the default 5 ms).
        sys.setswitchinterval(2e-4)


def _serialise_shared_allocation() -> None:
    """Work around a race in the simulator: make a block's threads share each shared array.

    The simulator creates a ``cuda.shared.array`` on the first call from a source line
    (get-if-missing-then-set on a per-block dict, unlocked).  When two threads of a block make that
    first call at the same time, each can get its own array, and the block silently computes with
    two "shared" arrays (seen here as rare wrong tree reductions and tile products, numba 0.68.1
    and numba-cuda 0.30.4).  Same key as the simulator's (file, line of the caller), under a lock.
    """
    import threading

    import numpy as np
    from numba.core import types
    from numba.cuda.simulator import kernelapi
    from numba.np import numpy_support

    cls = kernelapi.FakeCUDAShared
    if getattr(cls.array, "fastnn_locked", False):
        return
    original, lock = cls.array, threading.Lock()

    def array(self, shape, dtype, *args, **kwargs):
        if shape == 0 or args or kwargs:  # dynamic shared memory, alignment: the simulator's own path
            return original(self, shape, dtype, *args, **kwargs)
        if isinstance(dtype, types.Type):
            dtype = numpy_support.as_dtype(dtype)
        caller = sys._getframe(1)
        key = (caller.f_code.co_filename, caller.f_lineno)
        with lock:
            res = self._allocations.get(key)
            if res is None:
                res = self._allocations[key] = np.empty(shape, dtype)
        return res

    array.fastnn_locked = True
    cls.array = array


if CUDA_OK and cu.SIMULATOR:
    _serialise_shared_allocation()


def pytest_configure(config):
    # In the simulator the kernels' arithmetic runs on NumPy scalars, which warn on overflow and NaN
    # where a GPU computes inf and NaN silently (the divergence tests produce both on purpose).
    if CUDA_OK and cu.SIMULATOR:
        for module in ("fastnn.kernels.numba_cuda", "fastnn.kernels.formulas"):  # the kernels and their formulas
            config.addinivalue_line("filterwarnings", f"ignore::RuntimeWarning:{module}")


@pytest.fixture(autouse=True)
def _needs_cuda():
    if not CUDA_OK:
        reason = backends.unavailable_reasons().get("cuda", "unavailable")
        pytest.skip(f"cuda backend not available ({reason}); tests/test_cuda.py runs these in the simulator")
