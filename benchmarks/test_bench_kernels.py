"""Kernel by kernel, every available CPU backend against the NumPy reference.

Sizes are those of the first hidden layer of the MNIST network at batch 128 (float32). Each
benchmark first checks its backend's result against numpy_ref on the same inputs, so a fast
wrong kernel fails instead of winning.
"""
from __future__ import annotations

import numpy as np
import pytest

from fastnn import backends, codes
from fastnn.kernels import numpy_ref as ref
from conftest import CPU_BACKENDS

B, N_IN, N_OUT = 128, 784, 256
RTOL = 2e-4  # float32 sums of 784 terms


@pytest.fixture(scope="module")
def arrays():
    rng = np.random.default_rng(0)
    f = np.float32
    return dict(
        a_prev=rng.random((B, N_IN), dtype=f), W=(rng.standard_normal((N_IN, N_OUT)) * 0.05).astype(f),
        b=np.zeros(N_OUT, f), z=rng.standard_normal((B, N_OUT)).astype(f),
        delta_next=rng.standard_normal((B, N_IN)).astype(f),
        W_next=(rng.standard_normal((N_OUT, N_IN)) * 0.05).astype(f), no_alpha=np.zeros(0, f),
    )


def _check(got, expected):
    scale = max(1.0, float(np.max(np.abs(expected))))
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=RTOL * scale)


@pytest.mark.parametrize("method", ["blas", "blocked"])
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_matmul(benchmark, arrays, backend, method):
    be = backends.get(backend)
    C = np.empty((B, N_OUT), np.float32)
    be.matmul(arrays["a_prev"], arrays["W"], C, method=method)
    _check(C, arrays["a_prev"] @ arrays["W"])
    benchmark.group = f"matmul {B}x{N_IN} @ {N_IN}x{N_OUT}"
    benchmark(be.matmul, arrays["a_prev"], arrays["W"], C, method=method)


@pytest.mark.parametrize("act", ["relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_activation_derivative(benchmark, arrays, backend, act):
    be, code = backends.get(backend), codes.ACTIVATIONS[act]
    d, expected = np.empty((B, N_OUT), np.float32), np.empty((B, N_OUT), np.float32)
    be.activation_derivative(code, arrays["z"], arrays["no_alpha"], d)
    ref.activation_derivative(code, arrays["z"], arrays["no_alpha"], expected)
    _check(d, expected)
    benchmark.group = f"activation_derivative {act} {B}x{N_OUT}"
    benchmark(be.activation_derivative, code, arrays["z"], arrays["no_alpha"], d)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_propagate_delta(benchmark, arrays, backend):
    be = backends.get(backend)
    # delta (B, 256) = f'(z) * (delta_next (B, 784) W_next^T), with W_next (256, 784)
    d, expected = np.empty((B, N_OUT), np.float32), np.empty((B, N_OUT), np.float32)
    args = (arrays["delta_next"], arrays["W_next"], arrays["z"], codes.RELU, arrays["no_alpha"])
    be.propagate_delta(*args, d, arrays["no_alpha"])
    ref.propagate_delta(*args, expected, arrays["no_alpha"])
    _check(d, expected)
    benchmark.group = f"propagate_delta relu {B}x{N_IN} -> {B}x{N_OUT}"
    benchmark(be.propagate_delta, *args, d, arrays["no_alpha"])


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_param_grads(benchmark, arrays, backend):
    be = backends.get(backend)
    dW, db = np.empty((N_IN, N_OUT), np.float32), np.empty(N_OUT, np.float32)
    edW, edb = np.empty_like(dW), np.empty_like(db)
    args = (arrays["a_prev"], arrays["z"], arrays["W"], 1e-5, 1e-4)
    be.param_grads(*args, dW, db)
    ref.param_grads(*args, edW, edb)
    _check(dW, edW)
    _check(db, edb)
    benchmark.group = f"param_grads l1+l2 {N_IN}x{N_OUT}"
    benchmark(be.param_grads, *args, dW, db)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_sgd_update(benchmark, arrays, backend):
    be = backends.get(backend)
    W, v = arrays["W"].copy(), np.zeros_like(arrays["W"])
    eW, ev = W.copy(), v.copy()
    be.sgd_update(W, arrays["W"], v, 0.01, 0.9, False)
    ref.sgd_update(eW, arrays["W"], ev, 0.01, 0.9, False)
    _check(W, eW)
    benchmark.group = f"sgd_update momentum {N_IN}x{N_OUT}"
    benchmark(be.sgd_update, W, arrays["W"], v, 0.01, 0.9, False)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_dropout(benchmark, arrays, backend):
    be = backends.get(backend)
    x, expected = arrays["z"].copy(), arrays["z"].copy()
    be.dropout(x, 0.5, 1, 2, 1)
    ref.dropout(expected, 0.5, 1, 2, 1)
    np.testing.assert_array_equal(x, expected)
    benchmark.group = f"dropout {B}x{N_OUT}"
    benchmark(be.dropout, x, 0.5, 1, 2, 1)
