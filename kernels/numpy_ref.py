"""The reference backend: every formula of backpropagation written plainly in NumPy.

This module is the living definition of the backend contract (see kernels/README.md).  Every
compiled backend is tested against it, so it favours the obvious over the clever.

Notation (row vectors, batch first): ``a_prev`` (B, n_in), ``W`` (n_in, n_out), ``b`` (n_out,),
``z``, ``a``, ``delta`` (B, n_out).  Outputs are preallocated by the caller and written in place;
kernels never allocate their results, so the same calls work on device arrays in other backends.
Arithmetic happens in the arrays' dtype (float32 or float64); reported losses accumulate in float64.
"""
from __future__ import annotations

import numpy as np

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

NAME = "numpy"

# --------------------------------------------------------------------------- array plumbing
# The training loop moves data with these three, so device backends can keep arrays resident.


def to_device(x: np.ndarray) -> np.ndarray:
    """Host array -> backend array (the identity here)."""
    return x


def to_host(x: np.ndarray) -> np.ndarray:
    """Backend array -> host NumPy array (the identity here)."""
    return x


def empty(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Uninitialised backend array."""
    return np.empty(shape, dtype=dtype)


def assign(dst, src: np.ndarray) -> None:
    """dst[...] = src   (host array into a backend array of the same shape)."""
    dst[...] = src


# --------------------------------------------------------------------------- forward pass


def linear_forward(a_prev, W, b, z) -> None:
    """z = a_prev W + b   (batched matmul plus bias, written into z)."""
    np.matmul(a_prev, W, out=z)
    z += b


MB, KB = 64, 256  # row and depth tile of the blocked matmul


def matmul(A, B, C, method: str = "blas") -> None:
    """C = A B   ('blas': one BLAS call; 'blocked': the same sums tile by tile, C_I += A_IP B_P)."""
    if method == "blas":
        np.matmul(A, B, out=C)
    elif method == "blocked":
        # The idea every fast matmul uses: work on tiles small enough to stay in cache.
        C[...] = 0
        for i0 in range(0, A.shape[0], MB):
            for p0 in range(0, A.shape[1], KB):
                C[i0:i0 + MB] += A[i0:i0 + MB, p0:p0 + KB] @ B[p0:p0 + KB]
    else:
        raise ValueError(f"matmul method {method!r} is not supported; choose 'blas' or 'blocked'")


def _sigmoid(z):
    # exp(-|z|) never overflows: 1/(1+e^-z) for z >= 0, e^z/(1+e^z) for z < 0.
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(z.dtype, copy=False)


def activate(act: int, z, alpha, a) -> None:
    """a = f(z)   (softmax row-wise; ``alpha``: the slope or ELU alpha per unit of leaky_relu, elu, prelu)."""
    if act == IDENTITY:
        a[...] = z
    elif act == SIGMOID:
        a[...] = _sigmoid(z)
    elif act == TANH:
        np.tanh(z, out=a)
    elif act == RELU:
        np.maximum(z, 0, out=a)
    elif act == LEAKY_RELU:
        a[...] = np.where(z > 0, z, alpha * z)
    elif act == ELU:
        # expm1 of min(z, 0) so the unused branch of np.where cannot overflow
        a[...] = np.where(z > 0, z, alpha * np.expm1(np.minimum(z, 0)))
    elif act == PRELU:
        a[...] = np.where(z > 0, z, alpha * z)
    elif act == SOFTMAX:
        e = np.exp(z - z.max(axis=1, keepdims=True))  # shift by the row max: exp never overflows
        np.divide(e, e.sum(axis=1, keepdims=True), out=a)
    else:
        raise ValueError(f"unknown activation code {act}")


def activation_derivative(act: int, z, alpha, d) -> None:
    """d = f'(z)   (elementwise; softmax has a Jacobian, not a derivative, and is output-only)."""
    if act == IDENTITY:
        d[...] = 1
    elif act == SIGMOID:
        s = _sigmoid(z)
        d[...] = s * (1 - s)
    elif act == TANH:
        t = np.tanh(z)
        d[...] = 1 - t * t
    elif act == RELU:
        d[...] = z > 0
    elif act == LEAKY_RELU:
        d[...] = np.where(z > 0, 1.0, alpha)
    elif act == ELU:
        d[...] = np.where(z > 0, 1.0, alpha * np.exp(np.minimum(z, 0)))
    elif act == PRELU:
        d[...] = np.where(z > 0, 1, alpha)
    else:
        raise ValueError(f"activation code {act} has no elementwise derivative")


# --------------------------------------------------------------------------- loss and output delta


def _loss_terms(loss: int, z, a, y) -> np.ndarray:
    """The (B, n) terms whose row sums are J_b   (logs taken from z so they never see log 0)."""
    if loss == MSE:
        diff = a - y
        return 0.5 * (diff * diff)
    if loss == CROSS_ENTROPY:
        # ln softmax(z)_j = z_j - max(z) - ln sum_k exp(z_k - max(z))
        zs = z - z.max(axis=1, keepdims=True)
        log_a = zs - np.log(np.exp(zs).sum(axis=1, keepdims=True))
        return -(y * log_a)
    if loss == BINARY_CROSS_ENTROPY:
        # -[y ln s(z) + (1-y) ln(1-s(z))] = max(z,0) - z y + ln(1 + exp(-|z|))
        return np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
    raise ValueError(f"unknown loss code {loss}")


def sample_loss(loss: int, z, a, y) -> np.ndarray:
    """J_b for every sample b, float64 (B,).

    MSE: 1/2 sum_j (a_j - y_j)^2;  cross-entropy: -sum_j y_j ln softmax(z)_j;
    binary cross-entropy: -sum_j [y_j ln s(z_j) + (1 - y_j) ln(1 - s(z_j))].
    """
    return np.sum(_loss_terms(loss, z, a, y), axis=1, dtype=np.float64)


def loss_value(loss: int, act: int, z, a, y) -> float:
    """J = (1/B) sum_b J_b   (one pairwise sum over all B x n terms: less rounding than adding up row sums, and
    the finite-difference gradient checks, which difference two such losses, see it)."""
    return float(np.sum(_loss_terms(loss, z, a, y), dtype=np.float64)) / z.shape[0]


def predicted_labels(a, threshold: bool) -> np.ndarray:
    """The label rule: argmax_j a_bj per row, or [a_b0 > 1/2] for one sigmoid unit (threshold=True)."""
    if threshold:
        return (a[:, 0] > 0.5).astype(np.int64)
    return np.argmax(a, axis=1)


def output_delta(loss: int, act: int, a, y, delta) -> None:
    """delta_L = dJ_b/dz_L per sample   (a - y for softmax+CE and sigmoid+BCE)."""
    np.subtract(a, y, out=delta)  # dJ/da for MSE; already dJ/dz for the matched pairs
    if loss in (CROSS_ENTROPY, BINARY_CROSS_ENTROPY):
        return
    if loss != MSE:
        raise ValueError(f"unknown loss code {loss}")
    if act == SIGMOID:
        delta *= a * (1 - a)
    elif act == SOFTMAX:
        # Softmax Jacobian: dJ/dz_k = a_k (g_k - sum_j g_j a_j) with g = dJ/da
        delta -= np.sum(delta * a, axis=1, keepdims=True)
        delta *= a
    elif act != IDENTITY:
        raise ValueError(f"output activation code {act} is not supported")


def softmax_jacobian(a, J) -> None:
    """J_bjk = da_bj/dz_bk = a_bj ([j = k] - a_bk)   (a = softmax(z), (B, n); J (B, n, n)).

    output_delta never builds it: it multiplies by it, dJ/dz = a * (g - sum_j g_j a_j) with g = dJ/da.
    """
    np.multiply(a[:, :, None], -a[:, None, :], out=J)
    idx = np.arange(a.shape[1])
    J[:, idx, idx] += a


# --------------------------------------------------------------------------- backward pass


def backprop_error(delta_next, W_next, g) -> None:
    """g = delta_next W_next^T   (the error arriving at this layer's activations, dJ/da)."""
    np.matmul(delta_next, W_next.T, out=g)


def activation_backward(act: int, z, alpha, g, delta, dalpha) -> None:
    """delta = f'(z) * g;  PReLU: dalpha_j = (1/B) sum_b g_bj min(z_bj, 0)."""
    activation_derivative(act, z, alpha, delta)
    delta *= g
    if act == PRELU:
        dalpha[...] = np.sum(g * np.minimum(z, 0), axis=0) / z.shape[0]


def propagate_delta(delta_next, W_next, z, act: int, alpha, delta, dalpha) -> None:
    """delta = f'(z) * (delta_next W_next^T)   (backprop_error then activation_backward)."""
    g = np.matmul(delta_next, W_next.T)
    activation_backward(act, z, alpha, g, delta, dalpha)


def param_grads(a_prev, delta, W, l1: float, l2: float, dW, db) -> None:
    """dW = a_prev^T delta / B + l2 W + l1 sign(W);  db = (1/B) sum_b delta_b."""
    B = a_prev.shape[0]
    np.matmul(a_prev.T, delta, out=dW)
    dW /= B
    if l2:
        dW += l2 * W
    if l1:
        dW += l1 * np.sign(W)  # sign(0) = 0: the subgradient that leaves exact zeros alone
    np.sum(delta, axis=0, out=db)
    db /= B


def penalty(W, l1: float, l2: float) -> float:
    """R = l2/2 ||W||^2 + l1 ||W||_1   (weights only, never biases)."""
    r = 0.0
    if l2:
        r += 0.5 * l2 * float(np.sum(W * W, dtype=np.float64))
    if l1:
        r += l1 * float(np.sum(np.abs(W), dtype=np.float64))
    return r


def sgd_update(W, dW, v, lr: float, momentum: float, nesterov: bool) -> None:
    """v <- mu v - lr dW;  W <- W + v   (Nesterov: W <- W + mu v - lr dW; plain SGD when mu = 0)."""
    if momentum == 0:
        W -= lr * dW
        return
    v *= momentum
    v -= lr * dW
    if nesterov:
        W += momentum * v - lr * dW
    else:
        W += v


# --------------------------------------------------------------------------- dropout
# Masks come from a counter-based hash of (seed, step, layer, index), so every backend draws the
# same mask without storing it or copying it between host and device, and the backward pass just
# draws it again.  The hash is SplitMix64 (Steele, Lea & Flood 2014).

_M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def _mix64(x: int) -> int:
    """SplitMix64 finaliser on a Python int (exact 64-bit wrapping arithmetic)."""
    x &= _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def dropout_key(seed: int, step: int, layer: int) -> int:
    """k = mix(mix(mix(seed + G) + (step+1) G) + (layer+1) G)   (one stream per batch and layer)."""
    k = _mix64(seed + GOLDEN)
    k = _mix64(k + (step + 1) * GOLDEN)
    return _mix64(k + (layer + 1) * GOLDEN)


def dropout_uniform(n: int, seed: int, step: int, layer: int) -> np.ndarray:
    """u_i = mix(k + (i+1) G) / 2^64 in [0, 1), i = 0..n-1 in row-major order (53-bit float64)."""
    k = np.uint64(dropout_key(seed, step, layer))
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps, exactly as in the compiled backends
        x = k + (np.arange(1, n + 1, dtype=np.uint64) * np.uint64(GOLDEN))
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def dropout_mask(shape: tuple[int, int], keep: float, seed: int, step: int, layer: int) -> np.ndarray:
    """m_i = [u_i < keep]   (True where the unit is kept)."""
    return dropout_uniform(shape[0] * shape[1], seed, step, layer).reshape(shape) < keep


def dropout(x, keep: float, seed: int, step: int, layer: int) -> None:
    """x <- x * m / keep   (inverted dropout, in place; apply again to dJ/da in the backward pass)."""
    m = dropout_mask(x.shape, keep, seed, step, layer)
    x *= m
    x *= x.dtype.type(1.0 / keep)
