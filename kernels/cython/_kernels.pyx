# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The kernel contract (kernels/README.md) as compiled Cython, one function per kernel.

Each kernel takes typed memoryviews of float32 or float64 (one fused type: a call's arrays share a
dtype), checks the shapes (a wrong shape would write out of bounds), then releases the GIL and runs
the shared nogil formulas of ``_core.pxd``.  Inputs arrive C-contiguous: the Python wrappers in
``fastnn.kernels.cython_cpu`` copy strided views first.  The hand-written, cache-blocked
``matmul_blocked`` is the one kernel that runs on several threads (OpenMP ``prange``), and
``set_num_threads`` sizes its pool.
"""
from cython.parallel cimport prange
from libc.stdint cimport int64_t, uint64_t

cimport _core
from _core cimport real

# Bump when a kernel's signature or meaning changes: cython_cpu refuses a stale build.
ABI_VERSION = 3

# The constants compiled in (from _core.pxd), for cython_cpu to check against kernels/codes.py.
CODES = {
    "IDENTITY": _core.IDENTITY, "SIGMOID": _core.SIGMOID, "TANH": _core.TANH, "RELU": _core.RELU,
    "LEAKY_RELU": _core.LEAKY_RELU, "ELU": _core.ELU, "PRELU": _core.PRELU, "SOFTMAX": _core.SOFTMAX,
    "MSE": _core.MSE, "CROSS_ENTROPY": _core.CROSS_ENTROPY,
    "BINARY_CROSS_ENTROPY": _core.BINARY_CROSS_ENTROPY,
    "GOLDEN": _core.GOLDEN,
}

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define FNN_HAVE_OPENMP 1
    static void fnn_set_num_threads(int n) { omp_set_num_threads(n); }
    static int fnn_get_num_threads(void) { return omp_get_max_threads(); }
    #else
    #define FNN_HAVE_OPENMP 0
    static void fnn_set_num_threads(int n) { (void)n; }
    static int fnn_get_num_threads(void) { return 1; }
    #endif
    """
    const int FNN_HAVE_OPENMP
    void fnn_set_num_threads(int n) nogil
    int fnn_get_num_threads() nogil

#: True when this build has OpenMP: matmul_blocked then runs its row blocks on several threads.
HAVE_OPENMP = bool(FNN_HAVE_OPENMP)


def set_num_threads(int n):
    """Threads of the OpenMP pool (matmul_blocked); a no-op in a build without OpenMP."""
    if n < 1:
        raise ValueError(f"n={n}: the number of threads must be at least 1")
    fnn_set_num_threads(n)


def get_num_threads():
    """Threads the OpenMP pool will use (1 in a build without OpenMP)."""
    return fnn_get_num_threads()


# --------------------------------------------------------------------------- shape checks

cdef int _same(str what, Py_ssize_t got, Py_ssize_t expected) except -1:
    if got != expected:
        raise ValueError(f"{what} is {got}, expected {expected}")
    return 0


cdef inline real *_p2(real[:, ::1] x) noexcept nogil:
    return &x[0, 0] if x.shape[0] > 0 and x.shape[1] > 0 else NULL


cdef inline const real *_c2(const real[:, ::1] x) noexcept nogil:
    return &x[0, 0] if x.shape[0] > 0 and x.shape[1] > 0 else NULL


cdef inline real *_p1(real[::1] x) noexcept nogil:
    return &x[0] if x.shape[0] > 0 else NULL


cdef inline const real *_c1(const real[::1] x) noexcept nogil:
    return &x[0] if x.shape[0] > 0 else NULL


cdef int _check_alpha(int act, const real[::1] alpha, Py_ssize_t n, str what) except -1:
    if act == _core.PRELU or act == _core.LEAKY_RELU or act == _core.ELU:
        _same(f"{what}: alpha has length", alpha.shape[0], n)
    return 0


cdef int _check_act(int act, bint softmax_ok) except -1:
    if act < 0 or act > _core.SOFTMAX or (act == _core.SOFTMAX and not softmax_ok):
        raise ValueError(f"activation code {act} is not supported here")
    return 0


# --------------------------------------------------------------------------- matrix products

def matmul_blas(const real[:, ::1] A, const real[:, ::1] B, real[:, ::1] C):
    """C = A B   (one sgemm/dgemm call of the BLAS kernels/blas.py chose)."""
    _same("matmul: B's rows", B.shape[0], A.shape[1])
    _same("matmul: C's rows", C.shape[0], A.shape[0])
    _same("matmul: C's columns", C.shape[1], B.shape[1])
    cdef int m = <int>A.shape[0], k = <int>A.shape[1], n = <int>B.shape[1]
    with nogil:
        _core.gemm(c'N', c'N', m, n, k, 1, _c2(A), k, _c2(B), n, 0, _p2(C), n)


