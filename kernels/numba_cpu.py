"""The Numba CPU backend: the kernel contract as @njit code, plus a fused whole-epoch loop.

Each public kernel is a thin wrapper that hands contiguous arrays to a private compiled kernel
(the first line of whose docstring is its equation).  Every scalar and row formula (f, f', the
softmax of a row, a sample's loss, the SGD step, the dropout hash, ...) comes from
kernels/formulas.py, compiled here with fastnn's settings and shared with the CUDA backend.
Matrix products go to BLAS through ``numba_blas.gemm`` (NumPy's bundled OpenBLAS when usable, else
SciPy's: kernels/blas.py); ``matmul_blocked`` is a hand-written cache-blocked kernel kept for
teaching and for the benchmarks.  The single kernels' elementwise work is serial: a ``prange`` over
it would compete for the cores with a BLAS that owns them.  The fused epoch turns that around where
a batch carries enough work: it splits the whole batch across a team of threads, each calling a
single-threaded BLAS on its slice (kernels/team.py, "the team" below), and runs a sparse batch's
first layer on its nonzero input columns only ("sparse input" below).
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


# --------------------------------------------------------------------------- formulas
# kernels/formulas.py, inlined into every kernel below (and into the fused epoch); exp, tanh and the
# sigmoid from kernels/vecmath.py: arithmetic that vectorises, not one libm call per element.
_F = formulas.compile_with(jit(inline="always"), vecmath)
_f_at, _df_at, _penalised, _sgd_step = _F.f_at, _F.df_at, _F.penalised, _F.sgd_step
_dropout_key, _dropout_uniform = _F.dropout_key, _F.dropout_uniform
_softmax_row, _sample_loss, _output_delta_row, _predicted_label = (_F.softmax_row, _F.sample_loss,
                                                                   _F.output_delta_row, _F.predicted_label)


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
# the loop (a test of the code per element would keep it scalar).


@jit(inline="always")
def _map_f(act, z, alpha, a):
    """a = f(z) elementwise, for a constant activation code."""
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            a[i, j] = _f_at(act, z, alpha, i, j)


@jit(inline="always")
def _map_df(act, z, alpha, g, delta):
    """delta = f'(z) * g elementwise, for a constant activation code (g may alias delta)."""
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            delta[i, j] = _df_at(act, z, alpha, i, j) * g[i, j]


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
    """d = f'(z)."""
    ones = np.ones_like(d)  # f'(z) * 1 through the shared loop; a separate input keeps it vectorised
    _times_derivative(act, z, alpha, ones, d)


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
def _column_sums(delta, out):
    """out_j = sum_b delta_bj."""
    out[:] = 0
    for i in range(delta.shape[0]):
        for j in range(delta.shape[1]):
            out[j] += delta[i, j]


@jit
def _param_grads(a_prev, delta, W, l1, l2, dW, db):
    """dW = a_prev^T delta / B + l2 W + l1 sign(W);  db = (1/B) sum_b delta_b."""
    inv_b = 1.0 / a_prev.shape[0]
    gemm(a_prev, delta, dW, True, False)
    for i in range(dW.shape[0]):
        for j in range(dW.shape[1]):
            dW[i, j] = _penalised(dW[i, j] * inv_b, W[i, j], l1, l2, 1.0, 0.0)
    _column_sums(delta, db)
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
    """v <- mu v - lr dW;  W <- W + v   (Nesterov: W <- W + mu v - lr dW; mu = 0: W <- W - lr dW).

    In W's dtype, as the reference computes it.  Plain SGD never touches v: its own loop, with the
    step's mu = 0 a constant that the compiler folds away.
    """
    w, g, vv = W.reshape(-1), dW.reshape(-1), v.reshape(-1)
    t = w.dtype.type
    eta, m, zero = t(lr), t(mu), t(0.0)
    if mu == 0:
        for i in range(w.shape[0]):
            w[i] = _sgd_step(w[i], g[i], zero, eta, zero, False)[0]
    else:
        for i in range(w.shape[0]):
            w[i], vv[i] = _sgd_step(w[i], g[i], vv[i], eta, m, nesterov)


