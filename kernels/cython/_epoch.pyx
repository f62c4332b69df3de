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

Threads: the epoch runs on its own OpenMP team (``threads``), not on the BLAS's threads.  With the
BLAS's threads, everything between two products (gathering, the sparse test, activations, the
update) ran on one core while the other waited, and its OpenBLAS workers spun between products on
the cores an OpenMP loop would need.  Here each thread owns a slice of the batch's rows (forward, loss, deltas: no
barrier from the first layer to the loss) and a slice of every parameter (gradient and update),
calls a single-threaded BLAS on its slices, and meets the others at a barrier wherever it reads
what they wrote (about ten per batch).  Splitting a product this way costs the BLAS little
(``python benchmarks/team.py --gemm``), while the work in between now runs on both cores; see
kernels/team.py for when a team pays.  threads = 1 is the serial loop (barriers are no-ops outside
a parallel region).

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


cdef extern from *:
    """
    /* The team that runs an epoch: fn(arg, t, nt) on each of n OpenMP threads (one call without OpenMP). */
    typedef void (*fastnn_member_fn)(void *, int, int);
    #ifdef _OPENMP
    #include <omp.h>
    static void fastnn_barrier(void) {
        #pragma omp barrier
    }
    static void fastnn_run_team(int n, void (*fn)(void *, int, int), void *arg) {
        if (n > 1) {
            #pragma omp parallel num_threads(n)
            fn(arg, omp_get_thread_num(), omp_get_num_threads());
        } else {
            fn(arg, 0, 1);
        }
    }
    #else
    static void fastnn_barrier(void) {}
    static void fastnn_run_team(int n, void (*fn)(void *, int, int), void *arg) { (void)n; fn(arg, 0, 1); }
    #endif
    """
    ctypedef void (*member_fn "fastnn_member_fn")(void *, int, int) noexcept nogil
    void barrier "fastnn_barrier"() noexcept nogil
    void run_team "fastnn_run_team"(int n, member_fn fn, void *arg) noexcept nogil


cdef struct Team:
    # what every thread reads
    const void *X
    const void *Y
    const Data *d
    Layer *layers
    Py_ssize_t L
    const Settings *s
    Stats *st
    # per-thread partials, slot t written by thread t only, read after a barrier
    unsigned char *flags_t  # (threads, n_in) the columns nonzero in thread t's rows
    int64_t *cols_t         # (threads, n_in) thread t's copy of the batch's nonzero columns
    double *loss_t          # (threads,)
    int64_t *correct_t      # (threads,)
    double *sq_t            # (threads, L) ||g_l||^2 over thread t's part of W_l
    double *pen_t           # (threads, L) the penalty of thread t's part of the updated W_l
    double pen              # the next batch's penalty: written by thread 0 between two barriers


cdef inline Py_ssize_t _part(Py_ssize_t n, int t, int nt) noexcept nogil:
    """Where thread t's share of n items starts: n t / nt (the shares differ by at most one)."""
    return n * t // nt


cdef void _column_flags(const real *X, Py_ssize_t n, const int64_t *rows, Py_ssize_t B,
                        unsigned char *flags) noexcept nogil:
    """flags_j = [X_rj != 0 for some r in rows[:B]]   (NaN counts as nonzero, -0 as zero)."""
    cdef Py_ssize_t i, j
    cdef const real *xr
    for j in range(n):
        flags[j] = 0
    for i in range(B):
        xr = &X[rows[i] * n]
        for j in range(n):
            flags[j] |= xr[j] != 0


cdef Py_ssize_t _flagged(const unsigned char *flags, Py_ssize_t n, int64_t *cols) noexcept nogil:
    """cols[:m] = the flagged columns, ascending; returns m."""
    cdef Py_ssize_t j, m = 0
    for j in range(n):  # branch-free: write j, keep it only if flagged
        cols[m] = j
        m += flags[j]
    return m


cdef void _compact_rows(const real *X, Py_ssize_t n, const int64_t *rows, Py_ssize_t B, const int64_t *cols,
                        Py_ssize_t m, real *xc) noexcept nogil:
    """xc = X[rows[:B]][:, cols[:m]]   (B x m: the batch rows' nonzero columns)."""
    cdef Py_ssize_t i, q
    cdef const real *xr
    for i in range(B):
        xr = &X[rows[i] * n]
        for q in range(m):
            xc[i * m + q] = xr[cols[q]]


