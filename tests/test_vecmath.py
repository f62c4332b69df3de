"""The vectorisable e^x, e^x - 1, tanh and sigmoid, float32 and float64 (kernels/vecmath.py, and its
C twin in kernels/cython/_core.pxd), against the exact values, in units in the last place (ulp).

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


# --------------------------------------------------------------------------- float64

# Measured worst cases on ~10 million arguments, rounded up a little (e^x 0.97 ulp, e^x - 1 1.39, tanh 1.41,
# sigmoid 1.43; the C library's formula 1/(1+e^-z) for the sigmoid reaches 2.4).  Above 1 ulp: at most
# 0.3% of arguments (tanh; the others 0.1%).  Gradient checks take finite differences at the last digits of J, which is why
# float64 gets these compensated (hi + lo) versions rather than plain polynomial ones.
MAX_ULP64 = {"exp": 1.0, "expm1": 1.5, "tanh": 1.5, "sigmoid": 1.5}
MAX_SHARE_ABOVE_1ULP = 0.004
LONG = np.longdouble
needs_long_double = pytest.mark.skipif(np.finfo(LONG).nmant < 60,
                                       reason="the exact values need an 80-bit long double")


def _exact64(kind: str, z: np.ndarray) -> np.ndarray:
    """The float64 functions' exact values to 11 bits beyond float64 (x87 long double)."""
    z = z.astype(LONG)
    if kind == "sigmoid":
        e = np.exp(-np.abs(z))
        return np.where(z >= 0, 1 / (1 + e), e / (1 + e))
    return {"exp": np.exp, "expm1": np.expm1, "tanh": np.tanh}[kind](z)


def _grid64() -> np.ndarray:
    """Random float64 between -720 and 720 drawn uniformly over their bit patterns (every binade
    from subnormals up), and as many uniform in [-20, 20] (where activations live)."""
    rng = np.random.default_rng(7)
    pos = rng.integers(0, np.float64(720).view(np.int64), 1_500_000).view(np.float64)
    return np.concatenate([pos, -pos, rng.uniform(-20, 20, 1_500_000)])


