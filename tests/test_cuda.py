"""The cuda backend, tested without a GPU.

* The kernels and whole training runs execute in Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1).
  The simulator must be switched on before numba is first imported, and this session has imported
  numba already, so those tests (tests/cuda_backend, plus the generic suites' cuda cases on tiny
  shapes) run in a subprocess with tiny launch sizes.  A quick smoke run is part of the default
  suite; the full run (about two minutes on 2 cores) is marked slow.  The main session does not
  collect tests/cuda_backend at all (tests/conftest.py's collect_ignore) unless cuda is available.
* The simulator runs kernels as Python and type-checks nothing, so every kernel is also compiled to
  PTX for float32 and float64 (numba.cuda.compile_ptx): that needs NVVM and libdevice from a CUDA
  toolkit (found through CUDA_HOME or /usr/local/cuda, or the pip wheels of ``fastnn[cuda]``), not
  a GPU.  Where they are missing the test is skipped and says what to install.
"""
from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from fastnn import backends

ROOT = Path(__file__).resolve().parents[1]
SIM_ENV = {"NUMBA_ENABLE_CUDASIM": "1", "FASTNN_CUDA_TPB": "4", "FASTNN_CUDA_TILE": "2", "FASTNN_CUDA_MAX_BLOCKS": "2"}
PTX_CC = (7, 5)  # the oldest compute capability CUDA 13 compiles for
# The kernels whose float32 arithmetic must stay single precision (the matrix products).
FLOAT32_ONLY = ["_matmul_kernel", "_matmul_naive_kernel", "_linear_forward_kernel", "_backprop_error_kernel"]


def _simulator(*args: str, timeout: int) -> None:
    """Run pytest with ``args`` in a subprocess with the CUDA simulator on; fail with its output."""
    env = {k: v for k, v in os.environ.items() if k != "FASTNN_BACKEND"} | SIM_ENV
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", *args]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    tail = (proc.stdout + proc.stderr)[-6000:]
    assert proc.returncode == 0, f"simulator run failed: {' '.join(cmd)}\n{tail}"
    assert " passed" in tail and "skipped" not in tail.splitlines()[-1], tail


def test_cuda_in_the_simulator_smoke():
    """A quick look: the worked example and one whole device-resident training run with everything on."""
    _simulator("tests/cuda_backend/test_cuda_training.py", "-k",
               "worked_example or test_device_resident_epoch_equals_reference_float64 and everything",
               timeout=300)


@pytest.mark.slow
def test_cuda_in_the_simulator():
    """Every kernel against the reference, whole training runs, and the generic suites' cuda cases."""
    _simulator("tests/cuda_backend", "tests/test_kernels.py", "tests/test_worked_example.py",
               "tests/test_backends.py", "--runslow", "-k",
               "(cuda and not wide and not odd) or test_every_backend_module_implements_the_contract "
               "or test_default_is_a_cpu_backend",
               timeout=900)


def test_cuda_is_never_the_default_and_explains_itself(monkeypatch):
    monkeypatch.delenv("FASTNN_BACKEND", raising=False)
    assert backends.default_name() != "cuda"
    if "cuda" in backends.available():
        pytest.skip("a GPU (or the simulator) is present here")
    with pytest.raises(ValueError, match=r"backend 'cuda' is not available here: .*NUMBA_ENABLE_CUDASIM=1") as err:
        backends.get("cuda")
    assert "fastnn[cuda]" in str(err.value)


# --------------------------------------------------------------------------- PTX


@pytest.fixture(scope="module")
def compile_ptx():
    """numba.cuda.compile_ptx, ready to compile fastnn's kernels on this machine, or a skip saying why."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        pytest.skip("NUMBA_ENABLE_CUDASIM=1: this process runs the simulator, which cannot compile PTX")
    from numba import cuda

    from fastnn.kernels import numba_cuda as cu

    if getattr(cuda, "implementation", "Built-in") == "Built-in" and not cuda.is_available():
        # numba's built-in target compiles each device function for the *current* GPU's compute
        # capability even inside compile_ptx (numba-cuda inlines them instead), so without a GPU it
        # is told the capability the kernel itself is compiled for.
        import numba.cuda.dispatcher as dispatcher

        mp = pytest.MonkeyPatch()
        mp.setattr(dispatcher, "get_current_device", lambda: types.SimpleNamespace(compute_capability=PTX_CC))
    else:
        mp = None

    def compile_one(kernel, signature):
        return cuda.compile_ptx(kernel.py_func, signature, cc=PTX_CC)[0]

    try:
        probe, sig = cu.kernel_signatures(np.float64)["_add_kernel"]
        compile_one(probe, sig)
    except Exception as exc:  # any failure here means the toolkit pieces are missing
        if mp is not None:
            mp.undo()
        pytest.skip(f"cannot compile PTX here ({type(exc).__name__}: {str(exc).strip()[:300]}); it needs NVVM and "
                    f"libdevice: a CUDA toolkit under CUDA_HOME or /usr/local/cuda, or pip install 'fastnn[cuda]'")
    yield compile_one
    if mp is not None:
        mp.undo()


def _kernel_names() -> list[str]:
    from fastnn.kernels import numba_cuda as cu  # importable without a GPU

    return list(cu.kernel_signatures(np.float64))


@pytest.mark.parametrize("name", _kernel_names())
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_kernel_compiles_to_ptx(compile_ptx, dtype, name):
    from fastnn.kernels import numba_cuda as cu

    kernel, signature = cu.kernel_signatures(dtype)[name]
    ptx = compile_ptx(kernel, signature)
    assert ".entry" in ptx
    if name in FLOAT32_ONLY and dtype == np.float32:
        assert ".f64" not in ptx, f"{name} does float64 arithmetic on float32 data"
    if name.endswith(("_matmul_kernel", "_forward_kernel", "_error_kernel", "_delta_kernel", "_grad_kernel",
                      "_sums_kernel", "_sum_kernel")) and name != "_output_delta_kernel":
        assert ".shared" in ptx, f"{name} should stage its data in shared memory"
