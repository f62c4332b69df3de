"""The vectorisable float32 e^x, e^x - 1, tanh and sigmoid (kernels/vecmath.py, and its C twin in
kernels/cython/_core.pxd) against the exact values, in units in the last place (ulp).

The bounds are the measured worst cases rounded up a little (measured: e^x 1.0 ulp, e^x - 1 1.4, tanh 1.5,
sigmoid 2.2; NumPy's own float32 1/(1+e^-z) is off by up to 3.1 ulp on the same grid).
A broken range reduction (e.g. fastmath 'reassoc' folding (t + M) - M) costs thousands of ulp.
"""
from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from fastnn import backends, codes
from fastnn.kernels import numba_config, vecmath
from fastnn.kernels import numpy_ref as ref

F32 = np.float32
MAX_ULP = {"exp": 1.5, "expm1": 1.5, "tanh": 1.5, "sigmoid": 2.5}
EXACT = {  # float64 NumPy: the float32 results' exact values to far below their ulp
    "exp": np.exp,
    "expm1": np.expm1,
    "tanh": np.tanh,
    "sigmoid": lambda z: np.where(z >= 0, 1 / (1 + np.exp(-np.abs(z))), np.exp(-np.abs(z)) / (1 + np.exp(-np.abs(z)))),
}


@njit(fastmath=numba_config.FASTMATH)  # the kernels' own flags, 'reassoc' included: it must not leak in
def _apply(kind, z, out):
    for i in range(z.shape[0]):
        if kind == 0:
            out[i] = vecmath.exp(z[i])
        elif kind == 1:
            out[i] = vecmath.expm1(z[i])
        elif kind == 2:
            out[i] = vecmath.tanh(z[i])
        else:
            out[i] = vecmath.sigmoid(z[i])


KINDS = ["exp", "expm1", "tanh", "sigmoid"]


def _numba(kind: str, z: np.ndarray) -> np.ndarray:
    out = np.empty_like(z)
    _apply(KINDS.index(kind), z, out)
    return out


def _grid() -> np.ndarray:
    """Every 61st float32 between -100 and 100 (about 5 million values, both signs, all binades)."""
    bits = np.arange(0, np.float32(100).view(np.int32), 61, dtype=np.int32)
    pos = bits.view(np.float32)
    return np.concatenate([pos, -pos])


def _max_ulp(got: np.ndarray, z: np.ndarray, kind: str) -> tuple[float, float]:
    exact = EXACT[kind](z.astype(np.float64))
    tiny, big = np.finfo(F32).tiny, np.finfo(F32).max
    ok = (np.abs(exact) >= tiny) & (np.abs(exact) <= big)  # normal float32 results
    err = np.abs(got[ok].astype(np.float64) - exact[ok]) / np.spacing(np.abs(exact[ok]).astype(F32)).astype(np.float64)
    worst = int(np.argmax(err))
    return float(err[worst]), float(z[ok][worst])


@pytest.mark.parametrize("kind", KINDS)
def test_numba_float32_within_bound(kind):
    z = _grid()
    if kind in ("exp", "expm1"):
        z = z[z <= 88.37]  # above it e^x overflows to inf early (documented)
    ulp, where = _max_ulp(_numba(kind, z), z, kind)
    assert ulp <= MAX_ULP[kind], f"{kind}: {ulp:.2f} ulp at z = {where!r}"


@pytest.mark.parametrize("kind", KINDS)
def test_numba_special_values(kind):
    z = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30, -1e-30, 200.0, -200.0], dtype=F32)
    got = _numba(kind, z)
    with np.errstate(over="ignore", invalid="ignore"):
        want = EXACT[kind](z.astype(np.float64)).astype(F32)
        want = np.where(np.abs(want) < np.finfo(F32).tiny, 0 * want, want)  # flush-to-zero below normal
    # NaN in the same places, inf, exact 0 and +-1 (the sign of a zero is not kept: the kernels
    # compile with fastmath 'nsz' anyway)
    np.testing.assert_array_equal(got, want)


def test_float64_keeps_the_c_library():
    """Gradient checks need the C library's last digits: float64 is not approximated."""
    import math

    z = np.linspace(-20, 20, 1001)
    for kind, lib in zip(KINDS, (math.exp, math.expm1, math.tanh, vecmath.sigmoid)):
        np.testing.assert_array_equal(_numba(kind, z), [lib(v) for v in z], err_msg=kind)


