# cython: language_level=3
"""The formulas every Cython kernel shares, as nogil inline functions on raw C-contiguous buffers.

Each formula is written once, here: the scalar ones (f and f', the sigmoid's slope, the penalty's
gradient, one SGD step, one round of the dropout hash, a row's max, softmax and predicted label),
row-major GEMM through BLAS, and the elementwise loops of backpropagation built from them.  Both
modules cimport them: ``_kernels.pyx`` (the contract, kernel by kernel) and ``_epoch.pyx`` (a whole
epoch in one nogil call), so the step-by-step path and the fused path run the same code and cannot
drift apart.  GCC inlines the small functions with their constant arguments (setup.py's
INLINE_FLAGS), so each loop compiles to its formula alone.

Notation as in kernels/README.md: row vectors, batch first; a (B, n) buffer is B*n values, row by row.
Every function here runs on the calling thread.  Threads are the caller's business: the fused epoch
(``_epoch.pyx``) runs an OpenMP team whose threads call these on their own rows and parameter slices
(kernels/README.md, "The fused epochs' thread team"), and ``_kernels.pyx``'s ``matmul_blocked`` its
own ``prange``.
"""
from libc.math cimport exp, expl, fabs, fabsf, log, log1p, log1pl, logl
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcpy
from scipy.linalg.cython_blas cimport dgemm, sgemm

ctypedef fused real:
    float
    double

# The codes of kernels/codes.py, the one table.  C needs them at compile time, so they are repeated
# here, and fastnn.kernels.cython_cpu refuses to load if the two ever disagree (see CODES there).
cdef enum:
    IDENTITY = 0
    SIGMOID = 1
    TANH = 2
    RELU = 3
    LEAKY_RELU = 4
    ELU = 5
    PRELU = 6
    SOFTMAX = 7
    MSE = 0
    CROSS_ENTROPY = 1
    BINARY_CROSS_ENTROPY = 2

cdef extern from *:
    """
    /* SplitMix64 (Steele, Lea & Flood 2014): the golden-ratio increment and the finaliser's multipliers */
    #define FNN_GOLDEN ((uint64_t)0x9E3779B97F4A7C15ULL)
    #define FNN_MIX1 ((uint64_t)0xBF58476D1CE4E5B9ULL)
    #define FNN_MIX2 ((uint64_t)0x94D049BB133111EBULL)
    #define FNN_TWO_M53 (1.0 / 9007199254740992.0)
    """
    const uint64_t GOLDEN "FNN_GOLDEN"
    const uint64_t MIX1 "FNN_MIX1"
    const uint64_t MIX2 "FNN_MIX2"
    const double TWO_M53 "FNN_TWO_M53"


