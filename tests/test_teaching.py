"""Teaching tools: the backprop trace, the perceptron, the vanishing-gradient demo, gradient plots."""
import re

import numpy as np
import pytest
from conftest import WORKED

import fastnn
from fastnn.cli import main
from fastnn.demos import LOGIC_GATES, LOGIC_X, perceptron_vs_mlp, vanishing_gradients
from fastnn.tracing import worked_example

WORKED_NUMBERS = ["0.7609", "0.7760", "0.0478", "-0.0152", "0.3652"]


# --------------------------------------------------------------------------- trace


def test_trace_of_the_worked_example_shows_the_design_numbers():
    t = fastnn.trace()
    text = str(t)
    for number in WORKED_NUMBERS:
        assert number in text
    assert re.search(r"a2 = sigmoid\(z2\).*= \[\[0\.7609 0\.7760\]\]", text)
    assert re.search(r"W2 <- W2 - lr dW2 += \[\[0\.4152 0\.2211\]\n +\[0\.3652 0\.2711\]", text), text
    np.testing.assert_allclose(t["z1"], [[0.4160, 0.4135, 0.4215]], atol=5e-5)
    np.testing.assert_allclose(t["a1"], [[0.6025, 0.6019, 0.6038]], atol=5e-5)
    np.testing.assert_allclose(t["z2"], [[1.1577, 1.2426]], atol=5e-5)
    np.testing.assert_allclose(t.output, [[0.7609, 0.7760]], atol=5e-5)
    assert round(t.loss, 4) == 0.0478 and round(t["J"], 4) == 0.0478
    assert round(float(t["dW2"][1, 0]), 4) == -0.0152
    assert round(float(t["W2_new"][1, 0]), 4) == 0.3652
    np.testing.assert_array_equal(t["W1"], WORKED["W1"])
    assert [s.phase for s in t.steps][0] == "parameters" and t.steps[-1].phase == "update"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_trace_runs_on_every_backend(backend, dtype):
    model, x, y = worked_example(backend=backend, dtype=dtype)
    t = fastnn.trace(model, x, y, lr=1.0)
    assert f"backend {backend}" in t.description
    for number in WORKED_NUMBERS:
        assert number in str(t)


def test_trace_agrees_with_gradients_and_one_fit_step_and_leaves_the_model_alone():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(5, 4)), rng.integers(0, 3, 5)
    m = fastnn.MLP([4, 6, 6, 3], activation="prelu", residual=True, l1=1e-3, l2=1e-2,
                   dtype="float64", seed=2)
    before = [w.copy() for w in m.weights]
    t = fastnn.trace(m, X, y, lr=0.3)
    for w, w0 in zip(m.weights, before):
        np.testing.assert_array_equal(w, w0)  # the trace takes no step on the model
    dW, db, dalpha = m.gradients(X, y, return_alpha=True)
    for l in range(3):
        np.testing.assert_allclose(t[f"dW{l + 1}"], dW[l], rtol=1e-12)
        np.testing.assert_allclose(t[f"db{l + 1}"], db[l], rtol=1e-12)
    np.testing.assert_allclose(t["dalpha2"], dalpha[1], rtol=1e-12)
    assert "g1" in t and "g2" in t  # dJ/da around the skip connection
    np.testing.assert_allclose(t["g1"], t["delta2"] @ t["W2"].T + t["g2"], rtol=1e-12)
    assert abs(t.loss - m.loss(X, y)) < 1e-12
    m.fit(X, y, epochs=1, batch_size=len(X), lr=0.3, shuffle=False, verbose=0)
    for l in range(3):
        np.testing.assert_allclose(t[f"W{l + 1}_new"], m.weights[l], rtol=1e-12)
        np.testing.assert_allclose(t[f"b{l + 1}_new"], m.biases[l], rtol=1e-12)
    np.testing.assert_allclose(t["alpha1_new"], m.alphas[0], rtol=1e-12)
    assert "penalty" in t and "l2 W + l1 sign(W)" in str(t)


def test_trace_of_one_sample_with_a_scalar_label():
    m = fastnn.MLP([3, 4, 2], activation="tanh", seed=0, dtype="float64")
    t = fastnn.trace(m, [0.1, 0.2, 0.3], 1, lr=0.5)
    assert t["a0"].shape == (1, 3) and "delta2 = dJ/dz2 = a2 - y" in str(t)
    np.testing.assert_array_equal(t["y"], [[0, 1]])