def test_loop_over_tanh_vectorises():
    """The point of the module: LLVM turns the loop into vector code (no raising division, no float-to-int call)."""

    @njit(fastmath=numba_config.FASTMATH)
    def tanh_all(z, out):
        for i in range(z.shape[0]):
            out[i] = vecmath.tanh(z[i])

    z = np.zeros(16, dtype=F32)
    tanh_all(z, np.empty_like(z))
    ir = tanh_all.inspect_llvm(tanh_all.signatures[0])
    assert "x float>" in ir, "the float32 tanh loop was not vectorised"


# --------------------------------------------------------------------------- through the backends' kernels

BACKENDS = [b for b in ("numba", "cython") if b in backends.available()]
ACTS = {"sigmoid": codes.SIGMOID, "tanh": codes.TANH, "elu": codes.ELU}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("act", list(ACTS))
def test_backend_activation_float32_accuracy(backend, act):
    """a = f(z) in ulp of the exact value; f'(z) g to float32 rounding of its largest value (s(1-s) cancels)."""
    kernels = backends.get(backend)
    z = _grid()[::7].reshape(-1, 1)
    alpha = np.ones(1, dtype=F32) if act == "elu" else np.zeros(0, dtype=F32)  # ELU's alpha_j = 1 (one unit)
    a, d = np.empty_like(z), np.empty_like(z)
    kernels.activate(ACTS[act], z, alpha, a)
    kernels.activation_derivative(ACTS[act], z, alpha, d)
    z64 = z.astype(np.float64)
    exact_a, exact_d = np.empty_like(z64), np.empty_like(z64)
    ref.activate(ACTS[act], z64, alpha.astype(np.float64), exact_a)
    ref.activation_derivative(ACTS[act], z64, alpha.astype(np.float64), exact_d)
    kind = {"sigmoid": "sigmoid", "tanh": "tanh", "elu": "expm1"}[act]
    ok = np.abs(exact_a) >= np.finfo(F32).tiny
    ulp = np.abs(a[ok] - exact_a[ok]) / np.spacing(np.abs(exact_a[ok]).astype(F32)).astype(np.float64)
    assert ulp.max() <= MAX_ULP[kind] + 0.5, f"{backend} {act}: f off by {ulp.max():.2f} ulp"  # + ELU's alpha z rounding
    assert np.max(np.abs(d - exact_d)) <= 4 * np.finfo(F32).eps * np.max(np.abs(exact_d)), f"{backend} {act}: f'"


@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_softmax_float32(backend):
    kernels = backends.get(backend)
    z = np.random.default_rng(0).normal(0, 30, (64, 10)).astype(F32)
    a = np.empty_like(z)
    kernels.activate(codes.SOFTMAX, z, np.zeros(0, dtype=F32), a)
    # exact from the same float32 z - max z (its rounding is the input's, not the exponential's)
    e = np.exp((z - z.max(axis=1, keepdims=True)).astype(np.float64))
    exact = e / e.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(a, exact, rtol=1e-6, atol=1e-37)


# --------------------------------------------------------------------------- the cache key


def test_cache_key_covers_every_kernel_source(tmp_path):
    """Editing any kernel source (not only the cached function's own file) must invalidate the cache."""
    for name in ("numba_cpu.py", "vecmath.py", "codes.py"):
        (tmp_path / name).write_text("x = 1\n")
    before = numba_config.sources_stamp(tmp_path)
    (tmp_path / "vecmath.py").write_text("x = 2  # edited\n")
    assert numba_config.sources_stamp(tmp_path) != before
    before = numba_config.sources_stamp(tmp_path)
    (tmp_path / "codes.py").write_text("x = 2  # edited\n")
    assert numba_config.sources_stamp(tmp_path) != before


def test_kernels_are_cached_with_that_key():
    from fastnn.kernels import numba_cpu

    locator = numba_cpu._epoch._cache._impl._locator
    assert isinstance(locator, numba_config.LOCATORS), type(locator)
    assert locator.get_source_stamp()[1] == numba_config.sources_stamp()
