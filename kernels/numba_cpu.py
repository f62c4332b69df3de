"""The Numba CPU backend: the kernel contract as @njit code, plus a fused whole-epoch loop.

Each public kernel is a thin wrapper that hands contiguous arrays to a private compiled kernel
(the first line of whose docstring is its equation).  Matrix products go to BLAS through
``numba_blas.gemm`` (NumPy's bundled OpenBLAS when usable, else SciPy's: kernels/blas.py);
``matmul_blocked`` is a hand-written cache-blocked kernel kept for teaching and for the
benchmarks.  The single kernels' elementwise work is serial: a ``prange`` over it would compete
for the cores with a BLAS that owns them.  The fused
epoch turns that around where a batch carries enough work: it splits the whole batch across a team
of threads, each calling a single-threaded BLAS on its slice (kernels/team.py, "the team" below), and
runs a sparse batch's first layer on its nonzero input columns only ("sparse input" below).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import prange, typed

from fastnn.kernels import formulas, sparse_input, team, vecmath
from fastnn.kernels.codes import (
    BINARY_CROSS_ENTROPY,
    CROSS_ENTROPY,
    ELU,
    IDENTITY,
    LEAKY_RELU,
    LEARNED,
    MSE,
    PRELU,
    RELU,
    SIGMOID,
    SOFTMAX,
    TANH,
)
from fastnn.kernels.contract import EpochStats
from fastnn.kernels.numba_blas import gemm
from fastnn.kernels.numba_config import jit
from fastnn.kernels.numpy_ref import assign, empty, to_device, to_host  # noqa: F401 - re-exports

NAME = "numba"



def _c(x: np.ndarray) -> np.ndarray:
    """Inputs may be any strided view; the kernels take C order (a copy only when needed)."""
    return x if x.flags.c_contiguous else np.ascontiguousarray(x)


# --------------------------------------------------------------------------- scalar formulas
# exp, tanh and the sigmoid from kernels/vecmath.py: arithmetic that vectorises, not one libm call per element.
# Every scalar formula (f and f', the penalty term, the SGD step, softmax of a row, a sample's loss and
# output delta, the label rule, the dropout hash) comes from kernels/formulas.py, shared with the CUDA
# backend and inlined into the loops.
_formulas = formulas.compile_with(jit(inline="always"), vecmath)
_f_at, _df_at = _formulas.f_at, _formulas.df_at  # f(z_ij), f'(z_ij) with unit j's alpha_j where it has one
_penalised, _sgd_step = _formulas.penalised, _formulas.sgd_step  # g + l2 w + l1 sign(w);  one SGD step
_softmax_row, _predicted_label = _formulas.softmax_row, _formulas.predicted_label
_sample_loss, _output_delta_row = _formulas.sample_loss, _formulas.output_delta_row  # J_i;  dJ_i/dz_i


# --------------------------------------------------------------------------- matrix products


@jit
def _gemm(A, B, C):
    """C = A B   (BLAS: kernels/numba_blas.py)."""
    gemm(A, B, C, False, False)


MB, KB = 64, 256  # row block and depth block of the hand-written matmul (fits L1/L2 on x86)


@jit(parallel=True)
def matmul_blocked(A, B, C):
    """C = A B   (hand-written: blocks of MB rows in parallel, depth in KB slices, rows as 1-D views)."""
    m, k = A.shape
    n = B.shape[1]
    n_blocks = (m + MB - 1) // MB
    for bi in prange(n_blocks):
        i0 = bi * MB
        i1 = min(i0 + MB, m)
        for i in range(i0, i1):
            C[i, :] = 0
        for p0 in range(0, k, KB):
            p1 = min(p0 + KB, k)
            for i in range(i0, i1):
                c = C[i]  # a 1-D view: LLVM vectorises the j loop instead of emitting gathers
                a = A[i]
                for p in range(p0, p1):
                    aip = a[p]
                    b = B[p]
                    for j in range(n):
                        c[j] += aip * b[j]


def matmul(A, B, C, method: str = "blas") -> None:
    """C = A B with BLAS (``method='blas'``) or the hand-written blocked kernel (``'blocked'``)."""
    if method == "blas":
        _gemm(_c(A), _c(B), C)
    elif method == "blocked":
        matmul_blocked(np.ascontiguousarray(A), np.ascontiguousarray(B), C)
    else:
        raise ValueError(f"matmul method {method!r} is not supported; choose 'blas' or 'blocked'")


# --------------------------------------------------------------------------- forward pass


@jit
def _add_bias(z, b):
    """z += b   (row-broadcast)."""
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            z[i, j] += b[j]


# The activation code is tested once per call, outside the loops, and each loop calls the shared
# scalar formula with a constant code: after inlining the branch folds away and LLVM vectorises
# the loop.  (Dispatching on the code per element was 10x slower.)


@jit(inline="always")
def _map_f(act, z, alpha, a):
    """a = f(z) elementwise, for a constant activation code."""
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            a[i, j] = _f_at(act, z, alpha, i, j)


@jit(inline="always")
def _map_df(act, z, alpha, g, delta):
    """delta = f'(z) * g elementwise, for a constant activation code (g may alias delta; g None: delta = f'(z))."""
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            d = _df_at(act, z, alpha, i, j)
            delta[i, j] = d if g is None else d * g[i, j]  # Numba drops the branch the type of g rules out


@jit
def _softmax(z, a):
    """a_j = exp(z_j - max z) / sum_k exp(z_k - max z), per row."""
    for i in range(z.shape[0]):
        _softmax_row(z, i, a)


@jit
def _activate(act, z, alpha, a):
    """a = f(z)   (softmax per row, shifted by the row max)."""
    if act == RELU:
        _map_f(RELU, z, alpha, a)
    elif act == SIGMOID:
        _map_f(SIGMOID, z, alpha, a)
    elif act == TANH:
        _map_f(TANH, z, alpha, a)
    elif act == LEAKY_RELU:
        _map_f(LEAKY_RELU, z, alpha, a)
    elif act == ELU:
        _map_f(ELU, z, alpha, a)
    elif act == PRELU:
        _map_f(PRELU, z, alpha, a)
    elif act == SOFTMAX:
        _softmax(z, a)
    else:
        _map_f(IDENTITY, z, alpha, a)


@jit
def _times_derivative(act, z, alpha, g, delta):
    """delta = f'(z) * g."""
    if act == RELU:
        _map_df(RELU, z, alpha, g, delta)
    elif act == SIGMOID:
        _map_df(SIGMOID, z, alpha, g, delta)
    elif act == TANH:
        _map_df(TANH, z, alpha, g, delta)
    elif act == LEAKY_RELU:
        _map_df(LEAKY_RELU, z, alpha, g, delta)
    elif act == ELU:
        _map_df(ELU, z, alpha, g, delta)
    elif act == PRELU:
        _map_df(PRELU, z, alpha, g, delta)
    else:
        _map_df(IDENTITY, z, alpha, g, delta)


