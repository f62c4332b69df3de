"""fastnn.activations and fastnn.losses (the public teaching API) and the settable LeakyReLU slope /
ELU alpha of MLP: derivatives against finite differences, values against the formulas and against
every backend's kernels, and the slopes through the gradient checker, saving and loading."""
import numpy as np
import pytest

import fastnn
from fastnn import activations, backends, losses
from fastnn.kernels import codes

RNG = np.random.default_rng(0)
# Away from the kinks of relu / leaky_relu / prelu / elu at 0, where a central difference straddles two pieces.
Z = np.concatenate([RNG.uniform(-4, -0.05, 20), RNG.uniform(0.05, 4, 20)]).reshape(8, 5)

ELEMENTWISE = [
    ("identity", {}), ("sigmoid", {}), ("tanh", {}), ("relu", {}),
    ("leaky_relu", {}), ("leaky_relu", {"slope": 0.2}), ("leaky_relu", {"slope": 0.0}),
    ("elu", {}), ("elu", {"alpha": 0.5}), ("elu", {"alpha": 2.5}),
    ("prelu", {}), ("prelu", {"alpha": 0.3}), ("prelu", {"alpha": np.array([0.0, 0.1, 0.25, 0.5, 1.0])}),
]
IDS = [f"{n}-{'-'.join(f'{k}{np.ravel(v)[0]:g}' for k, v in p.items()) or 'default'}" for n, p in ELEMENTWISE]


def _central_difference(f, z, eps=1e-6):
    return (f(z + eps) - f(z - eps)) / (2 * eps)


@pytest.mark.parametrize("name,params", ELEMENTWISE, ids=IDS)
def test_derivative_equals_finite_difference(name, params):
    act = activations.get(name, **params)
    np.testing.assert_allclose(act.df(Z), _central_difference(act.f, Z), rtol=1e-7, atol=1e-9)


def test_formulas_by_hand():
    z = np.array([-2.0, 0.5])
    np.testing.assert_allclose(activations.get("leaky_relu", slope=0.2).f(z), [-0.4, 0.5])
    np.testing.assert_allclose(activations.get("leaky_relu", slope=0.2).df(z), [0.2, 1.0])
    np.testing.assert_allclose(activations.get("elu", alpha=0.5).f(z), [0.5 * (np.exp(-2) - 1), 0.5])
    np.testing.assert_allclose(activations.get("elu", alpha=0.5).df(z), [0.5 * np.exp(-2), 1.0])
    np.testing.assert_allclose(activations.get("sigmoid").f(0.0), 0.5)
    np.testing.assert_allclose(activations.get("sigmoid").df(0.0), 0.25)  # the 1/4 behind vanishing gradients
    np.testing.assert_allclose(activations.get("tanh").df(z), 1 - np.tanh(z) ** 2)
    assert "0.2" in activations.get("leaky_relu", slope=0.2).formula
    assert activations.get("relu")(np.array([-1.0, 2.0])).tolist() == [0.0, 2.0]  # callable as f


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept_and_integers_become_float64(dtype):
    act = activations.get("elu", alpha=0.5)
    assert act.f(Z.astype(dtype)).dtype == dtype and act.df(Z.astype(dtype)).dtype == dtype
    assert act.f(np.arange(3)).dtype == np.float64
    assert activations.get("softmax").f(Z.astype(dtype)).dtype == dtype


@pytest.mark.parametrize("backend_name", backends.available())
@pytest.mark.parametrize("name,params", ELEMENTWISE, ids=IDS)
def test_api_equals_every_backends_kernels(backend_name, name, params):
    """What a student computes with fastnn.activations is what each backend trains with."""
    act = activations.get(name, **params)
    be = backends.get(backend_name)
    alpha = np.zeros(0) if act.alpha is None else np.broadcast_to(np.asarray(act.alpha, float), (Z.shape[1],)).copy()
    for kernel, expected in [(be.activate, act.f(Z)), (be.activation_derivative, act.df(Z))]:
        out = be.empty(Z.shape, np.float64)
        kernel(codes.ACTIVATIONS[name], be.to_device(Z), be.to_device(alpha), out)
        np.testing.assert_allclose(be.to_host(out), expected, rtol=1e-12, atol=1e-14)