def _ulps64(got: np.ndarray, z: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(errors in ulp of the exact value, the arguments) over normal float64 results."""
    exact = _exact64(kind, z)
    ok = (np.abs(exact) >= LONG(np.finfo(np.float64).tiny)) & (np.abs(exact) <= LONG(np.finfo(np.float64).max))
    ulp = np.spacing(np.abs(exact[ok]).astype(np.float64)).astype(LONG)
    return (np.abs(got[ok].astype(LONG) - exact[ok]) / ulp).astype(np.float64), z[ok]


def _check_ulps64(got: np.ndarray, z: np.ndarray, kind: str, bound: float, who: str) -> None:
    err, zs = _ulps64(got, z, kind)
    worst = int(np.argmax(err))
    assert err[worst] <= bound, f"{who} {kind}: {err[worst]:.2f} ulp at z = {zs[worst]!r}"
    share = float(np.mean(err > 1.0))
    assert share <= MAX_SHARE_ABOVE_1ULP, f"{who} {kind}: {share:.2%} of results off by more than 1 ulp"


@needs_long_double
@pytest.mark.parametrize("kind", KINDS)
def test_numba_float64_within_bound(kind):
    z = _grid64()
    if kind in ("exp", "expm1"):
        z = z[z <= 709.43]  # above it e^x overflows to inf early (documented)
    _check_ulps64(_numba(kind, z), z, kind, MAX_ULP64[kind], "numba")


@pytest.mark.parametrize("kind", KINDS)
def test_numba_float64_special_values(kind):
    tiny = np.finfo(np.float64).tiny
    z = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-300, -1e-300, 5e-324, 800.0, -800.0, 30.0, -30.0])
    got = _numba(kind, z)
    with np.errstate(over="ignore", invalid="ignore"):
        want = _exact64(kind, z).astype(np.float64)
    if kind in ("exp", "sigmoid"):  # results below the smallest normal flush to zero; e^x - 1 and
        want = np.where(np.abs(want) < tiny, 0 * want, want)  # tanh of a tiny x are x itself, exactly
    np.testing.assert_array_equal(got, want)


def test_numba_float64_limits():
    """Where the float64 versions part from the C library, as the module docstring says."""
    z = np.array([709.0, 709.5, -708.0, -709.0])
    got = _numba("exp", z)
    assert np.isfinite(got[0]) and got[1] == np.inf  # overflows above 1023.5 ln 2 = 709.44, not 709.78
    assert got[2] > 0 and got[3] == 0.0  # results below 2^-1022 (x < -708.40) flush to zero


def test_loop_over_float64_tanh_vectorises():
    """float64 too: the compensated tanh must still become vector code, inlined into the caller's loop."""

    @njit(fastmath=numba_config.FASTMATH)
    def tanh_all(z, out):
        for i in range(z.shape[0]):
            out[i] = vecmath.tanh(z[i])

    z = np.zeros(16)
    tanh_all(z, np.empty_like(z))
    ir = tanh_all.inspect_llvm(tanh_all.signatures[0])
    assert "x double>" in ir, "the float64 tanh loop was not vectorised"
    calls = [line for line in ir.splitlines() if " call " in line]
    assert not any("kernels7vecmath" in line for line in calls), "tanh was not inlined"  # the mangled module name


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


@needs_long_double
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("act", list(ACTS))
def test_backend_activation_float64_accuracy(backend, act):
    """The float64 kernels (the dtype of gradient checks) against the exact values, as vecmath's own tests."""
    kernels = backends.get(backend)
    z = _grid64()[::3].reshape(-1, 1)
    alpha = np.ones(1) if act == "elu" else np.zeros(0)
    a = np.empty_like(z)
    kernels.activate(ACTS[act], z, alpha, a)
    kind = {"sigmoid": "sigmoid", "tanh": "tanh", "elu": "expm1"}[act]
    if act == "elu":  # f(z) = z for z > 0
        z, a = z[z <= 0], a[z <= 0]
    bound = MAX_ULP64[kind]
    if backend == "cython" and _cython_isa() == "baseline":
        bound += 1.0  # no fused multiply-add in the portable build: the correction steps' products round
    _check_ulps64(a.ravel(), z.ravel(), kind, bound, backend)


def _cython_isa() -> str:
    from fastnn.kernels import cython_cpu

    return cython_cpu.ISA


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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numba_backend_kernels_vectorise_for_the_host(dtype):
    """The Numba backend's own activate kernel (not a test loop) has packed fused multiply-adds: only the
    e^x-based loops (sigmoid, tanh, ELU, softmax) have FMAs, so they are vectorised for this host (with
    the C library's exp/tanh, float64 had none)."""
    import re

    from numba import from_dtype
    from numpy._core._multiarray_umath import __cpu_features__ as features

    from fastnn.kernels import numba_cpu

    if not features.get("FMA3"):
        pytest.skip("no FMA on this CPU: the packed code uses other instructions")
    z = np.zeros((4, 33), dtype=dtype)
    # the kernel's own source and options, compiled afresh: code loaded from Numba's cache has no assembly
    options = {k: v for k, v in numba_cpu._activate.targetoptions.items() if k != "cache"}
    kernel = njit(**options)(numba_cpu._activate.py_func)
    kernel(codes.TANH, z, np.zeros(0, dtype=dtype), np.empty_like(z))
    sig = next(s for s in kernel.signatures if s[1].dtype == from_dtype(np.dtype(dtype)) and s[1].layout == "C")
    asm = kernel.inspect_asm(sig)
    packed = re.findall(r"vfmadd\w*p[sd]\s+%[xyz]mm", asm) or re.findall(r"vfmadd\w*p[sd]\s+[xyz]mm", asm)
    assert packed, "no packed fused multiply-adds: the tanh loop did not vectorise"