def test_trace_bad_input():
    m = fastnn.MLP([3, 2], seed=0)
    with pytest.raises(ValueError, match="needs a sample x and its target y"):
        fastnn.trace(m)
    with pytest.raises(ValueError, match="needs the model too"):
        fastnn.trace(None, [1, 2, 3], [1])
    with pytest.raises(TypeError, match="fastnn.MLP"):
        fastnn.trace("model", [1, 2, 3], 1)
    with pytest.raises(ValueError, match="lr must be in"):
        fastnn.trace(m, [1, 2, 3], 1, lr=0)
    with pytest.raises(ValueError, match="x is one sample of 2 values but the network takes 3 inputs"):
        fastnn.trace(m, [1, 2], 1)
    with pytest.raises(ValueError, match="features per sample"):
        fastnn.trace(m, [[1, 2]], 1)
    with pytest.raises(KeyError, match="names: W1"):
        fastnn.trace()["W9"]


def test_cli_trace_worked_example(capsys):
    assert main(["trace"]) == 0
    out = capsys.readouterr().out
    for number in WORKED_NUMBERS:
        assert number in out


def test_cli_trace_a_saved_model(tmp_path, capsys):
    path = fastnn.MLP([2, 3, 2], activation="tanh", seed=0, dtype="float64").save(tmp_path / "m.npz")
    assert main(["trace", "--model", str(path), "--x", "0.5,-1", "--y", "1", "--lr", "0.1",
                 "--precision", "3"]) == 0
    out = capsys.readouterr().out
    assert "2-3-2 network" in out and "lr = 0.1" in out and "W2 <- W2 - lr dW2" in out
    assert main(["trace", "--model", str(path)]) == 2
    assert "--model needs a sample" in capsys.readouterr().err


# --------------------------------------------------------------------------- perceptron


@pytest.mark.parametrize("gate", ["AND", "OR"])
@pytest.mark.parametrize("minus", [False, True], ids=["01", "pm1"])
def test_perceptron_learns_linearly_separable_gates(gate, minus):
    t = LOGIC_GATES[gate] * 2 - 1 if minus else LOGIC_GATES[gate]
    p = fastnn.Perceptron().fit(LOGIC_X, t, epochs=50)
    assert p is not None and p.converged_ and p.errors_[-1] == 0
    np.testing.assert_array_equal(p.predict(LOGIC_X), t)  # answers in the labels it was given
    assert p.score(LOGIC_X, t) == 1.0
    assert set(p.predict(LOGIC_X).tolist()) <= ({-1, 1} if minus else {0, 1})


def test_perceptron_cannot_learn_xor_but_an_mlp_can():
    for seed in (None, 0, 1):
        p = fastnn.Perceptron(seed=seed).fit(LOGIC_X, LOGIC_GATES["XOR"], epochs=200)
        assert not p.converged_ and p.n_epochs_ == 200
        assert p.score(LOGIC_X, LOGIC_GATES["XOR"]) < 1.0
    res = perceptron_vs_mlp()
    assert res["XOR"]["perceptron"] < 1.0 and res["XOR"]["mlp"] == 1.0
    assert all(res[g]["perceptron"] == 1.0 and res[g]["mlp"] == 1.0 for g in ("AND", "OR"))


def test_perceptron_rule_by_hand():
    # One mistake on the first sample (w.x + b = 0 counts as +1, target -1): w <- w - lr x, b <- b - lr.
    p2 = fastnn.Perceptron(lr=0.5).fit(np.array([[1.0, 2.0], [0.0, 0.0]]), np.array([0, 1]), epochs=1)
    np.testing.assert_allclose(p2.weights_, [-0.5, -1.0])
    assert p2.bias_ == 0.0 and p2.errors_ == [2]  # then (0, 0) scores -0.5 < 0 but is +1: b += 0.5


