"""Matrix products for the Numba backend: C = op(A) op(B) through the BLAS kernels/blas.py chose.

Numba's own ``np.dot`` calls SciPy's BLAS.  To call NumPy's instead (kernels/blas.py says why), the
compiled kernels call two C symbols, ``fastnn_cblas_sgemm`` and ``fastnn_cblas_dgemm``, with CBLAS's
row-major interface and 64-bit integers; this module registers them with LLVM at import, before any
kernel is compiled or loaded from Numba's cache.  The cached machine code refers to the symbols by
name only, so it stays valid whichever BLAS a later process chooses.  When SciPy's BLAS is chosen,
the symbols point at ``_gemm_on_scipy`` below: a Numba C callback that does the product with
``np.dot`` (which is SciPy's BLAS).
"""
from __future__ import annotations

import numpy as np
from llvmlite import binding as llvm
from numba import carray, cfunc, types
from numba.core import cgutils
from numba.extending import intrinsic

from fastnn.kernels import blas
from fastnn.kernels.numba_config import jit

ROW_MAJOR, NO_TRANS, TRANS = blas.CBLAS_ROW_MAJOR, blas.CBLAS_NO_TRANS, blas.CBLAS_TRANS


def _signature(real, pointer):
    i32, i64 = types.int32, types.int64
    return types.void(i32, i32, i32, i64, i64, i64, real, pointer, i64, pointer, i64, real, pointer, i64)


# The callers pass untyped pointers (so that gemm's float32 and float64 branches both type-check);
# the C callbacks below take typed ones: the same machine-level signature.
_cblas_sgemm = types.ExternalFunction("fastnn_cblas_sgemm", _signature(types.float32, types.voidptr))
_cblas_dgemm = types.ExternalFunction("fastnn_cblas_dgemm", _signature(types.float64, types.voidptr))
_S_SIG = _signature(types.float32, types.CPointer(types.float32))
_D_SIG = _signature(types.float64, types.CPointer(types.float64))


@intrinsic
def _data(typingctx, arr):
    """The address of arr's first element, as a C pointer (void *)."""
    sig = types.voidptr(arr)

    def codegen(context, builder, signature, args):
        data = cgutils.create_struct_proxy(signature.args[0])(context, builder, value=args[0]).data
        return builder.bitcast(data, cgutils.voidptr_t)

    return sig, codegen


@jit(inline="always")
def _ld(X):
    """X's leading dimension: its row stride in elements, so a column block of a wider buffer needs no copy.

    A single row's stride means nothing (NumPy may give it any value), so it counts as its own width.
    """
    return X.strides[0] // X.itemsize if X.shape[0] > 1 else max(1, X.shape[1])


@jit(inline="always")
def gemm(A, B, C, trans_a, trans_b):
    """C = op(A) op(B)   (row-major; op(X) = X^T when trans_x; A, B, C with unit stride along rows)."""
    M, N = C.shape
    K = A.shape[0] if trans_a else A.shape[1]
    if M == 0 or N == 0:
        return
    if K == 0:  # an empty sum: BLAS would reject a leading dimension of 0
        C[:] = 0
        return
    ta = TRANS if trans_a else NO_TRANS
    tb = TRANS if trans_b else NO_TRANS
    lda, ldb, ldc = _ld(A), _ld(B), _ld(C)
    if C.itemsize == 4:
        _cblas_sgemm(np.int32(ROW_MAJOR), np.int32(ta), np.int32(tb), M, N, K, np.float32(1.0), _data(A), lda,
                     _data(B), ldb, np.float32(0.0), _data(C), ldc)
    else:
        _cblas_dgemm(np.int32(ROW_MAJOR), np.int32(ta), np.int32(tb), M, N, K, np.float64(1.0), _data(A), lda,
                     _data(B), ldb, np.float64(0.0), _data(C), ldc)


# --------------------------------------------------------------------------- SciPy's BLAS behind the symbols


@jit
def _dot_into(a, b, c, trans_a, trans_b):
    """c = op(a) op(b) with np.dot (SciPy's BLAS); a, b, c C-contiguous."""
    if trans_a and trans_b:
        np.dot(a.T, b.T, out=c)
    elif trans_a:
        np.dot(a.T, b, out=c)
    elif trans_b:
        np.dot(a, b.T, out=c)
    else:
        np.dot(a, b, out=c)


@jit
def _rows(X, rows, cols, ld):
    """The rows x cols matrix at X with leading dimension ld, C-contiguous (a copy only if ld pads the rows)."""
    if ld == cols:
        return carray(X, (rows, cols))
    return np.ascontiguousarray(carray(X, (rows, ld))[:, :cols])


def _gemm_on_scipy(order, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc):
    """C = alpha op(A) op(B) + beta C with cblas_?gemm's signature (row-major only), computed by np.dot."""
    t_a, t_b = ta == TRANS, tb == TRANS
    a = _rows(A, K, M, lda) if t_a else _rows(A, M, K, lda)
    b = _rows(B, N, K, ldb) if t_b else _rows(B, K, N, ldb)
    if alpha == 1 and beta == 0 and ldc == N:  # what fastnn's kernels ask for: straight into C
        _dot_into(a, b, carray(C, (M, N)), t_a, t_b)
        return
    p = np.empty((M, N), dtype=a.dtype)
    _dot_into(a, b, p, t_a, t_b)
    c = carray(C, (M, ldc))
    for i in range(M):
        for j in range(N):
            c[i, j] = alpha * p[i, j] + (beta * c[i, j] if beta != 0 else 0)


def scipy_callbacks() -> tuple:
    """_gemm_on_scipy compiled as C callbacks for float32 and float64 (cached like the kernels)."""
    return (cfunc(_S_SIG, nopython=True, cache=True)(_gemm_on_scipy),
            cfunc(_D_SIG, nopython=True, cache=True)(_gemm_on_scipy))


# The callbacks' owners: their machine code must live as long as the process.  (Numba 0.68 keeps a
# cfunc's code alive after the object is dropped, as a check showed; fastnn does not rely on that.)
_registered: tuple = ()


def register(choice: blas.Choice | None = None) -> None:
    """Point fastnn_cblas_sgemm/dgemm at the chosen BLAS (NumPy's functions, or the np.dot callbacks)."""
    global _registered
    choice = choice or blas.choice()
    if choice.sgemm and choice.dgemm:
        s, d = choice.sgemm, choice.dgemm
    else:
        _registered = scipy_callbacks()
        s, d = (f.address for f in _registered)
    llvm.add_symbol("fastnn_cblas_sgemm", s)
    llvm.add_symbol("fastnn_cblas_dgemm", d)


register()
