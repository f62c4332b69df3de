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
- a sparse batch's all-zero input columns out of the first layer's two products.

Sparse input (kernels/README.md, "Sparse inputs in the fused epochs"): a column of the batch that is
zero in every row adds exactly nothing to z_1 = x W_1, and its row of dW_1 = x^T delta_1 / B is
exactly zero.  So when few columns are nonzero, the first layer works on the batch's m nonzero
columns: x is compacted to xc (B x m), the matching rows of W_1 are gathered into Wc (m x n_1), dW_1
is computed for those m rows only (Gc), and plain SGD updates only those rows.  The numbers are the
dense computation's (a product with an exact zero adds an exact zero); only BLAS's order of additions
differs.  (The same scheme as the Numba backend.)

Threads: the epoch runs on its own OpenMP team (``threads``), not on the BLAS's threads.  Each
thread owns a slice of the batch's rows (gather, forward, loss, deltas) and a slice of every
parameter (gradient and update), calls a single-threaded BLAS on its slices, and meets the others at
a barrier wherever it reads what they wrote; kernels/team.py says when a team pays.  A wide hidden
layer's two products go by columns instead (Layer.fwd_cols, bwd_cols; _by_columns says when).  threads = 1 is
the serial loop (barriers are no-ops outside a parallel region).