@jit
def _activation_derivative(act, z, alpha, d):
    """d = f'(z)   (g = None: no array of ones to multiply by)."""
    _times_derivative(act, z, alpha, None, d)


def linear_forward(a_prev, W, b, z) -> None:
    """z = a_prev W + b."""
    _gemm(_c(a_prev), _c(W), z)
    _add_bias(z, b)


def activate(act: int, z, alpha, a) -> None:
    """a = f(z)."""
    _activate(act, z, alpha, a)


def activation_derivative(act: int, z, alpha, d) -> None:
    """d = f'(z)."""
    if act == SOFTMAX:
        raise ValueError(f"activation code {act} has no elementwise derivative")
    _activation_derivative(act, z, alpha, d)


# --------------------------------------------------------------------------- loss and output delta


@jit
def _loss_sum(loss, act, z, a, y):
    """sum_b J_b   (in float64; logs from z so they never see log 0)."""
    total = 0.0
    for i in range(z.shape[0]):
        total += _sample_loss(loss, z, a, y, i)
    return total


@jit
def _output_delta(loss, act, a, y, delta):
    """delta_L = dJ_b/dz_L   (a - y for softmax+CE and sigmoid+BCE; MSE through f')."""
    for i in range(a.shape[0]):
        _output_delta_row(loss, act, a, y, delta, i)


def loss_value(loss: int, act: int, z, a, y) -> float:
    """J = (1/B) sum_b J_b."""
    if loss not in (MSE, CROSS_ENTROPY, BINARY_CROSS_ENTROPY):
        raise ValueError(f"unknown loss code {loss}")
    return _loss_sum(loss, act, z, a, y) / z.shape[0]


def output_delta(loss: int, act: int, a, y, delta) -> None:
    """delta_L = dJ_b/dz_L."""
    _output_delta(loss, act, a, y, delta)


# --------------------------------------------------------------------------- backward pass


@jit
def _activation_backward(act, z, alpha, g, delta, dalpha):
    """delta = f'(z) * g;  PReLU: dalpha_j = (1/B) sum_b g_bj min(z_bj, 0)."""
    B, n = z.shape
    if act == PRELU:  # before delta is written: g and delta may be the same buffer
        dalpha[:] = 0
        for i in range(B):
            for j in range(n):
                if z[i, j] <= 0:
                    dalpha[j] += g[i, j] * z[i, j]
        for j in range(n):
            dalpha[j] /= B
    _times_derivative(act, z, alpha, g, delta)


@jit
def _backprop_error(delta_next, W_next, g):
    """g = delta_next W_next^T."""
    gemm(delta_next, W_next, g, False, True)


def backprop_error(delta_next, W_next, g) -> None:
    """g = delta_next W_next^T."""
    _backprop_error(_c(delta_next), _c(W_next), g)


def activation_backward(act: int, z, alpha, g, delta, dalpha) -> None:
    """delta = f'(z) * g (and PReLU's dalpha)."""
    _activation_backward(act, z, alpha, g, delta, dalpha)


@jit
def _propagate_delta(delta_next, W_next, z, act, alpha, delta, dalpha):
    """delta = f'(z) * (delta_next W_next^T)   (the product lands in delta, then f' scales it in place)."""
    gemm(delta_next, W_next, delta, False, True)
    _activation_backward(act, z, alpha, delta, delta, dalpha)


