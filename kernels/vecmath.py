"""e^x, e^x - 1, tanh and the sigmoid, float32 and float64, in plain arithmetic so that loops over them vectorise.

Why: ``math.exp``/``math.tanh`` inside an @njit loop are calls to the C library, one element at a
time (llvmlite here has no SVML), so a tanh or sigmoid layer in the Numba backend ran slower than
NumPy's SIMD ufuncs, up to 9x in float64 (``fastnn bench --no-epochs``;
``python benchmarks/experiments/activations.py`` times an epoch per activation and backend, with ReLU,
which has no transcendental function, as its control).  Written as arithmetic, bit operations and
selects, LLVM turns the same loops into AVX2 or AVX-512 code.  The Cython backend has the same
algorithms and constants in C (kernels/cython/_core.pxd, "vectorisable e^x"); CUDA keeps the device's
own ``math`` functions.

The algorithm (Cody & Waite range reduction; float32 with the Cephes polynomials of S. L. Moshier):

    x = n ln 2 + r,  n = round(x / ln 2),  |r| <= ln 2 / 2
    e^r = 1 + q,  q = r + r^2 P(r)          (float32: P of degree 5; float64: Taylor to r^13/13!)
    e^x = 2^n + 2^n q,   e^x - 1 = (2^n - 1) + 2^n q   (2^n - 1 and 2^n r are exact: no cancellation)
    float32: tanh x = x + x^3 T(x^2) for |x| < 0.625, else sign(x) (1 - e) / (1 + e) with e = e^-2|x|
    float64: tanh x = sign(x) (-m) / (2 + m) with m = e^-2|x| - 1 (the C library's formula)
    s(z) = 1 / (1 + e^-z) for z >= 0, e^z / (1 + e^z) otherwise (never overflows)

n is rounded with the "magic number" M = 1.5 * 2^23 (float64: 2^52): t = x / ln 2 + M holds n in its
low bits, so t - M is n as a float and (bits(t) + bias) << mantissa bits is the bit pattern of 2^n,
with no float-to-int conversion.  ln 2 is split in two (C1 exact in a few bits, C2 the rest) so r
keeps its digits.

float64 is the dtype of gradient checks, whose finite differences sit at the last digits of J, so
its versions are compensated: the sums that cancel (2^n - 1 + 2^n r, 2 + m, 1 + e) are carried as an
unevaluated hi + lo pair (Fast2Sum, exact without reassociation), and each quotient gets one Newton
correction (rem = num - t d is exact with a fused multiply-add), so the result is rounded about once.

Accuracy (tests/test_vecmath.py, against exact values): float32 within 2.5 ulp (e^x 1.0, sigmoid
2.2); float64 e^x 0.97 ulp, e^x - 1 1.39, tanh 1.41, the sigmoid 1.43 (the plain formula through the
C library's exp reaches 2.4), with at most 0.3% of results above 1 ulp.  NaN, +-inf and +-0 are
handled as the C library does, except that results below the smallest normal number flush to 0 and
e^x overflows to inf above 127.5 ln 2 = 88.38 (float32) or 1023.5 ln 2 = 709.44 (float64) instead of at
88.72 or 709.78 (fastnn only calls it on x <= 0).

These functions must not be compiled with fastmath 'reassoc': it may fold (t + M) - M into t, n C1 + n C2
into n ln 2 and the hi + lo error terms into 0, which is the whole trick.  They are separate @njit
functions with their own flags, marked ``forceinline`` so that LLVM inlines them into the callers'
loops (each instruction keeps its flags); without it the float64 bodies stay calls and the loops
scalar.
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


@njit(cache=CACHE, fastmath=_FLAGS, error_model="numpy", forceinline=True)
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


@njit(cache=CACHE, fastmath=_FLAGS, error_model="numpy", forceinline=True)
def exp32(x):
    """e^x   (float32)."""
    s, q = _exp_parts32(x)
    y = s + s * q
    y = F32(np.inf) if x > _HI32 else y
    return F32(0.0) if x < _LO32 else y


@njit(cache=CACHE, fastmath=_FLAGS, error_model="numpy", forceinline=True)
def expm1_32(x):
    """e^x - 1   (float32; exact range reduction keeps small x accurate)."""
    s, q = _exp_parts32(x)
    y = (s - F32(1.0)) + s * q
    y = F32(np.inf) if x > _HI32 else y
    return F32(-1.0) if x < _LO32 else y


@njit(cache=CACHE, fastmath=_FLAGS, error_model="numpy", forceinline=True)
def tanh32(x):
    """tanh x = x + x^3 P(x^2) for |x| < 0.625, else sign(x) (1 - e)/(1 + e) with e = e^-2|x|   (float32)."""
    s = x * x
    p = F32(-5.70498872745e-3)
    p = p * s + F32(2.06390887954e-2)
    p = p * s + F32(-5.37397155531e-2)
    p = p * s + F32(1.33314422036e-1)
    p = p * s + F32(-3.33332819422e-1)
    small = p * s * x + x
    # e = e^-2|x| <= 1 straight from the parts: exp32's overflow and underflow selects cost 10% here and
    # change nothing (below 2^-126, e is 2^-126 (1 + q) instead of 0, and big rounds to 1 either way)
    scale, q = _exp_parts32(F32(-2.0) * abs(x))
    e = scale + scale * q
    big = (F32(1.0) - e) / (F32(1.0) + e)
    big = big if x > F32(0.0) else -big
    return small if abs(x) < F32(0.625) else big


@njit(cache=CACHE, fastmath=_FLAGS, error_model="numpy", forceinline=True)
def sigmoid32(z):
    """s(z) = 1 / (1 + e^-z), through e = e^-|z| so it never overflows   (float32)."""
    e = exp32(-abs(z))
    return F32(1.0) / (F32(1.0) + e) if z >= F32(0.0) else e / (F32(1.0) + e)


F64 = np.float64

# float64: clamp to where 2^n is a normal number (n in [-1022, 1023])
_HI64, _LO64 = 709.436139303104, -708.3964185322641
_MAGIC64 = 6755399441055744.0  # 1.5 * 2^52
_LOG2E64, _C1_64, _C2_64 = 1.4426950408889634, 0.693145751953125, 1.4286068203094173e-06


@njit(cache=CACHE, fastmath=_FLAGS, error_model="numpy", forceinline=True)
def _exp_parts64(x):
    """(2^n, r, p) with e^x = 2^n (1 + r + p r^2)   for float64 x, clamped into [-708.40, 709.44]."""
    x = _HI64 if x > _HI64 else x  # NaN fails both tests and passes through
    x = _LO64 if x < _LO64 else x
    t = x * _LOG2E64 + _MAGIC64
    n = t - _MAGIC64
    r = (x - n * _C1_64) - n * _C2_64
    # e^r - 1 - r = r^2 P(r): the Taylor series to r^13/13!, whose remainder is below 2^-58 for |r| <= ln2/2
    p = 1.6059043836821613e-10
    p = p * r + 2.08767569878681e-09
    p = p * r + 2.505210838544172e-08
    p = p * r + 2.755731922398589e-07
    p = p * r + 2.7557319223985893e-06
    p = p * r + 2.48015873015873e-05
    p = p * r + 0.0001984126984126984
    p = p * r + 0.001388888888888889
    p = p * r + 0.008333333333333333
    p = p * r + 0.041666666666666664
    p = p * r + 0.16666666666666666
    p = p * r + 0.5
    scale = np.int64((np.float64(t).view(np.int64) + np.int64(1023)) << np.int64(52)).view(np.float64)
    return scale, r, p


@njit(cache=CACHE, fastmath=_FLAGS, error_model="numpy", forceinline=True)
def exp64(x):
    """e^x   (float64)."""
    s, r, p = _exp_parts64(x)
    y = s * (p * (r * r) + r) + s
    y = np.inf if x > _HI64 else y
    return 0.0 if x < _LO64 else y


@njit(cache=CACHE, fastmath=_FLAGS, error_model="numpy", forceinline=True)
def _expm1_terms64(x):
    """(a, a_lo, b) with e^x - 1 = a + a_lo + b, |b| <= |a|: a + a_lo = (2^n - 1) + 2^n r exactly, b = 2^n p r^2."""
    s, r, p = _exp_parts64(x)
    sm1, sr = s - 1.0, s * r  # both exact, so no cancellation error; a + a_lo = their sum (Fast2Sum)
    a = sm1 + sr
    return a, sr - (a - sm1), (s * p) * (r * r)


@njit(cache=CACHE, fastmath=_FLAGS, error_model="numpy", forceinline=True)
def expm1_64(x):
    """e^x - 1   (float64; exact range reduction keeps small x accurate)."""
    a, a_lo, b = _expm1_terms64(x)
    y = a + (b + a_lo)
    y = np.inf if x > _HI64 else y
    return -1.0 if x < _LO64 else y


@njit(cache=CACHE, fastmath=_FLAGS, error_model="numpy", forceinline=True)
def tanh64(x):
    """tanh x = -m / (2 + m) with m = e^-2|x| - 1, sign of x   (float64; the C library's formula)."""
    # m = e^-2|x| - 1 and d = 2 + m, each as an unevaluated sum hi + lo (Fast2Sum), so that the
    # quotient is rounded once instead of three times
    a, a_lo, b = _expm1_terms64(-2.0 * abs(x))
    m = a + b
    m_lo = (b - (m - a)) + a_lo
    d = 2.0 + m
    d_lo = (m - (d - 2.0)) + m_lo
    inv = 1.0 / d  # one division: the correction step below repairs t's last bit
    t = -m * inv
    rem = -m - t * d  # exact with a fused multiply-add
    t = t + (rem - m_lo - t * d_lo) * inv  # |x| > 354: -2|x| clamps to -708.4, t = 1 exactly
    return t if x >= 0.0 else -t


@njit(cache=CACHE, fastmath=_FLAGS, error_model="numpy", forceinline=True)
def sigmoid64(z):
    """s(z) = 1 / (1 + e^-z), through e = e^-|z| so it never overflows   (float64)."""
    e = exp64(-abs(z))
    num = 1.0 if z >= 0.0 else e
    # d = 1 + e as hi + lo (Fast2Sum) and one correction step of the quotient: rounded once, not twice
    d = 1.0 + e
    d_lo = e - (d - 1.0)
    inv = 1.0 / d  # one division: the correction step below repairs s's last bit
    s = num * inv
    rem = num - s * d  # exact with a fused multiply-add
    return s + (rem - s * d_lo) * inv


# --------------------------------------------------------------------------- one name per function
# exp(x) etc. compile to the float32 version above for a float32 x, to the float64 one for a float64 x
# and to the C library's function for anything else (integers); called from plain Python they are the
# C library's (what the tests compare against).


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


def _by_width(float32_version, float64_version, python_version):
    """An @overload body: the version for the argument's float width, else python_version compiled as it is."""
    def select(x):
        if isinstance(x, types.Float) and x.bitwidth == 32:
            return lambda x: float32_version(x)
        if isinstance(x, types.Float) and x.bitwidth == 64:
            return lambda x: float64_version(x)
        if isinstance(x, (types.Integer, types.Boolean)):
            return python_version
        return None
    return select


# forceinline: LLVM's inliner otherwise leaves the larger float64 bodies as one call per element,
# which keeps the caller's loop scalar (it is an LLVM attribute: each function keeps its own flags)
_INLINE = {"forceinline": True}
overload(exp, jit_options=_INLINE)(_by_width(exp32, exp64, exp))
overload(expm1, jit_options=_INLINE)(_by_width(expm1_32, expm1_64, expm1))
overload(tanh, jit_options=_INLINE)(_by_width(tanh32, tanh64, tanh))
overload(sigmoid, jit_options=_INLINE)(_by_width(sigmoid32, sigmoid64, sigmoid))