The epoch reads as ``_epoch_member``: one named step per line (``gather_batch``, ``forward_layer``,
``loss_and_output_delta``, ``weight_gradients``, ``backprop_layer``, ``update_slice``, ...) with
the barriers between them.  Each step is a nogil function of the structs below (``Team`` for what
the threads share, ``Batch`` for this thread's share of one batch).

Python sees this module once per epoch: ``train_epoch`` takes named records (``EpochData``,
``LayerArrays``, and kernels/sparse_input.py's ``SparseBuffers``), checks every buffer (dtype, shape, C order), copies their
addresses into the structs, and releases the GIL for the whole loop.
"""
from collections import namedtuple

from libc.math cimport isfinite, sqrt
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memchr, memcpy, memset

import numpy as np

cimport _core
from _core cimport real

# --------------------------------------------------------------------------- what Python passes in

EpochData = namedtuple("EpochData", "X Y labels order xbuf ybuf", module=__name__)
EpochData.__doc__ = """The training set and the batch buffers of one epoch.

X (n_rows, n_in), Y (n_rows, n_out): the training set, in the network's dtype; labels: (n_rows,) int64,
or None for regression (no accuracy); order: (n,) int64, this epoch's sample order (row numbers of
X); xbuf (rows, n_in), ybuf (rows, n_out): the workspace's buffers for the gathered batch."""

LayerArrays = namedtuple("LayerArrays", "act W b alpha vW vb valpha z a delta g dW db dalpha", module=__name__)
LayerArrays.__doc__ = """One layer's activation code and arrays.

act: the activation code (kernels/codes.py); W (n_in, n_out), b (n_out,), alpha: the parameters;
vW, vb, valpha: their velocities (read only with momentum); z, a, delta, g (rows, n_out): the
workspace's activations and gradients; dW, db, dalpha: the parameters' gradients.  alpha is (n_out,)
for a LeakyReLU, ELU or PReLU layer (its alpha_j) and (0,) for any other; valpha and dalpha are (n_out,)
for a PReLU layer, whose alpha is learned, and (0,) for any other."""

EpochTotals = namedtuple("EpochTotals", "loss_sum correct n_seen n_batches diverged", module=__name__)
EpochTotals.__doc__ = """What train_epoch returns: the sums of fastnn.kernels.contract.EpochStats."""


# --------------------------------------------------------------------------- the structs the loop reads

cdef struct Layer:
    # sizes and activation code
    Py_ssize_t n_in, n_out
    int act
    # parameters and their velocities (alpha is NULL unless the layer is LeakyReLU, ELU or PReLU; valpha
    # and dalpha are NULL unless it is PReLU; velocities are NULL without momentum)
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
    # how the team splits this layer's products (every thread reads the same flags, so all of them
    # meet the same barriers): forward z_l and backward g_{l-1} by columns instead of by rows
    bint fwd_cols, bwd_cols


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


cdef struct Sparse:
    Py_ssize_t max_cols      # compact when at most this many input columns are nonzero; <= 0: never
    unsigned char *flags     # (n_in,) the batch's column has a nonzero
    void *xc                 # (batch * n_in,) the compacted batch, B x m
    void *Wc                 # (n_in * n_1,) the gathered rows of W_1, m x n_1
    void *Gc                 # (n_in * n_1,) dW_1's nonzero rows, m x n_1
    const int64_t *identity  # (batch,) 0, 1, 2, ...: the row numbers of xbuf


cdef struct Stats:
    double loss_sum
    int64_t correct, n_seen, n_batches
    bint diverged
    double *grad_norm_sum  # (n_layers,)
    double *batch_loss  # (n_batches,): batch k's regularised mean loss


cdef struct Team:
    # what every thread reads
    const Data *d
    const Sparse *sp
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


cdef struct Batch:
    # one batch, as one thread of the team sees it (each thread has its own)
    Py_ssize_t B            # rows in the batch (the last batch may be short)
    const int64_t *rows     # its sample numbers: order[k batch_size : k batch_size + B]
    int64_t step            # the dropout counter: step0 + k
    double inv_b            # 1 / B
    int t, nt               # this thread, and the team's size
    Py_ssize_t r0, r1       # this thread's rows of the batch: [B t/nt, B (t+1)/nt)
    # where the first layer's input rows come from: X at rows, or xbuf at identity
    const void *src
    const int64_t *src_rows
    Py_ssize_t m            # the batch's nonzero input columns (sparse path), else 0
    bint sparse             # the first layer works on xc and Wc (the m columns)


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


# --------------------------------------------------------------------------- small helpers

cdef inline Py_ssize_t _part(Py_ssize_t n, int t, int nt) noexcept nogil:
    """Where thread t's share of n items starts: n t / nt (the shares differ by at most one)."""
    return n * t // nt


cdef inline real *_row(real *v, Py_ssize_t r, Py_ssize_t n) noexcept nogil:
    """&v[r n], or NULL for an absent array (no velocity in plain SGD, no alpha_j in most layers)."""
    return NULL if v == NULL else &v[r * n]


cdef void _gather(const real *X, Py_ssize_t n, const int64_t *rows, Py_ssize_t B, real *out) noexcept nogil:
    """out_i = X_{rows_i}."""
    cdef Py_ssize_t i
    for i in range(B):
        memcpy(&out[i * n], &X[rows[i] * n], n * sizeof(real))


cdef void _column_flags(const real *X, Py_ssize_t n, const int64_t *rows, Py_ssize_t B,
                        unsigned char *flags) noexcept nogil:
    """flags_j = [X_rj != 0 for some r in rows[:B]]   (NaN counts as nonzero, -0 as zero).

    Dense inputs flag every column in their first row; the scan stops there instead of reading the
    batch twice (the rows are gathered again when the batch turns out dense).  Sparse inputs have a
    column still 0 after every row, which memchr finds within the first bytes (MNIST's corner pixel).
    """
    cdef Py_ssize_t i, j
    cdef const real *xr
    for j in range(n):
        flags[j] = 0
    for i in range(B):
        xr = &X[rows[i] * n]
        for j in range(n):
            flags[j] |= xr[j] != 0
        if memchr(flags, 0, n) == NULL:  # every column is flagged: the rest of the rows cannot change that
            break


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


cdef inline Py_ssize_t _run_end(const int64_t *cols, Py_ssize_t q, Py_ssize_t stop) noexcept nogil:
    """The end of the run of consecutive columns that starts at cols[q]: the first e in (q, stop) with
    cols[e] != cols[e - 1] + 1, else stop.  Such a run is a block of consecutive rows in W_1 and in Gc."""
    cdef Py_ssize_t e = q + 1
    while e < stop and cols[e] == cols[e - 1] + 1:
        e += 1
    return e


cdef double _descend_rows(real *W, const real *Gc, real *v, const int64_t *cols, Py_ssize_t m, Py_ssize_t r0,
                          Py_ssize_t r1, Py_ssize_t n_1, real l1, real l2, real lr, real mu, bint nesterov,
                          double *penalty_after) noexcept nogil:
    """descend on rows [r0, r1) of a first layer whose dW is Gc's row q in row cols[q], 0 elsewhere; returns ||g||^2.

    With a penalty or momentum every row moves, with gradient 0 (+ penalty) outside cols.  (Plain SGD
    leaves those rows alone: update_slice steps only the rows cols.)  One descend per block of rows:
    a run of consecutive columns, or the rows between two runs (gradient 0: dW NULL).
    """
    cdef Py_ssize_t q = 0, e, r = r0, stop
    cdef double sq = 0, pen = 0, pen_block = 0
    while q < m and cols[q] < r0:
        q += 1
    while r < r1:
        if q < m and cols[q] == r:  # rows r, r + 1, ... = cols[q:e], their gradient Gc's rows q:e
            e = min(_run_end(cols, q, m), q + r1 - r)
            sq += _core.descend(&W[r * n_1], &Gc[q * n_1], _row(v, r, n_1), (e - q) * n_1, l1, l2, lr, mu, nesterov,
                                &pen_block)
            r, q = r + e - q, e
        else:  # rows up to the next of cols: gradient 0
            stop = min(<Py_ssize_t>cols[q], r1) if q < m else r1
            sq += _core.descend(&W[r * n_1], NULL, _row(v, r, n_1), (stop - r) * n_1, l1, l2, lr, mu, nesterov,
                                &pen_block)
            r = stop
        pen += pen_block
    penalty_after[0] = pen
    return sq


# --------------------------------------------------------------------------- the steps of one batch
# Each step is one thread's part of one line of engine.run_epoch.  X, the training set, is every
# step's typed argument: its type (float or double) is the one every void pointer of the structs is
# cast to.  A step reads only what this thread or an earlier barrier made whole.

cdef double initial_penalty(Team *tm, const real *X) noexcept nogil:
    """R = sum_l l2/2 ||W_l||^2 + l1 ||W_l||_1 before the first batch (later batches' comes out of descend)."""
    cdef const Settings *s = tm.s
    cdef Py_ssize_t l
    cdef double pen = 0
    if s.l1 != 0 or s.l2 != 0:
        for l in range(tm.L):
            pen += _core.penalty(<real *>tm.layers[l].W, tm.layers[l].n_in * tm.layers[l].n_out, s.l1, s.l2)
    return pen


cdef void start_batch(Team *tm, Batch *bt, Py_ssize_t k, int t, int nt) noexcept nogil:
    """Batch k: its rows in the epoch's order, its dropout counter, and thread t's share of its rows."""
    cdef const Settings *s = tm.s
    cdef Py_ssize_t start = k * s.batch_size
    bt.B = min(s.batch_size, tm.d.n - start)
    bt.rows = &tm.d.order[start]
    bt.step = s.step0 + k
    bt.inv_b = 1.0 / bt.B
    bt.t, bt.nt = t, nt
    bt.r0, bt.r1 = _part(bt.B, t, nt), _part(bt.B, t + 1, nt)
    bt.m, bt.sparse = 0, False


cdef void gather_batch(Team *tm, Batch *bt, const real *X) noexcept nogil:
    """This thread's rows of the batch: y_b = Y[rows];  x_b = X[rows] [* m / keep].

    With input dropout (or no sparse test) x_b is gathered into xbuf and dropped out there.
    Otherwise the sparse test reads the rows straight from X, and compact_input either compacts
    them or, for a dense batch after all, gathers xbuf then.
    """
    cdef const Data *d = tm.d
    cdef const Settings *s = tm.s
    cdef Py_ssize_t n_in = tm.layers[0].n_in, n_out = tm.layers[tm.L - 1].n_out, nr = bt.r1 - bt.r0
    cdef real *xb = <real *>d.xbuf
    _gather(<const real *>d.Y, n_out, bt.rows + bt.r0, nr, <real *>d.ybuf + bt.r0 * n_out)
    bt.src, bt.src_rows = X, bt.rows
    if s.keep_input < 1 or tm.sp.max_cols <= 0:
        _gather(X, n_in, bt.rows + bt.r0, nr, xb + bt.r0 * n_in)
        bt.src, bt.src_rows = xb, tm.sp.identity
        if s.keep_input < 1:
            _core.dropout_range(xb, bt.r0 * n_in, bt.r1 * n_in, s.keep_input, s.seed, bt.step, 0)


cdef void flag_columns(Team *tm, Batch *bt, const real *X) noexcept nogil:
    """flags_t[t]_j = [column j of this thread's input rows has a nonzero]."""
    cdef Py_ssize_t n_in = tm.layers[0].n_in
    _column_flags(<const real *>bt.src, n_in, bt.src_rows + bt.r0, bt.r1 - bt.r0, &tm.flags_t[bt.t * n_in])


cdef void merge_flags(Team *tm, Batch *bt) noexcept nogil:
    """flags_j = OR over the threads' flags_t[u]_j, for this thread's share of the columns j."""
    cdef Py_ssize_t n_in = tm.layers[0].n_in, j
    cdef int u
    cdef unsigned char f
    for j in range(_part(n_in, bt.t, bt.nt), _part(n_in, bt.t + 1, bt.nt)):
        f = 0
        for u in range(bt.nt):
            f |= tm.flags_t[u * n_in + j]
        tm.sp.flags[j] = f


cdef bint compact_input(Team *tm, Batch *bt, const real *X) noexcept nogil:
    """The first layer's input on the m nonzero columns when they are few; returns whether it took that path.

    Sparse: this thread's rows of xc = x[:, cols] and its share of Wc = W_1[cols, :].  Dense after
    all: xbuf gets this thread's rows, if gather_batch left them in X.
    """
    cdef const Sparse *sp = tm.sp
    cdef Py_ssize_t n_in = tm.layers[0].n_in, n_1 = tm.layers[0].n_out, u, nr = bt.r1 - bt.r0
    cdef int64_t *cols = &tm.cols_t[bt.t * n_in]
    cdef real *Wc = <real *>sp.Wc
    cdef const real *W = <const real *>tm.layers[0].W
    bt.m = _flagged(sp.flags, n_in, cols)  # every thread its own copy
    bt.sparse = 0 < bt.m <= sp.max_cols
    if bt.sparse:
        _compact_rows(<const real *>bt.src, n_in, bt.src_rows + bt.r0, nr, cols, bt.m, <real *>sp.xc + bt.r0 * bt.m)
        for u in range(_part(bt.m, bt.t, bt.nt), _part(bt.m, bt.t + 1, bt.nt)):
            memcpy(&Wc[u * n_1], &W[cols[u] * n_1], n_1 * sizeof(real))
    elif tm.s.keep_input == 1:
        _gather(X, n_in, bt.rows + bt.r0, nr, <real *>tm.d.xbuf + bt.r0 * n_in)
    return bt.sparse


cdef void forward_layer(Team *tm, Batch *bt, const real *X, Py_ssize_t l) noexcept nogil:
    """z_l = a_{l-1} W_l + b_l;  a_l = f_l(z_l) [* m / keep]   (a_0 = x_b, or xc with W_1's rows Wc when sparse).

    By rows: this thread's rows, all columns.  By columns (fwd_cols): every row, this thread's share
    of the columns; the caller puts a barrier before it (it reads every row of a_{l-1}) and before
    the next layer (each row of a_l is whole only when every thread is done).
    """
    cdef const Settings *s = tm.s
    cdef Layer *ly = &tm.layers[l]
    cdef Py_ssize_t n_out = ly.n_out, n_src = ly.n_in, r0 = bt.r0, nr = bt.r1 - bt.r0, c0, c1, i
    cdef const real *src = <real *>tm.d.xbuf if l == 0 else <real *>tm.layers[l - 1].a
    cdef const real *W = <real *>ly.W
    cdef real *z = <real *>ly.z
    cdef real *a = <real *>ly.a
    cdef bint drop = l < tm.L - 1 and s.keep_hidden < 1
    if l == 0 and bt.sparse:  # x_b W_1 = xc Wc
        src, W, n_src = <real *>tm.sp.xc, <real *>tm.sp.Wc, bt.m
    if not ly.fwd_cols:
        _core.linear_forward(src + r0 * n_src, W, <real *>ly.b, z + r0 * n_out, nr, n_src, n_out)
        _core.activate(ly.act, z + r0 * n_out, <real *>ly.alpha, a + r0 * n_out, nr, n_out)
        if drop:
            _core.dropout_range(a, r0 * n_out, bt.r1 * n_out, s.keep_hidden, s.seed, bt.step, l + 1)
        return
    c0, c1 = _part(n_out, bt.t, bt.nt), _part(n_out, bt.t + 1, bt.nt)
    if c1 <= c0:
        return
    for i in range(bt.B):
        memcpy(&z[i * n_out + c0], <real *>ly.b + c0, (c1 - c0) * sizeof(real))
    _core.gemm(c'N', c'N', <int>bt.B, <int>(c1 - c0), <int>n_src, 1, src, <int>n_src, W + c0, <int>n_out, 1,
               z + c0, <int>n_out)
    for i in range(bt.B):  # row by row: the same formula on each row's share of the columns
        _core.activate(ly.act, &z[i * n_out + c0], _row(<real *>ly.alpha, c0, 1), &a[i * n_out + c0], 1, c1 - c0)
        if drop:  # the mask is a function of the flat index: the same whoever draws it
            _core.dropout_range(a, i * n_out + c0, i * n_out + c1, s.keep_hidden, s.seed, bt.step, l + 1)


cdef void loss_and_output_delta(Team *tm, Batch *bt, const real *X) noexcept nogil:
    """This thread's rows: loss_t[t] = sum_b J_b;  correct_t[t] = how many are predicted right;  delta_L = dJ_b/dz_L."""
    cdef const Layer *out = &tm.layers[tm.L - 1]
    cdef Py_ssize_t n_out = out.n_out, i, r0 = bt.r0, nr = bt.r1 - bt.r0
    cdef const real *a = <real *>out.a
    cdef const real *yb = <real *>tm.d.ybuf
    cdef bint single_sigmoid = out.act == _core.SIGMOID and n_out == 1
    cdef int64_t correct = 0
    tm.loss_t[bt.t] = _core.add_loss(tm.s.loss, <real *>out.z + r0 * n_out, a + r0 * n_out, yb + r0 * n_out,
                                     nr, n_out, <double>0)
    if tm.d.labels != NULL:
        for i in range(r0, bt.r1):
            correct += _core.predicted_label(a + i * n_out, n_out, single_sigmoid) == tm.d.labels[bt.rows[i]]
    tm.correct_t[bt.t] = correct
    _core.output_delta(tm.s.loss, out.act, a + r0 * n_out, yb + r0 * n_out, <real *>out.delta + r0 * n_out,
                       nr, n_out)


cdef double batch_loss(Team *tm, Batch *bt) noexcept nogil:
    """J = (1/B) sum_b J_b + R: the threads' partial sums, plus the penalty of the weights this batch ran on.

    Every thread sums the same partials in the same order, so all of them see the same J.
    """
    cdef double total = 0
    cdef int u
    for u in range(bt.nt):
        total += tm.loss_t[u]
    return total * bt.inv_b + tm.pen


cdef void weight_gradients(Team *tm, Batch *bt, const real *X, Py_ssize_t l) noexcept nogil:
    """This thread's rows of dW_l = a_{l-1}^T delta_l / B and its columns of db_l = (1/B) sum_b delta_b.

    The sparse first layer: only the rows of the batch's nonzero columns, into Gc = xc^T delta_1 / B.
    The penalty's gradient is added later, by update_slice's descend.
    """
    cdef Layer *ly = &tm.layers[l]
    cdef Py_ssize_t p0, p1
    cdef const real *a_prev = <real *>tm.d.xbuf if l == 0 else <real *>tm.layers[l - 1].a
    if l == 0 and bt.sparse:
        p0, p1 = _part(bt.m, bt.t, bt.nt), _part(bt.m, bt.t + 1, bt.nt)
        _core.gemm(c'T', c'N', <int>(p1 - p0), <int>ly.n_out, <int>bt.B, <real>bt.inv_b, <real *>tm.sp.xc + p0,
                   <int>bt.m, <real *>ly.delta, <int>ly.n_out, 0, <real *>tm.sp.Gc + p0 * ly.n_out, <int>ly.n_out)
    else:
        p0, p1 = _part(ly.n_in, bt.t, bt.nt), _part(ly.n_in, bt.t + 1, bt.nt)
        _core.gemm(c'T', c'N', <int>(p1 - p0), <int>ly.n_out, <int>bt.B, <real>bt.inv_b, a_prev + p0, <int>ly.n_in,
                   <real *>ly.delta, <int>ly.n_out, 0, <real *>ly.dW + p0 * ly.n_out, <int>ly.n_out)
    _core.column_mean_range(<real *>ly.delta, <real *>ly.db, bt.B, ly.n_out, _part(ly.n_out, bt.t, bt.nt),
                            _part(ly.n_out, bt.t + 1, bt.nt))


cdef void backprop_layer(Team *tm, Batch *bt, const real *X, Py_ssize_t l) noexcept nogil:
    """g_{l-1} = delta_l W_l^T [* m / keep];  delta_{l-1} = f'_{l-1}(z_{l-1}) * g_{l-1}   (l >= 1).

    By rows: this thread's rows.  By columns (bwd_cols): every row, this thread's share of the
    columns (rows of W_l); delta_l is whole after the barrier before (weight_gradients reads it too).
    PReLU's dalpha sums over all rows: train_epoch runs PReLU networks on one thread.
    """
    cdef const Settings *s = tm.s
    cdef Layer *ly = &tm.layers[l]
    cdef Layer *below = &tm.layers[l - 1]
    cdef Py_ssize_t n = ly.n_in, r0 = bt.r0, nr = bt.r1 - bt.r0, p0, p1, i
    cdef real *g = <real *>below.g
    cdef real *z = <real *>below.z
    cdef real *delta = <real *>below.delta
    if not ly.bwd_cols:
        _core.gemm(c'N', c'T', <int>nr, <int>n, <int>ly.n_out, 1, <real *>ly.delta + r0 * ly.n_out, <int>ly.n_out,
                   <real *>ly.W, <int>ly.n_out, 0, g + r0 * n, <int>n)
        if s.keep_hidden < 1:
            _core.dropout_range(g, r0 * n, bt.r1 * n, s.keep_hidden, s.seed, bt.step, l)
        _core.activation_backward(below.act, z + r0 * n, <real *>below.alpha, g + r0 * n, delta + r0 * n,
                                  <real *>below.dalpha, nr, n)
        return
    p0, p1 = _part(n, bt.t, bt.nt), _part(n, bt.t + 1, bt.nt)
    if p1 <= p0:
        return
    _core.gemm(c'N', c'T', <int>bt.B, <int>(p1 - p0), <int>ly.n_out, 1, <real *>ly.delta, <int>ly.n_out,
               <real *>ly.W + p0 * ly.n_out, <int>ly.n_out, 0, g + p0, <int>n)
    for i in range(bt.B):
        if s.keep_hidden < 1:
            _core.dropout_range(g, i * n + p0, i * n + p1, s.keep_hidden, s.seed, bt.step, l)
        _core.activation_backward(below.act, &z[i * n + p0], _row(<real *>below.alpha, p0, 1), &g[i * n + p0],
                                  &delta[i * n + p0], <real *>below.dalpha, 1, p1 - p0)


cdef void update_slice(Team *tm, Batch *bt, const real *X, Py_ssize_t l) noexcept nogil:
    """This thread's rows of W_l and columns of b_l (and alpha_l) step; sq_t, pen_t get their ||g||^2 and penalty.

    W's step is descend (penalty gradient, step, next penalty in one pass).  The sparse first layer:
    plain SGD moves only the rows of the batch's nonzero columns (the others' gradient is exactly 0),
    one descend per run of consecutive rows; with a penalty or momentum every row moves (_descend_rows).
    """
    cdef const Settings *s = tm.s
    cdef Layer *ly = &tm.layers[l]
    cdef real lr = <real>s.lr, mu = <real>s.momentum, l1 = <real>s.l1, l2 = <real>s.l2
    cdef bint plain_sgd = s.l1 == 0 and s.l2 == 0 and s.momentum == 0
    cdef const int64_t *cols = &tm.cols_t[bt.t * tm.layers[0].n_in]  # the first layer's nonzero columns
    cdef real *W = <real *>ly.W
    cdef real *Gc = <real *>tm.sp.Gc
    cdef Py_ssize_t p0, p1, u
    cdef Py_ssize_t c0 = _part(ly.n_out, bt.t, bt.nt), c1 = _part(ly.n_out, bt.t + 1, bt.nt)
    cdef double sq = 0, pen = 0
    if l == 0 and bt.sparse and plain_sgd:  # this thread's share of the rows cols, run by run
        u, p1 = _part(bt.m, bt.t, bt.nt), _part(bt.m, bt.t + 1, bt.nt)
        while u < p1:
            p0, u = u, _run_end(cols, u, p1)
            sq += _core.descend_as(_core.PLAIN_SGD, False, &W[cols[p0] * ly.n_out], &Gc[p0 * ly.n_out], NULL,
                                   (u - p0) * ly.n_out, l1, l2, lr, mu, &pen)
        pen = 0
    elif l == 0 and bt.sparse:
        p0, p1 = _part(ly.n_in, bt.t, bt.nt), _part(ly.n_in, bt.t + 1, bt.nt)
        sq = _descend_rows(W, Gc, <real *>ly.vW, cols, bt.m, p0, p1, ly.n_out, l1, l2, lr, mu, s.nesterov, &pen)
    else:
        p0, p1 = _part(ly.n_in, bt.t, bt.nt), _part(ly.n_in, bt.t + 1, bt.nt)
        sq = _core.descend(W + p0 * ly.n_out, <real *>ly.dW + p0 * ly.n_out, _row(<real *>ly.vW, p0, ly.n_out),
                           (p1 - p0) * ly.n_out, l1, l2, lr, mu, s.nesterov, &pen)
    tm.sq_t[bt.t * tm.L + l] = sq
    tm.pen_t[bt.t * tm.L + l] = pen
    _core.sgd_update(<real *>ly.b + c0, <real *>ly.db + c0, _row(<real *>ly.vb, c0, 1), c1 - c0, lr, mu, s.nesterov)
    if ly.dalpha != NULL:  # PReLU's learned slopes
        _core.sgd_update(<real *>ly.alpha + c0, <real *>ly.dalpha + c0, _row(<real *>ly.valpha, c0, 1), c1 - c0,
                         lr, mu, s.nesterov)


cdef void record_batch(Team *tm, Batch *bt, double loss) noexcept nogil:
    """Thread 0, after the batch: the threads' partials into the epoch's sums; the next batch's penalty."""
    cdef Stats *st = tm.st
    cdef Py_ssize_t l
    cdef int u
    cdef double sq, pen = 0
    for l in range(tm.L):
        sq = 0
        for u in range(bt.nt):
            sq += tm.sq_t[u * tm.L + l]
            pen += tm.pen_t[u * tm.L + l]
        st.grad_norm_sum[l] += sqrt(sq)
    for u in range(bt.nt):
        st.correct += tm.correct_t[u]
    tm.pen = pen
    st.batch_loss[st.n_batches] = loss
    st.loss_sum += loss * bt.B
    st.n_seen += bt.B
    st.n_batches += 1


# --------------------------------------------------------------------------- one thread's epoch

cdef void _epoch_member(Team *tm, const real *X, int t, int nt) noexcept nogil:
    """Thread t's part of one epoch: for batch k with dropout counter step0 + k, the steps of engine.run_epoch.

    A barrier separates a step from the next wherever a thread reads what others wrote; nt = 1 is
    the serial loop.
    """
    cdef Py_ssize_t n_batches = (tm.d.n + tm.s.batch_size - 1) // tm.s.batch_size, k, l
    cdef Batch bt
    cdef double loss
    if t == 0:
        tm.pen = initial_penalty(tm, X)
    barrier()  # the first batch's penalty is written
    for k in range(n_batches):
        start_batch(tm, &bt, k, t, nt)
        gather_batch(tm, &bt, X)
        if tm.sp.max_cols > 0:  # the sparse test: which input columns are nonzero in some row of the batch
            flag_columns(tm, &bt, X)
            barrier()  # every thread's column flags are written
            merge_flags(tm, &bt)
            barrier()  # the batch's column flags are whole
            if compact_input(tm, &bt, X):
                barrier()  # Wc is whole
        for l in range(tm.L):
            if tm.layers[l].fwd_cols or (l > 0 and tm.layers[l - 1].fwd_cols):
                barrier()  # a split by columns reads every row of a_{l-1} and leaves each row of a_l to all
            forward_layer(tm, &bt, X, l)
        loss_and_output_delta(tm, &bt, X)
        barrier()  # the loss partials and delta_L are whole
        loss = batch_loss(tm, &bt)
        if not isfinite(loss):  # checked before anything is updated with it; every thread stops here
            if t == 0:
                tm.st.diverged = True
            break
        for l in range(tm.L - 1, -1, -1):  # top layer first: W_l steps once it has carried the error down
            weight_gradients(tm, &bt, X, l)
            if l > 0:
                backprop_layer(tm, &bt, X, l)
            barrier()  # every thread is done reading W_l (for g), and dW_l, db_l are whole
            update_slice(tm, &bt, X, l)
        barrier()  # every update and partial is written
        if t == 0:
            record_batch(tm, &bt, loss)
        barrier()  # thread 0 has read the partials before anyone overwrites them


cdef void _member_float(void *team, int t, int nt) noexcept nogil:
    _epoch_member(<Team *>team, <const float *>(<Team *>team).d.X, t, nt)


cdef void _member_double(void *team, int t, int nt) noexcept nogil:
    _epoch_member(<Team *>team, <const double *>(<Team *>team).d.X, t, nt)


# --------------------------------------------------------------------------- from the records to the structs

cdef void *_address(object x, object dtype, tuple shape, str what) except? NULL:
    """The data pointer of ``x`` after checking that it is a C-contiguous array of this dtype and shape."""
    if x.dtype != dtype or tuple(x.shape) != shape or not x.flags.c_contiguous:
        raise ValueError(f"train_epoch: {what} must be a C-contiguous {dtype} array of shape {shape}, "
                         f"got {x.dtype} {tuple(x.shape)} (C-contiguous: {x.flags.c_contiguous})")
    if x.size == 0:
        return NULL
    return <void *><size_t>x.ctypes.data


cdef Py_ssize_t _fill_data(Data *d, object data, Py_ssize_t n_in, Py_ssize_t n_out, Py_ssize_t batch_size) except -1:
    """d from an EpochData record; returns the workspace's rows."""
    X, Y, labels, order = data.X, data.Y, data.labels, data.order
    dtype, n_rows, n = X.dtype, X.shape[0], order.shape[0]
    d.X = _address(X, dtype, (n_rows, n_in), "X")
    d.Y = _address(Y, dtype, (n_rows, n_out), "Y")
    d.order = <const int64_t *>_address(order, "int64", (n,), "order")
    d.labels = NULL  # regression: no accuracy
    if labels is not None:
        d.labels = <const int64_t *>_address(labels, "int64", (n_rows,), "labels")
    d.n = n
    if n and (order.min() < 0 or order.max() >= n_rows):
        raise ValueError(f"train_epoch: order holds row numbers outside 0..{n_rows - 1}")
    ws_rows = data.xbuf.shape[0]
    if ws_rows < min(batch_size, n):
        raise ValueError(f"train_epoch: the workspace holds {ws_rows} rows, the batch needs {min(batch_size, n)}")
    d.xbuf = _address(data.xbuf, dtype, (ws_rows, n_in), "workspace x")
    d.ybuf = _address(data.ybuf, dtype, (ws_rows, n_out), "workspace y")
    return ws_rows


cdef int _fill_sparse(Sparse *sp, object sparse, object dtype, Py_ssize_t n_in, Py_ssize_t n_1,
                      Py_ssize_t ws_rows) except -1:
    """sp from a sparse_input.SparseBuffers record (cols and zero_row unused here: each thread keeps its own
    column list, and descend takes a NULL gradient for 0), or the always-dense path (max_cols = 0) for None."""
    sp.max_cols = 0
    sp.identity = NULL
    if sparse is None:
        return 0
    sp.max_cols = sparse.max_cols
    sp.flags = <unsigned char *>_address(sparse.flags, "uint8", (n_in,), "sparse flags")
    sp.xc = _address(sparse.xc, dtype, (ws_rows * n_in,), "sparse xc")
    sp.Wc = _address(sparse.Wc, dtype, (n_in * n_1,), "sparse Wc")
    sp.Gc = _address(sparse.Gc, dtype, (n_in * n_1,), "sparse Gc")
    sp.identity = <const int64_t *>_address(sparse.identity, "int64", (ws_rows,), "sparse identity")
    if ws_rows and (sparse.identity != np.arange(ws_rows)).any():
        raise ValueError("train_epoch: sparse identity must be 0, 1, ..., batch - 1")
    return 0


cdef int _fill_settings(Settings *s, object hyper, int loss, Py_ssize_t batch_size, int64_t step0) except -1:
    """s from fastnn.engine.Hyper and the epoch's loss code, batch size and first dropout counter."""
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
    return 0


cdef int _fill_layer(Layer *ly, object arrays, Py_ssize_t l, Py_ssize_t L, Py_ssize_t n_prev, object dtype,
                     Py_ssize_t ws_rows, bint momentum) except -1:
    """ly from layer l's LayerArrays record (n_prev: the width of the layer below)."""
    act = arrays.act
    ly.act = act
    if not 0 <= act <= _core.SOFTMAX or (act == _core.SOFTMAX and l < L - 1):
        raise ValueError(f"train_epoch: activation code {act} is not supported in layer {l}")
    ly.n_in, ly.n_out = arrays.W.shape[0], arrays.W.shape[1]
    if ly.n_in != n_prev:
        raise ValueError(f"train_epoch: layer {l} takes {ly.n_in} inputs, the layer below gives {n_prev}")
    w_shape, v_shape, buf = (ly.n_in, ly.n_out), (ly.n_out,), (ws_rows, ly.n_out)
    ly.W = _address(arrays.W, dtype, w_shape, f"W[{l}]")
    ly.b = _address(arrays.b, dtype, v_shape, f"b[{l}]")
    ly.dW = _address(arrays.dW, dtype, w_shape, f"dW[{l}]")
    ly.db = _address(arrays.db, dtype, v_shape, f"db[{l}]")
    ly.vW = ly.vb = ly.valpha = NULL  # plain SGD never reads the velocities
    if momentum:
        ly.vW = _address(arrays.vW, dtype, w_shape, f"velocity W[{l}]")
        ly.vb = _address(arrays.vb, dtype, v_shape, f"velocity b[{l}]")
    ly.z = _address(arrays.z, dtype, buf, f"workspace z[{l}]")
    ly.a = _address(arrays.a, dtype, buf, f"workspace a[{l}]")
    ly.delta = _address(arrays.delta, dtype, buf, f"workspace delta[{l}]")
    ly.g = _address(arrays.g, dtype, buf, f"workspace g[{l}]")
    # alpha_j: fixed for LeakyReLU and ELU, learned (with a gradient and a velocity) for PReLU
    parametrised = act == _core.PRELU or act == _core.LEAKY_RELU or act == _core.ELU
    ly.alpha = _address(arrays.alpha, dtype, v_shape if parametrised else (0,), f"alpha[{l}]")
    learned = v_shape if act == _core.PRELU else (0,)
    ly.dalpha = _address(arrays.dalpha, dtype, learned, f"dalpha[{l}]")
    if momentum:
        ly.valpha = _address(arrays.valpha, dtype, learned, f"velocity alpha[{l}]")
    return 0


cdef bint _by_columns(Py_ssize_t width, Py_ssize_t rows_per_thread, int threads, double ratio):
    """Whether a team splits a product (rows_per_thread x width per thread by rows) by its columns instead.

    Split by rows, every thread reads all of W (n_in x width) for its few rows; split by columns, each
    reads a share of W and all the rows.  For wide layers and small batches the second moves less and
    gives the BLAS taller products (both measured: benchmarks/results/results-2026-12-04-dense.md).
    """
    return threads > 1 and ratio > 0 and width >= ratio * rows_per_thread


cdef int _alloc_partials(Team *tm, int threads, Py_ssize_t n_in, Py_ssize_t L) except -1:
    """The per-thread slots of tm for a team of ``threads`` (free them with _free_partials, also after an error)."""
    tm.flags_t = <unsigned char *>malloc(threads * max(n_in, 1) * sizeof(unsigned char))
    tm.cols_t = <int64_t *>malloc(threads * max(n_in, 1) * sizeof(int64_t))
    tm.loss_t = <double *>malloc(threads * sizeof(double))
    tm.correct_t = <int64_t *>malloc(threads * sizeof(int64_t))
    tm.sq_t = <double *>malloc(threads * L * sizeof(double))
    tm.pen_t = <double *>malloc(threads * L * sizeof(double))
    if (tm.flags_t == NULL or tm.cols_t == NULL or tm.loss_t == NULL or tm.correct_t == NULL
            or tm.sq_t == NULL or tm.pen_t == NULL):
        raise MemoryError()
    return 0


cdef void _free_partials(Team *tm) noexcept:
    free(tm.flags_t)
    free(tm.cols_t)
    free(tm.loss_t)
    free(tm.correct_t)
    free(tm.sq_t)
    free(tm.pen_t)


def train_epoch(object data, list layers, object hyper, int loss, Py_ssize_t batch_size, int64_t step0,
                double[::1] grad_norm_sum, double[::1] batch_losses, object sparse=None, int threads=1,
                double column_split=0):
    """One epoch of mini-batch SGD in a single nogil call; returns an EpochTotals record.

    data:   an EpochData record: the training set, int64 labels (or None) and sample order, and the
            workspace's batch buffers for the gathered inputs and targets
    layers: one LayerArrays record per layer: its activation code, parameters, velocities and
            workspace buffers
    hyper:  fastnn.engine.Hyper (lr, momentum, nesterov, l1, l2, keep_input, keep_hidden, seed)
    grad_norm_sum: (n_layers,) float64, incremented by ||dW_l||_F per batch
    batch_losses: (n_batches,) float64, entry k set to batch k's loss (the epoch's loss_sum is their sum
            weighted by the batch sizes); entries from a diverged batch on are left as they were
    sparse: None (always dense) or a SparseBuffers record (fastnn.kernels.sparse_input.buffers's
            buffers and threshold)
    threads: the OpenMP team that runs the epoch (1: this thread alone; more only in an OpenMP build and
            for networks without PReLU).  Each thread calls the BLAS on its own slice of every product,
            so the caller sets the BLAS to one thread for the call (fastnn.kernels.cython_cpu does).
    column_split: a team splits a hidden layer's product by columns instead of rows when the product's
            output is at least this many times as wide as a thread's share of the rows (0: always rows)
    """
    if threads < 1:
        raise ValueError(f"train_epoch: threads={threads} must be at least 1")
    cdef Py_ssize_t L = len(layers), l
    if L == 0:
        raise ValueError("train_epoch: the network has no layers")
    if grad_norm_sum.shape[0] != L:
        raise ValueError(f"train_epoch: grad_norm_sum has {grad_norm_sum.shape[0]} entries for {L} layers")
    if batch_size < 1:
        raise ValueError(f"train_epoch: batch_size={batch_size} must be at least 1")
    n_batches = -(-data.order.shape[0] // batch_size)
    if batch_losses.shape[0] < max(n_batches, 1):
        raise ValueError(f"train_epoch: batch_losses has {batch_losses.shape[0]} entries for {n_batches} batches")
    dtype = data.X.dtype
    if dtype.name not in ("float32", "float64"):
        raise ValueError(f"train_epoch: dtype {dtype} is not supported; use float32 or float64")
    n_in, n_1, n_out = layers[0].W.shape[0], layers[0].W.shape[1], layers[L - 1].W.shape[1]

    cdef Data d
    cdef Sparse sp
    cdef Settings s
    cdef Stats st
    cdef Team tm
    ws_rows = _fill_data(&d, data, n_in, n_out, batch_size)
    _fill_sparse(&sp, sparse, dtype, n_in, n_1, ws_rows)
    _fill_settings(&s, hyper, loss, batch_size, step0)
    st.loss_sum, st.correct, st.n_seen, st.n_batches, st.diverged = 0, 0, 0, 0, False
    st.grad_norm_sum = &grad_norm_sum[0]
    st.batch_loss = &batch_losses[0]

    cdef Layer *c_layers = <Layer *>malloc(L * sizeof(Layer))
    cdef member_fn member = _member_float if dtype.name == "float32" else _member_double
    memset(&tm, 0, sizeof(Team))  # the partials' pointers NULL until allocated: free(NULL) is safe
    try:
        if c_layers == NULL:
            raise MemoryError()
        _alloc_partials(&tm, threads, n_in, L)
        n_prev = n_in
        for l in range(L):
            _fill_layer(&c_layers[l], layers[l], l, L, n_prev, dtype, ws_rows, hyper.momentum != 0)
            n_prev = c_layers[l].n_out
            if c_layers[l].act == _core.PRELU:  # its dalpha is a sum over all rows: not split across threads
                threads = 1
        rows_per_thread = -(-min(batch_size, d.n) // threads)
        for l in range(L):  # the output layer stays split by rows: softmax and the loss need whole rows
            c_layers[l].fwd_cols = _by_columns(c_layers[l].n_out, rows_per_thread, threads, column_split) and l < L - 1
            c_layers[l].bwd_cols = _by_columns(c_layers[l].n_in, rows_per_thread, threads, column_split) and l > 0
        tm.d, tm.sp, tm.layers, tm.L, tm.s, tm.st = &d, &sp, c_layers, L, &s, &st
        with nogil:
            run_team(threads, member, &tm)
    finally:
        free(c_layers)
        _free_partials(&tm)
    return EpochTotals(st.loss_sum, st.correct, st.n_seen, st.n_batches, st.diverged)


def set_blas(size_t sgemm_address, size_t dgemm_address):
    """Route this module's matrix products to these CBLAS (ILP64) functions; (0, 0): SciPy's BLAS."""
    _core.set_blas_pointers(sgemm_address, dgemm_address)
