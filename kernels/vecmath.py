"""e^x, e^x - 1, tanh and the sigmoid for float32 in plain arithmetic, so that loops over them vectorise.

Why: ``math.exp``/``math.tanh`` inside an @njit loop are calls to the C library, one element at a
time (llvmlite here has no SVML), so a tanh or sigmoid layer in the Numba backend ran slower than
NumPy's SIMD ufuncs (``python benchmarks/experiments/activations.py`` times an epoch per activation and backend;
ReLU, with no transcendental function, is its control).  Written as arithmetic, bit operations and
selects, LLVM turns the same loops into AVX2 code.  The Cython backend has the same algorithm and
constants in C (kernels/cython/_core.pxd, "vectorisable e^x"); CUDA keeps the device's own ``math``
functions.

Only float32, the dtype for speed: float64 is the dtype for gradient checks, whose finite
differences sit at the last digits of J, so float64 keeps the C library's functions (a vectorised
float64 tanh, within 2 units in the last place (ulp), made the checks noisier; tried, not kept).

The algorithm (Cody & Waite range reduction with the Cephes polynomials of S. L. Moshier):

    x = n ln 2 + r,  n = round(x / ln 2),  |r| <= ln 2 / 2
    e^r = 1 + q,  q = r + r^2 P(r)                 (P: degree 5)
    e^x = 2^n + 2^n q,   e^x - 1 = (2^n - 1) + 2^n q   (exact when n = 0: no cancellation)
    tanh x = x + x^3 T(x^2) for |x| < 0.625, else sign(x) (1 - e) / (1 + e) with e = e^-2|x|

n is rounded with the "magic number" M = 1.5 * 2^23: t = x / ln 2 + M holds n in its low bits, so
t - M is n as a float and (bits(t) + 127) << 23 is the bit pattern of 2^n, with no float-to-int
conversion.  ln 2 is split in two (C1 exact in a few bits, C2 the rest) so r keeps its digits.

Accuracy (tests/test_vecmath.py): within 2 ulp of the exact value, NaN, +-inf and +-0 handled as
the C library does, except that results below the smallest normal float flush to 0 and e^x
overflows to inf above 88.376 instead of 88.723 (fastnn only calls it on x <= 0).

These functions must not be compiled with fastmath 'reassoc': it may fold (t + M) - M into t and
n C1 + n C2 into n ln 2, which is the whole trick.  They are separate @njit functions with their own
flags; LLVM still inlines them into the callers' loops and keeps each instruction's flags.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import overload

from fastnn.kernels.numba_config import CACHE

# Contraction (fused multiply-add) only makes the polynomials more accurate; nothing else is allowed.
# error_model="numpy": a float division by zero gives inf/NaN as in C instead of raising, which is
# what lets the loops around these functions vectorise (a possible exception is a branch).
_FLAGS = {"contract"}

F32 = np.float32

# float32: clamp to where 2^n is a normal number (n in [-126, 127])
_HI32, _LO32 = F32(88.3762626647949), F32(-87.3365447504019)
_MAGIC32 = F32(12582912.0)  # 1.5 * 2^23
_LOG2E32, _C1_32, _C2_32 = F32(1.44269504088896341), F32(0.693359375), F32(-2.12194440e-4)


@njit(cache=CACHE, fastmath=_FLAGS, error_model="numpy")
def _exp_parts32(x):
    """(2^n, q) with e^x = 2^n (1 + q)   for float32 x, clamped into [-87.34, 88.38]."""
    x = _HI32 if x > _HI32 else x  # NaN fails both tests and passes through
    x = _LO32 if x < _LO32 else x
    t = x * _LOG2E32 + _MAGIC32
    n = t - _MAGIC32
    r = (x - n * _C1_32) - n * _C2_32
    p = F32(1.9875691500e-4)
    p = p * r + F32(1.3981999507e-3)
    p = p * r + F32(8.3334519073e-3)
    p = p * r + F32(4.1665795894e-2)
    p = p * r + F32(1.6666665459e-1)
    p = p * r + F32(5.0000001201e-1)
    q = p * (r * r) + r
    scale = np.int32((np.float32(t).view(np.int32) + np.int32(127)) << np.int32(23)).view(np.float32)
    return scale, q


@njit(cache=CACHE, fastmath=_FLAGS, error_model="numpy")
def exp32(x):
    """e^x   (float32)."""
    s, q = _exp_parts32(x)
    y = s + s * q
    y = F32(np.inf) if x > _HI32 else y
    return F32(0.0) if x < _LO32 else y


@njit(cache=CACHE, fastmath=_FLAGS, error_model="numpy")
def expm1_32(x):
    """e^x - 1   (float32; exact range reduction keeps small x accurate)."""
    s, q = _exp_parts32(x)
    y = (s - F32(1.0)) + s * q
    y = F32(np.inf) if x > _HI32 else y
    return F32(-1.0) if x < _LO32 else y


@njit(cache=CACHE, fastmath=_FLAGS, error_model="numpy")
def tanh32(x):
    """tanh x = x + x^3 P(x^2) for |x| < 0.625, else sign(x) (1 - e)/(1 + e) with e = e^-2|x|   (float32)."""
    s = x * x
    p = F32(-5.70498872745e-3)
    p = p * s + F32(2.06390887954e-2)
    p = p * s + F32(-5.37397155531e-2)
    p = p * s + F32(1.33314422036e-1)
    p = p * s + F32(-3.33332819422e-1)
    small = p * s * x + x
    e = exp32(F32(-2.0) * abs(x))
    big = (F32(1.0) - e) / (F32(1.0) + e)
    big = big if x > F32(0.0) else -big
    return small if abs(x) < F32(0.625) else big


@njit(cache=CACHE, fastmath=_FLAGS, error_model="numpy")
def sigmoid32(z):
    """s(z) = 1 / (1 + e^-z), through e = e^-|z| so it never overflows   (float32)."""
    e = exp32(-abs(z))
    return F32(1.0) / (F32(1.0) + e) if z >= F32(0.0) else e / (F32(1.0) + e)


# --------------------------------------------------------------------------- one name per function
# exp(x) etc. compile to the float32 version above for a float32 x and to the C library's function
# otherwise; called from plain Python they are the C library's (what the tests compare against).


def exp(x):
    """e^x."""
    return math.exp(x)


def expm1(x):
    """e^x - 1."""
    return math.expm1(x)


def tanh(x):
    """tanh x."""
    return math.tanh(x)


def sigmoid(x):
    """s(x) = 1 / (1 + e^-x), through e^-|x| so it never overflows."""
    e = math.exp(-abs(x))
    return 1.0 / (1.0 + e) if x >= 0 else e / (1.0 + e)


def _float32_or_libm(float32_version, python_version):
    """An @overload body: float32_version for float32 arguments, else python_version compiled as it is."""
    def select(x):
        if isinstance(x, types.Float) and x.bitwidth == 32:
            return lambda x: float32_version(x)
        if isinstance(x, (types.Float, types.Integer, types.Boolean)):
            return python_version
        return None
    return select


overload(exp)(_float32_or_libm(exp32, exp))
overload(expm1)(_float32_or_libm(expm1_32, expm1))
overload(tanh)(_float32_or_libm(tanh32, tanh))
overload(sigmoid)(_float32_or_libm(sigmoid32, sigmoid))