cdef void _gather(const real *X, Py_ssize_t n, const int64_t *rows, Py_ssize_t B, real *out) noexcept nogil:
    """out_i = X_{rows_i}."""
    cdef Py_ssize_t i
    for i in range(B):
        memcpy(&out[i * n], &X[rows[i] * n], n * sizeof(real))


cdef double _descend_rows(real *W, const real *Gc, real *v, const real *zero_row, const int64_t *cols, Py_ssize_t m,
                          Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t n_1, real l1, real l2, real lr, real mu,
                          bint nesterov, double *penalty_after) noexcept nogil:
    """descend on rows [r0, r1) of a first layer whose dW is nonzero only in rows cols[:m] (held in Gc); returns ||g||^2.

    With a penalty or momentum every row moves, with gradient 0 (+ penalty) outside cols.  (Plain SGD
    leaves those rows alone: _epoch_member calls descend on the Gc rows directly.)
    """
    cdef Py_ssize_t q = 0, r
    cdef double sq = 0, pen = 0, pen_row = 0
    while q < m and cols[q] < r0:
        q += 1
    for r in range(r0, r1):
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


cdef void _epoch_member(Team *tm, const real *X, int t, int nt) noexcept nogil:
    """Thread t's part of one epoch: for batch k with dropout counter step0 + k, the steps of engine.run_epoch.

    Thread t owns rows [B t/nt, B (t+1)/nt) of every batch for the forward pass, the loss and the
    deltas, and a slice of every parameter for its gradient and update.  A barrier separates a
    step from the next wherever a thread reads what others wrote; nt = 1 is the serial loop.
    """
    cdef const Data *d = tm.d
    cdef const Settings *s = tm.s
    cdef Stats *st = tm.st
    cdef Layer *layers = tm.layers
    cdef Py_ssize_t L = tm.L
    cdef const real *Y = <const real *>tm.Y
    cdef Py_ssize_t n_in = layers[0].n_in, n_out = layers[L - 1].n_out, n_1 = layers[0].n_out
    cdef Py_ssize_t n_batches = (d.n + s.batch_size - 1) // s.batch_size
    cdef Py_ssize_t k, start, B, i, j, l, u, pred, m = 0, r0, r1, nr, p0, p1, c0, c1
    cdef const int64_t *rows
    cdef const int64_t *src_rows
    cdef const real *src
    cdef bint sparse
    cdef unsigned char f
    cdef unsigned char *my_flags = &tm.flags_t[t * n_in]
    cdef int64_t *cols = &tm.cols_t[t * n_in]
    cdef real *xc = <real *>d.xc
    cdef real *Wc = <real *>d.Wc
    cdef real *Gc = <real *>d.Gc
    cdef int64_t step, correct
    cdef real *xb = <real *>d.xbuf
    cdef real *yb = <real *>d.ybuf
    cdef const real *a_prev
    cdef real *out = <real *>layers[L - 1].a
    cdef Layer *ly
    cdef Layer *below
    cdef double batch_loss, pen, pen_l, sq, inv_b
    cdef bint regularised = s.l1 != 0 or s.l2 != 0
    cdef bint plain_sgd = not regularised and s.momentum == 0
    cdef bint single_sigmoid = layers[L - 1].act == _core.SIGMOID and n_out == 1
    cdef real lr = <real>s.lr, mu = <real>s.momentum, l1 = <real>s.l1, l2 = <real>s.l2
    if t == 0:  # the penalty of the first batch; later ones come out of descend
        tm.pen = 0
        if regularised:
            for l in range(L):
                tm.pen += _core.penalty(<real *>layers[l].W, layers[l].n_in * layers[l].n_out, s.l1, s.l2)
    barrier()
    for k in range(n_batches):
        start = k * s.batch_size
        B = min(s.batch_size, d.n - start)
        r0, r1 = _part(B, t, nt), _part(B, t + 1, nt)
        nr = r1 - r0
        step = s.step0 + k
        inv_b = 1.0 / B
        rows = &d.order[start]
        _gather(Y, n_out, rows + r0, nr, yb + r0 * n_out)
        # The input: with input dropout, gathered into xb and dropped first.  Without, a sparse
        # batch goes straight from X's rows to its compacted form and xb is not filled at all.
        src, src_rows = X, rows
        if s.keep_input < 1 or d.max_cols <= 0:
            _gather(X, n_in, rows + r0, nr, xb + r0 * n_in)
            src, src_rows = xb, d.identity
            if s.keep_input < 1:
                _core.dropout_range(xb, r0 * n_in, r1 * n_in, s.keep_input, s.seed, step, 0)
        m = 0
        if d.max_cols > 0:  # which columns are nonzero in some row: each thread's rows, then merged
            _column_flags(src, n_in, src_rows + r0, nr, my_flags)
            barrier()
            c0, c1 = _part(n_in, t, nt), _part(n_in, t + 1, nt)
            for j in range(c0, c1):
                f = 0
                for u in range(nt):
                    f |= tm.flags_t[u * n_in + j]
                d.flags[j] = f
            barrier()
            m = _flagged(d.flags, n_in, cols)  # every thread its own copy
        sparse = 0 < m <= d.max_cols  # then the first layer works on the m nonzero columns only
        if sparse:  # this thread's rows of xc and its share of Wc's rows
            _compact_rows(src, n_in, src_rows + r0, nr, cols, m, xc + r0 * m)
            p0, p1 = _part(m, t, nt), _part(m, t + 1, nt)
            for u in range(p0, p1):
                memcpy(&Wc[u * n_1], &(<real *>layers[0].W)[cols[u] * n_1], n_1 * sizeof(real))
            barrier()  # Wc is whole
        elif d.max_cols > 0 and s.keep_input == 1:  # dense after all: now gather xb
            _gather(X, n_in, rows + r0, nr, xb + r0 * n_in)

        # forward, this thread's rows: z_l = a_{l-1} W_l + b_l;  a_l = f_l(z_l) [* m / keep]
        a_prev = xb
        for l in range(L):
            ly = &layers[l]
            if l == 0 and sparse:
                _core.linear_forward(xc + r0 * m, Wc, <real *>ly.b, <real *>ly.z + r0 * ly.n_out, nr, m, ly.n_out)
            else:
                _core.linear_forward(a_prev + r0 * ly.n_in, <real *>ly.W, <real *>ly.b, <real *>ly.z + r0 * ly.n_out,
                                     nr, ly.n_in, ly.n_out)
            _core.activate(ly.act, <real *>ly.z + r0 * ly.n_out, <real *>ly.alpha, <real *>ly.a + r0 * ly.n_out,
                           nr, ly.n_out)
            if l < L - 1 and s.keep_hidden < 1:
                _core.dropout_range(<real *>ly.a, r0 * ly.n_out, r1 * ly.n_out, s.keep_hidden, s.seed, step, l + 1)
            a_prev = <real *>ly.a

        # loss, accuracy and output delta of this thread's rows
        tm.loss_t[t] = _core.add_loss(s.loss, <real *>layers[L - 1].z + r0 * n_out, out + r0 * n_out,
                                      yb + r0 * n_out, nr, n_out, <double>0)
        correct = 0
        if d.labels != NULL:  # predicted label: argmax, or a > 1/2 for a single sigmoid unit
            for i in range(r0, r1):
                if single_sigmoid:
                    pred = 1 if out[i] > 0.5 else 0
                else:
                    pred = 0
                    for j in range(1, n_out):
                        if out[i * n_out + j] > out[i * n_out + pred]:
                            pred = j
                correct += pred == d.labels[rows[i]]
        tm.correct_t[t] = correct
        _core.output_delta(s.loss, layers[L - 1].act, out + r0 * n_out, yb + r0 * n_out,
                           <real *>layers[L - 1].delta + r0 * n_out, nr, n_out)
        barrier()  # the loss partials and delta_L are whole
        batch_loss = 0
        for u in range(nt):  # every thread sums in the same order, so all take the same branch
            batch_loss += tm.loss_t[u]
        batch_loss = batch_loss * inv_b + tm.pen
        if not isfinite(batch_loss):  # checked before anything is updated with it
            if t == 0:
                st.diverged = True
            break

        # backward and update, top layer first: each layer is updated as soon as its W has
        # carried the error down to the layer below
        for l in range(L - 1, -1, -1):
            ly = &layers[l]
            a_prev = xb if l == 0 else <real *>layers[l - 1].a
            # dW = a_prev^T delta / B (penalty added in descend), this thread's rows of dW
            if l == 0 and sparse:  # only the rows of the batch's nonzero columns, into Gc
                p0, p1 = _part(m, t, nt), _part(m, t + 1, nt)
                _core.gemm(c'T', c'N', <int>(p1 - p0), <int>ly.n_out, <int>B, <real>inv_b, xc + p0, <int>m,
                           <real *>ly.delta, <int>ly.n_out, 0, Gc + p0 * ly.n_out, <int>ly.n_out)
            else:
                p0, p1 = _part(ly.n_in, t, nt), _part(ly.n_in, t + 1, nt)
                _core.gemm(c'T', c'N', <int>(p1 - p0), <int>ly.n_out, <int>B, <real>inv_b, a_prev + p0, <int>ly.n_in,
                           <real *>ly.delta, <int>ly.n_out, 0, <real *>ly.dW + p0 * ly.n_out, <int>ly.n_out)
            c0, c1 = _part(ly.n_out, t, nt), _part(ly.n_out, t + 1, nt)
            _core.column_mean_range(<real *>ly.delta, <real *>ly.db, B, ly.n_out, c0, c1)  # db = (1/B) sum_b delta_b
            if l > 0:  # this thread's rows: g = delta W^T [* m / keep];  delta_below = f'(z_below) * g
                below = &layers[l - 1]
                _core.gemm(c'N', c'T', <int>nr, <int>ly.n_in, <int>ly.n_out, 1, <real *>ly.delta + r0 * ly.n_out,
                           <int>ly.n_out, <real *>ly.W, <int>ly.n_out, 0, <real *>below.g + r0 * ly.n_in, <int>ly.n_in)
                if s.keep_hidden < 1:
                    _core.dropout_range(<real *>below.g, r0 * ly.n_in, r1 * ly.n_in, s.keep_hidden, s.seed, step, l)
                # (PReLU's dalpha sums over all rows: train_epoch runs PReLU networks on one thread)
                _core.activation_backward(below.act, <real *>below.z + r0 * below.n_out, <real *>below.alpha,
                                          <real *>below.g + r0 * below.n_out, <real *>below.delta + r0 * below.n_out,
                                          <real *>below.dalpha, nr, below.n_out)
            barrier()  # every thread is done reading W_l (for g) and the gradient is whole
            if l == 0 and sparse and plain_sgd:  # only the batch's nonzero columns' rows move
                p0, p1 = _part(m, t, nt), _part(m, t + 1, nt)
                sq = 0
                for u in range(p0, p1):
                    sq += _core.descend(&(<real *>ly.W)[cols[u] * ly.n_out], &Gc[u * ly.n_out], NULL, ly.n_out,
                                        l1, l2, lr, mu, s.nesterov, &pen_l)
                pen_l = 0
            elif l == 0 and sparse:
                p0, p1 = _part(ly.n_in, t, nt), _part(ly.n_in, t + 1, nt)
                sq = _descend_rows(<real *>ly.W, Gc, <real *>ly.vW, <real *>d.zero_row, cols, m, p0, p1, ly.n_out,
                                   l1, l2, lr, mu, s.nesterov, &pen_l)
            else:
                p0, p1 = _part(ly.n_in, t, nt), _part(ly.n_in, t + 1, nt)
                sq = _core.descend(<real *>ly.W + p0 * ly.n_out, <real *>ly.dW + p0 * ly.n_out,
                                   _row(<real *>ly.vW, p0, ly.n_out), (p1 - p0) * ly.n_out, l1, l2, lr, mu,
                                   s.nesterov, &pen_l)
            tm.sq_t[t * L + l] = sq
            tm.pen_t[t * L + l] = pen_l
            _core.sgd_update(<real *>ly.b + c0, <real *>ly.db + c0, _row(<real *>ly.vb, c0, 1), c1 - c0, lr, mu,
                             s.nesterov)
            if ly.alpha != NULL:
                _core.sgd_update(<real *>ly.alpha + c0, <real *>ly.dalpha + c0, _row(<real *>ly.valpha, c0, 1),
                                 c1 - c0, lr, mu, s.nesterov)

        barrier()  # every update and partial is written
        if t == 0:
            pen = 0
            for l in range(L):
                sq = 0
                for u in range(nt):
                    sq += tm.sq_t[u * L + l]
                    pen += tm.pen_t[u * L + l]
                st.grad_norm_sum[l] += sqrt(sq)
            for u in range(nt):
                st.correct += tm.correct_t[u]
            tm.pen = pen
            st.loss_sum += batch_loss * B
            st.n_seen += B
            st.n_batches += 1
        barrier()  # thread 0 has read the partials before anyone overwrites them


