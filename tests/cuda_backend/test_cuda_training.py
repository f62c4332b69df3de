"""Whole training runs on the cuda backend equal the NumPy reference (float64, dropout on).

Tiny networks and data (the simulator runs every GPU thread as a Python thread), partial last
batches, two epochs.  The device-resident fused ``train_epoch`` and the step-by-step engine on the
CUDA kernels are both held to the step-by-step reference.
"""
from __future__ import annotations

import gc
import types
import warnings
import weakref

import numpy as np
import pytest

import fastnn
from fastnn import engine

from .conftest import CUDA_OK

if CUDA_OK:
    from fastnn.kernels import numba_cuda as cu

CONFIGS = {
    "everything": dict(model=dict(activation=["prelu", "tanh"], dropout=0.3, input_dropout=0.2, l1=1e-3, l2=1e-2),
                       fit=dict(momentum=0.9, nesterov=True, batch_size=5)),
    "relu-softmax-mse": dict(model=dict(activation="relu", loss="mse", dropout=0.5), fit=dict(batch_size=4)),
    "sigmoid-bce": dict(model=dict(activation=["sigmoid", "leaky_relu"], output="sigmoid", dropout=0.4),
                        fit=dict(momentum=0.5, batch_size=5), single=True),
    "regression": dict(model=dict(activation="elu", output="identity", l2=1e-3),
                       fit=dict(momentum=0.9, batch_size=5), regression=True),
}


def _data(config, n=13, n_in=5):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, n_in))
    if config.get("regression"):
        return X, rng.normal(size=(n, 3)), 3
    if config.get("single"):
        return X, rng.integers(0, 2, n), 1
    return X, rng.integers(0, 3, n), 3


def _step_by_step(module):
    """The backend with its train_epoch hidden, so fit runs engine.run_epoch on its kernels."""
    return types.SimpleNamespace(**{k: v for k, v in vars(module).items() if k != "train_epoch"})


def _run(backend, config, dtype="float64", fused=True, epochs=2, **fit_kw):
    X, y, n_out = _data(config)
    m = fastnn.MLP([5, 4, 3, n_out], dtype=dtype, seed=3, backend=backend, **config["model"])
    if not fused:
        m._be = _step_by_step(m._be)
    h = m.fit(X, y, epochs=epochs, lr=0.1, verbose=0, **{**config["fit"], **fit_kw})
    return m, h


def _same(got, ref, h_got, h_ref, rtol=1e-9):
    for a, b in zip(ref.weights + ref.biases + ref.alphas, got.weights + got.biases + got.alphas):
        np.testing.assert_allclose(b, a, rtol=rtol, atol=1e-12)
    np.testing.assert_allclose(h_got.loss, h_ref.loss, rtol=rtol)
    np.testing.assert_array_equal(np.nan_to_num(h_got.accuracy, nan=-1), np.nan_to_num(h_ref.accuracy, nan=-1))
    np.testing.assert_allclose(h_got.grad_norms, h_ref.grad_norms, rtol=rtol)
    assert got._step == ref._step


@pytest.mark.parametrize("config", list(CONFIGS))
def test_device_resident_epoch_equals_reference_float64(config):
    ref, h_ref = _run("numpy", CONFIGS[config])
    got, h_got = _run("cuda", CONFIGS[config])
    assert got.backend == "cuda" and hasattr(got._be, "train_epoch")
    _same(got, ref, h_got, h_ref)


def test_step_by_step_engine_on_cuda_kernels_equals_reference():
    config = CONFIGS["everything"]
    ref, h_ref = _run("numpy", config)
    got, h_got = _run("cuda", config, fused=False)
    _same(got, ref, h_got, h_ref)


def test_float32_close_to_reference():
    config = CONFIGS["everything"]
    ref, _ = _run("numpy", config, dtype="float32")
    got, _ = _run("cuda", config, dtype="float32")
    for a, b in zip(ref.weights + ref.alphas, got.weights + got.alphas):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)


def test_validation_early_stopping_and_restore():
    """Validation runs predict with the device weights; early stopping restores them with assign."""
    config = dict(model=dict(activation="tanh", dropout=0.2), fit=dict(batch_size=4))
    kw = dict(validation_split=0.3, early_stopping=fastnn.EarlyStopping(patience=1, monitor="val_accuracy"), epochs=3)
    ref, h_ref = _run("numpy", config, **kw)
    got, h_got = _run("cuda", config, **kw)
    _same(got, ref, h_got, h_ref)
    np.testing.assert_allclose(h_got.val_loss, h_ref.val_loss, rtol=1e-9)
    assert h_got.best_epoch == h_ref.best_epoch


