"""The worked example of the course's backpropagation lecture, to 4 decimals, through the public API on every backend."""
import numpy as np
import pytest
from conftest import WORKED, worked_model

from fastnn import engine

X, Y = np.array(WORKED["x"]), np.array(WORKED["y"])


def assert_4dp(actual, expected):
    """Equal when rounded to 4 decimals (rounded in float64, so float32 results compare alike)."""
    np.testing.assert_array_equal(np.round(np.asarray(actual, dtype=np.float64), 4), expected)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_forward_and_loss(backend, dtype):
    m = worked_model(backend, dtype)
    be, spec = m._be, m._spec
    ws = engine.Workspace(be, spec, 1, training=False)
    out = engine.forward(be, spec, m._params, ws, be.to_device(X.astype(dtype)))
    assert_4dp(be.to_host(ws.z[0]), [[0.4160, 0.4135, 0.4215]])
    assert_4dp(be.to_host(ws.a[0]), [[0.6025, 0.6019, 0.6038]])
    assert_4dp(be.to_host(ws.z[1]), [[1.1577, 1.2426]])
    assert_4dp(be.to_host(out), [[0.7609, 0.7760]])
    assert_4dp(m.forward(X), [[0.7609, 0.7760]])
    assert round(m.loss(X, Y), 4) == 0.0478


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gradient_and_sgd_step(backend, dtype):
    m = worked_model(backend, dtype)
    dW, db = m.gradients(X, Y)
    assert round(float(dW[1][1, 0]), 4) == -0.0152
    assert [g.shape for g in dW] == [(3, 3), (3, 2)] and [g.shape for g in db] == [(3,), (2,)]
    m.fit(X, Y, epochs=1, batch_size=1, lr=1.0, shuffle=False, verbose=0)
    assert round(float(m.weights[1][1, 0]), 4) == 0.3652
    # One step of plain SGD is W - lr dW for every parameter, not only the quoted one.
    np.testing.assert_allclose(m.weights[1], np.array(WORKED["W2"]) - dW[1], rtol=1e-6)
    np.testing.assert_allclose(m.biases[0], np.array(WORKED["b1"]) - db[0], rtol=1e-6)
