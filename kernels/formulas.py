"""The scalar formulas of every activation, f(z) and f'(z), written once for all compiled backends.

Numba CPU and numba.cuda compile the same source with their own decorator through
:func:`compile_with` (the NumPy reference writes them as array expressions; the Cython backend as
C in kernels/cython/_core.pxd).  Plain arithmetic only: numba's built-in CUDA target cannot type
``max``/``min`` on floats, so comparisons are written out.
"""
from __future__ import annotations

import math

from fastnn.kernels.codes import ELU, ELU_ALPHA, LEAKY_RELU, LEAKY_SLOPE, PRELU, RELU, SIGMOID, TANH

# In Numba's CUDA simulator these functions run in many Python threads that iterate this module's
# globals on every call; a first warning (an exp overflow) would add __warningregistry__ to them
# mid-iteration.  Defined up front, the globals never change size (see kernels/numba_cuda.py).
__warningregistry__: dict = {}


def compile_with(decorate, vector_math=None):
    """(sigmoid, f, df) compiled by ``decorate`` (e.g. njit(inline='always') or cuda.jit(device=True)).

    vector_math: a module with exp, expm1, tanh and sigmoid written to vectorise on a CPU
    (kernels/vecmath.py, what the Numba CPU backend passes); None: the ``math`` module's, which on a
    GPU are the device's own fast functions.
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

    @decorate
    def f(act, z, alpha):
        """a = f(z) for one element (alpha: this unit's PReLU slope)."""
        if act == RELU:
            return z if z > 0 else 0.0 * z
        if act == SIGMOID:
            return sigmoid(z)
        if act == TANH:
            return tanh(z)
        if act == LEAKY_RELU:
            return z if z > 0 else LEAKY_SLOPE * z
        if act == ELU:
            return z if z > 0 else ELU_ALPHA * expm1(z)
        if act == PRELU:
            return z if z > 0 else alpha * z
        return z  # IDENTITY

    @decorate
    def df(act, z, alpha):
        """f'(z) for one element."""
        if act == RELU:
            return 1.0 if z > 0 else 0.0
        if act == SIGMOID:
            s = sigmoid(z)
            return s * (1.0 - s)
        if act == TANH:
            t = tanh(z)
            return 1.0 - t * t
        if act == LEAKY_RELU:
            return 1.0 if z > 0 else LEAKY_SLOPE
        if act == ELU:
            return 1.0 if z > 0 else ELU_ALPHA * exp(z)
        if act == PRELU:
            return 1.0 if z > 0 else alpha
        return 1.0  # IDENTITY

    return sigmoid, f, df