def propagate_delta(delta_next, W_next, z, act: int, alpha, delta, dalpha) -> None:
    """delta = f'(z) * (delta_next W_next^T)."""
    _propagate_delta(_c(delta_next), _c(W_next), z, act, alpha, delta, dalpha)


@jit
def _param_grads(a_prev, delta, W, l1, l2, dW, db):
    """dW = a_prev^T delta / B + l2 W + l1 sign(W);  db = (1/B) sum_b delta_b."""
    B = a_prev.shape[0]
    gemm(a_prev, delta, dW, True, False)
    inv_b = 1.0 / B
    t = dW.dtype.type  # the arithmetic in the weights' dtype, as the reference's
    ib, a1, a2, one, zero = t(inv_b), t(l1), t(l2), t(1.0), t(0.0)
    for i in range(dW.shape[0]):
        for j in range(dW.shape[1]):
            dW[i, j] = _penalised(dW[i, j] * ib, W[i, j], a1, a2, one, zero)
    db[:] = 0
    for i in range(B):
        for j in range(delta.shape[1]):
            db[j] += delta[i, j]
    for j in range(db.shape[0]):
        db[j] *= inv_b


def param_grads(a_prev, delta, W, l1: float, l2: float, dW, db) -> None:
    """dW = a_prev^T delta / B + l2 W + l1 sign(W);  db = (1/B) sum_b delta_b."""
    _param_grads(_c(a_prev), _c(delta), W, float(l1), float(l2), dW, db)


@jit
def _penalty(W, l1, l2):
    """R = l2/2 ||W||^2 + l1 ||W||_1."""
    sq = 0.0
    ab = 0.0
    for i in range(W.shape[0]):
        for j in range(W.shape[1]):
            w = float(W[i, j])
            sq += w * w
            ab += abs(w)
    return 0.5 * l2 * sq + l1 * ab


def penalty(W, l1: float, l2: float) -> float:
    """R = l2/2 ||W||^2 + l1 ||W||_1."""
    return float(_penalty(W, float(l1), float(l2))) if (l1 or l2) else 0.0


@jit
def _sgd_update(W, dW, v, lr, mu, nesterov):
    """v <- mu v - lr dW;  W <- W + v   (Nesterov: W <- W + mu v - lr dW; mu = 0: W <- W - lr dW)."""
    w, g, vv = W.reshape(-1), dW.reshape(-1), v.reshape(-1)
    t = w.dtype.type
    eta, m, zero = t(lr), t(mu), t(0.0)
    if mu == 0:  # v untouched (it may be empty): the step with mu = 0 as a constant
        for i in range(w.shape[0]):
            w[i] = _sgd_step(w[i], g[i], zero, eta, zero, False)[0]
    else:
        for i in range(w.shape[0]):
            w[i], vv[i] = _sgd_step(w[i], g[i], vv[i], eta, m, nesterov)


def sgd_update(W, dW, v, lr: float, momentum: float, nesterov: bool) -> None:
    """v <- mu v - lr dW;  W <- W + v."""
    _sgd_update(W, np.ascontiguousarray(dW), v, float(lr), float(momentum), bool(nesterov))


# --------------------------------------------------------------------------- dropout


# The dropout hash (SplitMix64 key and u_i) is formulas.py's, shared with the CUDA backend.
_dropout_key, _dropout_uniform = _formulas.dropout_key, _formulas.dropout_uniform


@jit
def _dropout(x, keep, seed, step, layer):
    """x <- x * m / keep,  m_i = [mix(k + (i+1) G) / 2^64 < keep]."""
    _dropout_rows(x, 0, keep, seed, step, layer)


@jit
def _dropout_rows(x, r0, keep, seed, step, layer):
    """_dropout on rows r0, r0+1, ... of a buffer, given as x: element (i, j) draws counter (r0 + i) n + j."""
    key = _dropout_key(seed, step, layer)
    B, n = x.shape
    scale = x.dtype.type(1.0 / keep)
    zero = x.dtype.type(0)
    for i in range(B):
        for j in range(n):
            u = _dropout_uniform(key, (r0 + i) * n + j)
            x[i, j] = x[i, j] * scale if u < keep else zero


def dropout(x, keep: float, seed: int, step: int, layer: int) -> None:
    """x <- x * m / keep (inverted dropout, in place, the reference's counter-based mask)."""
    _dropout(x, float(keep), np.uint64(seed), np.int64(step), np.int64(layer))


# --------------------------------------------------------------------------- the fused epoch
# One compiled call per epoch: gather, forward, loss, backward, update for every mini-batch, with
# no Python in between.  It takes the steps of fastnn.engine.run_epoch in the same order (only the
# order of additions differs, and the team splits rows) and calls the same private kernels as the
# step-by-step path above where it can.


# --------------------------------------------------------------------------- sparse input
# Image-like inputs are mostly exact zeros (81% of MNIST's pixels), and in a batch of 32 MNIST
# images about 40% of the pixel columns are zero in every row (25% at batch 512).  Such a column p
# adds exactly nothing to z_1 = x W_1 and its row of dW_1 = x^T delta_1 / B is exactly zero, so
# the first layer's two products skip it: x is compacted to its m nonzero columns (xc, B x m), the
# matching rows of W_1 are gathered (Wc, m x n_1), and B dW_1 is computed for those m rows only
# (Gc); plain SGD then updates only those rows.  The numbers are the dense computation's (a
# product with an exact zero adds an exact zero); only BLAS's order of additions differs.  Dense
# inputs (standardised features) take the plain path: the test costs one pass over the batch.