def test_perceptron_bad_input():
    with pytest.raises(ValueError, match="two labels 0/1 or -1/\\+1"):
        fastnn.Perceptron().fit(LOGIC_X, [0, 2, 2, 0])
    with pytest.raises(ValueError, match="two labels"):
        fastnn.Perceptron().fit(LOGIC_X, [1, 1, 1, 1])
    with pytest.raises(ValueError, match="not fitted"):
        fastnn.Perceptron().predict(LOGIC_X)
    with pytest.raises(ValueError, match="lr must be in"):
        fastnn.Perceptron(lr=-1)
    with pytest.raises(ValueError, match="seed"):
        fastnn.Perceptron(seed=-3)
    with pytest.raises(ValueError, match="2-D"):
        fastnn.Perceptron().fit([1, 2, 3, 4], [0, 1, 0, 1])
    with pytest.raises(ValueError, match="features"):
        fastnn.Perceptron().fit(LOGIC_X, LOGIC_GATES["AND"]).predict(np.ones((2, 3)))
    with pytest.raises(TypeError, match="epochs"):
        fastnn.Perceptron().fit(LOGIC_X, LOGIC_GATES["AND"], epochs=2.5)


# --------------------------------------------------------------------------- vanishing gradients


@pytest.fixture(scope="module")
def small_mnist():
    from fastnn.datasets import load_mnist_subset

    (X, y), _ = load_mnist_subset()
    return X[:256], y[:256]


def test_vanishing_gradient_demo(small_mnist):
    X, y = small_mnist
    r = vanishing_gradients(X, y, depth=8, width=8, epochs=1, batch_size=32, seed=0)
    assert list(r.norms) == ["sigmoid", "relu", "sigmoid + residual"]
    assert all(n.shape == (8,) for n in r.norms.values())
    # The sigmoid network's first layer gets orders of magnitude less gradient than its last ...
    assert r.ratio("sigmoid") < 1e-3
    # ... and its gradient grows layer by layer towards the output.
    assert np.all(np.diff(np.log(r.norms["sigmoid"][1:])) > 0)
    # ReLU and skip connections keep the first layer within about an order of the last.
    assert r.ratio("relu") > 0.1
    assert r.ratio("sigmoid + residual") > 1e-2
    assert "first/last" in str(r) and "sigmoid + residual" in str(r)


def test_vanishing_demo_bad_input(small_mnist):
    X, y = small_mnist
    with pytest.raises(ValueError, match="both X and y"):
        vanishing_gradients(X, None)
    with pytest.raises(ValueError, match="depth must be an integer >= 3"):
        vanishing_gradients(X, y, depth=2)


def test_cli_demos(capsys):
    assert main(["demo", "vanishing", "--samples", "128", "--width", "8", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "8-layer networks 784-8x7-10" in out
    ratios = dict(re.findall(r"^(sigmoid|relu)  +\S.*?(\d\.\de[-+]\d\d)\s+\d\.\d{3}$", out, re.M))
    assert float(ratios["sigmoid"]) < 1e-3 < float(ratios["relu"])
    assert main(["demo", "perceptron"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"XOR\s+0\.\d\d .*1\.00$", out, re.M), out


# --------------------------------------------------------------------------- plots


def test_gradient_norm_plots(tmp_path, small_mnist):
    pytest.importorskip("matplotlib")
    from fastnn.plots import plot_grad_norms, plot_layer_grad_norms

    X, y = small_mnist
    m = fastnn.MLP([784, 8, 8, 10], seed=0)
    h = m.fit(X, y, epochs=2, verbose=0)
    png = plot_grad_norms(h, tmp_path / "g.png")
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    png2 = plot_layer_grad_norms({"relu": h, "by hand": [1e-3, 1e-2, 1e-1]}, tmp_path / "v.png")
    assert open(png2, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(TypeError, match="History"):
        plot_grad_norms({"not": "a history"}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="no gradient norms"):
        plot_grad_norms(fastnn.History(), tmp_path / "x.png")
    with pytest.raises(ValueError, match="one value per layer"):
        plot_layer_grad_norms({"bad": [[1, 2]]}, tmp_path / "x.png")


def test_cli_train_plot_saves_grad_norms_too(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "curves.png"
    assert main(["train", "--epochs", "1", "--hidden", "8", "--plot", str(png), "--quiet"]) == 0
    assert "gradient norms per layer saved to" in capsys.readouterr().out
    assert (tmp_path / "curves_grad_norms.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