cdef void _member_float(void *team, int t, int nt) noexcept nogil:
    _epoch_member(<Team *>team, <const float *>(<Team *>team).X, t, nt)


cdef void _member_double(void *team, int t, int nt) noexcept nogil:
    _epoch_member(<Team *>team, <const double *>(<Team *>team).X, t, nt)


cdef void *_address(object x, object dtype, tuple shape, str what) except? NULL:
    """The data pointer of ``x`` after checking that it is a C-contiguous array of this dtype and shape."""
    if x.dtype != dtype or tuple(x.shape) != shape or not x.flags.c_contiguous:
        raise ValueError(f"train_epoch: {what} must be a C-contiguous {dtype} array of shape {shape}, "
                         f"got {x.dtype} {tuple(x.shape)} (C-contiguous: {x.flags.c_contiguous})")
    if x.size == 0:
        return NULL
    return <void *><size_t>x.ctypes.data


def train_epoch(tuple data, list layers, object hyper, int loss, Py_ssize_t batch_size, int64_t step0,
                double[::1] grad_norm_sum, tuple sparse=None, int threads=1):
    """One epoch of mini-batch SGD in a single nogil call; returns (loss_sum, correct, n_seen, n_batches, diverged).

    data:   (X, Y, labels or None, order, xbuf, ybuf): the training set, int64 labels and sample order,
            and the workspace's batch buffers for the gathered inputs and targets
    layers: one tuple per layer: (act, W, b, alpha, vW, vb, valpha, z, a, delta, g, dW, db, dalpha);
            alpha, valpha, dalpha are (0,) arrays for layers that are not PReLU
    hyper:  fastnn.engine.Hyper (lr, momentum, nesterov, l1, l2, keep_input, keep_hidden, seed)
    grad_norm_sum: (n_layers,) float64, incremented by ||dW_l||_F per batch
    sparse: None (always dense) or fastnn.kernels.sparse_input.buffers(...): (flags, cols, xc, Wc, Gc,
            zero_row, identity, max_cols), the sparse-input path's buffers and threshold
    threads: the OpenMP team that runs the epoch (1: this thread alone; more only in an OpenMP build and
            for networks without PReLU).  Each thread calls the BLAS on its own slice of every product,
            so the caller sets the BLAS to one thread for the call (fastnn.kernels.cython_cpu does).
    """
    if threads < 1:
        raise ValueError(f"train_epoch: threads={threads} must be at least 1")
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

    cdef Team tm
    cdef Layer *c_layers = <Layer *>malloc(L * sizeof(Layer))
    tm.flags_t = <unsigned char *>malloc(threads * max(n_in, 1) * sizeof(unsigned char))
    tm.cols_t = <int64_t *>malloc(threads * max(n_in, 1) * sizeof(int64_t))
    tm.loss_t = <double *>malloc(threads * sizeof(double))
    tm.correct_t = <int64_t *>malloc(threads * sizeof(int64_t))
    tm.sq_t = <double *>malloc(threads * L * sizeof(double))
    tm.pen_t = <double *>malloc(threads * L * sizeof(double))
    cdef Layer *ly
    cdef member_fn member
    try:
        if (c_layers == NULL or tm.flags_t == NULL or tm.cols_t == NULL or tm.loss_t == NULL
                or tm.correct_t == NULL or tm.sq_t == NULL or tm.pen_t == NULL):
            raise MemoryError()
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
            if act == _core.PRELU:  # its dalpha is a sum over all rows: not split across threads
                threads = 1
        tm.X, tm.Y, tm.d, tm.layers, tm.L, tm.s, tm.st = d.X, d.Y, &d, c_layers, L, &s, &st
        member = _member_float if dtype.name == "float32" else _member_double
        with nogil:
            run_team(threads, member, &tm)
    finally:
        free(c_layers)
        free(tm.flags_t)
        free(tm.cols_t)
        free(tm.loss_t)
        free(tm.correct_t)
        free(tm.sq_t)
        free(tm.pen_t)
    return st.loss_sum, st.correct, st.n_seen, st.n_batches, st.diverged


def set_blas(size_t sgemm_address, size_t dgemm_address):
    """Route this module's matrix products to these CBLAS (ILP64) functions; (0, 0): SciPy's BLAS."""
    _core.set_blas_pointers(sgemm_address, dgemm_address)