# The threshold and the buffers: kernels/sparse_input.py (shared with the Cython backend).


@jit
def _column_flags(X, rows, flags):
    """flags_j = [X_rj != 0 for some r in rows]   (NaN counts as nonzero, -0 as zero)."""
    n = X.shape[1]
    for j in range(n):
        flags[j] = 0
    for r in rows:
        for j in range(n):
            flags[j] |= X[r, j] != 0
        if _all_flagged(flags):  # dense: the rest of the rows cannot change the flags (Cython's twin says more)
            break


@jit
def _all_flagged(flags):
    """Whether every flag is set (returns at the first 0: at once for sparse inputs)."""
    for f in flags:
        if f == 0:
            return False
    return True


@jit
def _compact(X, rows, W, cols, m, xc, Wc, q0, q1):
    """xc = X[rows][:, cols[:m]];  Wc[q0:q1] = W[cols[q0:q1], :]

    (the rows' nonzero columns; a share of their rows of W)
    """
    # Explicit 2-D loops: slice assignment, or a row view per row (reference counted), cost
    # several times more here.
    for i in range(rows.shape[0]):
        r = rows[i]
        for q in range(m):
            xc[i, q] = X[r, cols[q]]
    for q in range(q0, q1):
        r = cols[q]
        for j in range(W.shape[1]):
            Wc[q, j] = W[r, j]


@jit
def _gather(X, rows, out):
    """out_i = X_{rows_i}   (explicit loops, as in _compact)."""
    for i in range(rows.shape[0]):
        r = rows[i]
        for j in range(X.shape[1]):
            out[i, j] = X[r, j]


@jit
def _step_rows(W, Gc, v, cols, m, inv_b, l1, l2, lr, mu, nesterov, r0, r1, q0, q1):
    """_step on rows [r0, r1) of a first layer whose B dW is nonzero only in rows cols[:m] (in Gc); returns ||g||^2.

    Plain SGD moves only the rows cols[q0:q1] (the others' gradient is exactly 0); with a penalty
    or momentum every row of [r0, r1) moves, with gradient 0 (+ penalty) outside cols.
    """
    # 2-D loops, not a _step call per row: a call with its row views and reshapes cost more than the
    # arithmetic (in a perf profile about 5% of a batch-32 epoch for plain SGD; all 784 rows with momentum)
    t = W.dtype.type
    ib, a1, a2, eta, mm, one, zero = t(inv_b), t(l1), t(l2), t(lr), t(mu), t(1.0), t(0.0)
    sq = 0.0
    if l1 == 0.0 and l2 == 0.0 and mu == 0.0:
        for q in range(q0, q1):
            r = cols[q]
            for j in range(W.shape[1]):
                g = Gc[q, j] * ib
                sq += float(g) * float(g)
                W[r, j] = _sgd_step(W[r, j], g, zero, eta, zero, False)[0]
        return sq
    q = 0
    while q < m and cols[q] < r0:
        q += 1
    for r in range(r0, r1):
        if q < m and cols[q] == r:
            for j in range(W.shape[1]):
                g = Gc[q, j] * ib
                W[r, j], v[r, j], g = _descend_one(W[r, j], g, v[r, j], a1, a2, eta, mm, nesterov, one, zero)
                sq += float(g) * float(g)
            q += 1
        else:
            for j in range(W.shape[1]):
                W[r, j], v[r, j], g = _descend_one(W[r, j], zero, v[r, j], a1, a2, eta, mm, nesterov, one, zero)
                sq += float(g) * float(g)
    return sq


@jit
def _column_sums(delta, out):
    """out_j = sum_b delta_bj."""
    out[:] = 0
    for i in range(delta.shape[0]):
        for j in range(delta.shape[1]):
            out[j] += delta[i, j]


@jit
def _step(W, G, v, inv_b, l1, l2, lr, mu, nesterov):
    """g = G / B + l2 W + l1 sign(W);  SGD/momentum step with g;  returns ||g||^2.

    param_grads, the gradient norm and sgd_update fused into one pass over memory: at batch 32
    these elementwise passes cost as much as the matrix products.  The step is computed in W's
    dtype, as the reference does (float64 scalars would widen every float32 element, halving the
    vector width); the norm is summed in float64.  Plain SGD gets its own branch-free loop.
    """
    w, gr, vv = W.reshape(-1), G.reshape(-1), v.reshape(-1)
    t = w.dtype.type
    ib, a1, a2, eta, m = t(inv_b), t(l1), t(l2), t(lr), t(mu)
    sq = 0.0
    one, zero = t(1.0), t(0.0)
    if l1 == 0.0 and l2 == 0.0 and mu == 0.0:
        for i in range(w.shape[0]):
            g = gr[i] * ib
            sq += float(g) * float(g)
            w[i] = _sgd_step(w[i], g, zero, eta, zero, False)[0]
        return sq
    for i in range(w.shape[0]):
        w[i], vv[i], g = _descend_one(w[i], gr[i] * ib, vv[i], a1, a2, eta, m, nesterov, one, zero)
        sq += float(g) * float(g)
    return sq