def sgd_update(W, dW, v, lr: float, momentum: float, nesterov: bool) -> None:
    """v <- mu v - lr dW;  W <- W + v."""
    _sgd_update(W, np.ascontiguousarray(dW), v, float(lr), float(momentum), bool(nesterov))


# --------------------------------------------------------------------------- dropout


@jit
def _dropout(x, keep, seed, step, layer):
    """x <- x * m / keep,  m_i = [u_i < keep]   (the counter-based hash of kernels/formulas.py)."""
    _dropout_rows(x, 0, keep, seed, step, layer)


@jit
def _dropout_rows(x, r0, keep, seed, step, layer):
    """_dropout on rows r0, r0+1, ... of a buffer, given as x: element (i, j) draws counter (r0 + i) n + j."""
    key = _dropout_key(seed, step, layer)  # uint64 throughout: mixing in a signed int would give float64
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
# One compiled call per epoch: gather, forward, loss, backward and update for every mini-batch, with
# no Python in between.  It computes what fastnn.engine.run_epoch computes, batch for batch (the
# same batches, dropout counters, kernels above and formulas), and differs only in the order of the
# work: each layer takes its step as soon as its W has carried the error down to the layer below
# (run_epoch finishes the backward pass first); param_grads, the gradient norm and sgd_update are
# one pass over memory (_step); a sparse batch's first layer skips its zero input columns; and a
# team of threads may split the batch.  tests/test_fused_epoch.py and tests/test_team.py hold the
# two to the same weights (1e-9 in float64).


class TrainingSet(NamedTuple):
    """The epoch's data: all rows, and the order this epoch visits them in."""

    X: np.ndarray  # (n, n_in)
    Y: np.ndarray  # (n, n_out)
    labels: np.ndarray  # (n,) int64 classes; (0,) for regression (no accuracy)
    order: np.ndarray  # (n,) int64 row numbers


class Net(NamedTuple):
    """The network and its buffers, named as in the math; the per-layer fields are typed Lists indexed by l."""

    act: np.ndarray  # activation code of each layer
    loss: int  # loss code
    W: typed.List
    b: typed.List
    alpha: typed.List  # PReLU slopes; (0,) arrays for other layers
    velocity_W: typed.List
    velocity_b: typed.List
    velocity_alpha: typed.List
    x: np.ndarray  # the batch's inputs (after input dropout), up to batch_size rows
    y: np.ndarray  # the batch's targets
    z: typed.List  # z_l = a_{l-1} W_l + b_l
    a: typed.List  # a_l = f_l(z_l) [* dropout mask / keep]
    delta: typed.List  # delta_l = dJ/dz_l
    g: typed.List  # g_l = dJ/da_l where dropout needs it apart from delta
    dW: typed.List  # B dW_l, before the 1/B and the penalty (_step adds them)
    db: typed.List  # B db_l
    dalpha: typed.List  # dJ/dalpha_l (PReLU)


class HyperParams(NamedTuple):
    """fastnn.engine.Hyper as the compiled epoch takes it."""

    lr: float
    momentum: float
    nesterov: bool
    l1: float
    l2: float
    keep_input: float
    keep_hidden: float
    seed: np.uint64  # dropout stream


class SparseInput(NamedTuple):
    """kernels/sparse_input.buffers, by name (see "sparse input" below)."""

    flags: np.ndarray  # (n_in,) uint8: the batch's nonzero columns
    cols: np.ndarray  # (n_in,) int64: their numbers, ascending, in cols[:m]
    xc: np.ndarray  # flat room for the compacted batch (B x m)
    Wc: np.ndarray  # flat room for the gathered rows of W_1 (m x n_1)
    Gc: np.ndarray  # flat room for the rows cols of B dW_1 (m x n_1)
    zero_row: np.ndarray  # the Cython backend's (here _step_rows's 2-D loops use 0)
    identity: np.ndarray  # 0, 1, ..., batch_size - 1: the rows of the batch buffer x
    max_cols: int  # compact a batch with at most this many nonzero columns; <= 0: never