# --------------------------------------------------------------------------- vectorisable e^x
# e^x, e^x - 1, tanh and the sigmoid in arithmetic, bit operations and selects, float and double, so
# that the loops below vectorise: libm's exp/tanh are one call per element, which keeps a loop scalar,
# and a tanh layer then loses to NumPy's SIMD np.tanh (benchmarks/experiments/activations.py --acts tanh
# times each backend's epoch per activation).  The same algorithms and constants as kernels/vecmath.py
# (the Numba backend), whose docstring explains them and their accuracy: x = n ln2 + r by "magic
# number" rounding, a polynomial for e^r - 1 - r, 2^n built in the exponent bits.  The C compiler must
# not reassociate (no -ffast-math: setup.py): (t + M) - M is the rounding, and the hi + lo sums of the
# double versions are exact only as written.

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    #include <math.h>

    static inline float fnn_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
    static inline uint32_t fnn_u32(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

    #define FNN_HI32 88.3762626647949f
    #define FNN_LO32 (-87.3365447504019f)

    /* q with e^x = 2^n (1 + q); *scale = 2^n.  x is clamped first (NaN passes through). */
    static inline float fnn_expq_f(float x, float *scale) {
        x = x > FNN_HI32 ? FNN_HI32 : x;
        x = x < FNN_LO32 ? FNN_LO32 : x;
        float t = x * 1.44269504088896341f + 12582912.0f;  /* 1.5 * 2^23: n lands in the low bits */
        float n = t - 12582912.0f;
        float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
        float p = 1.9875691500e-4f;
        p = p * r + 1.3981999507e-3f;
        p = p * r + 8.3334519073e-3f;
        p = p * r + 4.1665795894e-2f;
        p = p * r + 1.6666665459e-1f;
        p = p * r + 5.0000001201e-1f;
        *scale = fnn_f32((fnn_u32(t) + 127u) << 23);
        return p * (r * r) + r;
    }
    static inline float fnn_expf(float x) {
        float s, q = fnn_expq_f(x, &s), y = s + s * q;
        y = x > FNN_HI32 ? INFINITY : y;
        return x < FNN_LO32 ? 0.0f : y;
    }
    static inline float fnn_expm1f(float x) {  /* (2^n - 1) + 2^n q: exact when n = 0 */
        float s, q = fnn_expq_f(x, &s), y = (s - 1.0f) + s * q;
        y = x > FNN_HI32 ? INFINITY : y;
        return x < FNN_LO32 ? -1.0f : y;
    }
    /* tanh x = x + x^3 P(x^2) for |x| < 0.625, else sign(x) (1 - e)/(1 + e) with e = e^-2|x| */
    static inline float fnn_tanhf(float x) {
        float s = x * x, p = -5.70498872745e-3f;
        p = p * s + 2.06390887954e-2f;
        p = p * s + -5.37397155531e-2f;
        p = p * s + 1.33314422036e-1f;
        p = p * s + -3.33332819422e-1f;
        float small = p * s * x + x;
        float scale, q = fnn_expq_f(-2.0f * fabsf(x), &scale), e = scale + scale * q;  /* e <= 1: no selects */
        float big = (1.0f - e) / (1.0f + e);
        big = x > 0.0f ? big : -big;
        return fabsf(x) < 0.625f ? small : big;
    }
    /* s(z) = 1 / (1 + e^-z) through e = e^-|z|: never overflows */
    static inline float fnn_sigmoidf(float z) {
        float e = fnn_expf(-fabsf(z));
        return z >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
    }

    /* double: the same reduction with M = 1.5 * 2^52, n in [-1022, 1023], and the Taylor series of
       e^r - 1 - r to r^13/13!; the sums that cancel are carried as hi + lo (Fast2Sum) and the
       quotients get one correction step, so each result is within about 1 ulp (kernels/vecmath.py) */
    static inline double fnn_f64(uint64_t u) { double f; memcpy(&f, &u, 8); return f; }
    static inline uint64_t fnn_u64(double f) { uint64_t u; memcpy(&u, &f, 8); return u; }

    #define FNN_HI64 709.436139303104
    #define FNN_LO64 (-708.3964185322641)

    /* e^x = 2^n (1 + r + p r^2); returns p, sets *scale = 2^n and *rr = r */
    static inline double fnn_expp_d(double x, double *scale, double *rr) {
        x = x > FNN_HI64 ? FNN_HI64 : x;
        x = x < FNN_LO64 ? FNN_LO64 : x;
        double t = x * 1.4426950408889634 + 6755399441055744.0;
        double n = t - 6755399441055744.0;
        double r = (x - n * 0.693145751953125) - n * 1.4286068203094173e-06;
        double p = 1.6059043836821613e-10;
        p = p * r + 2.08767569878681e-09;
        p = p * r + 2.505210838544172e-08;
        p = p * r + 2.755731922398589e-07;
        p = p * r + 2.7557319223985893e-06;
        p = p * r + 2.48015873015873e-05;
        p = p * r + 0.0001984126984126984;
        p = p * r + 0.001388888888888889;
        p = p * r + 0.008333333333333333;
        p = p * r + 0.041666666666666664;
        p = p * r + 0.16666666666666666;
        p = p * r + 0.5;
        *scale = fnn_f64((fnn_u64(t) + 1023u) << 52);
        *rr = r;
        return p;
    }
    static inline double fnn_exp_d(double x) {
        double s, r, p = fnn_expp_d(x, &s, &r), y = s * (p * (r * r) + r) + s;
        y = x > FNN_HI64 ? INFINITY : y;
        return x < FNN_LO64 ? 0.0 : y;
    }
    /* e^x - 1 = a + *a_lo + *b, |b| <= |a|: a + a_lo = (2^n - 1) + 2^n r exactly, b = 2^n p r^2 */
    static inline double fnn_expm1_terms_d(double x, double *a_lo, double *b) {
        double s, r, p = fnn_expp_d(x, &s, &r);
        double sm1 = s - 1.0, sr = s * r;  /* both exact */
        double a = sm1 + sr;
        *a_lo = sr - (a - sm1);
        *b = (s * p) * (r * r);
        return a;
    }
    static inline double fnn_expm1_d(double x) {
        double a_lo, b, a = fnn_expm1_terms_d(x, &a_lo, &b);
        double y = a + (b + a_lo);
        y = x > FNN_HI64 ? INFINITY : y;
        return x < FNN_LO64 ? -1.0 : y;
    }
    /* tanh x = -m / (2 + m), m = e^-2|x| - 1, with the sign of x */
    static inline double fnn_tanh_d(double x) {
        double a_lo, b, a = fnn_expm1_terms_d(-2.0 * fabs(x), &a_lo, &b);
        double m = a + b, m_lo = (b - (m - a)) + a_lo;
        double d = 2.0 + m, d_lo = (m - (d - 2.0)) + m_lo;
        double inv = 1.0 / d, t = -m * inv;
        double rem = -m - t * d;  /* exact with a fused multiply-add */
        t = t + (rem - m_lo - t * d_lo) * inv;  /* |x| > 354: u clamps, t = 1 exactly */
        return x >= 0.0 ? t : -t;
    }
    static inline double fnn_sigmoid_d(double z) {
        double e = fnn_exp_d(-fabs(z)), num = z >= 0.0 ? 1.0 : e;
        double d = 1.0 + e, d_lo = e - (d - 1.0);
        double inv = 1.0 / d, s = num * inv;
        double rem = num - s * d;
        return s + (rem - s * d_lo) * inv;
    }
    """
    float fnn_expf(float x) noexcept nogil
    float fnn_expm1f(float x) noexcept nogil
    float fnn_tanhf(float x) noexcept nogil
    float fnn_sigmoidf(float z) noexcept nogil
    double fnn_exp_d(double x) noexcept nogil
    double fnn_expm1_d(double x) noexcept nogil
    double fnn_tanh_d(double x) noexcept nogil
    double fnn_sigmoid_d(double z) noexcept nogil


# --------------------------------------------------------------------------- scalar formulas

cdef inline real _exp(real x) noexcept nogil:
    """e^x in the dtype (vectorisable, above)."""
    if real is float:
        return fnn_expf(x)
    else:
        return fnn_exp_d(x)


cdef inline real sigmoid(real z) noexcept nogil:
    """s(z) = 1 / (1 + e^-z), through e^-|z| so that it never overflows."""
    if real is float:
        return fnn_sigmoidf(z)  # vectorisable (above)
    else:
        return fnn_sigmoid_d(z)


cdef inline real sigmoid_slope(real s) noexcept nogil:
    """s'(z) = s (1 - s), from the sigmoid's value s = s(z)."""
    return s * (1 - s)


cdef inline real f(int act, real z, real alpha) noexcept nogil:
    """a = f(z) for one element (alpha: this unit's LeakyReLU / PReLU slope or ELU alpha; NaN stays NaN)."""
    if act == RELU:
        return z if z > 0 else (z if z != z else 0)
    if act == SIGMOID:
        return sigmoid(z)
    if act == TANH:
        if real is float:
            return fnn_tanhf(z)
        else:
            return fnn_tanh_d(z)
    if act == LEAKY_RELU:
        return z if z > 0 else alpha * z
    if act == ELU:
        if z > 0:
            return z
        if real is float:
            return alpha * fnn_expm1f(z)
        else:
            return alpha * fnn_expm1_d(z)
    if act == PRELU:
        return z if z > 0 else alpha * z
    return z  # IDENTITY


cdef inline real df(int act, real z, real alpha) noexcept nogil:
    """f'(z) for one element."""
    cdef real s
    if act == RELU:
        return 1 if z > 0 else 0
    if act == SIGMOID:
        return sigmoid_slope(sigmoid(z))
    if act == TANH:
        s = f(TANH, z, alpha)
        return 1 - s * s
    if act == LEAKY_RELU:
        return 1 if z > 0 else alpha
    if act == ELU:
        return 1 if z > 0 else alpha * _exp(z)
    if act == PRELU:
        return 1 if z > 0 else alpha
    return 1  # IDENTITY


# --------------------------------------------------------------------------- matrix products

# Which BLAS: SciPy's (cython_blas, LP64) unless fastnn.kernels.blas found a faster CBLAS with 64-bit
# integers (NumPy's bundled OpenBLAS) and set these pointers through set_blas() in each module.
cdef extern from *:
    """
    #include <stdint.h>
    typedef void (*fastnn_cblas_sgemm_t)(int, int, int, int64_t, int64_t, int64_t, float, const float *,
                                         int64_t, const float *, int64_t, float, float *, int64_t);
    typedef void (*fastnn_cblas_dgemm_t)(int, int, int, int64_t, int64_t, int64_t, double, const double *,
                                         int64_t, const double *, int64_t, double, double *, int64_t);
    static fastnn_cblas_sgemm_t fastnn_cblas_sgemm = 0;
    static fastnn_cblas_dgemm_t fastnn_cblas_dgemm = 0;
    """
    ctypedef void (*fastnn_cblas_sgemm_t)(int, int, int, int64_t, int64_t, int64_t, float, const float *,
                                          int64_t, const float *, int64_t, float, float *, int64_t) noexcept nogil
    ctypedef void (*fastnn_cblas_dgemm_t)(int, int, int, int64_t, int64_t, int64_t, double, const double *,
                                          int64_t, const double *, int64_t, double, double *, int64_t) noexcept nogil
    fastnn_cblas_sgemm_t fastnn_cblas_sgemm
    fastnn_cblas_dgemm_t fastnn_cblas_dgemm

cdef enum:  # CBLAS's constants
    CBLAS_ROW_MAJOR = 101
    CBLAS_NO_TRANS = 111
    CBLAS_TRANS = 112


cdef inline void set_blas_pointers(size_t sgemm_address, size_t dgemm_address) noexcept:
    """Route gemm() to these CBLAS functions (0, 0: back to SciPy's BLAS)."""
    global fastnn_cblas_sgemm, fastnn_cblas_dgemm
    fastnn_cblas_sgemm = <fastnn_cblas_sgemm_t>sgemm_address
    fastnn_cblas_dgemm = <fastnn_cblas_dgemm_t>dgemm_address

cdef inline void gemm(char ta, char tb, int M, int N, int K, real alpha, const real *A, int lda,
                      const real *B, int ldb, real beta, real *C, int ldc) noexcept nogil:
    """C = alpha op(A) op(B) + beta C, row-major (M x N): column-major BLAS computes C^T = op(B)^T op(A)^T.

    A row-major matrix is its own transpose read column-major, so swapping the operands (and M, N)
    turns the row-major product into BLAS's column-major one, with the same transpose flags.
    """
    cdef Py_ssize_t i
    if M <= 0 or N <= 0:
        return
    if K <= 0:  # an empty sum: BLAS would reject lda = 0
        for i in range(<Py_ssize_t>M * N):
            C[i] = 0 if beta == 0 else beta * C[i]
        return
    cdef int cblas_ta = CBLAS_TRANS if (ta == c'T' or ta == c't') else CBLAS_NO_TRANS
    cdef int cblas_tb = CBLAS_TRANS if (tb == c'T' or tb == c't') else CBLAS_NO_TRANS
    if real is float:
        if fastnn_cblas_sgemm != NULL:
            fastnn_cblas_sgemm(CBLAS_ROW_MAJOR, cblas_ta, cblas_tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)
        else:
            sgemm(&tb, &ta, &N, &M, &K, &alpha, <float *>B, &ldb, <float *>A, &lda, &beta, C, &ldc)
    else:
        if fastnn_cblas_dgemm != NULL:
            fastnn_cblas_dgemm(CBLAS_ROW_MAJOR, cblas_ta, cblas_tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)
        else:
            dgemm(&tb, &ta, &N, &M, &K, &alpha, <double *>B, &ldb, <double *>A, &lda, &beta, C, &ldc)


cdef inline void linear_forward(const real *a_prev, const real *W, const real *b, real *z,
                                Py_ssize_t B, Py_ssize_t n_in, Py_ssize_t n_out) noexcept nogil:
    """z = a_prev W + b   (b copied into every row first, then one GEMM with beta = 1 adds the product)."""
    cdef Py_ssize_t i
    for i in range(B):
        memcpy(&z[i * n_out], b, n_out * sizeof(real))
    gemm(c'N', c'N', <int>B, <int>n_out, <int>n_in, 1, a_prev, <int>n_in, W, <int>n_out, 1, z, <int>n_out)


# --------------------------------------------------------------------------- activations
# The code is tested once per call, outside the loops; each loop calls f or df with a constant
# code, so after inlining the compiler folds the branch away and the loop body is one formula.

cdef inline void _map_f(int act, const real *z, const real *alpha, real *a, Py_ssize_t B, Py_ssize_t n) noexcept nogil:
    """a = f(z) elementwise, for a constant activation code."""
    cdef Py_ssize_t i, j
    if act == PRELU or act == LEAKY_RELU or act == ELU:  # a parameter per unit, alpha_j
        for i in range(B):
            for j in range(n):
                a[i * n + j] = f(act, z[i * n + j], alpha[j])
    else:
        for i in range(B * n):
            a[i] = f(act, z[i], <real>0)


cdef inline real row_max(const real *z, Py_ssize_t n) noexcept nogil:
    """max_j z_j of one row (n >= 1): the shift that keeps softmax's and cross-entropy's e^z finite."""
    cdef Py_ssize_t j
    cdef real m = z[0]
    for j in range(1, n):
        if z[j] > m:
            m = z[j]
    return m


cdef inline void softmax_row(const real *z, real *a, Py_ssize_t n) noexcept nogil:
    """a_j = e^(z_j - max z) / sum_k e^(z_k - max z), one row."""
    cdef Py_ssize_t j
    cdef real m = row_max(z, n), s = 0
    for j in range(n):
        a[j] = _exp(z[j] - m)
        s += a[j]
    for j in range(n):
        a[j] = a[j] / s


cdef inline void softmax(const real *z, real *a, Py_ssize_t B, Py_ssize_t n) noexcept nogil:
    """softmax_row on each of the B rows."""
    cdef Py_ssize_t i
    for i in range(B):
        softmax_row(&z[i * n], &a[i * n], n)


cdef inline void activate(int act, const real *z, const real *alpha, real *a, Py_ssize_t B, Py_ssize_t n) noexcept nogil:
    """a = f(z)   (softmax per row, shifted by the row max)."""
    if act == RELU:
        _map_f(RELU, z, alpha, a, B, n)
    elif act == SIGMOID:
        _map_f(SIGMOID, z, alpha, a, B, n)
    elif act == TANH:
        _map_f(TANH, z, alpha, a, B, n)
    elif act == LEAKY_RELU:
        _map_f(LEAKY_RELU, z, alpha, a, B, n)
    elif act == ELU:
        _map_f(ELU, z, alpha, a, B, n)
    elif act == PRELU:
        _map_f(PRELU, z, alpha, a, B, n)
    elif act == SOFTMAX:
        softmax(z, a, B, n)
    else:
        _map_f(IDENTITY, z, alpha, a, B, n)


cdef inline void _map_df(int act, const real *z, const real *alpha, const real *g, real *delta,
                         Py_ssize_t B, Py_ssize_t n) noexcept nogil:
    """delta = f'(z) * g elementwise, for a constant activation code (g may be delta itself)."""
    cdef Py_ssize_t i, j
    if act == PRELU or act == LEAKY_RELU or act == ELU:  # a parameter per unit, alpha_j
        for i in range(B):
            for j in range(n):
                delta[i * n + j] = df(act, z[i * n + j], alpha[j]) * g[i * n + j]
    else:
        for i in range(B * n):
            delta[i] = df(act, z[i], <real>0) * g[i]


cdef inline void times_derivative(int act, const real *z, const real *alpha, const real *g, real *delta,
                                  Py_ssize_t B, Py_ssize_t n) noexcept nogil:
    """delta = f'(z) * g."""
    if act == RELU:
        _map_df(RELU, z, alpha, g, delta, B, n)
    elif act == SIGMOID:
        _map_df(SIGMOID, z, alpha, g, delta, B, n)
    elif act == TANH:
        _map_df(TANH, z, alpha, g, delta, B, n)
    elif act == LEAKY_RELU:
        _map_df(LEAKY_RELU, z, alpha, g, delta, B, n)
    elif act == ELU:
        _map_df(ELU, z, alpha, g, delta, B, n)
    elif act == PRELU:
        _map_df(PRELU, z, alpha, g, delta, B, n)
    else:
        _map_df(IDENTITY, z, alpha, g, delta, B, n)


cdef inline void activation_backward(int act, const real *z, const real *alpha, const real *g, real *delta,
                                     real *dalpha, Py_ssize_t B, Py_ssize_t n) noexcept nogil:
    """delta = f'(z) * g;  PReLU: dalpha_j = (1/B) sum_b g_bj min(z_bj, 0)   (g may be delta itself)."""
    cdef Py_ssize_t i, j
    if act == PRELU:  # before delta is written, in case g and delta are one buffer
        for j in range(n):
            dalpha[j] = 0
        for i in range(B):
            for j in range(n):
                if z[i * n + j] < 0:
                    dalpha[j] += g[i * n + j] * z[i * n + j]
        for j in range(n):
            dalpha[j] = dalpha[j] / B
    times_derivative(act, z, alpha, g, delta, B, n)


# --------------------------------------------------------------------------- loss and output delta

ctypedef fused acc:
    # accumulator of a loss: double in the fused epoch (fast), long double (x87 extended on x86)
    # in loss_value, so gradient checks' finite differences of J are not dominated by rounding
    double
    long double


cdef inline acc _exp_acc(acc x) noexcept nogil:
    if acc is double:
        return exp(x)
    else:
        return expl(x)


cdef inline acc _log_acc(acc x) noexcept nogil:
    if acc is double:
        return log(x)
    else:
        return logl(x)


cdef inline acc _log1p_acc(acc x) noexcept nogil:
    if acc is double:
        return log1p(x)
    else:
        return log1pl(x)


cdef inline acc add_loss(int loss, const real *z, const real *a, const real *y, Py_ssize_t B, Py_ssize_t n,
                         acc total) noexcept nogil:
    """total + sum_b J_b   (MSE: 1/2 sum (a-y)^2; CE: -sum y ln softmax(z); BCE from z: never log 0)."""
    cdef Py_ssize_t i, j
    cdef acc d, m, s, log_s, zz
    for i in range(B):
        if loss == MSE:
            for j in range(n):
                d = <acc>a[i * n + j] - <acc>y[i * n + j]
                total += 0.5 * d * d
        elif loss == CROSS_ENTROPY:  # ln softmax(z)_j = z_j - max z - ln sum_k e^(z_k - max z)
            m = row_max(&z[i * n], n)
            s = 0
            for j in range(n):
                s += _exp_acc(<acc>z[i * n + j] - m)
            log_s = _log_acc(s)
            for j in range(n):
                total -= <acc>y[i * n + j] * (<acc>z[i * n + j] - m - log_s)
        else:  # BINARY_CROSS_ENTROPY: max(z, 0) - z y + ln(1 + e^-|z|)
            for j in range(n):
                zz = z[i * n + j]
                total += (zz if zz > 0 else 0) - zz * <acc>y[i * n + j] + _log1p_acc(_exp_acc(-zz if zz > 0 else zz))
    return total


cdef inline void output_delta(int loss, int act, const real *a, const real *y, real *delta, Py_ssize_t B,
                              Py_ssize_t n) noexcept nogil:
    """delta_L = dJ_b/dz_L: a - y for softmax+CE and sigmoid+BCE; MSE: (a - y) f'(z) (softmax: its Jacobian)."""
    cdef Py_ssize_t i, j
    cdef real s
    for i in range(B * n):
        delta[i] = a[i] - y[i]
    if loss != MSE:
        return
    if act == SIGMOID:
        for i in range(B * n):
            delta[i] = delta[i] * sigmoid_slope(a[i])
    elif act == SOFTMAX:  # dJ/dz_k = a_k (g_k - sum_j g_j a_j), g = dJ/da
        for i in range(B):
            s = 0
            for j in range(n):
                s += delta[i * n + j] * a[i * n + j]
            for j in range(n):
                delta[i * n + j] = (delta[i * n + j] - s) * a[i * n + j]


cdef inline Py_ssize_t predicted_label(const real *a, Py_ssize_t n, bint single_sigmoid) noexcept nogil:
    """The class one row of outputs predicts: a > 1/2 for a single sigmoid unit, else argmax_j a_j (first of ties)."""
    cdef Py_ssize_t j, best = 0
    if single_sigmoid:
        return 1 if a[0] > 0.5 else 0
    for j in range(1, n):
        if a[j] > a[best]:
            best = j
    return best


# --------------------------------------------------------------------------- gradients and updates

cdef inline void column_mean(const real *delta, real *db, Py_ssize_t B, Py_ssize_t n) noexcept nogil:
    """db = (1/B) sum_b delta_b."""
    column_mean_range(delta, db, B, n, 0, n)


cdef inline void column_mean_range(const real *delta, real *db, Py_ssize_t B, Py_ssize_t n, Py_ssize_t j0,
                                   Py_ssize_t j1) noexcept nogil:
    """db_j = (1/B) sum_b delta_bj for the columns j in [j0, j1) (a thread's share)."""
    cdef Py_ssize_t i, j
    for j in range(j0, j1):
        db[j] = 0
    for i in range(B):
        for j in range(j0, j1):
            db[j] += delta[i * n + j]
    for j in range(j0, j1):
        db[j] = db[j] / B


cdef inline real sign(real w) noexcept nogil:
    """sign(w), with sign(0) = 0: the subgradient of |w| that leaves exact zeros alone."""
    return 1 if w > 0 else (-1 if w < 0 else 0)


cdef inline double penalty_of_sums(double sq, double ab, double l1, double l2) noexcept nogil:
    """R = l2/2 ||W||^2 + l1 ||W||_1, from sq = ||W||^2 and ab = ||W||_1."""
    return 0.5 * l2 * sq + l1 * ab


cdef inline double penalty(const real *W, Py_ssize_t size, double l1, double l2) noexcept nogil:
    """R = l2/2 ||W||^2 + l1 ||W||_1   (accumulated in float64)."""
    cdef Py_ssize_t i
    cdef double sq = 0, ab = 0, w
    for i in range(size):
        w = W[i]
        sq += w * w
        ab += fabs(w)
    return penalty_of_sums(sq, ab, l1, l2)


cdef inline real with_penalty_grad(real g, real w, real l1, real l2) noexcept nogil:
    """g + dR/dw = g + l2 w + l1 sign(w): a weight's gradient with the penalty's added."""
    return g + l2 * w + l1 * sign(w)


cdef inline void regularise(real *dW, const real *W, Py_ssize_t size, real l1, real l2) noexcept nogil:
    """dW += l2 W + l1 sign(W)."""
    cdef Py_ssize_t i
    if l1 != 0 or l2 != 0:
        for i in range(size):
            dW[i] = with_penalty_grad(dW[i], W[i], l1, l2)


cdef enum:  # how a parameter steps (update_mode)
    PLAIN_SGD = 0
    MOMENTUM = 1
    NESTEROV = 2


cdef inline int update_mode(real mu, bint nesterov) noexcept nogil:
    """PLAIN_SGD when mu = 0 (the velocity is neither read nor written), else MOMENTUM or NESTEROV."""
    return PLAIN_SGD if mu == 0 else (NESTEROV if nesterov else MOMENTUM)


cdef inline void sgd_step(int mode, real *W, real *v, Py_ssize_t i, real g, real lr, real mu) noexcept nogil:
    """Parameter i with gradient g: v <- mu v - lr g;  W <- W + v   (NESTEROV: W <- W + mu v - lr g;
    PLAIN_SGD: W <- W - lr g, v untouched)."""
    if mode == PLAIN_SGD:
        W[i] -= lr * g
    else:
        v[i] = mu * v[i] - lr * g
        if mode == MOMENTUM:
            W[i] += v[i]
        else:
            W[i] += mu * v[i] - lr * g


cdef inline void sgd_update(real *W, const real *dW, real *v, Py_ssize_t size, real lr, real mu,
                            bint nesterov) noexcept nogil:
    """sgd_step on every element; each mode is its own loop, so that the compiler vectorises it."""
    cdef Py_ssize_t i
    cdef int mode = update_mode(mu, nesterov)
    if mode == PLAIN_SGD:
        for i in range(size):
            sgd_step(PLAIN_SGD, W, v, i, dW[i], lr, mu)
    elif mode == MOMENTUM:
        for i in range(size):
            sgd_step(MOMENTUM, W, v, i, dW[i], lr, mu)
    else:
        for i in range(size):
            sgd_step(NESTEROV, W, v, i, dW[i], lr, mu)


# --------------------------------------------------------------------------- dropout

cdef inline uint64_t mix64(uint64_t x) noexcept nogil:
    """SplitMix64's finaliser (unsigned 64-bit arithmetic wraps mod 2^64)."""
    x = (x ^ (x >> 30)) * MIX1
    x = (x ^ (x >> 27)) * MIX2
    return x ^ (x >> 31)


cdef inline uint64_t hash_step(uint64_t k, int64_t n) noexcept nogil:
    """mix(k + (n + 1) G): one round of the dropout hash, folding the counter n into k."""
    return mix64(k + <uint64_t>(n + 1) * GOLDEN)


cdef inline uint64_t dropout_key(uint64_t seed, int64_t step, int64_t layer) noexcept nogil:
    """k = mix(mix(mix(seed + G) + (step+1) G) + (layer+1) G)   (the innermost round is hash_step(seed, 0))."""
    return hash_step(hash_step(hash_step(seed, 0), step), layer)


cdef inline void dropout(real *x, Py_ssize_t size, double keep, uint64_t seed, int64_t step,
                         int64_t layer) noexcept nogil:
    """x_i <- x_i m_i / keep,  m_i = [(mix(k + (i+1) G) >> 11) 2^-53 < keep]   (x * 0 keeps NaN and -0, as NumPy)."""
    dropout_range(x, 0, size, keep, seed, step, layer)


cdef inline void dropout_range(real *x, Py_ssize_t first, Py_ssize_t stop, double keep, uint64_t seed,
                               int64_t step, int64_t layer) noexcept nogil:
    """dropout on x[first:stop] only, with the whole buffer's mask (element i keeps counter i): a thread's rows."""
    cdef uint64_t key = dropout_key(seed, step, layer)
    cdef real scale = <real>(1.0 / keep)
    cdef Py_ssize_t i
    cdef double u
    for i in range(first, stop):
        u = <double>(hash_step(key, i) >> 11) * TWO_M53
        x[i] = x[i] * (scale if u < keep else <real>0)


# --------------------------------------------------------------------------- the fused epoch's update

cdef enum:
    LANES = 8  # independent partial sums: a single running sum is a chain of dependent adds


cdef inline void _descend_one(int mode, bint regularised, bint has_grad, real *W, const real *dW, real *v,
                              Py_ssize_t i, real l1, real l2, real lr, real mu, double *sq, double *w_sq,
                              double *w_abs) noexcept nogil:
    """One element of descend, for a constant update mode and flags (folded after inlining)."""
    cdef real g = dW[i] if has_grad else 0
    if regularised:
        g = with_penalty_grad(g, W[i], l1, l2)
    sq[0] += <double>g * g
    sgd_step(mode, W, v, i, g, lr, mu)
    if regularised:
        w_sq[0] += <double>W[i] * W[i]
        w_abs[0] += fabs(W[i])


cdef inline double _descend_lanes(int mode, bint regularised, bint has_grad, real *W, const real *dW, real *v,
                                  Py_ssize_t size, real l1, real l2, real lr, real mu,
                                  double *penalty_after) noexcept nogil:
    """descend's loop for constant (mode, regularised, has_grad): LANES elements per step into LANES partial sums."""
    cdef double sq[LANES]
    cdef double w_sq[LANES]
    cdef double w_abs[LANES]
    cdef Py_ssize_t blk, u, i
    cdef double total_sq = 0, total_w_sq = 0, total_w_abs = 0
    for u in range(LANES):
        sq[u] = 0
        w_sq[u] = 0
        w_abs[u] = 0
    for blk in range(size // LANES):
        for u in range(LANES):
            _descend_one(mode, regularised, has_grad, W, dW, v, blk * LANES + u, l1, l2, lr, mu,
                         &sq[u], &w_sq[u], &w_abs[u])
    for i in range(size - size % LANES, size):
        _descend_one(mode, regularised, has_grad, W, dW, v, i, l1, l2, lr, mu, &sq[0], &w_sq[0], &w_abs[0])
    for u in range(LANES):
        total_sq += sq[u]
        total_w_sq += w_sq[u]
        total_w_abs += w_abs[u]
    penalty_after[0] = penalty_of_sums(total_w_sq, total_w_abs, l1, l2)
    return total_sq


cdef inline double descend_as(int mode, bint regularised, real *W, const real *dW, real *v, Py_ssize_t size,
                              real l1, real l2, real lr, real mu, double *penalty_after) noexcept nogil:
    """descend for an update mode and regularised flag that the caller knows (constants, folded once inlined).

    A caller that knows the case (the sparse first layer's plain SGD) calls this directly instead of
    descend, which tests it.
    """
    if dW == NULL:
        return _descend_lanes(mode, regularised, False, W, dW, v, size, l1, l2, lr, mu, penalty_after)
    return _descend_lanes(mode, regularised, True, W, dW, v, size, l1, l2, lr, mu, penalty_after)


cdef inline double descend(real *W, const real *dW, real *v, Py_ssize_t size, real l1, real l2, real lr,
                           real mu, bint nesterov, double *penalty_after) noexcept nogil:
    """g = dW + l2 W + l1 sign(W);  the sgd_update step with g;  returns ||g||^2   (dW NULL: gradient 0).

    param_grads' regularisation, the gradient norm, sgd_update and the next batch's penalty
    (l2/2 ||W||^2 + l1 ||W||_1 of the updated W, into penalty_after) in one pass over memory: at
    small batches these elementwise passes cost as much as the matrix products.  Each case is its
    own straight-line loop, so the compiler vectorises it.
    """
    cdef int mode = update_mode(mu, nesterov)
    if l1 != 0 or l2 != 0:
        if mode == PLAIN_SGD:
            return descend_as(PLAIN_SGD, True, W, dW, v, size, l1, l2, lr, mu, penalty_after)
        if mode == MOMENTUM:
            return descend_as(MOMENTUM, True, W, dW, v, size, l1, l2, lr, mu, penalty_after)
        return descend_as(NESTEROV, True, W, dW, v, size, l1, l2, lr, mu, penalty_after)
    if mode == PLAIN_SGD:
        return descend_as(PLAIN_SGD, False, W, dW, v, size, l1, l2, lr, mu, penalty_after)
    if mode == MOMENTUM:
        return descend_as(MOMENTUM, False, W, dW, v, size, l1, l2, lr, mu, penalty_after)
    return descend_as(NESTEROV, False, W, dW, v, size, l1, l2, lr, mu, penalty_after)