# The hand-written matmul: the loop order and blocking every fast GEMM starts from.
#   threads - OpenMP hands out blocks of MB rows of C (prange), so threads never write the same C;
#   cache   - within a block, depth goes KB at a time: the KB x n slab of B that the block's rows
#             all sweep over stays in L2 (256 x 256 floats = 256 KiB), and the block's MB rows of
#             C stay in cache while the slab passes;
#   loops   - i-p-j order: C[i, :] += A[i, p] B[p, :] runs along contiguous rows of B and C, so
#             the innermost loop is a vectorisable a*x + y (the i-j-p "dot product" order would
#             stride down B's columns).
# The compiler vectorises that loop as wide as the build allows (SSE2 in the portable build, AVX2 +
# FMA in the _avx2 one, more with FASTNN_MARCH_NATIVE=1).  BLAS adds register blocking and packing on
# top and stays several times faster: that gap is what the comparison shows (``fastnn bench
# --no-epochs`` times matmul both ways).
cdef enum:
    MB = 64
    KB = 256


cdef void _matmul_blocked(const real *A, const real *B, real *C, Py_ssize_t m, Py_ssize_t k,
                          Py_ssize_t n) noexcept nogil:
    """C = A B block by block: C[I, :] += A[I, P] B[P, :], blocks of rows I on OpenMP threads."""
    cdef Py_ssize_t bi, pb, i, p, j, i0, i1, p0, p1
    cdef Py_ssize_t n_blocks = (m + MB - 1) // MB
    cdef real a_ip
    cdef real *c_row
    cdef const real *b_row
    for bi in prange(n_blocks, schedule="static"):
        i0 = bi * MB
        i1 = min(i0 + MB, m)
        for i in range(i0 * n, i1 * n):
            C[i] = 0
        for pb in range((k + KB - 1) // KB):
            p0 = pb * KB
            p1 = min(p0 + KB, k)
            for i in range(i0, i1):
                c_row = C + i * n
                for p in range(p0, p1):
                    a_ip = A[i * k + p]
                    b_row = B + p * n
                    for j in range(n):  # contiguous: the compiler vectorises this loop
                        c_row[j] += a_ip * b_row[j]


def matmul_blocked(const real[:, ::1] A, const real[:, ::1] B, real[:, ::1] C):
    """C = A B   (hand-written and cache-blocked, OpenMP threads over row blocks: for teaching and comparison)."""
    _same("matmul: B's rows", B.shape[0], A.shape[1])
    _same("matmul: C's rows", C.shape[0], A.shape[0])
    _same("matmul: C's columns", C.shape[1], B.shape[1])
    if C.shape[0] == 0 or C.shape[1] == 0:
        return
    if A.shape[1] == 0:
        C[:, :] = 0
        return
    with nogil:
        _matmul_blocked(_c2(A), _c2(B), _p2(C), A.shape[0], A.shape[1], B.shape[1])


# --------------------------------------------------------------------------- forward pass

def linear_forward(const real[:, ::1] a_prev, const real[:, ::1] W, const real[::1] b, real[:, ::1] z):
    """z = a_prev W + b."""
    _same("linear_forward: W's rows", W.shape[0], a_prev.shape[1])
    _same("linear_forward: b's length", b.shape[0], W.shape[1])
    _same("linear_forward: z's rows", z.shape[0], a_prev.shape[0])
    _same("linear_forward: z's columns", z.shape[1], W.shape[1])
    if z.shape[0] == 0 or z.shape[1] == 0:
        return
    with nogil:
        _core.linear_forward(_c2(a_prev), _c2(W), _c1(b), _p2(z), z.shape[0], W.shape[0], W.shape[1])


def activate(int act, const real[:, ::1] z, const real[::1] alpha, real[:, ::1] a):
    """a = f(z)   (softmax per row, shifted by the row max)."""
    _check_act(act, True)
    _same("activate: a's rows", a.shape[0], z.shape[0])
    _same("activate: a's columns", a.shape[1], z.shape[1])
    _check_alpha(act, alpha, z.shape[1], "activate")
    if z.shape[1] == 0:
        return
    with nogil:
        _core.activate(act, _c2(z), _c1(alpha), _p2(a), z.shape[0], z.shape[1])


def activation_derivative(int act, const real[:, ::1] z, const real[::1] alpha, real[:, ::1] d):
    """d = f'(z)."""
    _check_act(act, False)
    _same("activation_derivative: d's rows", d.shape[0], z.shape[0])
    _same("activation_derivative: d's columns", d.shape[1], z.shape[1])
    _check_alpha(act, alpha, z.shape[1], "activation_derivative")
    if z.shape[1] == 0:
        return
    d[:, :] = 1
    with nogil:
        _core.times_derivative(act, _c2(z), _c1(alpha), _p2(d), _p2(d), z.shape[0], z.shape[1])


# --------------------------------------------------------------------------- loss and output delta

cdef int _check_loss(int loss) except -1:
    if loss not in (_core.MSE, _core.CROSS_ENTROPY, _core.BINARY_CROSS_ENTROPY):
        raise ValueError(f"unknown loss code {loss}")
    return 0


def loss_value(int loss, int act, const real[:, ::1] z, const real[:, ::1] a, const real[:, ::1] y):
    """J = (1/B) sum_b J_b   (summed in long double, returned as float64; logs from z so they never see log 0)."""
    _check_loss(loss)
    _same("loss_value: a's rows", a.shape[0], z.shape[0])
    _same("loss_value: a's columns", a.shape[1], z.shape[1])
    _same("loss_value: y's rows", y.shape[0], z.shape[0])
    _same("loss_value: y's columns", y.shape[1], z.shape[1])
    if z.shape[0] == 0 or z.shape[1] == 0:
        return 0.0
    cdef long double total = 0
    with nogil:  # extended precision where C has it: J is then rounded once, to float64
        total = _core.add_loss(loss, _c2(z), _c2(a), _c2(y), z.shape[0], z.shape[1], total)
    return <double>(total / z.shape[0])


def output_delta(int loss, int act, const real[:, ::1] a, const real[:, ::1] y, real[:, ::1] delta):
    """delta_L = dJ_b/dz_L   (a - y for softmax+CE and sigmoid+BCE; MSE through f')."""
    _check_loss(loss)
    if loss == _core.MSE and act not in (_core.IDENTITY, _core.SIGMOID, _core.SOFTMAX):
        raise ValueError(f"output activation code {act} is not supported")
    _same("output_delta: y's rows", y.shape[0], a.shape[0])
    _same("output_delta: y's columns", y.shape[1], a.shape[1])
    _same("output_delta: delta's rows", delta.shape[0], a.shape[0])
    _same("output_delta: delta's columns", delta.shape[1], a.shape[1])
    if a.shape[1] == 0:
        return
    with nogil:
        _core.output_delta(loss, act, _c2(a), _c2(y), _p2(delta), a.shape[0], a.shape[1])


# --------------------------------------------------------------------------- backward pass

def backprop_error(const real[:, ::1] delta_next, const real[:, ::1] W_next, real[:, ::1] g):
    """g = delta_next W_next^T."""
    _same("backprop_error: W_next's columns", W_next.shape[1], delta_next.shape[1])
    _same("backprop_error: g's rows", g.shape[0], delta_next.shape[0])
    _same("backprop_error: g's columns", g.shape[1], W_next.shape[0])
    cdef int B = <int>delta_next.shape[0], n = <int>W_next.shape[0], n_next = <int>W_next.shape[1]
    with nogil:
        _core.gemm(c'N', c'T', B, n, n_next, 1, _c2(delta_next), n_next, _c2(W_next), n_next, 0, _p2(g), n)


def activation_backward(int act, const real[:, ::1] z, const real[::1] alpha, const real[:, ::1] g,
                        real[:, ::1] delta, real[::1] dalpha):
    """delta = f'(z) * g;  PReLU: dalpha_j = (1/B) sum_b g_bj min(z_bj, 0)."""
    _check_act(act, False)
    _same("activation_backward: g's rows", g.shape[0], z.shape[0])
    _same("activation_backward: g's columns", g.shape[1], z.shape[1])
    _same("activation_backward: delta's rows", delta.shape[0], z.shape[0])
    _same("activation_backward: delta's columns", delta.shape[1], z.shape[1])
    _check_alpha(act, alpha, z.shape[1], "activation_backward")
    if act == _core.PRELU:
        _same("activation_backward: dalpha has length", dalpha.shape[0], z.shape[1])
    if z.shape[1] == 0:
        return
    with nogil:
        _core.activation_backward(act, _c2(z), _c1(alpha), _c2(g), _p2(delta), _p1(dalpha),
                                  z.shape[0], z.shape[1])


def propagate_delta(const real[:, ::1] delta_next, const real[:, ::1] W_next, const real[:, ::1] z, int act,
                    const real[::1] alpha, real[:, ::1] delta, real[::1] dalpha):
    """delta = f'(z) * (delta_next W_next^T)   (the product lands in delta, then f' scales it in place)."""
    _check_act(act, False)
    _same("propagate_delta: z's columns", z.shape[1], W_next.shape[0])
    _same("propagate_delta: z's rows", z.shape[0], delta_next.shape[0])
    _same("propagate_delta: delta's rows", delta.shape[0], z.shape[0])
    _same("propagate_delta: delta's columns", delta.shape[1], z.shape[1])
    _check_alpha(act, alpha, z.shape[1], "propagate_delta")
    if act == _core.PRELU:
        _same("propagate_delta: dalpha has length", dalpha.shape[0], z.shape[1])
    backprop_error(delta_next, W_next, delta)
    if z.shape[1] == 0:
        return
    with nogil:
        _core.activation_backward(act, _c2(z), _c1(alpha), _p2(delta), _p2(delta), _p1(dalpha),
                                  z.shape[0], z.shape[1])


def param_grads(const real[:, ::1] a_prev, const real[:, ::1] delta, const real[:, ::1] W, double l1,
                double l2, real[:, ::1] dW, real[::1] db):
    """dW = a_prev^T delta / B + l2 W + l1 sign(W);  db = (1/B) sum_b delta_b."""
    _same("param_grads: delta's rows", delta.shape[0], a_prev.shape[0])
    _same("param_grads: W's rows", W.shape[0], a_prev.shape[1])
    _same("param_grads: W's columns", W.shape[1], delta.shape[1])
    _same("param_grads: dW's rows", dW.shape[0], W.shape[0])
    _same("param_grads: dW's columns", dW.shape[1], W.shape[1])
    _same("param_grads: db's length", db.shape[0], W.shape[1])
    cdef int B = <int>a_prev.shape[0], n_in = <int>W.shape[0], n_out = <int>W.shape[1]
    if B == 0:
        raise ValueError("param_grads needs at least one sample")
    if n_in == 0 or n_out == 0:
        return
    with nogil:
        _core.gemm(c'T', c'N', n_in, n_out, B, <real>(1.0 / B), _c2(a_prev), n_in, _c2(delta), n_out, 0,
                   _p2(dW), n_out)
        _core.regularise(_p2(dW), _c2(W), <Py_ssize_t>n_in * n_out, <real>l1, <real>l2)
        _core.column_mean(_c2(delta), _p1(db), B, n_out)


def penalty(const real[:, ::1] W, double l1, double l2):
    """R = l2/2 ||W||^2 + l1 ||W||_1."""
    if W.shape[0] == 0 or W.shape[1] == 0:
        return 0.0
    cdef double r
    with nogil:
        r = _core.penalty(_c2(W), W.shape[0] * W.shape[1], l1, l2)
    return r


def sgd_update(real[::1] W, const real[::1] dW, real[::1] v, double lr, double momentum, bint nesterov):
    """v <- mu v - lr dW;  W <- W + v   (Nesterov: W <- W + mu v - lr dW; mu = 0: W <- W - lr dW, v untouched)."""
    _same("sgd_update: dW's size", dW.shape[0], W.shape[0])
    if momentum != 0:
        _same("sgd_update: v's size", v.shape[0], W.shape[0])
    if W.shape[0] == 0:
        return
    with nogil:
        _core.sgd_update(_p1(W), _c1(dW), _p1(v), W.shape[0], <real>lr, <real>momentum, nesterov)


# --------------------------------------------------------------------------- dropout

def dropout(real[::1] x, double keep, uint64_t seed, int64_t step, int64_t layer):
    """x <- x m / keep   (inverted dropout in place; m from the counter-based SplitMix64 hash, row-major index)."""
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep={keep} must be in (0, 1]")
    if x.shape[0] == 0:
        return
    with nogil:
        _core.dropout(_p1(x), x.shape[0], keep, seed, step, layer)


def dropout_key(uint64_t seed, int64_t step, int64_t layer):
    """k = mix(mix(mix(seed + G) + (step+1) G) + (layer+1) G)   (exposed for the tests)."""
    return _core.dropout_key(seed, step, layer)


def set_blas(size_t sgemm_address, size_t dgemm_address):
    """Route this module's matrix products to these CBLAS (ILP64) functions; (0, 0): SciPy's BLAS."""
    _core.set_blas_pointers(sgemm_address, dgemm_address)