class Partials(NamedTuple):
    """What each thread of the team found for its share, one row or entry per thread (one: no team)."""

    flags: np.ndarray  # (threads, n_in) uint8: nonzero columns of its rows
    loss: np.ndarray  # (threads,): sum of its rows' losses
    correct: np.ndarray  # (threads,) int64: its rows' correct labels
    sq: np.ndarray  # (threads,): ||g||^2 of its share of the layer's parameters


class FirstLayer(NamedTuple):
    """This batch's first layer on its m nonzero input columns; m = 0: the dense path (0 x 0 arrays)."""

    m: int
    xc: np.ndarray  # (B, m): x[:, cols[:m]]
    Wc: np.ndarray  # (m, n_1): W_1[cols[:m], :]
    Gc: np.ndarray  # (m, n_1): the rows cols[:m] of B dW_1


# --------------------------------------------------------------------------- sparse input
# A column of the batch that is zero in every row adds exactly nothing to z_1 = x W_1, and its row of
# dW_1 = x^T delta_1 / B is exactly zero (kernels/README.md, "Sparse inputs in the fused epochs"): x is
# compacted to its m nonzero columns (xc, B x m), the matching rows of W_1 are gathered (Wc, m x n_1),
# and B dW_1 is computed for those m rows only (Gc); plain SGD then updates only those rows.  The
# threshold and the buffers: kernels/sparse_input.py (shared with the Cython backend).


@jit
def _column_flags(X, rows, flags):
    """flags_j = [X_rj != 0 for some r in rows]   (NaN counts as nonzero, -0 as zero)."""
    n = X.shape[1]
    for j in range(n):
        flags[j] = 0
    for r in rows:
        for j in range(n):
            flags[j] |= X[r, j] != 0


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
def _compact(X, rows, W, cols, m, xc, Wc, q0, q1):
    """xc = X[rows][:, cols[:m]];  Wc[q0:q1] = W[cols[q0:q1], :]   (the rows' nonzero columns; a share of W's rows)."""
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


# --------------------------------------------------------------------------- the step of a parameter


@jit(inline="always")
def _descend_one(w, g, v, l1, l2, lr, mu, nesterov, one, zero):
    """g' = g + l2 w + l1 sign(w);  (w', v') = the SGD / momentum / Nesterov step with g'.

    One weight, in its dtype (one, zero: 1 and 0 in it); returns (w', v', g').  v is returned
    unchanged without momentum.
    """
    g = _penalised(g, w, l1, l2, one, zero)
    w, v = _sgd_step(w, g, v, lr, mu, nesterov)
    return w, v, g


@jit
def _step(W, G, v, inv_b, l1, l2, lr, mu, nesterov):
    """g = G / B + l2 W + l1 sign(W);  SGD/momentum step with g;  returns ||g||^2.

    param_grads, the gradient norm and sgd_update fused into one pass over memory: at small batches
    these elementwise passes cost as much as the matrix products.  The step is computed in W's
    dtype, as the reference does (float64 scalars would widen every float32 element, halving the
    vector width); the norm is summed in float64.  Plain SGD gets its own branch-free loop.
    """
    w, gr, vv = W.reshape(-1), G.reshape(-1), v.reshape(-1)
    t = w.dtype.type
    ib, a1, a2, eta, m, one, zero = t(inv_b), t(l1), t(l2), t(lr), t(mu), t(1.0), t(0.0)
    sq = 0.0
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


@jit
def _step_rows(W, Gc, v, cols, m, inv_b, l1, l2, lr, mu, nesterov, r0, r1, q0, q1):
    """_step on rows [r0, r1) of a first layer whose B dW is nonzero only in rows cols[:m] (in Gc); returns ||g||^2.

    Plain SGD moves only the rows cols[q0:q1] (the others' gradient is exactly 0); with a penalty
    or momentum every row of [r0, r1) moves, with gradient 0 (+ penalty) outside cols.
    """
    # 2-D loops, not a _step call per row: a call with its row views and reshapes costs more than a
    # row's arithmetic.
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


# --------------------------------------------------------------------------- one thread's share of a step
# Each _part_* does thread t of nt's share of one step of a batch (kernels/README.md, "The fused
# epochs' thread team"): its rows of the batch, or its rows of a parameter.