def test_softmax_rows_and_jacobian_equal_finite_differences():
    sm = activations.get("softmax")
    a = sm.f(Z)
    np.testing.assert_allclose(a.sum(axis=1), 1.0)
    np.testing.assert_allclose(a, np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True))
    J = sm.jacobian(Z)
    assert J.shape == (8, 5, 5)
    eps = 1e-6
    for k in range(5):  # column k of every row's Jacobian: da/dz_k
        dz = np.zeros(5)
        dz[k] = eps
        np.testing.assert_allclose(J[:, :, k], (sm.f(Z + dz) - sm.f(Z - dz)) / (2 * eps), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(sm.jacobian(Z[0]), J[0])
    np.testing.assert_allclose(J.sum(axis=1), 0.0, atol=1e-15)  # outputs sum to 1 whatever z does
    with pytest.raises(TypeError, match="jacobian"):
        sm.df(Z)


def test_activation_errors_name_the_fix():
    with pytest.raises(ValueError, match="choose one of: identity, sigmoid"):
        activations.get("swish")
    with pytest.raises(TypeError, match="takes one parameter, slope="):
        activations.get("leaky_relu", alpha=0.1)
    with pytest.raises(TypeError, match="relu takes no parameters"):
        activations.get("relu", slope=0.1)
    with pytest.raises(ValueError, match="one alpha per unit"):
        activations.get("prelu", alpha=np.ones(3)).f(Z)
    with pytest.raises(ValueError, match="finite"):
        activations.get("elu", alpha=float("nan"))
    with pytest.raises(TypeError, match="real numbers"):
        activations.get("relu").f(np.array(["a"]))
    assert activations.names()[-1] == "softmax" and set(codes.ACTIVATIONS) <= set(activations.names())
    assert activations.parameter_name("leaky_relu") == "slope" and activations.parameter_name("tanh") is None


# ---------------------------------------------------------------- losses

A_PROB = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.25, 0.5, 0.25]])
Y_ONEHOT = np.eye(3)[[0, 2, 0]]


def test_loss_values_by_the_formulas():
    a, y = A_PROB, Y_ONEHOT
    np.testing.assert_allclose(losses.get("mse").value(a, y), 0.5 * ((a - y) ** 2).sum(axis=1))
    np.testing.assert_allclose(losses.get("squared_error").value(a, y), ((a - y) ** 2).sum(axis=1))
    np.testing.assert_allclose(losses.get("cross_entropy").value(a, y), -(y * np.log(a)).sum(axis=1))
    p, t = np.array([[0.9], [0.2], [0.6]]), np.array([[1.0], [0.0], [0.0]])
    np.testing.assert_allclose(losses.get("binary_cross_entropy").value(p, t),
                               -(t * np.log(p) + (1 - t) * np.log(1 - p)).ravel(), rtol=1e-12)
    assert losses.get("mse").mean(a, y) == pytest.approx(np.mean(0.5 * ((a - y) ** 2).sum(axis=1)))
    assert "half" in losses.get("mse").formula


def test_zero_one_counts_mistakes():
    zo = losses.get("zero_one")
    assert zo.value(A_PROB, Y_ONEHOT).tolist() == [0.0, 0.0, 1.0]
    assert zo.value(A_PROB, np.array([0, 2, 1])).tolist() == [0.0, 0.0, 0.0]  # labels work too
    assert zo.value(np.array([[0.8], [0.3]]), np.array([[1.0], [1.0]])).tolist() == [0.0, 1.0]  # threshold 1/2
    with pytest.raises(TypeError, match="surrogate"):
        zo.gradient(A_PROB, Y_ONEHOT)


