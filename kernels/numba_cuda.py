"""The CUDA backend: the kernel contract as numba.cuda kernels, and training that stays on the GPU.

Every formula of backpropagation is a ``@cuda.jit`` kernel (the first line of its docstring is its
equation) behind a host wrapper with the contract's name and signature (kernels/README.md).  The
arrays the wrappers take and write are device arrays; ``to_device``/``to_host``/``empty``/``assign``
move data.  ``train_epoch`` runs a whole epoch with the weights, the optimiser state and the
training set resident on the device: mini-batches are gathered there, dropout masks are drawn
there, and only the per-sample losses, hits and gradient norms come back, once per epoch.

How the kernels are written (so that any size works with any launch configuration):

* Elementwise kernels use grid-stride loops over the flattened (row-major) index:
  ``for k in range(cuda.grid(1), B * n, cuda.gridsize(1))``.  Row kernels (softmax, losses,
  output delta) give each thread whole rows, with the same kind of loop over rows.
* Matrix products are shared-memory tiled (``_tile_product``): a block of TILE x TILE threads
  computes a TILE x TILE tile of the output, walking the depth in TILE steps and staging one tile
  of each operand in shared memory per step.  The transposed operands that backprop needs
  (``a W``, ``delta W^T``, ``a^T delta``) are read transposed while staging, so global loads stay
  coalesced.  Blocks loop over output tiles with a grid-stride loop as well.
* Reductions (``db``, PReLU's ``dalpha``, norms, penalties) are tree reductions in shared memory,
  accumulated in float64; no atomics anywhere.
* Launch sizes are module constants (``TPB``, ``TILE``, ``MAX_BLOCKS``) read once from the
  environment (``FASTNN_CUDA_TPB``, ``FASTNN_CUDA_TILE``, ``FASTNN_CUDA_MAX_BLOCKS``).  The tests run
  the kernels in Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) with tiny values, so that
  tiny inputs cross block and tile edges and every grid-stride loop goes round more than once.

Written against plain ``from numba import cuda``: it runs with numba's built-in CUDA target and
with NVIDIA's numba-cuda package (``pip install 'fastnn[cuda]'``), and in the simulator.
"""
from __future__ import annotations

import math
import warnings
import weakref

import numpy as np
from numba import cuda
from numba.core import config as _numba_config

from fastnn.kernels import config, formulas
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
from fastnn.kernels.numpy_ref import dropout_key

NAME = "cuda"
SIMULATOR = bool(_numba_config.ENABLE_CUDASIM)


def _numpy_compat() -> None:
    """Give NumPy back ``np.row_stack`` where it lacks it, for numba-cuda's sake.

    numba-cuda 0.30.4 registers an overload of ``np.row_stack`` (numba/cuda/np/arrayobj.py) when it
    loads its typing registries, at the first kernel compile; NumPy 2.5 removed ``np.row_stack``
    (a deprecated alias of ``np.vstack`` since NumPy 2.0), so with that pair (seen with NumPy 2.5.2)
    every compile failed with "module 'numpy' has no attribute 'row_stack'".  Restoring the alias is
    all it needs.  Drop this once numba-cuda no longer refers to ``np.row_stack``.
    """
    if not hasattr(np, "row_stack"):
        np.row_stack = np.vstack


_numpy_compat()  # at import: before any kernel below can be compiled


# --------------------------------------------------------------------------- launch configuration


# Threads per block of the 1-D kernels; a power of two, because the tree reductions halve it.
TPB = config.get("FASTNN_CUDA_TPB")
# Edge of the square matmul tile: blocks of TILE x TILE threads (at most 1024 threads per block).
TILE = config.get("FASTNN_CUDA_TILE")
TILE_PAD = TILE + 1  # shared tiles are TILE x (TILE + 1): transposed stores then hit distinct banks
# Most blocks per grid dimension; grid-stride loops cover whatever the grid does not.
MAX_BLOCKS = config.get("FASTNN_CUDA_MAX_BLOCKS")

# Device functions are inlined into the kernels: Numba IR inlining with numba-cuda (and so no
# separate compilation that would ask for a GPU), forced NVVM inlining with numba's built-in target.
INLINE = "always"

# Numba's CUDA simulator runs each block's threads as Python threads and, on every device-function
# call, iterates the function's module globals (this module's).  The first warning raised from this
# module's code (the hash's NumPy uint64 overflow in the simulator) makes Python's warnings machinery
# add ``__warningregistry__`` to those globals, and a thread iterating them at that moment fails with
# "dictionary changed size during iteration".  Defining the registry up front keeps the dict's size fixed.
__warningregistry__: dict = {}

# A tiny batch is a tiny grid: that is expected here, so Numba's low-occupancy hint is noise.
warnings.filterwarnings("ignore", message=r"Grid size .* will likely result in GPU under-utilization")


def check_available() -> None:
    """Raise, saying why, when no CUDA GPU can run the kernels (the simulator always can)."""
    if SIMULATOR:
        return
    if not cuda.is_available():
        raise RuntimeError("numba.cuda found no usable CUDA GPU or driver (numba.cuda.is_available() is False)")


