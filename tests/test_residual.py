"""Residual (skip) connections: a_l = f(z_l) + a_{l-1}, checked against finite differences,
against a hand-written forward pass, across backends, and through save/load and pickling."""
import copy
import json
import pickle

import numpy as np
import pytest

import fastnn
from fastnn import engine

TOL = 1e-6


def _data(n=7, n_in=4, n_out=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, n_in)), rng.integers(0, n_out, n)


def _nonzero_biases(m):
    m.biases = [np.full(b.shape, 0.1) for b in m.biases]
    return m


def test_skip_rule_picks_equal_width_hidden_layers():
    m = fastnn.MLP([4, 5, 5, 6, 6, 6, 3], residual=True, seed=0)
    # layers 2, 4 and 5 (1-based) follow a hidden layer of their own width; layer 1 and the output never skip
    assert m._spec.skip == (False, True, False, True, True, False)
    assert "+ skip" in m.summary()
    assert fastnn.MLP([4, 5, 5, 3], seed=0)._spec.skip == (False,) * 3


@pytest.mark.parametrize("layers", [[4, 5, 3], [4, 5, 6, 3], [4, 3], [4, 5, 5]])
def test_residual_without_equal_hidden_widths_is_rejected(layers):
    # [4, 5, 5]: the 5 -> 5 layer is the output, which never gets a skip
    with pytest.raises(ValueError, match="no two consecutive hidden layers of equal width"):
        fastnn.MLP(layers, residual=True)


def test_residual_must_be_a_bool():
    with pytest.raises(TypeError, match="residual must be True or False"):
        fastnn.MLP([4, 5, 5, 3], residual="yes")


def test_netspec_rejects_a_skip_that_cannot_exist():
    with pytest.raises(ValueError, match="cannot have a skip"):
        engine.NetSpec((4, 5, 6, 3), (3, 3, 7), 1, np.dtype(np.float64), (False, True, False))


def test_forward_matches_the_formula():
    X, _ = _data()
    m = _nonzero_biases(fastnn.MLP([4, 5, 5, 5, 3], activation="tanh", residual=True, dtype="float64",
                                   seed=2, backend="numpy"))
    W, b = m.weights, m.biases
    h1 = np.tanh(X @ W[0] + b[0])
    h2 = np.tanh(h1 @ W[1] + b[1]) + h1
    h3 = np.tanh(h2 @ W[2] + b[2]) + h2
    z = h3 @ W[3] + b[3]
    expected = np.exp(z - z.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(m.forward(X), expected, rtol=1e-12)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "elu"])
def test_gradient_check_residual(backend, activation):
    X, y = _data()
    m = _nonzero_biases(fastnn.MLP([4, 5, 5, 5, 3], activation=activation, residual=True, l2=0.01,
                                   dtype="float64", seed=1, backend=backend))
    result = fastnn.gradient_check(m, X, y)
    assert result.n_checked == m.n_params
    assert result.max_rel_error < TOL, result.report()


def test_gradient_check_residual_regression_with_mixed_widths(backend):
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    m = _nonzero_biases(fastnn.MLP([3, 4, 4, 5, 5, 2], activation="tanh", output="identity",
                                   residual=True, dtype="float64", seed=4, backend=backend))
    assert m._spec.skip == (False, True, False, True, False)
    result = fastnn.gradient_check(m, X, y)
    assert result.max_rel_error < TOL, result.report()


