# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""A whole epoch of mini-batch SGD in one nogil call: gather, forward, loss, backward, update.

The loop follows ``fastnn.engine.run_epoch`` step for step and calls the same formulas as the
kernel-by-kernel path (``_core.pxd``), so the two cannot drift apart.  What it folds:

- the bias into the forward GEMM (z starts as b, then beta = 1) and 1/B into the weight-gradient
  GEMM (alpha = 1/B);
- regularisation, the gradient norm, the SGD/momentum step and the next batch's penalty into one
  pass over each weight matrix (``_core.descend``);
- each layer's update right after its last use, while its gradient is still in cache;
- no input-layer delta (nothing learns from dJ/dX);
- a sparse batch's all-zero input columns out of the first layer's two products (below).

Sparse input: image-like inputs are mostly exact zeros (81% of MNIST's pixels), and in a batch of
32 MNIST images about 40% of the pixel columns are zero in every row (25% at batch 512).  Such a
column p adds exactly nothing to z_1 = x W_1 and its row of dW_1 = x^T delta_1 / B is exactly zero,
so the first layer works on the batch's m nonzero columns: x is compacted to xc (B x m), the
matching rows of W_1 are gathered into Wc (m x n_1), dW_1 is computed for those m rows only (Gc),
and plain SGD updates only those rows.  The numbers are the dense computation's (a product with an
exact zero adds an exact zero); only BLAS's order of additions differs.  Dense inputs take the
plain path; the test costs one pass over the batch.  (The same scheme as the Numba backend.)