def _blocks(n: int) -> int:
    """Blocks of TPB threads for n work items (capped: the kernels loop over the rest)."""
    return max(1, min((n + TPB - 1) // TPB, MAX_BLOCKS))


def _tiles(m: int, n: int) -> tuple[int, int]:
    """Grid (x over output columns, y over output rows) of TILE x TILE blocks for an m x n output."""
    return (max(1, min((n + TILE - 1) // TILE, MAX_BLOCKS)), max(1, min((m + TILE - 1) // TILE, MAX_BLOCKS)))


# --------------------------------------------------------------------------- array plumbing


def _is_device(x) -> bool:
    return hasattr(x, "copy_to_host")  # numba DeviceNDArray, or the simulator's FakeCUDAArray


def to_device(x):
    """Host array -> device array (device arrays pass through; strided views are packed first)."""
    if _is_device(x):
        return x
    x = np.asarray(x)
    if not (x.flags.c_contiguous or x.flags.f_contiguous):
        x = np.ascontiguousarray(x)
    return cuda.to_device(x)


def to_host(x) -> np.ndarray:
    """Device array -> host NumPy array (host arrays pass through)."""
    if not _is_device(x):
        return np.asarray(x)
    if x.size == 0:
        return np.empty(x.shape, dtype=x.dtype)
    return x.copy_to_host()


def empty(shape, dtype):
    """Uninitialised device array."""
    return cuda.device_array(shape, dtype=np.dtype(dtype))


def assign(dst, src) -> None:
    """dst[...] = src   (host array into a device array of the same shape)."""
    src = np.ascontiguousarray(src, dtype=dst.dtype)
    if src.shape != tuple(dst.shape):
        raise ValueError(f"assign: shape {src.shape} does not match the device array's {tuple(dst.shape)}")
    if src.size:
        dst.copy_to_device(src)


def synchronize() -> None:
    """Wait until every kernel launched so far has finished (for timing: launches are asynchronous)."""
    cuda.synchronize()


# --------------------------------------------------------------------------- formulas
# kernels/formulas.py as device functions: the same source the Numba CPU backend compiles, with the
# device's own exp and tanh.  (No max/min builtins in the kernels: numba's built-in CUDA target
# fails to type them on floats.)

_F = formulas.compile_with(cuda.jit(device=True, inline=INLINE))
_f_at, _df_at, _penalised, _sgd_step = _F.f_at, _F.df_at, _F.penalised, _F.sgd_step
_dropout_uniform, _softmax_row, _sample_loss = _F.dropout_uniform, _F.softmax_row, _F.sample_loss
_output_delta_row, _predicted_label = _F.output_delta_row, _F.predicted_label


@cuda.jit(device=True, inline=INLINE)
def _block_sum(part):
    """part[0] <- sum_t part[t]   (tree reduction over the block's TPB threads; all of them must call it)."""
    t = cuda.threadIdx.x
    s = TPB // 2
    while s > 0:
        if t < s:
            part[t] += part[t + s]
        cuda.syncthreads()
        s //= 2


# --------------------------------------------------------------------------- matrix products


@cuda.jit(device=True, inline=INLINE)
def _tile_product(A, B, row0, col0, trans_a, trans_b):
    """sum_p op(A)_ip op(B)_pj for this thread's (i, j) = (row0 + ty, col0 + tx);  op(X) = X or X^T.

    The block walks the depth in steps of TILE.  Each step every thread stages one element of
    op(A)'s tile and one of op(B)'s in shared memory (zero outside the matrices), the block waits,
    and each thread accumulates TILE products from the fast memory.  A transposed operand is read
    with the thread indices swapped, so consecutive threads still read consecutive addresses.
    Every thread of the block must call this (it synchronises), in range or not.
    """
    sA = cuda.shared.array((TILE, TILE_PAD), dtype=A.dtype)
    sB = cuda.shared.array((TILE, TILE_PAD), dtype=A.dtype)
    ty = cuda.threadIdx.y
    tx = cuda.threadIdx.x
    M = A.shape[1] if trans_a else A.shape[0]
    K = A.shape[0] if trans_a else A.shape[1]
    N = B.shape[0] if trans_b else B.shape[1]
    acc = A.dtype.type(0)
    for p0 in range(0, K, TILE):
        if trans_a:  # op(A)_rc = A_cr: this thread reads A[p0 + ty, row0 + tx]
            r = row0 + tx
            c = p0 + ty
            sA[tx, ty] = 0
            if r < M and c < K:
                sA[tx, ty] = A[c, r]
        else:
            r = row0 + ty
            c = p0 + tx
            sA[ty, tx] = 0
            if r < M and c < K:
                sA[ty, tx] = A[r, c]
        if trans_b:  # op(B)_rc = B_cr: this thread reads B[col0 + ty, p0 + tx]
            r = p0 + tx
            c = col0 + ty
            sB[tx, ty] = 0
            if r < K and c < N:
                sB[tx, ty] = B[c, r]
        else:
            r = p0 + ty
            c = col0 + tx
            sB[ty, tx] = 0
            if r < K and c < N:
                sB[ty, tx] = B[r, c]
        cuda.syncthreads()
        for q in range(TILE):
            acc += sA[ty, q] * sB[q, tx]
        cuda.syncthreads()  # the tiles are overwritten next step
    return acc


# Each product kernel below is the same grid-stride loop over output tiles (block-uniform, so the
# synchronisation inside _tile_product is safe) with its own epilogue: the equation it computes.


@cuda.jit
def _matmul_kernel(A, B, C):
    """C = A B   (shared-memory tiles)."""
    M, N = C.shape
    for ti in range(cuda.blockIdx.y, (M + TILE - 1) // TILE, cuda.gridDim.y):
        for tj in range(cuda.blockIdx.x, (N + TILE - 1) // TILE, cuda.gridDim.x):
            acc = _tile_product(A, B, ti * TILE, tj * TILE, False, False)
            i = ti * TILE + cuda.threadIdx.y
            j = tj * TILE + cuda.threadIdx.x
            if i < M and j < N:
                C[i, j] = acc


@cuda.jit
def _matmul_naive_kernel(A, B, C):
    """C_ij = sum_p A_ip B_pj   (one thread per entry, straight from global memory: what tiling beats)."""
    M, N = C.shape
    K = A.shape[1]
    for k in range(cuda.grid(1), M * N, cuda.gridsize(1)):
        i = k // N
        j = k - i * N
        acc = C.dtype.type(0)
        for p in range(K):
            acc += A[i, p] * B[p, j]
        C[i, j] = acc


@cuda.jit
def _linear_forward_kernel(a_prev, W, b, z):
    """z = a_prev W + b   (tiled product; the bias is added as each tile is written)."""
    M, N = z.shape
    for ti in range(cuda.blockIdx.y, (M + TILE - 1) // TILE, cuda.gridDim.y):
        for tj in range(cuda.blockIdx.x, (N + TILE - 1) // TILE, cuda.gridDim.x):
            acc = _tile_product(a_prev, W, ti * TILE, tj * TILE, False, False)
            i = ti * TILE + cuda.threadIdx.y
            j = tj * TILE + cuda.threadIdx.x
            if i < M and j < N:
                z[i, j] = acc + b[j]


@cuda.jit
def _backprop_error_kernel(delta_next, W_next, g):
    """g = delta_next W_next^T   (tiled product, W_next read transposed)."""
    M, N = g.shape
    for ti in range(cuda.blockIdx.y, (M + TILE - 1) // TILE, cuda.gridDim.y):
        for tj in range(cuda.blockIdx.x, (N + TILE - 1) // TILE, cuda.gridDim.x):
            acc = _tile_product(delta_next, W_next, ti * TILE, tj * TILE, False, True)
            i = ti * TILE + cuda.threadIdx.y
            j = tj * TILE + cuda.threadIdx.x
            if i < M and j < N:
                g[i, j] = acc


@cuda.jit
def _propagate_delta_kernel(delta_next, W_next, z, act, alpha, delta):
    """delta = f'(z) * (delta_next W_next^T)   (tiled product with the derivative fused into its epilogue)."""
    M, N = delta.shape
    for ti in range(cuda.blockIdx.y, (M + TILE - 1) // TILE, cuda.gridDim.y):
        for tj in range(cuda.blockIdx.x, (N + TILE - 1) // TILE, cuda.gridDim.x):
            acc = _tile_product(delta_next, W_next, ti * TILE, tj * TILE, False, True)
            i = ti * TILE + cuda.threadIdx.y
            j = tj * TILE + cuda.threadIdx.x
            if i < M and j < N:
                delta[i, j] = _df_at(act, z, alpha, i, j) * acc


@cuda.jit
def _weight_grad_kernel(a_prev, delta, W, inv_b, l1, l2, dW):
    """dW = a_prev^T delta / B + l2 W + l1 sign(W)   (tiled product, a_prev read transposed)."""
    M, N = dW.shape
    for ti in range(cuda.blockIdx.y, (M + TILE - 1) // TILE, cuda.gridDim.y):
        for tj in range(cuda.blockIdx.x, (N + TILE - 1) // TILE, cuda.gridDim.x):
            acc = _tile_product(a_prev, delta, ti * TILE, tj * TILE, True, False)
            i = ti * TILE + cuda.threadIdx.y
            j = tj * TILE + cuda.threadIdx.x
            if i < M and j < N:
                dW[i, j] = _penalised(acc * inv_b, W[i, j], l1, l2, 1.0, 0.0)


def _tiled(kernel, out):
    """kernel configured for an output of out's shape: TILE x TILE blocks over its tiles."""
    return kernel[_tiles(out.shape[0], out.shape[1]), (TILE, TILE)]


def matmul(A, B, C, method: str = "blas") -> None:
    """C = A B: 'blas' and 'blocked' both run the shared-memory tiled kernel; 'naive': one thread per entry.

    There is no cuBLAS behind 'blas' here (Numba has no binding to it): the tiled kernel is this
    backend's fastest product, and 'naive' is there to show what the tiles buy.
    """
    if method in ("blas", "blocked"):
        _tiled(_matmul_kernel, C)(A, B, C)
    elif method == "naive":
        _matmul_naive_kernel[_blocks(C.shape[0] * C.shape[1]), TPB](A, B, C)
    else:
        raise ValueError(f"matmul method {method!r} is not supported; choose 'blas' or 'blocked' "
                         f"(or 'naive' on the cuda backend)")


# --------------------------------------------------------------------------- forward pass


@cuda.jit
def _activate_kernel(act, z, alpha, a):
    """a = f(z)   (elementwise)."""
    B, n = z.shape
    for k in range(cuda.grid(1), B * n, cuda.gridsize(1)):
        i = k // n
        j = k - i * n
        a[i, j] = _f_at(act, z, alpha, i, j)


@cuda.jit
def _softmax_kernel(z, a):
    """a_ij = exp(z_ij - max_k z_ik) / sum_k exp(z_ik - max_k z_ik)   (one thread per row)."""
    for i in range(cuda.grid(1), z.shape[0], cuda.gridsize(1)):
        _softmax_row(z, i, a)


@cuda.jit
def _derivative_kernel(act, z, alpha, d):
    """d = f'(z)   (elementwise)."""
    B, n = z.shape
    for k in range(cuda.grid(1), B * n, cuda.gridsize(1)):
        i = k // n
        j = k - i * n
        d[i, j] = _df_at(act, z, alpha, i, j)


def _check_act(act: int) -> None:
    if act not in (IDENTITY, SIGMOID, TANH, RELU, LEAKY_RELU, ELU, PRELU, SOFTMAX):
        raise ValueError(f"unknown activation code {act}")


def linear_forward(a_prev, W, b, z) -> None:
    """z = a_prev W + b."""
    _tiled(_linear_forward_kernel, z)(a_prev, W, b, z)


def activate(act: int, z, alpha, a) -> None:
    """a = f(z)   (softmax per row, shifted by the row max)."""
    _check_act(act)
    if act == SOFTMAX:
        _softmax_kernel[_blocks(z.shape[0]), TPB](z, a)
    else:
        _activate_kernel[_blocks(z.shape[0] * z.shape[1]), TPB](act, z, alpha, a)


def activation_derivative(act: int, z, alpha, d) -> None:
    """d = f'(z)   (not for softmax)."""
    _check_act(act)
    if act == SOFTMAX:
        raise ValueError(f"activation code {act} has no elementwise derivative")
    _derivative_kernel[_blocks(z.shape[0] * z.shape[1]), TPB](act, z, alpha, d)


# --------------------------------------------------------------------------- loss and output delta


@cuda.jit
def _row_loss_kernel(loss, z, a, y, out, offset):
    """out_{offset+i} = J_i   (the sample's loss, in float64; logs from z so they never see log 0)."""
    for i in range(cuda.grid(1), z.shape[0], cuda.gridsize(1)):
        out[offset + i] = _sample_loss(loss, z, a, y, i)


@cuda.jit
def _output_delta_kernel(loss, act, a, y, delta):
    """delta_L = a - y (softmax+CE, sigmoid+BCE);  MSE: (a - y) f'(z), for softmax a_k (g_k - sum_j g_j a_j)."""
    for i in range(cuda.grid(1), a.shape[0], cuda.gridsize(1)):
        _output_delta_row(loss, act, a, y, delta, i)


@cuda.jit
def _softmax_xent_kernel(z, y, a, delta, out, offset):
    """a = softmax(z);  delta = a - y;  out_{offset+i} = -sum_j y_ij ln a_ij   (softmax + cross-entropy fused)."""
    for i in range(cuda.grid(1), z.shape[0], cuda.gridsize(1)):
        _softmax_row(z, i, a)
        _output_delta_row(CROSS_ENTROPY, SOFTMAX, a, y, delta, i)
        out[offset + i] = _sample_loss(CROSS_ENTROPY, z, a, y, i)


def _check_loss(loss: int, act: int) -> None:
    if loss not in (MSE, CROSS_ENTROPY, BINARY_CROSS_ENTROPY):
        raise ValueError(f"unknown loss code {loss}")
    if loss == MSE and act not in (IDENTITY, SIGMOID, SOFTMAX):
        raise ValueError(f"output activation code {act} is not supported")


def loss_value(loss: int, act: int, z, a, y) -> float:
    """J = (1/B) sum_b J_b   (per-sample losses on the device, summed on the host in float64)."""
    _check_loss(loss, act)
    B = z.shape[0]
    per_sample = cuda.device_array(B, dtype=np.float64)
    _row_loss_kernel[_blocks(B), TPB](loss, z, a, y, per_sample, 0)
    return float(np.sum(per_sample.copy_to_host())) / B


def output_delta(loss: int, act: int, a, y, delta) -> None:
    """delta_L = dJ_b/dz_L   (a - y for softmax+CE and sigmoid+BCE)."""
    _check_loss(loss, act)
    _output_delta_kernel[_blocks(a.shape[0]), TPB](loss, act, a, y, delta)


# --------------------------------------------------------------------------- backward pass


@cuda.jit
def _times_derivative_kernel(act, z, alpha, g, delta):
    """delta = f'(z) * g   (elementwise; g may be delta itself)."""
    B, n = z.shape
    for k in range(cuda.grid(1), B * n, cuda.gridsize(1)):
        i = k // n
        j = k - i * n
        delta[i, j] = _df_at(act, z, alpha, i, j) * g[i, j]


@cuda.jit
def _column_sums_kernel(X, Z, prelu, scale, out):
    """out_j = scale sum_b X_bj   (prelu: scale sum_b X_bj min(Z_bj, 0));  a block per column, tree reduction."""
    part = cuda.shared.array(TPB, dtype=np.float64)
    t = cuda.threadIdx.x
    B, n = X.shape
    for j in range(cuda.blockIdx.x, n, cuda.gridDim.x):  # block-uniform: _block_sum synchronises
        s = 0.0
        for i in range(t, B, cuda.blockDim.x):
            v = float(X[i, j])
            if prelu:
                zz = float(Z[i, j])
                v *= zz if zz < 0.0 else 0.0
            s += v
        part[t] = s
        cuda.syncthreads()
        _block_sum(part)
        if t == 0:
            out[j] = part[0] * scale
        cuda.syncthreads()  # part is reused for the next column


@cuda.jit
def _weighted_sum_kernel(x, c1, c2, out, slot):
    """out[slot] = sum_ij c2 x_ij^2 + c1 |x_ij|   (float64, one block: ||x||^2 with c1 = 0, c2 = 1)."""
    part = cuda.shared.array(TPB, dtype=np.float64)
    t = cuda.threadIdx.x
    m, n = x.shape
    s = 0.0
    for k in range(t, m * n, cuda.blockDim.x):
        i = k // n
        v = float(x[i, k - i * n])
        s += c2 * v * v + c1 * abs(v)
    part[t] = s
    cuda.syncthreads()
    _block_sum(part)
    if t == 0:
        out[slot] = part[0]


def _column_sums(X, Z, prelu: bool, scale: float, out) -> None:
    _column_sums_kernel[max(1, min(X.shape[1], MAX_BLOCKS)), TPB](X, Z, prelu, scale, out)


def backprop_error(delta_next, W_next, g) -> None:
    """g = delta_next W_next^T   (dJ/da)."""
    _tiled(_backprop_error_kernel, g)(delta_next, W_next, g)


def activation_backward(act: int, z, alpha, g, delta, dalpha) -> None:
    """delta = f'(z) * g;  PReLU: dalpha_j = (1/B) sum_b g_bj min(z_bj, 0)."""
    _check_act(act)
    B, n = z.shape
    if act == PRELU:  # before delta is written: g and delta may be the same buffer
        _column_sums(g, z, True, 1.0 / B, dalpha)
    _times_derivative_kernel[_blocks(B * n), TPB](act, z, alpha, g, delta)


def propagate_delta(delta_next, W_next, z, act: int, alpha, delta, dalpha) -> None:
    """delta = f'(z) * (delta_next W_next^T)   (one fused kernel; PReLU also needs g for dalpha)."""
    _check_act(act)
    if act == PRELU:
        backprop_error(delta_next, W_next, delta)  # g lands in delta, then f' scales it in place
        activation_backward(act, z, alpha, delta, delta, dalpha)
    else:
        _tiled(_propagate_delta_kernel, delta)(delta_next, W_next, z, act, alpha, delta)


def param_grads(a_prev, delta, W, l1: float, l2: float, dW, db) -> None:
    """dW = a_prev^T delta / B + l2 W + l1 sign(W);  db = (1/B) sum_b delta_b."""
    inv_b = 1.0 / a_prev.shape[0]
    _tiled(_weight_grad_kernel, dW)(a_prev, delta, W, inv_b, float(l1), float(l2), dW)
    _column_sums(delta, delta, False, inv_b, db)


def penalty(W, l1: float, l2: float) -> float:
    """R = l2/2 ||W||^2 + l1 ||W||_1."""
    if not (l1 or l2):
        return 0.0
    out = cuda.device_array(1, dtype=np.float64)
    # to_device: MLP.loss and MLP.evaluate add the penalty of the model's host weights
    _weighted_sum_kernel[1, TPB](to_device(W), float(l1), 0.5 * float(l2), out, 0)
    return float(out.copy_to_host()[0])


@cuda.jit
def _sgd_kernel(W, dW, v, lr, mu, nesterov):
    """v <- mu v - lr dW;  W <- W + v   (Nesterov: W <- W + mu v - lr dW;  mu = 0: W <- W - lr dW)."""
    m, n = W.shape
    for k in range(cuda.grid(1), m * n, cuda.gridsize(1)):
        i = k // n
        j = k - i * n
        if mu == 0.0:  # plain SGD neither reads nor writes v
            W[i, j] = _sgd_step(W[i, j], dW[i, j], 0.0, lr, 0.0, False)[0]
        else:
            W[i, j], v[i, j] = _sgd_step(W[i, j], dW[i, j], v[i, j], lr, mu, nesterov)


def _matrix(x):
    """A 1-D parameter vector as a (1, n) matrix view (parameters are contiguous), 2-D as it is."""
    return x.reshape(1, x.shape[0]) if x.ndim == 1 else x


def sgd_update(W, dW, v, lr: float, momentum: float, nesterov: bool) -> None:
    """v <- mu v - lr dW;  W <- W + v   (Nesterov: W <- W + mu v - lr dW; plain SGD when mu = 0)."""
    if W.size == 0:
        return
    W2, dW2, v2 = _matrix(W), _matrix(dW), _matrix(v)
    _sgd_kernel[_blocks(W.size), TPB](W2, dW2, v2, float(lr), float(momentum), bool(nesterov))


@cuda.jit
def _add_kernel(dst, src):
    """dst <- dst + src   (the identity path of a residual block)."""
    B, n = dst.shape
    for k in range(cuda.grid(1), B * n, cuda.gridsize(1)):
        i = k // n
        j = k - i * n
        dst[i, j] += src[i, j]


def add(dst, src) -> None:
    """dst <- dst + src   (used by fastnn.engine for skip connections)."""
    _add_kernel[_blocks(dst.shape[0] * dst.shape[1]), TPB](dst, src)


# --------------------------------------------------------------------------- dropout


@cuda.jit
def _dropout_kernel(x, key, keep, scale):
    """x_k <- x_k * scale if u_k < keep else 0   (u_k: the hash of key and the row-major index k; scale = 1/keep)."""
    B, n = x.shape
    for k in range(cuda.grid(1), B * n, cuda.gridsize(1)):
        i = k // n
        j = k - i * n
        if _dropout_uniform(key, k) < keep:
            x[i, j] = x[i, j] * scale
        else:
            x[i, j] = 0


def dropout(x, keep: float, seed: int, step: int, layer: int) -> None:
    """x <- x * m / keep   (inverted dropout in place; the reference's counter-based mask, drawn on the device)."""
    key = np.uint64(dropout_key(int(seed), int(step), int(layer)))
    scale = x.dtype.type(1.0 / keep)  # multiplied in the array's dtype, as the reference does
    launch = _dropout_kernel[_blocks(x.shape[0] * x.shape[1]), TPB]
    if SIMULATOR:  # the simulator hashes with NumPy uint64 scalars, which warn where the GPU just wraps
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="overflow encountered in scalar", category=RuntimeWarning)
            launch(x, key, float(keep), scale)
    else:
        launch(x, key, float(keep), scale)


# --------------------------------------------------------------------------- device-resident epoch


@cuda.jit
def _gather_rows_kernel(X, order, start, out):
    """out_i = X_{order[start + i]}   (this mini-batch's rows, gathered on the device)."""
    B, n = out.shape
    for k in range(cuda.grid(1), B * n, cuda.gridsize(1)):
        i = k // n
        j = k - i * n
        out[i, j] = X[order[start + i], j]


@cuda.jit
def _hits_kernel(out, labels, order, start, single_sigmoid, hits):
    """hits_{start+i} = [argmax_j out_ij == labels_{order[start+i]}]   (one sigmoid unit: [out_i0 > 1/2])."""
    for i in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
        hits[start + i] = 1 if _predicted_label(out, i, single_sigmoid) == labels[order[start + i]] else 0


def _gather(X, order, start: int, out) -> None:
    _gather_rows_kernel[_blocks(out.shape[0] * out.shape[1]), TPB](X, order, start, out)


# The training set of the fit in progress, on the device: one entry per engine Workspace (a fit
# makes one), so it lives exactly as long as that fit's buffers do.
_RESIDENT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _resident_training_set(ws, X, Y, labels):
    """Device copies of (X, Y, labels), uploaded once per fit and reused by its later epochs.

    The cache is keyed on the fit's workspace and holds the host arrays themselves: it is reused
    only while the engine passes the very same objects (``is``), so another fit, or a freshly
    augmented copy of X each epoch, is uploaded anew, and a new array that happens to reuse a freed
    one's address can never be mistaken for it.  (Editing X in place during a fit, e.g. from a
    callback, is not seen by later epochs: fit on a copy instead.)
    """
    hit = _RESIDENT.get(ws)
    if hit is not None and hit[0] is X and hit[1] is Y and hit[2] is labels:
        return hit[3]
    dev = (to_device(np.ascontiguousarray(X)), to_device(np.ascontiguousarray(Y)),
           None if labels is None else to_device(np.ascontiguousarray(labels, dtype=np.int64)))
    _RESIDENT[ws] = (X, Y, labels, dev)
    return dev


class _EpochRecord:
    """What an epoch keeps on the device until it ends, when these are its only device-to-host copies.

    Per sample its loss J_b and hit; per batch and layer the penalty and ||dW||^2 (float64).
    """

    def __init__(self, n: int, n_batches: int, n_layers: int, labelled: bool, regularised: bool):
        self.n_layers = n_layers
        self.sample_loss = cuda.device_array(n, dtype=np.float64)
        self.hits = cuda.device_array(n, dtype=np.int8) if labelled else None
        self.penalty = cuda.device_array(n_batches * n_layers, dtype=np.float64) if regularised else None
        self.grad_sq = cuda.device_array(n_batches * n_layers, dtype=np.float64)


def _load_batch(ws, dX, dY, d_order, start: int, B: int, hyper, step: int):
    """x, y = rows order[start:start + B] of X and Y, gathered on the device;  x *= input dropout mask / keep."""
    xb, yb = ws.x[:B], ws.y[:B]
    _gather(dX, d_order, start, xb)
    _gather(dY, d_order, start, yb)
    if hyper.keep_input < 1.0:
        dropout(xb, hyper.keep_input, hyper.seed, step, 0)
    return xb, yb


def _forward_batch(spec, p, ws, xb, yb, hyper, step: int, record: _EpochRecord, start: int) -> None:
    """z_l = a_{l-1} W_l + b_l;  a_l = f_l(z_l) [* m/keep];  then J_b (into the record) and delta_L.

    Softmax, cross-entropy and delta_L = a - y are one fused kernel.
    """
    B, L = xb.shape[0], spec.n_layers
    fused_output = spec.acts[-1] == SOFTMAX and spec.loss == CROSS_ENTROPY
    a_prev = xb
    for l in range(L):
        z, a = ws.z[l][:B], ws.a[l][:B]
        linear_forward(a_prev, p.W[l], p.b[l], z)
        if l == L - 1 and fused_output:
            _softmax_xent_kernel[_blocks(B), TPB](z, yb, a, ws.delta[l][:B], record.sample_loss, start)
        else:
            activate(spec.acts[l], z, p.alpha[l], a)
            if l < L - 1 and hyper.keep_hidden < 1.0:
                dropout(a, hyper.keep_hidden, hyper.seed, step, l + 1)
        a_prev = a
    if not fused_output:
        out = ws.a[L - 1][:B]
        _row_loss_kernel[_blocks(B), TPB](spec.loss, ws.z[L - 1][:B], out, yb, record.sample_loss, start)
        output_delta(spec.loss, spec.acts[-1], out, yb, ws.delta[L - 1][:B])


def _record_batch(spec, p, ws, B: int, hyper, record: _EpochRecord, dlabels, d_order, start: int, k: int) -> None:
    """Batch k's hits (its rows' predicted class against their label) and its penalty per layer, into the record."""
    if record.hits is not None:
        single_sigmoid = spec.acts[-1] == SIGMOID and spec.sizes[-1] == 1
        _hits_kernel[_blocks(B), TPB](ws.a[-1][:B], dlabels, d_order, start, single_sigmoid, record.hits)
    if record.penalty is not None:
        for l in range(spec.n_layers):
            _weighted_sum_kernel[1, TPB](p.W[l], float(hyper.l1), 0.5 * float(hyper.l2), record.penalty,
                                         k * record.n_layers + l)


def _backward_batch(spec, p, ws, xb, hyper, step: int, dalpha, record: _EpochRecord, k: int) -> None:
    """dW_l, db_l and ||dW_l||^2 (into the record), top layer first;  delta_{l-1} = f'(z_{l-1}) * (delta_l W_l^T).

    With dropout, delta_l W_l^T is masked as a_{l-1} was.  The input layer needs no delta (nothing
    learns from dJ/dX).
    """
    B = xb.shape[0]
    l1, l2 = float(hyper.l1), float(hyper.l2)
    for l in range(spec.n_layers - 1, -1, -1):
        a_prev = xb if l == 0 else ws.a[l - 1][:B]
        delta = ws.delta[l][:B]
        param_grads(a_prev, delta, p.W[l], l1, l2, ws.dW[l], ws.db[l])
        _weighted_sum_kernel[1, TPB](ws.dW[l], 0.0, 1.0, record.grad_sq, k * record.n_layers + l)
        if l == 0:
            break
        z_prev, delta_prev = ws.z[l - 1][:B], ws.delta[l - 1][:B]
        if hyper.keep_hidden < 1.0:
            g = ws.g[l - 1][:B]
            backprop_error(delta, p.W[l], g)
            dropout(g, hyper.keep_hidden, hyper.seed, step, l)  # the forward pass's mask, drawn again
            activation_backward(spec.acts[l - 1], z_prev, p.alpha[l - 1], g, delta_prev, dalpha[l - 1])
        else:
            propagate_delta(delta, p.W[l], z_prev, spec.acts[l - 1], p.alpha[l - 1], delta_prev, dalpha[l - 1])


def _update(p, velocity, ws, dalpha, hyper) -> None:
    """Every parameter takes its step: W_l, b_l, and PReLU's alpha_l (sgd_update)."""
    for l in range(len(p.W)):
        sgd_update(p.W[l], ws.dW[l], velocity.W[l], hyper.lr, hyper.momentum, hyper.nesterov)
        sgd_update(p.b[l], ws.db[l], velocity.b[l], hyper.lr, hyper.momentum, hyper.nesterov)
        if dalpha[l].size:  # PReLU's learned slopes (a fixed alpha_j has no gradient)
            sgd_update(p.alpha[l], dalpha[l], velocity.alpha[l], hyper.lr, hyper.momentum, hyper.nesterov)


def _epoch_stats(record: _EpochRecord, n: int, batch_size: int) -> EpochStats:
    """The record brought home and summed as fastnn.engine.run_epoch sums, up to the first non-finite batch loss."""
    L = record.n_layers
    n_batches = -(-n // batch_size)
    losses = record.sample_loss.copy_to_host()
    norms = np.sqrt(record.grad_sq.copy_to_host().reshape(n_batches, L))
    penalties = record.penalty.copy_to_host().reshape(n_batches, L) if record.penalty is not None else None
    hit = record.hits.copy_to_host() if record.hits is not None else None
    stats = EpochStats(grad_norm_sum=np.zeros(L))
    batch_losses = []
    for k in range(n_batches):
        start = k * batch_size
        B = min(batch_size, n - start)
        batch_loss = float(np.sum(losses[start:start + B])) / B
        if penalties is not None:
            batch_loss += sum(float(r) for r in penalties[k])
        if not math.isfinite(batch_loss):
            stats.diverged = True
            break
        batch_losses.append(batch_loss)
        stats.loss_sum += batch_loss * B
        stats.n_seen += B
        stats.n_batches += 1
        stats.grad_norm_sum += norms[k]
        if hit is not None:
            stats.correct += int(np.count_nonzero(hit[start:start + B]))
    stats.batch_loss = np.array(batch_losses, dtype=np.float64)
    return stats


def train_epoch(be, spec, p, velocity, ws, X, Y, labels, order, batch_size, hyper, step0,
                threads: int | None = None) -> EpochStats:
    """One epoch with everything on the device; same signature and results as fastnn.engine.run_epoch
    (``threads``, the CPU backends' team size, means nothing on a GPU and is ignored).

    Per mini-batch, only kernel launches: gather the rows, forward (softmax + cross-entropy fused),
    per-sample losses, hits and penalties into device arrays, backward, update.  Nothing is copied
    back until the epoch ends; then the host adds the batch losses up in the engine's order and
    finds the first non-finite one.  After a divergent batch the device keeps computing (with
    NaNs), but fastnn.training.fit restores the weights the epoch started from, as it does for
    every backend.
    """
    n = len(order)
    n_batches = -(-n // batch_size)
    dX, dY, dlabels = _resident_training_set(ws, X, Y, labels)
    d_order = cuda.to_device(np.ascontiguousarray(order, dtype=np.int64))
    record = _EpochRecord(n, n_batches, spec.n_layers, labelled=dlabels is not None,
                          regularised=float(hyper.l1) != 0.0 or float(hyper.l2) != 0.0)
    dalpha = [empty(a.shape if act in LEARNED else 0, spec.dtype) for a, act in zip(p.alpha, spec.acts)]
    for k in range(n_batches):
        start = k * batch_size
        B = min(batch_size, n - start)
        step = step0 + k
        xb, yb = _load_batch(ws, dX, dY, d_order, start, B, hyper, step)
        _forward_batch(spec, p, ws, xb, yb, hyper, step, record, start)
        _record_batch(spec, p, ws, B, hyper, record, dlabels, d_order, start, k)
        _backward_batch(spec, p, ws, xb, hyper, step, dalpha, record, k)
        _update(p, velocity, ws, dalpha, hyper)
    return _epoch_stats(record, n, batch_size)


# --------------------------------------------------------------------------- kernel signatures


def kernel_signatures(dtype) -> dict:
    """{name: (kernel, argument types)} for every kernel, for one float dtype (the PTX test compiles these).

    Arrays are typed with any layout ('A'), the most general code a kernel compiles to.
    """
    from numba import types as t

    f = t.float32 if np.dtype(dtype) == np.float32 else t.float64
    M, V = t.Array(f, 2, "A"), t.Array(f, 1, "A")
    F64, I64, I8 = t.Array(t.float64, 1, "A"), t.Array(t.int64, 1, "A"), t.Array(t.int8, 1, "A")
    i, x, u, b = t.int64, t.float64, t.uint64, t.boolean
    table = {
        "_matmul_kernel": (M, M, M),
        "_matmul_naive_kernel": (M, M, M),
        "_linear_forward_kernel": (M, M, V, M),
        "_backprop_error_kernel": (M, M, M),
        "_propagate_delta_kernel": (M, M, M, i, V, M),
        "_weight_grad_kernel": (M, M, M, x, x, x, M),
        "_activate_kernel": (i, M, V, M),
        "_softmax_kernel": (M, M),
        "_derivative_kernel": (i, M, V, M),
        "_row_loss_kernel": (i, M, M, M, F64, i),
        "_output_delta_kernel": (i, i, M, M, M),
        "_softmax_xent_kernel": (M, M, M, M, F64, i),
        "_times_derivative_kernel": (i, M, V, M, M),
        "_column_sums_kernel": (M, M, b, x, V),
        "_weighted_sum_kernel": (M, x, x, F64, i),
        "_sgd_kernel": (M, M, M, x, x, b),
        "_add_kernel": (M, M),
        "_dropout_kernel": (M, u, x, f),
        "_gather_rows_kernel": (M, I64, i, M),
        "_hits_kernel": (M, I64, I64, i, b, I8),
    }
    return {name: (globals()[name], sig) for name, sig in table.items()}