def test_augmented_copies_each_epoch_are_uploaded_afresh():
    """fit(augment=...) passes a new X every epoch: the device copy must follow it."""
    config = CONFIGS["relu-softmax-mse"]

    def jitter(X, rng):
        return X + rng.normal(0, 0.1, X.shape)

    ref, h_ref = _run("numpy", config, augment=jitter)
    got, h_got = _run("cuda", config, augment=jitter)
    _same(got, ref, h_got, h_ref)


def test_divergence_restores_the_last_finite_weights():
    rng = np.random.default_rng(0)
    X, y = rng.normal(0, 100, (12, 3)), rng.normal(0, 100, (12, 1))
    models = []
    for backend in ("numpy", "cuda"):
        m = fastnn.MLP([3, 4, 1], output="identity", seed=0, backend=backend, dtype="float64")
        with pytest.warns(fastnn.TrainingDivergedWarning):
            # pytest.warns records everything: drop the simulator's NumPy overflow chatter (see conftest.py)
            warnings.filterwarnings("ignore", category=RuntimeWarning, module="fastnn.kernels.numba_cuda")
            h = m.fit(X, y, epochs=20, batch_size=4, lr=5.0, verbose=0)
        assert h.diverged
        models.append((m, h))
    (ref, h_ref), (got, h_got) = models
    assert h_got.epochs == h_ref.epochs
    assert all(np.isfinite(p).all() for p in got.weights + got.biases)
    for a, b in zip(ref.weights + ref.biases, got.weights + got.biases):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)


def test_training_set_stays_on_the_device_between_epochs():
    """One upload per fit: the cache hangs on the fit's workspace and holds the host arrays themselves."""
    X = np.random.default_rng(0).normal(size=(6, 5))
    Y = np.eye(3)[[0, 1, 2, 0, 1, 2]]
    labels = np.array([0, 1, 2, 0, 1, 2])
    spec = engine.NetSpec((5, 3), (fastnn.codes.SOFTMAX,), fastnn.codes.CROSS_ENTROPY, np.dtype(np.float64))
    ws = engine.Workspace(cu, spec, 4, training=True)
    first = cu._resident_training_set(ws, X, Y, labels)
    assert cu._resident_training_set(ws, X, Y, labels) is first  # the next epoch: no upload
    np.testing.assert_array_equal(cu.to_host(first[0]), X)
    X2 = X.copy()  # equal values, another object (an augmented epoch, another fit's data)
    second = cu._resident_training_set(ws, X2, Y, labels)
    assert second is not first
    other_ws = engine.Workspace(cu, spec, 4, training=True)
    assert cu._resident_training_set(other_ws, X2, Y, labels) is not second  # another fit uploads its own
    finished = weakref.ref(ws)
    del ws
    gc.collect()
    assert finished() is None and other_ws in cu._RESIDENT
    assert all(key is not None for key in cu._RESIDENT.keys())  # the finished fit's copy went with its workspace


def test_residual_network_through_the_engine():
    """Skip connections train step by step on the cuda kernels (add, device-to-device copies)."""
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(9, 4)), rng.integers(0, 3, 9)
    out = []
    for backend in ("numpy", "cuda"):
        m = fastnn.MLP([4, 3, 3, 3], activation="tanh", residual=True, dropout=0.3, input_dropout=0.2,
                       backend=backend, seed=0, dtype="float64")
        h = m.fit(X, y, epochs=2, batch_size=4, lr=0.1, momentum=0.9, verbose=0)
        out.append((m, h))
    (ref, h_ref), (got, h_got) = out
    _same(got, ref, h_got, h_ref)


def test_predict_gradients_and_worked_example():
    m = fastnn.MLP([3, 3, 2], activation="sigmoid", output="sigmoid", loss="mse", backend="cuda", dtype="float64")
    m.weights = [[[0.25, 0.15, 0.30], [0.25, 0.20, 0.35], [0.10, 0.25, 0.15]], [[0.40, 0.25], [0.35, 0.30], [0.01, 0.35]]]
    m.biases = [[0.4, 0.4, 0.4], [0.7, 0.7]]
    x, y = np.array([[0.02, 0.04, 0.01]]), np.array([[0.9, 0.5]])
    np.testing.assert_allclose(m.forward(x), [[0.7609, 0.7760]], atol=5e-5)
    assert m.loss(x, y) == pytest.approx(0.0478, abs=5e-5)
    dW, db = m.gradients(x, y)
    assert dW[1][1, 0] == pytest.approx(-0.0152, abs=5e-5)
    m.fit(x, y, epochs=1, batch_size=1, lr=1.0, shuffle=False, verbose=0)
    assert m.weights[1][1, 0] == pytest.approx(0.3652, abs=5e-5)