@pytest.mark.parametrize("name", ["mse", "squared_error", "cross_entropy", "binary_cross_entropy"])
def test_loss_gradient_equals_finite_difference(name):
    loss = losses.get(name)
    rng = np.random.default_rng(1)
    a = rng.uniform(0.1, 0.9, (4, 3))
    y = rng.uniform(0, 1, (4, 3))
    eps, num = 1e-6, np.empty_like(a)
    for idx in np.ndindex(a.shape):
        ap, am = a.copy(), a.copy()
        ap[idx] += eps
        am[idx] -= eps
        num[idx] = (loss.value(ap, y)[idx[0]] - loss.value(am, y)[idx[0]]) / (2 * eps)
    np.testing.assert_allclose(loss.gradient(a, y), num, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name,output", [("mse", "identity"), ("mse", "sigmoid"), ("mse", "softmax"),
                                         ("squared_error", "sigmoid"), ("cross_entropy", "softmax"),
                                         ("binary_cross_entropy", "sigmoid")])
def test_delta_equals_finite_difference_through_the_output(name, output):
    """delta = dJ_b/dz: perturb z, push it through the output activation, difference the loss."""
    loss, act = losses.get(name), activations.get(output)
    rng = np.random.default_rng(2)
    z = rng.normal(size=(3, 4))
    y = np.eye(4)[[1, 3, 0]] if output == "softmax" else rng.uniform(0, 1, (3, 4))
    eps, num = 1e-6, np.empty_like(z)
    for idx in np.ndindex(z.shape):
        zp, zm = z.copy(), z.copy()
        zp[idx] += eps
        zm[idx] -= eps
        num[idx] = (loss.value(act.f(zp), y)[idx[0]] - loss.value(act.f(zm), y)[idx[0]]) / (2 * eps)
    np.testing.assert_allclose(loss.delta(act.f(z), y, output=output), num, rtol=1e-5, atol=1e-8)


def test_loss_errors_name_the_fix():
    with pytest.raises(ValueError, match="choose one of: mse"):
        losses.get("hinge")
    with pytest.raises(ValueError, match="one-hot rows"):
        losses.get("mse").value(A_PROB, np.array([0, 2, 0]))
    with pytest.raises(ValueError, match="output softmax"):
        losses.get("cross_entropy").delta(A_PROB, Y_ONEHOT, output="sigmoid")
    assert losses.names() == ["mse", "squared_error", "cross_entropy", "binary_cross_entropy", "zero_one"]


def test_the_reported_loss_is_the_api_loss(capsys):
    """fit's loss for mse is losses.get('mse'): half the squared error the course writes, and fit says so."""
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(40, 3)), rng.normal(size=(40, 2))
    m = fastnn.MLP([3, 5, 2], output="identity", seed=0, backend="numpy", dtype="float64")
    assert m.evaluate(X, Y)["loss"] == pytest.approx(losses.get("mse").mean(m.predict(X), Y), rel=1e-12)
    assert 2 * m.evaluate(X, Y)["loss"] == pytest.approx(losses.get("squared_error").mean(m.predict(X), Y),
                                                         rel=1e-12)
    m.fit(X, Y, epochs=1, verbose=2)
    assert "half the squared error" in capsys.readouterr().out
    assert "mse (1/2 squared error)" in m.summary()


# ---------------------------------------------------------------- MLP(leaky_slope=, elu_alpha=)

def _settable(backend="numpy", dtype="float64", **kw):
    return fastnn.MLP([4, 6, 5, 3], activation=["leaky_relu", "elu"], leaky_slope=0.2, elu_alpha=0.5,
                      seed=1, backend=backend, dtype=dtype, **kw)


def test_settable_slopes_pass_the_gradient_check():
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(6, 4)), rng.integers(0, 3, 6)
    fastnn.gradient_check(_settable(), X, y)  # raises if an analytic gradient is off