@jit(inline="always")
def _part(n, t, nt):
    """Where thread t's share of n items starts: n t / nt (the shares differ by at most one)."""
    return n * t // nt


@jit
def _forward_rows(net, hyper, first, r0, r1, step):
    """Rows [r0, r1) of the batch: z_l = a_{l-1} W_l + b_l;  a_l = f_l(z_l) [* m/keep]  for every layer.

    Each row is independent of the others, so threads split them.  With a compacted input
    (first.m > 0) the first product is xc Wc.
    """
    L = len(net.W)
    a_prev = net.x[r0:r1]
    for l in range(L):
        z = net.z[l][r0:r1]
        a = net.a[l][r0:r1]
        if l == 0 and first.m > 0:
            gemm(first.xc[r0:r1], first.Wc, z, False, False)
        else:
            gemm(a_prev, net.W[l], z, False, False)
        _add_bias(z, net.b[l])
        _activate(net.act[l], z, net.alpha[l], a)
        if l < L - 1 and hyper.keep_hidden < 1.0:
            _dropout_rows(a, r0, hyper.keep_hidden, hyper.seed, step, l + 1)
        a_prev = a


@jit
def _count_correct(out, labels, rows, single_sigmoid):
    """How many rows i of out predict the class labels[rows[i]] (0 without labels)."""
    if labels.shape[0] == 0:
        return 0
    correct = 0
    for i in range(out.shape[0]):
        if _predicted_label(out, i, single_sigmoid) == labels[rows[i]]:
            correct += 1
    return correct


@jit
def _part_input(t, nt, data, net, hyper, sparse, partials, rows, step):
    """Thread t's rows of the batch: targets gathered (inputs too where needed), input dropout, their nonzero columns.

    Without input dropout a sparse batch goes straight from X's rows to its compacted form, and x
    is not filled at all (_part_first_layer).
    """
    B = rows.shape[0]
    r0, r1 = _part(B, t, nt), _part(B, t + 1, nt)
    _gather(data.Y, rows[r0:r1], net.y[r0:r1])
    if hyper.keep_input < 1.0 or sparse.max_cols <= 0:
        _gather(data.X, rows[r0:r1], net.x[r0:r1])
        if hyper.keep_input < 1.0:
            _dropout_rows(net.x[r0:r1], r0, hyper.keep_input, hyper.seed, step, 0)
        if sparse.max_cols > 0:
            _column_flags(net.x, sparse.identity[r0:r1], partials.flags[t])
    else:
        _column_flags(data.X, rows[r0:r1], partials.flags[t])


@jit
def _part_first_layer(t, nt, data, net, hyper, sparse, first, rows):
    """Thread t's rows of the first layer's input: compacted (with its share of W_1's rows in Wc), or gathered."""
    B = rows.shape[0]
    r0, r1 = _part(B, t, nt), _part(B, t + 1, nt)
    if first.m > 0:
        if hyper.keep_input < 1.0:  # the dropped-out rows are in x already
            src, src_rows = net.x, sparse.identity[r0:r1]
        else:
            src, src_rows = data.X, rows[r0:r1]
        _compact(src, src_rows, net.W[0], sparse.cols, first.m, first.xc[r0:r1], first.Wc,
                 _part(first.m, t, nt), _part(first.m, t + 1, nt))
    else:  # dense after all: now gather x
        _gather(data.X, rows[r0:r1], net.x[r0:r1])


@jit
def _part_forward(t, nt, data, net, hyper, first, partials, rows, step):
    """Thread t's rows: the forward pass, delta_L, and into partials their loss and correct labels."""
    B = rows.shape[0]
    r0, r1 = _part(B, t, nt), _part(B, t + 1, nt)
    L = len(net.W)
    _forward_rows(net, hyper, first, r0, r1, step)
    out, y = net.a[L - 1][r0:r1], net.y[r0:r1]
    partials.loss[t] = _loss_sum(net.loss, net.act[L - 1], net.z[L - 1][r0:r1], out, y)
    _output_delta(net.loss, net.act[L - 1], out, y, net.delta[L - 1][r0:r1])
    single_sigmoid = net.act[L - 1] == SIGMOID and out.shape[1] == 1
    partials.correct[t] = _count_correct(out, data.labels, rows[r0:r1], single_sigmoid)