Python sees this module once per epoch: ``train_epoch`` checks every buffer (dtype, shape,
C order), collects their addresses into C structs, and releases the GIL for the whole loop.
"""
from libc.math cimport isfinite, sqrt
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

import numpy as np

cimport _core
from _core cimport real


cdef struct Layer:
    # sizes and activation code
    Py_ssize_t n_in, n_out
    int act
    # parameters and their velocities (alpha, valpha, dalpha are NULL unless the layer is PReLU)
    void *W
    void *b
    void *alpha
    void *vW
    void *vb
    void *valpha
    # workspace: batch-sized activations and gradients
    void *z
    void *a
    void *delta
    void *g
    void *dW
    void *db
    void *dalpha


cdef struct Settings:
    int loss
    Py_ssize_t batch_size
    double lr, momentum, l1, l2, keep_input, keep_hidden
    bint nesterov
    uint64_t seed
    int64_t step0


cdef struct Data:
    const void *X          # (n_rows, n_in), the whole training set
    const void *Y          # (n_rows, n_out)
    const int64_t *labels  # (n_rows,) or NULL for regression
    const int64_t *order   # (n,) this epoch's sample order
    Py_ssize_t n
    void *xbuf             # (batch, n_in) gathered batch; input dropout writes here
    void *ybuf             # (batch, n_out)
    # the sparse-input path (max_cols <= 0: never)
    Py_ssize_t max_cols    # compact when at most this many input columns are nonzero
    unsigned char *flags   # (n_in,) column has a nonzero
    int64_t *cols          # (n_in,) the nonzero columns, ascending
    void *xc               # (batch * n_in,) the compacted batch, B x m
    void *Wc               # (n_in * n_1,) the gathered rows of W_1, m x n_1
    void *Gc               # (n_in * n_1,) dW_1's nonzero rows, m x n_1
    void *zero_row         # (n_1,) zeros: the gradient of a row outside the batch's columns
    const int64_t *identity  # (batch,) 0, 1, 2, ...: the row numbers of xb


cdef struct Stats:
    double loss_sum
    int64_t correct, n_seen, n_batches
    bint diverged
    double *grad_norm_sum  # (n_layers,)


cdef Py_ssize_t _nonzero_columns(const real *X, Py_ssize_t n, const int64_t *rows, Py_ssize_t B,
                                 unsigned char *flags, int64_t *cols) noexcept nogil:
    """cols[:m] = the columns j with X_rj != 0 for some r in rows[:B] (NaN counts as nonzero), ascending; returns m."""
    cdef Py_ssize_t i, j, m = 0
    cdef const real *xr
    for j in range(n):
        flags[j] = 0
    for i in range(B):
        xr = &X[rows[i] * n]
        for j in range(n):
            flags[j] |= xr[j] != 0
    for j in range(n):  # branch-free: write j, keep it only if flagged
        cols[m] = j
        m += flags[j]
    return m


cdef void _compact(const real *X, Py_ssize_t n, const int64_t *rows, Py_ssize_t B, const real *W, Py_ssize_t n_1,
                   const int64_t *cols, Py_ssize_t m, real *xc, real *Wc) noexcept nogil:
    """xc = X[rows][:, cols[:m]];  Wc = W[cols[:m], :]   (the batch's nonzero columns and their rows of W)."""
    cdef Py_ssize_t i, q
    cdef const real *xr
    for i in range(B):
        xr = &X[rows[i] * n]
        for q in range(m):
            xc[i * m + q] = xr[cols[q]]
    for q in range(m):
        memcpy(&Wc[q * n_1], &W[cols[q] * n_1], n_1 * sizeof(real))


cdef void _gather(const real *X, Py_ssize_t n, const int64_t *rows, Py_ssize_t B, real *out) noexcept nogil:
    """out_i = X_{rows_i}."""
    cdef Py_ssize_t i
    for i in range(B):
        memcpy(&out[i * n], &X[rows[i] * n], n * sizeof(real))


cdef double _descend_rows(real *W, const real *Gc, real *v, const real *zero_row, const int64_t *cols, Py_ssize_t m,
                          Py_ssize_t n_rows, Py_ssize_t n_1, real l1, real l2, real lr, real mu, bint nesterov,
                          double *penalty_after) noexcept nogil:
    """descend for a first layer whose dW is nonzero only in rows cols[:m] (held in Gc); returns ||g||^2.

    Plain SGD leaves the other rows alone (their gradient is exactly 0); with a penalty or momentum
    they still move, with gradient 0 (+ penalty).
    """
    cdef Py_ssize_t q = 0, r
    cdef double sq = 0, pen = 0, pen_row = 0
    if l1 == 0 and l2 == 0 and mu == 0:
        for q in range(m):
            sq += _core.descend(&W[cols[q] * n_1], &Gc[q * n_1], NULL, n_1, l1, l2, lr, mu, nesterov, &pen_row)
        penalty_after[0] = 0
        return sq
    for r in range(n_rows):
        if q < m and cols[q] == r:
            sq += _core.descend(&W[r * n_1], &Gc[q * n_1], _row(v, r, n_1), n_1, l1, l2, lr, mu, nesterov, &pen_row)
            q += 1
        else:
            sq += _core.descend(&W[r * n_1], zero_row, _row(v, r, n_1), n_1, l1, l2, lr, mu, nesterov, &pen_row)
        pen += pen_row
    penalty_after[0] = pen
    return sq


cdef inline real *_row(real *v, Py_ssize_t r, Py_ssize_t n) noexcept nogil:
    """&v[r n], or NULL when there is no velocity (plain SGD)."""
    return NULL if v == NULL else &v[r * n]


cdef int _epoch(const real *X, const real *Y, const Data *d, Layer *layers, Py_ssize_t L, const Settings *s,
                Stats *st) noexcept nogil:
    """One epoch: for batch k with dropout counter step0 + k, the steps of engine.run_epoch."""
    cdef Py_ssize_t n_in = layers[0].n_in, n_out = layers[L - 1].n_out
    cdef Py_ssize_t n_batches = (d.n + s.batch_size - 1) // s.batch_size
    cdef Py_ssize_t k, start, B, i, j, l, pred, m = 0
    cdef const int64_t *rows
    cdef const int64_t *src_rows
    cdef const real *src
    cdef Py_ssize_t n_1 = layers[0].n_out
    cdef bint sparse
    cdef real *xc = <real *>d.xc
    cdef real *Wc = <real *>d.Wc
    cdef real *Gc = <real *>d.Gc
    cdef int64_t step
    cdef real *xb = <real *>d.xbuf
    cdef real *yb = <real *>d.ybuf
    cdef const real *a_prev
    cdef real *out
    cdef Layer *ly
    cdef Layer *below
    cdef double batch_loss, pen = 0, pen_l, inv_b
    cdef bint regularised = s.l1 != 0 or s.l2 != 0
    cdef bint single_sigmoid = layers[L - 1].act == _core.SIGMOID and n_out == 1
    cdef real lr = <real>s.lr, mu = <real>s.momentum, l1 = <real>s.l1, l2 = <real>s.l2
    if regularised:  # the penalty of the first batch; later ones come out of descend
        for l in range(L):
            pen += _core.penalty(<real *>layers[l].W, layers[l].n_in * layers[l].n_out, s.l1, s.l2)
    for k in range(n_batches):
        start = k * s.batch_size
        B = min(s.batch_size, d.n - start)
        step = s.step0 + k
        inv_b = 1.0 / B
        rows = &d.order[start]
        _gather(Y, n_out, rows, B, yb)
        # The input: with input dropout, gathered into xb and dropped first.  Without, a sparse
        # batch goes straight from X's rows to its compacted form and xb is not filled at all.
        src, src_rows = X, rows
        if s.keep_input < 1 or d.max_cols <= 0:
            _gather(X, n_in, rows, B, xb)
            src, src_rows = xb, d.identity
            if s.keep_input < 1:
                _core.dropout(xb, B * n_in, s.keep_input, s.seed, step, 0)
        m = _nonzero_columns(src, n_in, src_rows, B, d.flags, d.cols) if d.max_cols > 0 else 0
        sparse = 0 < m <= d.max_cols  # then the first layer works on the m nonzero columns only
        if sparse:
            _compact(src, n_in, src_rows, B, <real *>layers[0].W, n_1, d.cols, m, xc, Wc)
        elif d.max_cols > 0 and s.keep_input == 1:  # dense after all: now gather xb
            _gather(X, n_in, rows, B, xb)

        # forward: z_l = a_{l-1} W_l + b_l;  a_l = f_l(z_l) [* m / keep]
        a_prev = xb
        for l in range(L):
            ly = &layers[l]
            if l == 0 and sparse:
                _core.linear_forward(xc, Wc, <real *>ly.b, <real *>ly.z, B, m, ly.n_out)
            else:
                _core.linear_forward(a_prev, <real *>ly.W, <real *>ly.b, <real *>ly.z, B, ly.n_in, ly.n_out)
            _core.activate(ly.act, <real *>ly.z, <real *>ly.alpha, <real *>ly.a, B, ly.n_out)
            if l < L - 1 and s.keep_hidden < 1:
                _core.dropout(<real *>ly.a, B * ly.n_out, s.keep_hidden, s.seed, step, l + 1)
            a_prev = <real *>ly.a
        out = <real *>layers[L - 1].a

        # loss, checked before anything is updated with it
        batch_loss = _core.add_loss(s.loss, <real *>layers[L - 1].z, out, yb, B, n_out, <double>0) * inv_b + pen
        if not isfinite(batch_loss):
            st.diverged = True
            break

        # backward and update, top layer first: each layer is updated as soon as its W has
        # carried the error down to the layer below
        _core.output_delta(s.loss, layers[L - 1].act, out, yb, <real *>layers[L - 1].delta, B, n_out)
        pen = 0
        for l in range(L - 1, -1, -1):
            ly = &layers[l]
            a_prev = xb if l == 0 else <real *>layers[l - 1].a
            # dW = a_prev^T delta / B (penalty added in descend);  db = (1/B) sum_b delta_b
            if l == 0 and sparse:  # only the rows of the batch's nonzero columns, into Gc
                _core.gemm(c'T', c'N', <int>m, <int>ly.n_out, <int>B, <real>inv_b, xc, <int>m,
                           <real *>ly.delta, <int>ly.n_out, 0, Gc, <int>ly.n_out)
            else:
                _core.gemm(c'T', c'N', <int>ly.n_in, <int>ly.n_out, <int>B, <real>inv_b, a_prev, <int>ly.n_in,
                           <real *>ly.delta, <int>ly.n_out, 0, <real *>ly.dW, <int>ly.n_out)
            _core.column_mean(<real *>ly.delta, <real *>ly.db, B, ly.n_out)
            if l > 0:  # g = delta W^T [* m / keep];  delta_below = f'(z_below) * g
                below = &layers[l - 1]
                _core.gemm(c'N', c'T', <int>B, <int>ly.n_in, <int>ly.n_out, 1, <real *>ly.delta, <int>ly.n_out,
                           <real *>ly.W, <int>ly.n_out, 0, <real *>below.g, <int>ly.n_in)
                if s.keep_hidden < 1:
                    _core.dropout(<real *>below.g, B * ly.n_in, s.keep_hidden, s.seed, step, l)
                _core.activation_backward(below.act, <real *>below.z, <real *>below.alpha, <real *>below.g,
                                          <real *>below.delta, <real *>below.dalpha, B, below.n_out)
            if l == 0 and sparse:
                st.grad_norm_sum[l] += sqrt(_descend_rows(<real *>ly.W, Gc, <real *>ly.vW, <real *>d.zero_row,
                                                          d.cols, m, ly.n_in, ly.n_out, l1, l2, lr, mu, s.nesterov,
                                                          &pen_l))
            else:
                st.grad_norm_sum[l] += sqrt(_core.descend(<real *>ly.W, <real *>ly.dW, <real *>ly.vW,
                                                          ly.n_in * ly.n_out, l1, l2, lr, mu, s.nesterov, &pen_l))
            pen += pen_l
            _core.sgd_update(<real *>ly.b, <real *>ly.db, <real *>ly.vb, ly.n_out, lr, mu, s.nesterov)
            if ly.alpha != NULL:
                _core.sgd_update(<real *>ly.alpha, <real *>ly.dalpha, <real *>ly.valpha, ly.n_out, lr, mu,
                                 s.nesterov)

        st.loss_sum += batch_loss * B
        st.n_seen += B
        st.n_batches += 1
        if d.labels != NULL:  # predicted label: argmax, or a > 1/2 for a single sigmoid unit
            for i in range(B):
                if single_sigmoid:
                    pred = 1 if out[i] > 0.5 else 0
                else:
                    pred = 0
                    for j in range(1, n_out):
                        if out[i * n_out + j] > out[i * n_out + pred]:
                            pred = j
                if pred == d.labels[d.order[start + i]]:
                    st.correct += 1
    return 0


cdef void *_address(object x, object dtype, tuple shape, str what) except? NULL:
    """The data pointer of ``x`` after checking that it is a C-contiguous array of this dtype and shape."""
    if x.dtype != dtype or tuple(x.shape) != shape or not x.flags.c_contiguous:
        raise ValueError(f"train_epoch: {what} must be a C-contiguous {dtype} array of shape {shape}, "
                         f"got {x.dtype} {tuple(x.shape)} (C-contiguous: {x.flags.c_contiguous})")
    if x.size == 0:
        return NULL
    return <void *><size_t>x.ctypes.data


def train_epoch(tuple data, list layers, object hyper, int loss, Py_ssize_t batch_size, int64_t step0,
                double[::1] grad_norm_sum, tuple sparse=None):
    """One epoch of mini-batch SGD in a single nogil call; returns (loss_sum, correct, n_seen, n_batches, diverged).

    data:   (X, Y, labels or None, order, xbuf, ybuf): the training set, int64 labels and sample order,
            and the workspace's batch buffers for the gathered inputs and targets
    layers: one tuple per layer: (act, W, b, alpha, vW, vb, valpha, z, a, delta, g, dW, db, dalpha);
            alpha, valpha, dalpha are (0,) arrays for layers that are not PReLU
    hyper:  fastnn.engine.Hyper (lr, momentum, nesterov, l1, l2, keep_input, keep_hidden, seed)
    grad_norm_sum: (n_layers,) float64, incremented by ||dW_l||_F per batch
    sparse: None (always dense) or fastnn.kernels.sparse_input.buffers(...): (flags, cols, xc, Wc, Gc,
            zero_row, identity, max_cols), the sparse-input path's buffers and threshold
    """
    X, Y, labels, order, xbuf, ybuf = data
    cdef Py_ssize_t L = len(layers), l, n_rows = X.shape[0], n_in, n_out, n
    if L == 0:
        raise ValueError("train_epoch: the network has no layers")
    if grad_norm_sum.shape[0] != L:
        raise ValueError(f"train_epoch: grad_norm_sum has {grad_norm_sum.shape[0]} entries for {L} layers")
    if batch_size < 1:
        raise ValueError(f"train_epoch: batch_size={batch_size} must be at least 1")
    dtype = X.dtype
    if dtype.name not in ("float32", "float64"):
        raise ValueError(f"train_epoch: dtype {dtype} is not supported; use float32 or float64")
    n = order.shape[0]
    batch = min(batch_size, n)
    n_in, n_out = layers[0][1].shape[0], layers[L - 1][1].shape[1]

    cdef Data d
    d.X = _address(X, dtype, (n_rows, n_in), "X")
    d.Y = _address(Y, dtype, (n_rows, n_out), "Y")
    d.order = <const int64_t *>_address(order, "int64", (n,), "order")
    d.labels = NULL  # regression: no accuracy
    if labels is not None:
        d.labels = <const int64_t *>_address(labels, "int64", (n_rows,), "labels")
    d.n = n
    if n and (order.min() < 0 or order.max() >= n_rows):
        raise ValueError(f"train_epoch: order holds row numbers outside 0..{n_rows - 1}")
    if xbuf.shape[0] < batch:
        raise ValueError(f"train_epoch: the workspace holds {xbuf.shape[0]} rows, the batch needs {batch}")
    ws_rows = xbuf.shape[0]
    d.xbuf = _address(xbuf, dtype, (ws_rows, n_in), "workspace x")
    d.ybuf = _address(ybuf, dtype, (ws_rows, n_out), "workspace y")
    d.max_cols = 0
    d.identity = NULL
    if sparse is not None:
        flags, cols, xc, Wc, Gc, zero_row, identity, max_cols = sparse
        n_1 = layers[0][1].shape[1]
        d.max_cols = max_cols
        d.flags = <unsigned char *>_address(flags, "uint8", (n_in,), "sparse flags")
        d.cols = <int64_t *>_address(cols, "int64", (n_in,), "sparse cols")
        d.xc = _address(xc, dtype, (ws_rows * n_in,), "sparse xc")
        d.Wc = _address(Wc, dtype, (n_in * n_1,), "sparse Wc")
        d.Gc = _address(Gc, dtype, (n_in * n_1,), "sparse Gc")
        d.zero_row = _address(zero_row, dtype, (n_1,), "sparse zero_row")
        if d.zero_row != NULL and zero_row.any():
            raise ValueError("train_epoch: sparse zero_row must be all zeros")
        d.identity = <const int64_t *>_address(identity, "int64", (ws_rows,), "sparse identity")
        if ws_rows and (identity != np.arange(ws_rows)).any():
            raise ValueError("train_epoch: sparse identity must be 0, 1, ..., batch - 1")

    cdef Settings s
    s.loss = loss
    s.batch_size = batch_size
    s.lr, s.momentum, s.nesterov = hyper.lr, hyper.momentum, hyper.nesterov
    s.l1, s.l2 = hyper.l1, hyper.l2
    s.keep_input, s.keep_hidden = hyper.keep_input, hyper.keep_hidden
    s.seed = hyper.seed & 0xFFFFFFFFFFFFFFFF  # the reference's arithmetic is mod 2^64
    s.step0 = step0
    if not (0 < s.keep_input <= 1 and 0 < s.keep_hidden <= 1):
        raise ValueError(f"train_epoch: keep probabilities must be in (0, 1], got {s.keep_input}, {s.keep_hidden}")
    if loss not in (_core.MSE, _core.CROSS_ENTROPY, _core.BINARY_CROSS_ENTROPY):
        raise ValueError(f"train_epoch: unknown loss code {loss}")

    cdef Stats st
    st.loss_sum, st.correct, st.n_seen, st.n_batches, st.diverged = 0, 0, 0, 0, False
    st.grad_norm_sum = &grad_norm_sum[0]

    cdef Layer *c_layers = <Layer *>malloc(L * sizeof(Layer))
    if c_layers == NULL:
        raise MemoryError()
    cdef Layer *ly
    cdef bint single
    try:
        prev = n_in
        for l in range(L):
            act, W, b, alpha, vW, vb, valpha, z, a, delta, g, dW, db, dalpha = layers[l]
            ly = &c_layers[l]
            ly.act = act
            if not 0 <= act <= _core.SOFTMAX or (act == _core.SOFTMAX and l < L - 1):
                raise ValueError(f"train_epoch: activation code {act} is not supported in layer {l}")
            ly.n_in, ly.n_out = W.shape[0], W.shape[1]
            if ly.n_in != prev:
                raise ValueError(f"train_epoch: layer {l} takes {ly.n_in} inputs, the layer below gives {prev}")
            prev = ly.n_out
            w_shape, v_shape, buf = (ly.n_in, ly.n_out), (ly.n_out,), (ws_rows, ly.n_out)
            ly.W = _address(W, dtype, w_shape, f"W[{l}]")
            ly.b = _address(b, dtype, v_shape, f"b[{l}]")
            ly.dW = _address(dW, dtype, w_shape, f"dW[{l}]")
            ly.db = _address(db, dtype, v_shape, f"db[{l}]")
            if hyper.momentum != 0:  # plain SGD never reads the velocities
                ly.vW = _address(vW, dtype, w_shape, f"velocity W[{l}]")
                ly.vb = _address(vb, dtype, v_shape, f"velocity b[{l}]")
            else:
                ly.vW = ly.vb = NULL
            ly.z = _address(z, dtype, buf, f"workspace z[{l}]")
            ly.a = _address(a, dtype, buf, f"workspace a[{l}]")
            ly.delta = _address(delta, dtype, buf, f"workspace delta[{l}]")
            ly.g = _address(g, dtype, buf, f"workspace g[{l}]")
            p_shape = v_shape if act == _core.PRELU else (0,)
            ly.alpha = _address(alpha, dtype, p_shape, f"alpha[{l}]")
            ly.dalpha = _address(dalpha, dtype, p_shape, f"dalpha[{l}]")
            ly.valpha = _address(valpha, dtype, p_shape, f"velocity alpha[{l}]") if hyper.momentum != 0 else NULL
        single = dtype.name == "float32"
        with nogil:
            if single:
                _epoch(<const float *>d.X, <const float *>d.Y, &d, c_layers, L, &s, &st)
            else:
                _epoch(<const double *>d.X, <const double *>d.Y, &d, c_layers, L, &s, &st)
    finally:
        free(c_layers)
    return st.loss_sum, st.correct, st.n_seen, st.n_batches, st.diverged


def set_blas(size_t sgemm_address, size_t dgemm_address):
    """Route this module's matrix products to these CBLAS (ILP64) functions; (0, 0): SciPy's BLAS."""
    _core.set_blas_pointers(sgemm_address, dgemm_address)