@jit(inline="always")
def _descend_one(w, g, v, l1, l2, lr, mu, nesterov, one, zero):
    """g' = g + l2 w + l1 sign(w); w' = w - lr g' (mu = 0), else v' = mu v - lr g', w' = w + v' (Nesterov below).

    Nesterov: w' = w + mu v' - lr g'.

    One weight, in its dtype (one, zero: 1 and 0 in it); returns (w', v', g').  v is returned
    unchanged without momentum.
    """
    g = _penalised(g, w, l1, l2, one, zero)
    w, v = _sgd_step(w, g, v, lr, mu, nesterov)
    return w, v, g


class EpochData(NamedTuple):
    """The training set and this epoch's sample order (labels: an empty array for regression)."""
    X: np.ndarray
    Y: np.ndarray
    labels: np.ndarray
    order: np.ndarray


class Net(NamedTuple):
    """Every layer's arrays, a typed list per name (acts: the activation codes), and the batch buffers."""
    acts: np.ndarray
    W: typed.List
    b: typed.List
    alpha: typed.List
    vW: typed.List  # velocities
    vb: typed.List
    valpha: typed.List
    z: typed.List  # workspace, batch-sized
    a: typed.List
    delta: typed.List
    g: typed.List
    dW: typed.List
    db: typed.List
    dalpha: typed.List
    x: np.ndarray  # the gathered batch
    y: np.ndarray  # its targets


class Steps(NamedTuple):
    """The epoch's hyperparameters, as floats."""
    lr: float
    momentum: float
    nesterov: float
    l1: float
    l2: float
    keep_input: float
    keep_hidden: float


class Partials(NamedTuple):
    """One row or entry per thread of the team, slot t written by thread t only."""
    flags_t: np.ndarray  # (threads, n_in) the columns nonzero in thread t's rows
    loss_t: np.ndarray
    correct_t: np.ndarray
    sq_t: np.ndarray


@jit(inline="always")
def _part(n, t, nt):
    """Where thread t's share of n items starts: n t / nt (the shares differ by at most one)."""
    return n * t // nt


@jit
def _forward(acts, Ws, bs, alphas, zs, as_, x, r0, r1, keep_hidden, seed, step, xc, Wc):
    """Rows [r0, r1) of the batch: z_l = a_{l-1} W_l + b_l;  a_l = f_l(z_l) [* m/keep]  for every layer.

    xc, Wc: the compacted input (all the batch's rows) and its rows of W_1 (see _compact), or
    0-column arrays for dense x.  Each row is independent of the others, so threads split them.
    """
    L = len(Ws)
    a_prev = x[r0:r1]
    for l in range(L):
        z = zs[l][r0:r1]
        a = as_[l][r0:r1]
        if l == 0 and xc.shape[1] > 0:
            gemm(xc[r0:r1], Wc, z, False, False)
        else:
            gemm(a_prev, Ws[l], z, False, False)
        _add_bias(z, bs[l])
        _activate(acts[l], z, alphas[l], a)
        if l < L - 1 and keep_hidden < 1.0:
            _dropout_rows(a, r0, keep_hidden, seed, step, l + 1)
        a_prev = a


@jit
def _part_input(t, nt, X, Y, rows, xbuf, ybuf, identity, keep_input, max_cols, seed, step, flags_t):
    """Thread t's rows of the batch: targets gathered (inputs too where needed), input dropout, their nonzero columns.

    Without input dropout a sparse batch goes straight from X's rows to its compacted form, and xb
    is not filled at all (_part_first_layer).
    """
    B = rows.shape[0]
    r0, r1 = _part(B, t, nt), _part(B, t + 1, nt)
    _gather(Y, rows[r0:r1], ybuf[r0:r1])
    if keep_input < 1.0 or max_cols <= 0:
        _gather(X, rows[r0:r1], xbuf[r0:r1])
        if keep_input < 1.0:
            _dropout_rows(xbuf[r0:r1], r0, keep_input, seed, step, 0)
        if max_cols > 0:
            _column_flags(xbuf, identity[r0:r1], flags_t[t])
    elif max_cols > 0:
        _column_flags(X, rows[r0:r1], flags_t[t])


@jit
def _part_first_layer(t, nt, sparse_batch, X, rows, src, src_rows, W0, cols, m, xc, Wc, xbuf):
    """Thread t's rows of the first layer's input: compacted (with its share of W_1's rows in Wc), or gathered."""
    B = rows.shape[0]
    r0, r1 = _part(B, t, nt), _part(B, t + 1, nt)
    if sparse_batch:
        _compact(src, src_rows[r0:r1], W0, cols, m, xc[r0:r1], Wc, _part(m, t, nt), _part(m, t + 1, nt))
    else:  # dense after all: now gather xb
        _gather(X, rows[r0:r1], xbuf[r0:r1])