@jit
def _part_gradient(t, nt, l, net, hyper, first, B, step):
    """Thread t's rows of B dW_l (or of first.Gc) and columns of B db_l;  for l > 0 its rows of delta_{l-1}.

    delta_{l-1} = f'(z_{l-1}) * (delta_l W_l^T) [* m/keep]; the input layer needs no delta (nothing
    learns from dJ/dX).  With a compacted input the first layer's B dW lands in Gc, one row per column of xc.
    """
    r0, r1 = _part(B, t, nt), _part(B, t + 1, nt)
    n_in, n_out = net.W[l].shape
    delta = net.delta[l][:B]
    if l == 0 and first.m > 0:
        q0, q1 = _part(first.m, t, nt), _part(first.m, t + 1, nt)
        gemm(first.xc[:, q0:q1], delta, first.Gc[q0:q1], True, False)
    else:
        a_prev = net.x[:B] if l == 0 else net.a[l - 1][:B]
        p0, p1 = _part(n_in, t, nt), _part(n_in, t + 1, nt)
        gemm(a_prev[:, p0:p1], delta, net.dW[l][p0:p1], True, False)  # B dW without 1/B and penalty: see _step
    c0, c1 = _part(n_out, t, nt), _part(n_out, t + 1, nt)
    _column_sums(delta[:, c0:c1], net.db[l][c0:c1])
    if l > 0:
        g = net.g[l - 1][r0:r1]
        gemm(net.delta[l][r0:r1], net.W[l], g, False, True)  # g = dJ/da
        if hyper.keep_hidden < 1.0:
            _dropout_rows(g, r0, hyper.keep_hidden, hyper.seed, step, l)  # the forward pass's mask, drawn again
        # delta in its own buffer: writing over g would stop LLVM from vectorising (aliasing).
        # (PReLU's dalpha sums over all rows: train_epoch runs PReLU networks on one thread.)
        _activation_backward(net.act[l - 1], net.z[l - 1][r0:r1], net.alpha[l - 1], g, net.delta[l - 1][r0:r1],
                             net.dalpha[l - 1])


@jit
def _part_update(t, nt, l, net, hyper, sparse, first, inv_b, partials):
    """Thread t's rows of W_l and columns of b_l take their step (_step); ||g||^2 of its rows into partials.sq[t]."""
    n_in, n_out = net.W[l].shape
    lr, mu, nesterov, l1, l2 = hyper.lr, hyper.momentum, hyper.nesterov, hyper.l1, hyper.l2
    p0, p1 = _part(n_in, t, nt), _part(n_in, t + 1, nt)
    if l == 0 and first.m > 0:
        partials.sq[t] = _step_rows(net.W[0], first.Gc, net.velocity_W[0], sparse.cols, first.m, inv_b, l1, l2, lr,
                                    mu, nesterov, p0, p1, _part(first.m, t, nt), _part(first.m, t + 1, nt))
    else:
        partials.sq[t] = _step(net.W[l][p0:p1], net.dW[l][p0:p1], net.velocity_W[l][p0:p1], inv_b, l1, l2, lr, mu,
                               nesterov)
    c0, c1 = _part(n_out, t, nt), _part(n_out, t + 1, nt)
    _step(net.b[l][c0:c1], net.db[l][c0:c1], net.velocity_b[l][c0:c1], inv_b, 0.0, 0.0, lr, mu, nesterov)
    if net.alpha[l].shape[0] > 0 and t == 0:
        _sgd_update(net.alpha[l], net.dalpha[l], net.velocity_alpha[l], lr, mu, nesterov)


# The team: each part above once per thread.  Numba starts a parallel region per prange loop (a
# few microseconds), so an epoch of L layers opens up to 3 + 2 L of them per batch where the
# Cython backend holds one team with barriers; a team of one calls the parts directly.


