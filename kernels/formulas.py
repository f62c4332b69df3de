"""Every scalar and row formula of the compiled backends, written once.

Numba CPU and numba.cuda compile this same source with their own decorator through
:func:`compile_with` (CPU: ``njit(inline='always')`` with fastnn's settings; CUDA:
``cuda.jit(device=True)``), so the two cannot drift apart.  The NumPy reference
(kernels/numpy_ref.py) is the definition they are tested against, written as array expressions;
the Cython backend has its own C versions in kernels/cython/_core.pxd.

Plain arithmetic only: numba's built-in CUDA target cannot type ``max``/``min`` on floats, so
comparisons are written out.  Where a formula mixes a parameter with constants, the caller passes
the constants (``one``, ``zero``) or the scalars in the dtype it wants the arithmetic done in: the
fused CPU epoch keeps float32 weights in float32 arithmetic (a float64 scalar would widen every
element, halving the vector width), while the kernels that take Python floats compute in float64.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from fastnn.kernels.codes import (
    CROSS_ENTROPY,
    ELU,
    LEAKY_RELU,
    MSE,
    PRELU,
    RELU,
    SIGMOID,
    SOFTMAX,
    TANH,
)
from fastnn.kernels.numpy_ref import GOLDEN

# In Numba's CUDA simulator these functions run in many Python threads that iterate this module's
# globals on every call; a first warning (an exp overflow, a uint64 wrap in the hash) would add
# __warningregistry__ to them mid-iteration.  Defined up front, the globals never change size
# (see kernels/numba_cuda.py).
__warningregistry__: dict = {}

# The dropout hash's constants (SplitMix64: numpy_ref.dropout_key is the definition), as uint64 so
# that compiled arithmetic wraps mod 2^64 instead of widening to float64.
_G = np.uint64(GOLDEN)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_TWO_M53 = 1.0 / 9007199254740992.0  # 2^-53


class Formulas(NamedTuple):
    """One backend's compiled build of this module's formulas (see :func:`compile_with`)."""

    sigmoid: Callable  # s(z)
    f: Callable  # f(act, z, alpha): a = f(z) for one element
    df: Callable  # df(act, z, alpha): f'(z) for one element
    f_at: Callable  # f_at(act, z, alpha, i, j): f(z_ij) with unit j's alpha_j (leaky_relu, elu, prelu)
    df_at: Callable  # df_at(act, z, alpha, i, j): f'(z_ij) with unit j's alpha_j (leaky_relu, elu, prelu)
    sigmoid_slope: Callable  # s' from s: s (1 - s)
    penalised: Callable  # g + l2 w + l1 sign(w)
    sgd_step: Callable  # (w', v') of one SGD / momentum / Nesterov step
    mix64: Callable  # SplitMix64's finaliser
    dropout_key: Callable  # the hash key of one (seed, step, layer)
    dropout_uniform: Callable  # u_i in [0, 1) for element i
    row_max: Callable  # max_j z_ij
    softmax_row: Callable  # a_i = softmax(z_i)
    max_logsumexp: Callable  # (m, ln sum_j e^(z_ij - m)), float64
    sample_loss: Callable  # J_i, float64
    output_delta_row: Callable  # delta_i = dJ_i/dz_i
    predicted_label: Callable  # argmax_j a_ij, or [a_i0 > 1/2] for one sigmoid unit


def compile_with(decorate, vector_math=None) -> Formulas:
    """Every formula below compiled by ``decorate`` (e.g. njit(inline='always') or cuda.jit(device=True)).

    vector_math: a module with exp, expm1, tanh and sigmoid written to vectorise on a CPU
    (kernels/vecmath.py, what the Numba CPU backend passes); None: the ``math`` module's, which on a
    GPU are the device's own fast functions.  Losses are always in float64 through ``math``.
    """
    if vector_math is None:
        exp, expm1, tanh = math.exp, math.expm1, math.tanh

        @decorate
        def sigmoid(z):
            """s(z) = 1 / (1 + e^-z), through e^-|z| so it never overflows."""
            e = exp(-abs(z))
            return 1.0 / (1.0 + e) if z >= 0 else e / (1.0 + e)
    else:
        exp, expm1, tanh, sigmoid = vector_math.exp, vector_math.expm1, vector_math.tanh, vector_math.sigmoid

    # ------------------------------------------------------------------ activations

    @decorate
    def sigmoid_slope(s):
        """s'(z) = s (1 - s), from s = s(z) (the sigmoid's output)."""
        return s * (1.0 - s)

    @decorate
    def f(act, z, alpha):
        """a = f(z) for one element (alpha: this unit's LeakyReLU / PReLU slope or ELU alpha)."""
        if act == RELU:
            return z if z > 0 else 0.0 * z
        if act == SIGMOID:
            return sigmoid(z)
        if act == TANH:
            return tanh(z)
        if act == LEAKY_RELU:
            return z if z > 0 else alpha * z
        if act == ELU:
            return z if z > 0 else alpha * expm1(z)
        if act == PRELU:
            return z if z > 0 else alpha * z
        return z  # IDENTITY

    @decorate
    def df(act, z, alpha):
        """f'(z) for one element."""
        if act == RELU:
            return 1.0 if z > 0 else 0.0
        if act == SIGMOID:
            return sigmoid_slope(sigmoid(z))
        if act == TANH:
            t = tanh(z)
            return 1.0 - t * t
        if act == LEAKY_RELU:
            return 1.0 if z > 0 else alpha
        if act == ELU:
            return 1.0 if z > 0 else alpha * exp(z)
        if act == PRELU:
            return 1.0 if z > 0 else alpha
        return 1.0  # IDENTITY

    @decorate
    def f_at(act, z, alpha, i, j):
        """f(z_ij); alpha holds a parameter per unit for leaky_relu, elu, prelu and nothing otherwise."""
        return f(act, z[i, j], alpha[j] if (act == PRELU or act == LEAKY_RELU or act == ELU) else 0.0)

    @decorate
    def df_at(act, z, alpha, i, j):
        """f'(z_ij); alpha holds a parameter per unit for leaky_relu, elu, prelu and nothing otherwise."""
        return df(act, z[i, j], alpha[j] if (act == PRELU or act == LEAKY_RELU or act == ELU) else 0.0)

    # ------------------------------------------------------------------ the update

    @decorate
    def penalised(g, w, l1, l2, one, zero):
        """g + l2 w + l1 sign(w)   (sign(0) = 0 leaves exact zeros alone; one, zero: 1 and 0 in w's dtype)."""
        return g + l2 * w + l1 * (one if w > zero else (-one if w < zero else zero))

    @decorate
    def sgd_step(w, g, v, lr, mu, nesterov):
        """(w', v'):  v' = mu v - lr g;  w' = w + v'.

        Nesterov: w' = w + mu v' - lr g.  mu = 0: plain SGD, w' = w - lr g, and v' = v.
        """
        if mu == 0:
            return w - lr * g, v
        v = mu * v - lr * g
        if nesterov:
            return w + (mu * v - lr * g), v
        return w + v, v

    # ------------------------------------------------------------------ the dropout hash

    @decorate
    def mix64(x):
        """SplitMix64 finaliser (uint64 arithmetic wraps mod 2^64)."""
        x = (x ^ (x >> _S30)) * _M1
        x = (x ^ (x >> _S27)) * _M2
        return x ^ (x >> _S31)

    @decorate
    def dropout_key(seed, step, layer):
        """k = mix(mix(mix(seed + G) + (step+1) G) + (layer+1) G)   (one stream per batch and layer)."""
        k = mix64(np.uint64(seed) + _G)
        k = mix64(k + np.uint64(step + 1) * _G)
        return mix64(k + np.uint64(layer + 1) * _G)

    @decorate
    def dropout_uniform(key, i):
        """u_i = (mix(k + (i+1) G) >> 11) 2^-53 in [0, 1)   (i: the element's row-major index in its array)."""
        return float(mix64(key + np.uint64(i + 1) * _G) >> _S11) * _TWO_M53

    # ------------------------------------------------------------------ rows: softmax, losses, deltas, labels

    @decorate
    def row_max(z, i):
        """max_j z_ij."""
        m = z[i, 0]
        for j in range(1, z.shape[1]):
            if z[i, j] > m:
                m = z[i, j]
        return m

    @decorate
    def softmax_row(z, i, a):
        """a_ij = e^(z_ij - m) / sum_k e^(z_ik - m), m = max_k z_ik (the shift keeps e^x from overflowing)."""
        n = z.shape[1]
        m = row_max(z, i)
        s = 0.0
        for j in range(n):
            e = exp(z[i, j] - m)
            a[i, j] = e
            s += e
        inv = 1.0 / s
        for j in range(n):
            a[i, j] *= inv

    @decorate
    def max_logsumexp(z, i):
        """(m, ln sum_k e^(z_ik - m)) with m = max_k z_ik, in float64: ln softmax(z_i)_j = z_ij - m - lse."""
        m = float(row_max(z, i))
        s = 0.0
        for j in range(z.shape[1]):
            s += math.exp(float(z[i, j]) - m)
        return m, math.log(s)

    @decorate
    def sample_loss(loss, z, a, y, i):
        """J_i in float64 (logs from z, so they never see log 0)."""
        n = z.shape[1]
        total = 0.0
        if loss == MSE:  # 1/2 sum_j (a_ij - y_ij)^2
            for j in range(n):
                d = float(a[i, j]) - float(y[i, j])
                total += 0.5 * d * d
        elif loss == CROSS_ENTROPY:  # -sum_j y_ij ln softmax(z_i)_j
            m, lse = max_logsumexp(z, i)
            for j in range(n):
                total -= float(y[i, j]) * (float(z[i, j]) - m - lse)
        else:  # BINARY_CROSS_ENTROPY: -[y ln s(z) + (1-y) ln(1 - s(z))] = max(z,0) - z y + ln(1 + e^-|z|)
            for j in range(n):
                zz = float(z[i, j])
                total += (zz if zz > 0.0 else 0.0) - zz * float(y[i, j]) + math.log1p(math.exp(-abs(zz)))
        return total

    @decorate
    def output_delta_row(loss, act, a, y, delta, i):
        """delta_i = dJ_i/dz_i:  a - y (softmax+CE, sigmoid+BCE).

        MSE: g = a - y times f'(z); for softmax its Jacobian, a_k (g_k - sum_j g_j a_j).
        """
        n = a.shape[1]
        for j in range(n):
            delta[i, j] = a[i, j] - y[i, j]
        if loss == MSE:
            if act == SIGMOID:
                for j in range(n):
                    delta[i, j] *= sigmoid_slope(a[i, j])
            elif act == SOFTMAX:
                s = 0.0
                for j in range(n):
                    s += delta[i, j] * a[i, j]
                for j in range(n):
                    delta[i, j] = a[i, j] * (delta[i, j] - s)

    @decorate
    def predicted_label(a, i, single_sigmoid):
        """The class of row i: argmax_j a_ij (the first on ties), or [a_i0 > 1/2] for a single sigmoid unit."""
        if single_sigmoid:
            return 1 if a[i, 0] > 0.5 else 0
        pred = 0
        for j in range(1, a.shape[1]):
            if a[i, j] > a[i, pred]:
                pred = j
        return pred

    return Formulas(sigmoid=sigmoid, f=f, df=df, f_at=f_at, df_at=df_at, sigmoid_slope=sigmoid_slope,
                    penalised=penalised, sgd_step=sgd_step, mix64=mix64, dropout_key=dropout_key,
                    dropout_uniform=dropout_uniform, row_max=row_max, softmax_row=softmax_row,
                    max_logsumexp=max_logsumexp, sample_loss=sample_loss, output_delta_row=output_delta_row,
                    predicted_label=predicted_label)