@jit
def _part_forward(t, nt, net, x, B, loss, y, labels, rows, keep_hidden, seed, step, xc, Wc, loss_t, correct_t):
    """Thread t's rows: the forward pass, their loss (into loss_t[t]), correct labels (correct_t[t]) and delta_L."""
    acts, Ws, bs, alphas, zs, as_, deltas = net.acts, net.W, net.b, net.alpha, net.z, net.a, net.delta
    r0, r1 = _part(B, t, nt), _part(B, t + 1, nt)
    L = len(Ws)
    _forward(acts, Ws, bs, alphas, zs, as_, x, r0, r1, keep_hidden, seed, step, xc, Wc)
    out = as_[L - 1][r0:r1]
    loss_t[t] = _loss_sum(loss, acts[L - 1], zs[L - 1][r0:r1], out, y[r0:r1])
    _output_delta(loss, acts[L - 1], out, y[r0:r1], deltas[L - 1][r0:r1])
    n_out = out.shape[1]
    correct = 0
    if labels.shape[0] > 0:
        single_sigmoid = acts[L - 1] == SIGMOID and n_out == 1
        for i in range(r1 - r0):
            if _predicted_label(out, i, single_sigmoid) == labels[rows[r0 + i]]:
                correct += 1
    correct_t[t] = correct


@jit
def _part_gradient(t, nt, l, net, x, B, keep_hidden, seed, step, xc, Gc):
    """Thread t's rows of B dW_l (or of Gc) and columns of B db_l;  for l > 0 its rows of delta_{l-1}.

    delta_{l-1} = f'(z_{l-1}) * (delta_l W_l^T) [* m/keep]; the input layer needs no delta (nothing
    learns from dJ/dX).  With a compacted input the first layer's B dW lands in Gc, one row per column of xc.
    """
    acts, Ws, alphas, zs, as_, deltas = net.acts, net.W, net.alpha, net.z, net.a, net.delta
    gs, dWs, dbs, dalphas = net.g, net.dW, net.db, net.dalpha
    r0, r1 = _part(B, t, nt), _part(B, t + 1, nt)
    n_in, n_out = Ws[l].shape
    delta = deltas[l][:B]
    if l == 0 and xc.shape[1] > 0:
        m = xc.shape[1]
        q0, q1 = _part(m, t, nt), _part(m, t + 1, nt)
        gemm(xc[:, q0:q1], delta, Gc[q0:q1], True, False)
    else:
        a_prev = x[:B] if l == 0 else as_[l - 1][:B]
        p0, p1 = _part(n_in, t, nt), _part(n_in, t + 1, nt)
        gemm(a_prev[:, p0:p1], delta, dWs[l][p0:p1], True, False)  # B dW without 1/B and penalty: see _step
    c0, c1 = _part(n_out, t, nt), _part(n_out, t + 1, nt)
    _column_sums(delta[:, c0:c1], dbs[l][c0:c1])
    if l > 0:
        g = gs[l - 1][r0:r1]
        gemm(deltas[l][r0:r1], Ws[l], g, False, True)  # g = dJ/da
        if keep_hidden < 1.0:
            _dropout_rows(g, r0, keep_hidden, seed, step, l)  # the forward pass's mask, drawn again
        # delta in its own buffer: writing over g would stop LLVM from vectorising (aliasing).
        # (PReLU's dalpha sums over all rows: train_epoch runs PReLU networks on one thread.)
        _activation_backward(acts[l - 1], zs[l - 1][r0:r1], alphas[l - 1], g, deltas[l - 1][r0:r1], dalphas[l - 1])


@jit
def _part_update(t, nt, l, net, Gc, cols, m, inv_b, l1, l2, lr, mu, nesterov, sq_t):
    """Thread t's rows of W_l and columns of b_l take their step (_step); ||g||^2 of its rows into sq_t[t]."""
    Ws, bs, alphas, vWs, vbs, valphas = net.W, net.b, net.alpha, net.vW, net.vb, net.valpha
    dWs, dbs, dalphas = net.dW, net.db, net.dalpha
    n_in, n_out = Ws[l].shape
    p0, p1 = _part(n_in, t, nt), _part(n_in, t + 1, nt)
    if l == 0 and Gc.shape[1] > 0:
        sq_t[t] = _step_rows(Ws[0], Gc, vWs[0], cols, m, inv_b, l1, l2, lr, mu, nesterov, p0, p1,
                             _part(m, t, nt), _part(m, t + 1, nt))
    else:
        sq_t[t] = _step(Ws[l][p0:p1], dWs[l][p0:p1], vWs[l][p0:p1], inv_b, l1, l2, lr, mu, nesterov)
    c0, c1 = _part(n_out, t, nt), _part(n_out, t + 1, nt)
    _step(bs[l][c0:c1], dbs[l][c0:c1], vbs[l][c0:c1], inv_b, 0.0, 0.0, lr, mu, nesterov)
    if dalphas[l].shape[0] > 0 and t == 0:  # PReLU's learned slopes (fixed ones have no gradient)
        _sgd_update(alphas[l], dalphas[l], valphas[l], lr, mu, nesterov)


# The team: each part above once per thread.  Numba starts a parallel region per prange loop (a
# few microseconds), so an epoch of L layers opens up to 3 + 2 L of them per batch where the
# Cython backend holds one team with barriers; a team of one calls the parts directly.