@jit(parallel=True)
def _team_input(nt, data, net, hyper, sparse, partials, rows, step):
    for t in prange(nt):
        _part_input(t, nt, data, net, hyper, sparse, partials, rows, step)


@jit(parallel=True)
def _team_first_layer(nt, data, net, hyper, sparse, first, rows):
    for t in prange(nt):
        _part_first_layer(t, nt, data, net, hyper, sparse, first, rows)


@jit(parallel=True)
def _team_forward(nt, data, net, hyper, first, partials, rows, step):
    for t in prange(nt):
        _part_forward(t, nt, data, net, hyper, first, partials, rows, step)


@jit(parallel=True)
def _team_gradient(nt, l, net, hyper, first, B, step):
    for t in prange(nt):
        _part_gradient(t, nt, l, net, hyper, first, B, step)


@jit(parallel=True)
def _team_update(nt, l, net, hyper, sparse, first, inv_b, partials):
    for t in prange(nt):
        _part_update(t, nt, l, net, hyper, sparse, first, inv_b, partials)


# --------------------------------------------------------------------------- the steps of a batch


@jit
def _load_batch(nt, data, net, hyper, sparse, partials, rows, step):
    """x and y = the batch's rows [* input dropout mask / keep];  returns its FirstLayer (compacted where sparse)."""
    B = rows.shape[0]
    if nt == 1:
        _part_input(0, 1, data, net, hyper, sparse, partials, rows, step)
    else:
        _team_input(nt, data, net, hyper, sparse, partials, rows, step)
    m = _merge_flags(partials.flags, sparse.flags, sparse.cols) if sparse.max_cols > 0 else 0
    n_1 = net.W[0].shape[1]
    if 0 < m <= sparse.max_cols:  # then the first layer works on the m nonzero columns only
        first = FirstLayer(m, sparse.xc[:B * m].reshape((B, m)), sparse.Wc[:m * n_1].reshape((m, n_1)),
                           sparse.Gc[:m * n_1].reshape((m, n_1)))
    else:
        first = FirstLayer(0, sparse.xc[:0].reshape((0, 0)), sparse.Wc[:0].reshape((0, 0)),
                           sparse.Gc[:0].reshape((0, 0)))
    if first.m > 0 or (sparse.max_cols > 0 and hyper.keep_input == 1.0):  # x not gathered yet
        if nt == 1:
            _part_first_layer(0, 1, data, net, hyper, sparse, first, rows)
        else:
            _team_first_layer(nt, data, net, hyper, sparse, first, rows)
    return first


@jit
def _forward_batch(nt, data, net, hyper, first, partials, rows, step):
    """The forward pass, each thread's loss and correct labels (in partials), and delta_L."""
    if nt == 1:
        _part_forward(0, 1, data, net, hyper, first, partials, rows, step)
    else:
        _team_forward(nt, data, net, hyper, first, partials, rows, step)


@jit
def _batch_loss(net, hyper, partials, B):
    """J = (1/B) sum_b J_b + sum_l (l2/2 ||W_l||^2 + l1 ||W_l||_1)."""
    J = 0.0
    for u in range(partials.loss.shape[0]):
        J += partials.loss[u]
    J /= B
    if hyper.l1 != 0.0 or hyper.l2 != 0.0:
        for l in range(len(net.W)):
            J += _penalty(net.W[l], hyper.l1, hyper.l2)
    return J


@jit
def _backward_and_update(nt, net, hyper, sparse, first, partials, B, step, grad_norm_sum):
    """Top layer first: delta_{l-1} through W_l, then W_l's step (W_l has carried the error down).

    grad_norm_sum[l] += ||g_l||, the norm of the gradient the step took.
    """
    inv_b = 1.0 / B
    for l in range(len(net.W) - 1, -1, -1):
        if nt == 1:
            _part_gradient(0, 1, l, net, hyper, first, B, step)
            _part_update(0, 1, l, net, hyper, sparse, first, inv_b, partials)
        else:
            _team_gradient(nt, l, net, hyper, first, B, step)
            _team_update(nt, l, net, hyper, sparse, first, inv_b, partials)
        sq = 0.0
        for u in range(nt):
            sq += partials.sq[u]
        grad_norm_sum[l] += math.sqrt(sq)