def test_residual_backward_with_dropout_matches_finite_differences(backend):
    """With dropout the masks are fixed by (seed, step), so J is a smooth function of W to check."""
    X, y = _data(n=6)
    m = fastnn.MLP([4, 5, 5, 5, 3], activation="tanh", residual=True, dtype="float64", seed=5, backend=backend)
    be, spec = m._be, m._spec
    Y, _ = m._Y(y, len(X))
    hyper = engine.Hyper(keep_input=0.8, keep_hidden=0.6, seed=11)
    ws = engine.Workspace(be, spec, len(X), training=True)
    dalpha = engine.make_grad_buffers(be, spec, m._params)

    def loss():
        out = engine.forward(be, spec, m._params, ws, X, hyper, step=3)
        return be.loss_value(spec.loss, spec.acts[-1], ws.z[-1], out, Y)

    loss()
    engine.backward(be, spec, m._params, ws, X, Y, hyper, 3, dalpha)
    grads = [g.copy() for g in ws.dW]
    eps, worst = 1e-6, 0.0
    for l, W in enumerate(m.weights):
        for idx in np.ndindex(W.shape):
            old = W[idx]
            W[idx] = old + eps
            jp = loss()
            W[idx] = old - eps
            jm = loss()
            W[idx] = old
            fd = (jp - jm) / (2 * eps)
            worst = max(worst, abs(fd - grads[l][idx]) / max(abs(fd) + abs(grads[l][idx]), 1e-8))
    assert worst < TOL


def test_residual_training_uses_the_step_by_step_engine(monkeypatch):
    """Fused epochs know no skips: fit must not call a backend's train_epoch for a residual net."""
    X, y = _data(n=40)
    m = fastnn.MLP([4, 6, 6, 3], residual=True, seed=0)
    if hasattr(m._be, "train_epoch"):
        def refuse(*args, **kwargs):
            raise AssertionError("fused train_epoch called for a residual network")
        monkeypatch.setattr(m._be, "train_epoch", refuse)
    h = m.fit(X, y, epochs=2, batch_size=8, lr=0.1, verbose=0)
    assert h.epochs == 2 and np.isfinite(h.loss).all()


def test_residual_training_is_the_same_on_every_backend(backend):
    X, y = _data(n=30)
    kw = dict(activation="relu", residual=True, dtype="float64", seed=3, dropout=0.2)
    ref = fastnn.MLP([4, 6, 6, 6, 3], backend="numpy", **kw)
    m = fastnn.MLP([4, 6, 6, 6, 3], backend=backend, **kw)
    for model in (ref, m):
        model.fit(X, y, epochs=3, batch_size=8, lr=0.05, momentum=0.9, verbose=0)
    for a, b in zip(ref.weights + ref.biases, m.weights + m.biases):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)


def test_residual_network_learns():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)  # XOR of signs
    m = fastnn.MLP([2, 16, 16, 16, 2], activation="tanh", residual=True, seed=0)
    m.fit(X, y, epochs=60, batch_size=16, lr=0.05, momentum=0.9, verbose=0)
    assert m.evaluate(X, y)["accuracy"] > 0.9


def test_save_load_round_trip_keeps_residual(tmp_path):
    X, _ = _data()
    m = fastnn.MLP([4, 5, 5, 3], residual=True, seed=0, dtype="float64")
    path = m.save(tmp_path / "res.npz")
    back = fastnn.load(path)
    assert back.residual and back._spec.skip == m._spec.skip
    np.testing.assert_array_equal(back.forward(X), m.forward(X))
    assert back.get_config() == m.get_config()


def test_plain_model_files_carry_no_residual_key(tmp_path):
    """Files of non-residual models stay readable by fastnn versions from before skips."""
    path = fastnn.MLP([4, 5, 3], seed=0).save(tmp_path / "plain.npz")
    with np.load(path) as f:
        config = json.loads(str(f["config"]))
    assert "residual" not in config
    assert fastnn.load(path).residual is False


def test_pickle_and_deepcopy_round_trip():
    X, y = _data()
    m = fastnn.MLP([4, 5, 5, 3], residual=True, seed=0)
    m.fit(X, y, epochs=1, verbose=0)
    for clone in (pickle.loads(pickle.dumps(m)), copy.deepcopy(m)):
        assert clone._be is m._be and clone.residual
        np.testing.assert_array_equal(clone.predict_proba(X), m.predict_proba(X))
        clone.weights[0][...] = 0  # a real copy
        assert np.any(m.weights[0] != 0)