@jit(parallel=True)
def _team_input(nt, X, Y, rows, xbuf, ybuf, identity, keep_input, max_cols, seed, step, flags_t):
    for t in prange(nt):
        _part_input(t, nt, X, Y, rows, xbuf, ybuf, identity, keep_input, max_cols, seed, step, flags_t)


@jit(parallel=True)
def _team_first_layer(nt, sparse_batch, X, rows, src, src_rows, W0, cols, m, xc, Wc, xbuf):
    for t in prange(nt):
        _part_first_layer(t, nt, sparse_batch, X, rows, src, src_rows, W0, cols, m, xc, Wc, xbuf)


@jit(parallel=True)
def _team_forward(nt, net, x, B, loss, y, labels, rows, keep_hidden, seed, step, xc, Wc, loss_t, correct_t):
    for t in prange(nt):
        _part_forward(t, nt, net, x, B, loss, y, labels, rows, keep_hidden, seed, step, xc, Wc, loss_t, correct_t)


@jit(parallel=True)
def _team_gradient(nt, l, net, x, B, keep_hidden, seed, step, xc, Gc):
    for t in prange(nt):
        _part_gradient(t, nt, l, net, x, B, keep_hidden, seed, step, xc, Gc)


@jit(parallel=True)
def _team_update(nt, l, net, Gc, cols, m, inv_b, l1, l2, lr, mu, nesterov, sq_t):
    for t in prange(nt):
        _part_update(t, nt, l, net, Gc, cols, m, inv_b, l1, l2, lr, mu, nesterov, sq_t)


@jit
def _merge_flags(flags_t, flags, cols):
    """flags = the OR of every thread's column flags;  cols[:m] = the flagged columns, ascending; returns m."""
    n = flags.shape[0]
    for j in range(n):
        f = flags_t[0, j]
        for u in range(1, flags_t.shape[0]):
            f |= flags_t[u, j]
        flags[j] = f
    m = 0
    for j in range(n):  # branch-free: write j, keep it only if flagged
        cols[m] = j
        m += flags[j]
    return m


