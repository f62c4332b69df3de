"""kernels/blas.py and kernels/numba_blas.py: which BLAS the compiled backends call, and that both choices compute."""
import ctypes
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numba import njit

from fastnn.kernels import blas, numba_blas


@pytest.fixture
def fresh_choice(monkeypatch):
    """blas.choice() decided again under the test's environment, then forgotten."""
    blas.choice.cache_clear()
    yield monkeypatch
    blas.choice.cache_clear()


def test_auto_uses_numpys_openblas_when_it_is_bundled(fresh_choice):
    fresh_choice.delenv("FASTNN_BLAS", raising=False)
    if blas._numpy_library() is None:
        pytest.skip("this NumPy bundles no libscipy_openblas64_ (not a PyPI wheel)")
    c = blas.choice()
    assert c.name == "numpy" and c.sgemm and c.dgemm and c.version
    assert "numpy" in c.describe() and c.library in c.describe()


def test_scipy_when_asked(fresh_choice):
    fresh_choice.setenv("FASTNN_BLAS", "SciPy ")  # case and spaces forgiven
    c = blas.choice()
    assert (c.name, c.sgemm, c.dgemm, c.reason) == ("scipy", 0, 0, "FASTNN_BLAS=scipy")


def test_unknown_setting_names_the_choices(fresh_choice):
    fresh_choice.setenv("FASTNN_BLAS", "mkl")
    with pytest.raises(blas.BlasChoiceError, match="FASTNN_BLAS='mkl'.*auto, numpy, scipy"):
        blas.choice()


def test_numpy_required_but_absent_says_how_to_fall_back(fresh_choice):
    fresh_choice.setenv("FASTNN_BLAS", "numpy")
    fresh_choice.setattr(blas, "_numpy_library", lambda: None)
    with pytest.raises(blas.BlasChoiceError, match="unset FASTNN_BLAS"):
        blas.choice()


def test_auto_falls_back_with_the_reason(fresh_choice):
    fresh_choice.delenv("FASTNN_BLAS", raising=False)
    fresh_choice.setattr(blas, "_numpy_library", lambda: None)
    c = blas.choice()
    assert c.name == "scipy" and c.reason.startswith("fallback: NumPy bundles no")


def test_check_catches_a_function_that_computes_nothing():
    """A library whose gemm is broken (or has another ABI) is not used: the check product must match."""
    proto = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64,
                             ctypes.c_int64, ctypes.c_double, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p,
                             ctypes.c_int64, ctypes.c_double, ctypes.c_void_p, ctypes.c_int64)
    noop = proto(lambda *args: None)
    assert "float32 check product was wrong" in blas._check(noop, noop)
    if blas._numpy_library() is not None:
        lib = ctypes.CDLL(blas._numpy_library())
        assert blas._check(getattr(lib, blas.SYMBOLS["float32"]), getattr(lib, blas.SYMBOLS["float64"])) is None


# --------------------------------------------------------------------------- numba_blas.gemm


@njit
def _gemm(A, B, C, ta, tb):
    numba_blas.gemm(A, B, C, ta, tb)