@pytest.mark.parametrize("backend_name", backends.available())
def test_settable_slopes_change_the_forward_pass_on_every_backend(backend_name):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(7, 4)) * 3
    m = _settable(backend_name)
    W, b = m.weights, m.biases
    h1 = activations.get("leaky_relu", slope=0.2).f(X @ W[0] + b[0])
    h2 = activations.get("elu", alpha=0.5).f(h1 @ W[1] + b[1])
    np.testing.assert_allclose(m.forward(X), activations.get("softmax").f(h2 @ W[2] + b[2]), rtol=1e-10)
    default = fastnn.MLP([4, 6, 5, 3], activation=["leaky_relu", "elu"], seed=1, backend=backend_name,
                         dtype="float64")
    assert not np.allclose(default.forward(X), m.forward(X))  # the settings reach the kernels


def test_settable_slopes_are_saved_and_loaded(tmp_path):
    m = _settable()
    path = m.save(tmp_path / "m.npz")
    back = fastnn.load(path, backend="numpy")  # the same backend: the same arithmetic, bit for bit
    assert (back.leaky_slope, back.elu_alpha) == (0.2, 0.5)
    X = np.random.default_rng(6).normal(size=(5, 4))
    np.testing.assert_array_equal(back.forward(X), m.forward(X))
    # on another backend the same function, to the last bits of its e^x (each backend has its own)
    np.testing.assert_allclose(fastnn.load(path).forward(X), m.forward(X), rtol=1e-14)
    assert "slope 0.2" in m.summary() and "alpha 0.5" in m.summary()


def test_settable_slopes_are_checked():
    with pytest.raises(ValueError, match="leaky_slope"):
        fastnn.MLP([2, 3, 2], activation="leaky_relu", leaky_slope=1.5)
    with pytest.raises(ValueError, match="elu_alpha"):
        fastnn.MLP([2, 3, 2], activation="elu", elu_alpha=0.0)
    # fixed parameters are not trained: only PReLU's slopes count as parameters
    assert _settable().n_params == 4 * 6 + 6 + 6 * 5 + 5 + 5 * 3 + 3


def test_batch_loss_averages_to_the_epoch_loss():
    rng = np.random.default_rng(7)
    X, y = rng.normal(size=(50, 4)), rng.integers(0, 3, 50)
    h = _settable().fit(X, y, epochs=3, batch_size=16, lr=0.1, verbose=0)
    sizes = np.array([16, 16, 16, 2])
    for losses_of_epoch, epoch_loss in zip(h.batch_loss, h.loss):
        assert losses_of_epoch.shape == (4,)
        assert np.average(losses_of_epoch, weights=sizes) == pytest.approx(epoch_loss, rel=1e-10)
    assert h.iteration_loss.shape == (12,)


def test_files_from_before_the_settable_slopes_still_load(tmp_path):
    """Earlier files have no leaky_slope / elu_alpha in their config and an empty alpha for those layers."""
    import json

    m = fastnn.MLP([4, 6, 5, 3], activation=["leaky_relu", "elu"], seed=1, dtype="float64")
    path = m.save(tmp_path / "new.npz")
    with np.load(path) as data:
        arrays = dict(data)
    config = json.loads(str(arrays["config"]))
    del config["leaky_slope"], config["elu_alpha"]
    arrays["config"] = np.array(json.dumps(config))
    arrays["alpha0"], arrays["alpha1"] = np.zeros(0), np.zeros(0)
    np.savez_compressed(tmp_path / "old.npz", **arrays)
    old = fastnn.load(tmp_path / "old.npz")
    assert (old.leaky_slope, old.elu_alpha) == (0.01, 1.0)
    X = np.random.default_rng(8).normal(size=(5, 4)) * 3
    np.testing.assert_array_equal(old.forward(X), m.forward(X))
