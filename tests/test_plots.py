"""fastnn.plots: the pictures a student looks at (PNG files; needs matplotlib, the plot extra)."""
import numpy as np
import pytest

import fastnn

pytest.importorskip("matplotlib")
from fastnn.plots import plot_decision_boundary

XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
XOR_Y = np.array([0, 1, 1, 0])


def test_decision_boundary_of_xor(tmp_path):
    m = fastnn.MLP([2, 8, 2], activation="tanh", seed=0, backend="numpy")
    m.fit(XOR_X, XOR_Y, epochs=500, batch_size=4, lr=0.5, momentum=0.9, verbose=0)
    path = plot_decision_boundary(m, XOR_X, XOR_Y, tmp_path / "xor.png", resolution=50)
    data = (tmp_path / "xor.png").read_bytes()
    assert path.endswith("xor.png") and data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_decision_boundary_refuses_what_it_cannot_draw(tmp_path):
    m = fastnn.MLP([3, 2], seed=0, backend="numpy")
    with pytest.raises(ValueError, match="2 features per sample, got shape \\(4, 3\\)"):
        plot_decision_boundary(m, np.zeros((4, 3)), XOR_Y, tmp_path / "x.png")
    reg = fastnn.MLP([2, 1], output="identity", seed=0, backend="numpy")
    with pytest.raises(ValueError, match="needs a classifier"):
        plot_decision_boundary(reg, XOR_X, XOR_Y, tmp_path / "x.png")
    with pytest.raises(ValueError, match="one label per sample"):
        plot_decision_boundary(fastnn.MLP([2, 2], seed=0), XOR_X, XOR_Y[:3], tmp_path / "x.png")


def _png(path):
    data = path.read_bytes()
    return data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_batch_loss_plot_file_and_figure(tmp_path):
    X = np.random.default_rng(0).normal(size=(40, 2))
    m = fastnn.MLP([2, 4, 2], seed=0, backend="numpy")
    h = m.fit(X, (X[:, 0] > 0).astype(int), epochs=3, batch_size=8, lr=0.1, verbose=0)
    from fastnn.plots import plot_batch_loss

    plot_batch_loss(h, tmp_path / "b.png", log_scale=True)
    assert _png(tmp_path / "b.png")
    fig = plot_batch_loss(h)  # no path: the Figure, for a notebook
    points = fig.axes[0].lines[0].get_ydata()
    np.testing.assert_array_equal(points, h.iteration_loss)
    assert len(points) == 15
    with pytest.raises(ValueError, match="fit the model first"):
        plot_batch_loss(fastnn.History())


def test_activation_plot(tmp_path):
    from fastnn.plots import plot_activations

    plot_activations(tmp_path / "a.png", slope=0.2)
    assert _png(tmp_path / "a.png")
    fig = plot_activations(names=["elu"], alpha=0.5)
    assert fig.axes[0].get_title() == "elu (alpha 0.5)"
    np.testing.assert_allclose(fig.axes[0].lines[2].get_ydata()[0], 0.5 * (np.exp(-4) - 1))  # after the 2 axis lines
    with pytest.raises(ValueError, match="softmax has no elementwise curve"):
        plot_activations(names=["softmax"])
    with pytest.raises(TypeError, match="unknown parameter"):
        plot_activations(names=["relu"], slope=0.1)


@pytest.mark.parametrize("problem", ["xor", "spirals"])
def test_demo_boundary_learns_and_draws(problem, tmp_path, capsys):
    from fastnn.cli import main

    assert main(["demo", "boundary", "--problem", problem, "--plot", str(tmp_path / "b.png")]) == 0
    out = capsys.readouterr().out
    assert "training accuracy 1.000" in out and _png(tmp_path / "b.png")


def test_demo_activations_and_its_errors(tmp_path, capsys):
    from fastnn.cli import main

    assert main(["demo", "activations", "--names", "leaky_relu,elu", "--slope", "0.1",
                 "--plot", str(tmp_path / "a.png")]) == 0
    assert _png(tmp_path / "a.png")
    assert main(["demo", "activations", "--names", "swish", "--plot", str(tmp_path / "b.png")]) == 2
    assert "not an elementwise activation" in capsys.readouterr().err
    assert main(["demo", "boundary", "--plot", str(tmp_path / "missing" / "b.png")]) == 2
    assert "does not exist" in capsys.readouterr().err