SHAPES = [(1, 1, 1), (1, 7, 3), (5, 1, 4), (3, 8, 1), (17, 33, 9)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("M,K,N", SHAPES)
@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
def test_numba_gemm_every_transpose(dtype, M, K, N, ta, tb):
    rng = np.random.default_rng(M * 100 + K * 10 + N)
    A = rng.standard_normal((M, K)).astype(dtype)
    B = rng.standard_normal((K, N)).astype(dtype)
    C = np.full((M, N), np.nan, dtype=dtype)
    _gemm(np.ascontiguousarray(A.T) if ta else A, np.ascontiguousarray(B.T) if tb else B, C, ta, tb)
    want = A.astype(np.float64) @ B
    np.testing.assert_allclose(C, want, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numba_gemm_row_slices_of_wider_buffers(dtype):
    """Leading dimensions come from the strides: a column block of a wider array needs no copy."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((6, 9)).astype(dtype)
    B = rng.standard_normal((4, 11)).astype(dtype)
    out = np.zeros((6, 10), dtype=dtype)
    _gemm(A[:, :4], B[:, :5], out[:, 2:7], False, False)
    np.testing.assert_allclose(out[:, 2:7], A[:, :4].astype(np.float64) @ B[:, :5], rtol=1e-5)
    assert not out[:, :2].any() and not out[:, 7:].any()  # nothing written outside the block


@pytest.mark.parametrize("M,K,N", [(0, 3, 4), (3, 0, 4), (3, 4, 0)])
def test_numba_gemm_empty(M, K, N):
    C = np.full((M, N), np.nan)
    _gemm(np.ones((M, K)), np.ones((K, N)), C, False, False)
    assert (C == 0).all()  # an empty sum is 0 (and nothing to do for no rows/columns)


def _call(fn, real, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc):
    def ptr(x):
        return ctypes.cast(x.ctypes.data, ctypes.POINTER(real))

    fn.ctypes(101, ta, tb, M, N, K, alpha, ptr(A), lda, ptr(B), ldb, beta, ptr(C), ldc)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta,tb", [(111, 111), (112, 111), (111, 112), (112, 112)])
def test_scipy_callback_is_a_full_cblas_gemm(dtype, ta, tb):
    """The C callback that stands behind the symbols when SciPy's BLAS is chosen: alpha, beta, padded rows."""
    real = ctypes.c_float if dtype == np.float32 else ctypes.c_double
    fn = numba_blas.scipy_callbacks()[0 if dtype == np.float32 else 1]
    rng = np.random.default_rng(ta * 7 + tb)
    M, K, N = 4, 5, 3
    A = rng.standard_normal((M, K)).astype(dtype)
    B = rng.standard_normal((K, N)).astype(dtype)
    a = np.ascontiguousarray(A.T) if ta == 112 else A
    b = np.ascontiguousarray(B.T) if tb == 112 else B
    a_pad = np.zeros((a.shape[0], a.shape[1] + 2), dtype=dtype)  # leading dimensions wider than the rows
    a_pad[:, :a.shape[1]] = a
    b_pad = np.zeros((b.shape[0], b.shape[1] + 3), dtype=dtype)
    b_pad[:, :b.shape[1]] = b
    C0 = rng.standard_normal((M, N + 1)).astype(dtype)
    C = C0.copy()
    _call(fn, real, ta, tb, M, N, K, 0.5, a_pad, a_pad.shape[1], b_pad, b_pad.shape[1], -2.0, C, N + 1)
    want = 0.5 * (A.astype(np.float64) @ B) - 2.0 * C0[:, :N]
    np.testing.assert_allclose(C[:, :N], want, rtol=1e-5, atol=1e-5)
    assert (C[:, N] == C0[:, N]).all()  # the padding column of C untouched
    C = C0[:, :N].copy()
    _call(fn, real, ta, tb, M, N, K, 1.0, a, a.shape[1], b, b.shape[1], 0.0, C, N)  # the direct np.dot path
    np.testing.assert_allclose(C, A.astype(np.float64) @ B, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- both choices, whole runs

_RUN = textwrap.dedent("""
    import gc
    import sys
    import numpy as np
    import fastnn
    from fastnn.kernels import blas, numba_cpu  # registers the BLAS symbols
    gc.collect()  # the callbacks behind the symbols (FASTNN_BLAS=scipy) must outlive a collection
    X = np.random.default_rng(0).standard_normal((97, 13))
    X[:, :4] = 0  # zero columns: the fused epochs' sparse first layer
    y = (X[:, 5] > 0).astype(int) + (X[:, 6] > 0)
    out = {"blas": blas.choice().name}
    for be in sys.argv[1:]:
        m = fastnn.MLP([13, 11, 7, 3], activation="tanh", seed=3, backend=be, dtype="float64", l1=1e-4, l2=1e-3,
                       dropout=0.2)
        m.fit(X, y, epochs=3, batch_size=16, lr=0.1, momentum=0.9, verbose=0)
        out[be] = np.concatenate([w.ravel() for w in m.weights]).tolist()
    print(repr(out))
""")


def test_both_blas_choices_train_the_same_weights():
    """One training run per backend under FASTNN_BLAS=scipy and =auto: the same weights (float64, 1e-9)."""
    backends = [b for b in ("numba", "cython") if b in __import__("fastnn").backends.available()]
    if not backends:
        pytest.skip("no compiled backend here")
    runs = {}
    for choice in ("scipy", "auto"):
        res = subprocess.run([sys.executable, "-c", _RUN, "numpy", *backends], capture_output=True, text=True,
                             env={**os.environ, "FASTNN_BLAS": choice}, timeout=600)
        assert res.returncode == 0, res.stderr
        runs[choice] = eval(res.stdout.strip().splitlines()[-1])  # our own subprocess's repr of lists
    assert runs["scipy"]["blas"] == "scipy"
    for choice, run in runs.items():
        for be in backends:
            np.testing.assert_allclose(run[be], run["numpy"], rtol=1e-9, atol=1e-12, err_msg=f"{choice} {be}")


def test_summary_for_reports(fresh_choice):
    fresh_choice.setenv("FASTNN_BLAS", "scipy")
    assert blas.summary().startswith("scipy") and "FASTNN_BLAS=scipy" in blas.summary()
    assert blas.summary(short=True) == f"scipy {blas._scipy_blas_version()}"
    blas.choice.cache_clear()
    fresh_choice.setenv("FASTNN_BLAS", "openblas")
    assert blas.summary().startswith("none: FASTNN_BLAS='openblas' is not valid")


def test_a_bad_setting_leaves_the_compiled_backends_unavailable_with_that_reason():
    """Not an install hint: the reason is the variable, and the message says what to set."""
    res = subprocess.run([sys.executable, "-c", "import fastnn; r = fastnn.backends.unavailable_reasons(); "
                          "print(fastnn.backends.available()); print(r.get('numba')); print(r.get('cython'))"],
                         capture_output=True, text=True, env={**os.environ, "FASTNN_BLAS": "mkl"}, timeout=300)
    assert res.returncode == 0, res.stderr
    avail, *reasons = res.stdout.strip().splitlines()
    assert "numba" not in avail and "cython" not in avail and "numpy" in avail
    for reason in reasons:
        assert reason.startswith("BlasChoiceError: FASTNN_BLAS='mkl' is not valid")
        assert "pip install" not in reason
