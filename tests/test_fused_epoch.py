"""A backend's fused train_epoch must give the weights of the step-by-step reference epoch.

Whole training runs with dropout, input dropout, L1 + L2, momentum / Nesterov, PReLU slopes and a
partial last batch: float64 to 1e-9 relative, float32 close.  Every backend that offers a fused
``train_epoch`` is held to this (and to the step-by-step path through its own kernels).
"""
import types

import numpy as np
import pytest

import fastnn
from fastnn import backends

FUSED = [name for name in backends.available() if hasattr(backends.get(name), "train_epoch")]


def _step_by_step(module):
    """The same backend with its train_epoch hidden, so fit uses engine.run_epoch on its kernels."""
    return types.SimpleNamespace(**{k: v for k, v in vars(module).items() if k != "train_epoch"})


CONFIGS = {
    "everything": dict(model=dict(activation=["prelu", "tanh"], dropout=0.3, input_dropout=0.2,
                                  l1=1e-3, l2=1e-2),
                       fit=dict(momentum=0.9, nesterov=True, batch_size=16)),
    "plain-relu": dict(model=dict(activation="relu"), fit=dict(batch_size=7)),
    "sigmoid-bce": dict(model=dict(activation="sigmoid", output="sigmoid", dropout=0.5),
                        fit=dict(momentum=0.5, batch_size=32), single=True),
    "regression": dict(model=dict(activation="elu", output="identity", l2=1e-3),
                       fit=dict(momentum=0.9, batch_size=10), regression=True),
    # the settable LeakyReLU slope and ELU alpha (not their defaults), sparse and dense
    "settable-slopes": dict(model=dict(activation=["leaky_relu", "elu"], leaky_slope=0.2, elu_alpha=0.5,
                                       dropout=0.2, l2=1e-3),
                            fit=dict(momentum=0.9, batch_size=9)),
    "sparse-settable-slopes": dict(model=dict(activation=["elu", "leaky_relu"], leaky_slope=0.3, elu_alpha=2.0),
                                   fit=dict(batch_size=6), sparse=True),
    # image-like inputs, mostly exact zeros: the fused epochs compact the first layer's products
    # to the batch's nonzero columns (plain SGD updates only those rows of W_1)
    "sparse-plain": dict(model=dict(activation="relu"), fit=dict(batch_size=8), sparse=True),
    "sparse-everything": dict(model=dict(activation=["prelu", "tanh"], dropout=0.3, input_dropout=0.2,
                                         l1=1e-3, l2=1e-2),
                              fit=dict(momentum=0.9, nesterov=True, batch_size=5), sparse=True),
    # batches of one row: about 1 in 6 rows is all zeros (m = 0, the dense path), the rest sparse
    "sparse-batch-1": dict(model=dict(activation="relu", l2=1e-3), fit=dict(batch_size=1), sparse=True),
    # "everything" without PReLU, which keeps a network off the thread teams (tests/test_team.py)
    "everything-no-prelu": dict(model=dict(activation=["relu", "tanh"], dropout=0.3, input_dropout=0.2,
                                           l1=1e-3, l2=1e-2),
                                fit=dict(momentum=0.9, nesterov=True, batch_size=16)),
    "sparse-everything-no-prelu": dict(model=dict(activation=["elu", "sigmoid"], dropout=0.3, input_dropout=0.2,
                                                  l1=1e-3, l2=1e-2),
                                       fit=dict(momentum=0.9, batch_size=5), sparse=True),
}


def _sparse_inputs(rng, n, d):
    """Mostly zeros: two features never set, the rest nonzero with probability 0.3 (some batches
    have every column nonzero, most do not)."""
    X = rng.normal(size=(n, d)) * (rng.random((n, d)) < 0.3)
    X[:, [1, 4]] = 0
    return X


def _run(backend, dtype, config, fused):
    rng = np.random.default_rng(0)
    X = _sparse_inputs(rng, 103, 7) if config.get("sparse") else rng.normal(size=(103, 7))
    if config.get("regression"):
        n_out, y = 3, rng.normal(size=(103, 3))
    elif config.get("single"):
        n_out, y = 1, rng.integers(0, 2, 103)
    else:
        n_out, y = 4, rng.integers(0, 4, 103)
    m = fastnn.MLP([7, 9, 6, n_out], dtype=dtype, seed=3, backend=backend, **config["model"])
    if not fused:
        m._be = _step_by_step(m._be)
    h = m.fit(X, y, epochs=3, lr=0.1, verbose=0, **config["fit"])
    return m, h


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("backend_name", FUSED)
def test_fused_epoch_equals_reference_float64(backend_name, config):
    ref, h_ref = _run("numpy", "float64", CONFIGS[config], fused=False)
    got, h_got = _run(backend_name, "float64", CONFIGS[config], fused=True)
    for a, b in zip(ref.weights + ref.biases + ref.alphas, got.weights + got.biases + got.alphas):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(h_got.loss, h_ref.loss, rtol=1e-9)
    np.testing.assert_array_equal(np.nan_to_num(h_got.accuracy, nan=-1), np.nan_to_num(h_ref.accuracy, nan=-1))
    np.testing.assert_allclose(h_got.grad_norms, h_ref.grad_norms, rtol=1e-9)
    # the loss of every mini-batch, recorded inside the fused epoch
    assert [len(b) for b in h_got.batch_loss] == [len(b) for b in h_ref.batch_loss] == [-(-103 // CONFIGS[config]["fit"]["batch_size"])] * 3
    np.testing.assert_allclose(np.concatenate(h_got.batch_loss), np.concatenate(h_ref.batch_loss), rtol=1e-9)
    assert got._step == ref._step


@pytest.mark.parametrize("backend_name", FUSED)
def test_fused_epoch_equals_own_kernels_float32(backend_name):
    config = CONFIGS["everything"]
    step, _ = _run(backend_name, "float32", config, fused=False)
    fused, _ = _run(backend_name, "float32", config, fused=True)
    ref, _ = _run("numpy", "float32", config, fused=False)
    for a, b, c in zip(step.weights, fused.weights, ref.weights):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(b, c, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("backend_name", FUSED)
def test_fused_epoch_divergence_keeps_finite_weights(backend_name):
    rng = np.random.default_rng(0)
    X, y = rng.normal(0, 100, (64, 3)), rng.normal(0, 100, (64, 1))
    m = fastnn.MLP([3, 16, 1], output="identity", seed=0, backend=backend_name)
    with pytest.warns(fastnn.TrainingDivergedWarning):
        h = m.fit(X, y, epochs=50, batch_size=8, lr=5.0, verbose=0)
    assert h.diverged
    assert all(np.isfinite(p).all() for p in m.weights + m.biases)