@jit
def _epoch(data, net, loss, sparse, steps, seed, step0, batch_size, grad_norm_sum, batch_losses, team):
    """One epoch of mini-batch SGD; returns (loss_sum, correct, n_seen, n_batches, diverged).

    data: EpochData; net: Net; sparse: sparse_input.SparseBuffers (zero_row is the Cython backend's: the
    2-D loops of _step_rows use 0); steps: Steps; team: Partials (one entry: no threads).
    batch_losses[k] is set to batch k's loss (up to the first non-finite one).
    """
    X, Y, labels, order = data.X, data.Y, data.labels, data.order
    Ws, xbuf, ybuf = net.W, net.x, net.y
    flags, cols, xc_buf, Wc_buf, Gc_buf = sparse.flags, sparse.cols, sparse.xc, sparse.Wc, sparse.Gc
    identity, max_cols = sparse.identity, sparse.max_cols
    flags_t, loss_t, correct_t, sq_t = team.flags_t, team.loss_t, team.correct_t, team.sq_t
    nt = loss_t.shape[0]
    lr, mu, l1, l2 = steps.lr, steps.momentum, steps.l1, steps.l2
    keep_input, keep_hidden = steps.keep_input, steps.keep_hidden
    nest = steps.nesterov != 0.0
    L = len(Ws)
    n = order.shape[0]
    n_1 = Ws[0].shape[1]
    loss_sum, correct, n_seen, n_batches, diverged = 0.0, 0, 0, 0, False
    for k in range((n + batch_size - 1) // batch_size):
        start = k * batch_size
        B = min(batch_size, n - start)
        step = step0 + k
        rows = order[start:start + B]
        if nt == 1:
            _part_input(0, 1, X, Y, rows, xbuf, ybuf, identity, keep_input, max_cols, seed, step, flags_t)
        else:
            _team_input(nt, X, Y, rows, xbuf, ybuf, identity, keep_input, max_cols, seed, step, flags_t)
        m = _merge_flags(flags_t, flags, cols) if max_cols > 0 else 0
        sparse_batch = 0 < m <= max_cols  # then the first layer works on the m nonzero columns only
        if sparse_batch:
            xc = xc_buf[:B * m].reshape((B, m))
            Wc = Wc_buf[:m * n_1].reshape((m, n_1))
            Gc = Gc_buf[:m * n_1].reshape((m, n_1))
        else:
            xc = xc_buf[:0].reshape((0, 0))
            Wc = Wc_buf[:0].reshape((0, 0))
            Gc = Gc_buf[:0].reshape((0, 0))
        if sparse_batch or (max_cols > 0 and keep_input == 1.0):
            if keep_input < 1.0:
                src, src_rows = xbuf, identity[:B]
            else:
                src, src_rows = X, rows
            if nt == 1:
                _part_first_layer(0, 1, sparse_batch, X, rows, src, src_rows, Ws[0], cols, m, xc, Wc, xbuf)
            else:
                _team_first_layer(nt, sparse_batch, X, rows, src, src_rows, Ws[0], cols, m, xc, Wc, xbuf)
        if nt == 1:
            _part_forward(0, 1, net, xbuf, B, loss, ybuf, labels, rows, keep_hidden, seed, step, xc, Wc, loss_t,
                          correct_t)
        else:
            _team_forward(nt, net, xbuf, B, loss, ybuf, labels, rows, keep_hidden, seed, step, xc, Wc, loss_t,
                          correct_t)
        batch_loss = 0.0
        for u in range(nt):
            batch_loss += loss_t[u]
        batch_loss /= B
        if l1 != 0.0 or l2 != 0.0:
            for l in range(L):
                batch_loss += _penalty(Ws[l], l1, l2)
        if not math.isfinite(batch_loss):  # checked before anything is updated with it
            diverged = True
            break
        # backward and update, top layer first: each layer is updated as soon as its W has
        # carried the error down to the layer below
        inv_b = 1.0 / B
        for l in range(L - 1, -1, -1):
            if nt == 1:
                _part_gradient(0, 1, l, net, xbuf, B, keep_hidden, seed, step, xc, Gc)
                _part_update(0, 1, l, net, Gc, cols, m, inv_b, l1, l2, lr, mu, nest, sq_t)
            else:
                _team_gradient(nt, l, net, xbuf, B, keep_hidden, seed, step, xc, Gc)
                _team_update(nt, l, net, Gc, cols, m, inv_b, l1, l2, lr, mu, nest, sq_t)
            sq = 0.0
            for u in range(nt):
                sq += sq_t[u]
            grad_norm_sum[l] += math.sqrt(sq)
        batch_losses[k] = batch_loss
        loss_sum += batch_loss * B
        n_seen += B
        n_batches += 1
        for u in range(nt):
            correct += correct_t[u]
    return loss_sum, correct, n_seen, n_batches, diverged


def _tl(arrays) -> typed.List:
    return typed.List(arrays)


# The fused epoch splits each batch across a team of Numba's threads, the BLAS on one thread
# underneath, where kernels/team.py says a team pays.  A prange costs more to open than a Cython
# barrier, so the threshold is higher: `python benchmarks/experiments/team.py --small` measures both
# sides of it (results in benchmarks/results/).
TEAM_MIN_WORK = 2 ** 20


def _threads() -> int:
    """Numba's thread count (fastnn.set_num_threads sets it)."""
    import numba

    return numba.get_num_threads()


def team_size(spec, batch_size: int) -> int:
    """Threads of the fused epoch's team (kernels/team.py): Numba's thread count where the work allows, else 1."""
    return team.size(spec, batch_size, _threads(), TEAM_MIN_WORK)


def fit_scope(spec, batch_size: int):
    """What fastnn.fit holds around its epochs: the BLAS on one thread while they run on a team (kernels/team.py)."""
    return team.blas_held(team_size(spec, batch_size))


def train_epoch(be, spec, p, velocity, ws, X, Y, labels, order, batch_size, hyper, step0,
                threads: int | None = None) -> EpochStats:
    """A whole epoch in one compiled call; same results as fastnn.engine.run_epoch (threads: the team's
    size, None for team_size's)."""
    dt = spec.dtype
    no_labels = np.zeros(0, dtype=np.int64)
    dalpha = [np.empty(a.shape if act in LEARNED else 0, dtype=dt) for a, act in zip(p.alpha, spec.acts)]
    data = EpochData(X, Y, no_labels if labels is None else np.ascontiguousarray(labels, dtype=np.int64),
                     np.ascontiguousarray(order, dtype=np.int64))
    net = Net(np.array(spec.acts, dtype=np.int64), _tl(p.W), _tl(p.b), _tl(p.alpha),
              _tl(velocity.W), _tl(velocity.b), _tl(velocity.alpha),
              _tl(ws.z), _tl(ws.a), _tl(ws.delta), _tl(ws.g), _tl(ws.dW), _tl(ws.db), _tl(dalpha), ws.x, ws.y)
    steps = Steps(float(hyper.lr), float(hyper.momentum), float(hyper.nesterov), float(hyper.l1), float(hyper.l2),
                  float(hyper.keep_input), float(hyper.keep_hidden))
    sparse = sparse_input.buffers(X.shape[1], p.W[0].shape[1], ws.x.shape[0], dt)
    gn = np.zeros(spec.n_layers)
    batch_losses = np.zeros(max(-(-len(order) // batch_size), 1))
    nt = team_size(spec, batch_size) if threads is None else int(threads)
    partials = Partials(np.zeros((nt, X.shape[1]), dtype=np.uint8), np.zeros(nt), np.zeros(nt, dtype=np.int64),
                        np.zeros(nt))
    with team.blas_held(nt):
        loss_sum, correct, n_seen, n_batches, diverged = _epoch(data, net, spec.loss, sparse, steps,
                                                                np.uint64(hyper.seed), np.int64(step0), batch_size,
                                                                gn, batch_losses, partials)
    return EpochStats(loss_sum=loss_sum, correct=int(correct), n_seen=int(n_seen), grad_norm_sum=gn,
                      n_batches=int(n_batches), diverged=bool(diverged), batch_loss=batch_losses[:n_batches])
