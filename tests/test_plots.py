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
