"""Finite-difference gradient checks (float64): every activation, every output/loss pair, L1, L2.

These catch the bugs that every backend would share, because they test backprop against the
definition of a derivative rather than against another implementation.
"""
import numpy as np
import pytest

import fastnn
from fastnn import codes

TOL = 1e-6
# The finite-difference step.  At the checker's default (1e-6) the difference quotient sits on float64's
# rounding floor for these small networks: J(theta +- eps) agree in all but their last few bits, so
# any change in how an activation rounds moves the result by ~1e-6 (worst over seeds 0-5 and the
# numpy/numba/cython backends: up to 1.8e-5 for ReLU, which has no rounding of its own; 1.3e-6 at
# 1e-5).  At 1e-5 the quotient's truncation error (~eps^2) is still far below TOL, and the test
# measures backprop, not the last bit of tanh.
EPS = 1e-5
PAIRS = [(out, loss) for out, losses in codes.OUTPUT_LOSSES.items() for loss in losses]


def _data(n_out, loss, n=7, n_in=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_in))
    if loss == "cross_entropy":
        y = rng.integers(0, n_out, n)
    elif loss == "binary_cross_entropy":
        y = rng.uniform(0, 1, (n, n_out))  # soft targets exercise the general formula
    else:
        y = rng.normal(size=(n, n_out))
    return X, y


@pytest.mark.parametrize("activation", list(codes.ACTIVATIONS))
def test_every_hidden_activation(backend, activation):
    X, y = _data(3, "cross_entropy")
    m = fastnn.MLP([4, 5, 6, 3], activation=activation, dtype="float64", seed=1, backend=backend)
    m.biases = [np.full(b.shape, 0.1) for b in m.biases]  # nonzero biases: their gradients are checked too
    result = fastnn.gradient_check(m, X, y, eps=EPS)
    assert result.n_checked == m.n_params
    assert result.max_rel_error < TOL, result.report()


@pytest.mark.parametrize("output,loss", PAIRS, ids=[f"{o}-{l}" for o, l in PAIRS])
def test_every_output_and_loss(backend, output, loss):
    X, y = _data(3, loss)
    m = fastnn.MLP([4, 5, 3], activation="tanh", output=output, loss=loss, dtype="float64", seed=2,
                   backend=backend)
    result = fastnn.gradient_check(m, X, y, eps=EPS)
    assert result.max_rel_error < TOL, result.report()


@pytest.mark.parametrize("l1,l2", [(0.01, 0.0), (0.0, 0.05), (0.01, 0.05)])
def test_regularisation(backend, l1, l2):
    X, y = _data(3, "cross_entropy")
    m = fastnn.MLP([4, 5, 3], activation="elu", l1=l1, l2=l2, dtype="float64", seed=3, backend=backend)
    result = fastnn.gradient_check(m, X, y, eps=EPS)
    assert result.max_rel_error < TOL, result.report()
    # The penalty is really in the loss and the gradient: dW differs from the unregularised one.
    plain = fastnn.MLP([4, 5, 3], activation="elu", dtype="float64", seed=3, backend=backend)
    expected = plain.gradients(X, y)[0][0] + l2 * m.weights[0] + l1 * np.sign(m.weights[0])
    np.testing.assert_allclose(m.gradients(X, y)[0][0], expected, rtol=1e-10)
    assert m.loss(X, y) > plain.loss(X, y)


def test_single_sigmoid_unit_with_labels(backend):
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(9, 3)), rng.integers(0, 2, 9)
    m = fastnn.MLP([3, 4, 1], activation="sigmoid", output="sigmoid", dtype="float64", seed=5, backend=backend)
    assert fastnn.gradient_check(m, X, y, eps=EPS).max_rel_error < TOL


def test_gradient_check_catches_a_wrong_gradient(monkeypatch):
    """The checker itself can fail: break the ReLU derivative and it must notice."""
    from fastnn.kernels import numpy_ref

    X, y = _data(3, "cross_entropy")
    m = fastnn.MLP([4, 5, 3], activation="relu", dtype="float64", seed=6, backend="numpy")
    original = numpy_ref.activation_derivative

    def wrong(act, z, alpha, d):
        original(act, z, alpha, d)
        d *= 1.1

    monkeypatch.setattr(numpy_ref, "activation_derivative", wrong)
    result = fastnn.gradient_check(m, X, y, eps=EPS)
    assert result.max_rel_error > 1e-2
    assert result.worst[0][0] == "W0"  # only the first layer's gradient passes through f'
    assert "W0" in result.report()


def test_gradient_check_needs_float64():
    m = fastnn.MLP([2, 2], output="identity")
    with pytest.raises(ValueError, match="float64"):
        fastnn.gradient_check(m, np.ones((1, 2)), np.ones((1, 2)))