@jit
def _epoch(data, net, hyper, sparse, partials, step0, batch_size, grad_norm_sum):
    """One epoch of mini-batch SGD; returns (loss_sum, correct, n_seen, n_batches, diverged).

    Batch k takes the rows order[k batch_size : (k+1) batch_size] and dropout counter step0 + k;
    the team has as many threads as partials has entries.
    """
    nt = partials.loss.shape[0]
    n = data.order.shape[0]
    loss_sum, correct, n_seen, n_batches, diverged = 0.0, 0, 0, 0, False
    for k in range((n + batch_size - 1) // batch_size):
        start = k * batch_size
        B = min(batch_size, n - start)
        rows = data.order[start:start + B]
        step = step0 + k
        first = _load_batch(nt, data, net, hyper, sparse, partials, rows, step)
        _forward_batch(nt, data, net, hyper, first, partials, rows, step)
        J = _batch_loss(net, hyper, partials, B)
        if not math.isfinite(J):  # checked before anything is updated with it
            diverged = True
            break
        _backward_and_update(nt, net, hyper, sparse, first, partials, B, step, grad_norm_sum)
        loss_sum += J * B
        n_seen += B
        n_batches += 1
        for u in range(nt):
            correct += partials.correct[u]
    return loss_sum, correct, n_seen, n_batches, diverged


def _tl(arrays) -> typed.List:
    return typed.List(arrays)


# The fused epoch splits each batch across a team of Numba's threads, the BLAS on one thread
# underneath, where kernels/team.py says a team pays.  A prange costs more to open than a Cython
# barrier, so the threshold is higher than Cython's: `python benchmarks/experiments/team.py --small` times team
# against no team on networks on either side of it.
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


def train_epoch(be, spec, p, velocity, ws, X, Y, labels, order, batch_size, hyper, step0) -> EpochStats:
    """A whole epoch in one compiled call; same signature and results as fastnn.engine.run_epoch."""
    dt = spec.dtype
    labels = np.zeros(0, dtype=np.int64) if labels is None else np.ascontiguousarray(labels, dtype=np.int64)
    data = TrainingSet(X, Y, labels, np.ascontiguousarray(order, dtype=np.int64))
    net = Net(act=np.array(spec.acts, dtype=np.int64), loss=int(spec.loss),
              W=_tl(p.W), b=_tl(p.b), alpha=_tl(p.alpha),
              velocity_W=_tl(velocity.W), velocity_b=_tl(velocity.b), velocity_alpha=_tl(velocity.alpha),
              x=ws.x, y=ws.y, z=_tl(ws.z), a=_tl(ws.a), delta=_tl(ws.delta), g=_tl(ws.g),
              dW=_tl(ws.dW), db=_tl(ws.db), dalpha=_tl([np.empty(a.shape, dtype=dt) for a in p.alpha]))
    h = HyperParams(lr=float(hyper.lr), momentum=float(hyper.momentum), nesterov=bool(hyper.nesterov),
                    l1=float(hyper.l1), l2=float(hyper.l2), keep_input=float(hyper.keep_input),
                    keep_hidden=float(hyper.keep_hidden), seed=np.uint64(hyper.seed))
    sparse = SparseInput(*sparse_input.buffers(X.shape[1], p.W[0].shape[1], ws.x.shape[0], dt))
    nt = team_size(spec, batch_size)
    partials = Partials(flags=np.zeros((nt, X.shape[1]), dtype=np.uint8), loss=np.zeros(nt),
                        correct=np.zeros(nt, dtype=np.int64), sq=np.zeros(nt))
    gn = np.zeros(spec.n_layers)
    with team.blas_held(nt):
        loss_sum, correct, n_seen, n_batches, diverged = _epoch(data, net, h, sparse, partials, np.int64(step0),
                                                                batch_size, gn)
    return EpochStats(loss_sum=loss_sum, correct=int(correct), n_seen=int(n_seen), grad_norm_sum=gn,
                      n_batches=int(n_batches), diverged=bool(diverged))
