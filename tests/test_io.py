"""save/load: a faithful round trip, and no code execution or silent nonsense from bad files."""
import numpy as np
import pytest

import fastnn


def _trained(**kw):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(50, 4)), rng.integers(0, 3, 50)
    m = fastnn.MLP([4, 6, 5, 3], seed=3, **kw)
    m.fit(X, y, epochs=2, verbose=0)
    return m, X


@pytest.mark.parametrize("kw", [{}, {"activation": ["prelu", "tanh"], "dtype": "float64", "l1": 1e-4,
                                    "l2": 1e-3, "dropout": 0.2, "input_dropout": 0.1, "init": "he"}])
def test_round_trip(tmp_path, kw, backend):
    m, X = _trained(backend=backend, **kw)
    path = m.save(tmp_path / "model")
    assert path.endswith("model.npz")
    m2 = fastnn.load(path, backend=backend)
    assert m2.get_config() == m.get_config()
    for a, b in zip(m.weights + m.biases + m.alphas, m2.weights + m2.biases + m2.alphas):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype
    np.testing.assert_array_equal(m.forward(X), m2.forward(X))
    assert m2._step == m._step  # dropout counter continues where it stopped
    if kw:
        assert m2.alphas[0].shape == (6,) and m2.alphas[1].shape == (0,)
    other = fastnn.load(path, backend="numpy")  # a model moves between backends
    np.testing.assert_allclose(other.forward(X), m.forward(X), rtol=1e-5)


def test_load_refuses_pickles_and_foreign_files(tmp_path):
    obj = tmp_path / "pickled.npz"
    np.savez(obj, format=np.array("fastnn-mlp"), evil=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="not a usable fastnn model file"):
        fastnn.load(obj)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, weights=np.ones(3))
    with pytest.raises(ValueError, match="no fastnn format marker"):
        fastnn.load(foreign)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"PK\x03\x04 this is not really a zip file")
    with pytest.raises(ValueError, match="could not be read"):
        fastnn.load(garbage)
    text = tmp_path / "model.npz"
    text.write_text("hello")
    with pytest.raises(ValueError, match="not a usable fastnn model file"):
        fastnn.load(text)
    with pytest.raises(FileNotFoundError, match="no model file"):
        fastnn.load(tmp_path / "missing.npz")


def _resave(path, **changes):
    with np.load(path, allow_pickle=False) as f:
        data = {k: f[k] for k in f.files}
    data.update(changes)
    for k in [k for k, v in changes.items() if v is None]:
        del data[k]
    np.savez(path, **data)


def test_load_detects_tampering(tmp_path):
    m, _ = _trained()
    path = m.save(tmp_path / "m.npz")
    _resave(path, format_version=np.array(99))
    with pytest.raises(ValueError, match="format version 99"):
        fastnn.load(path)
    path = m.save(tmp_path / "m.npz")
    _resave(path, W1=np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"weights\[1\] must have shape \(6, 5\)"):
        fastnn.load(path)
    path = m.save(tmp_path / "m.npz")
    _resave(path, b0=None)
    with pytest.raises(ValueError, match="array 'b0' is missing"):
        fastnn.load(path)
    path = m.save(tmp_path / "m.npz")
    _resave(path, config=np.array('{"layers": [4, 3], "activation": "relu7"}'))
    with pytest.raises(ValueError, match="architecture record is invalid"):
        fastnn.load(path)
