"""The fused epochs on a thread team: the same weights as the reference, whatever the team size.

Each thread owns a slice of every batch's rows (forward, loss, deltas) and of every parameter
(gradient and update) and calls a single-threaded BLAS on its slices: Cython with one OpenMP team
and barriers, Numba with a prange over the threads per step.  The tests force a team on networks
far below the size that chooses one on its own (``TEAM_MIN_WORK``), and use 3 threads too, so
that the rows split unevenly and, at batch 1, some threads own no rows at all.
"""
import numpy as np
import pytest
import test_fused_epoch as fused  # tests/ is on sys.path under pytest
from test_fused_epoch import CONFIGS, _run, _step_by_step

import fastnn
from fastnn import backends, codes
from fastnn.kernels import blas

TEAMED = [name for name in ("numba", "cython") if name in backends.available()]
pytestmark = pytest.mark.skipif(not TEAMED, reason="no compiled CPU backend is installed")


def _module(name):
    return backends.get(name)


@pytest.fixture
def team(monkeypatch, request):
    """(backend name, threads): force a fused-epoch team of that many threads on any network and batch."""
    name, n = request.param
    mod = _module(name)
    if name == "cython" and not mod.HAVE_OPENMP:
        pytest.skip("the Cython backend was built without OpenMP: no team")
    if blas.thread_control() is None:
        pytest.skip("fastnn cannot set this BLAS's thread count: no team")
    monkeypatch.setattr(mod, "TEAM_MIN_WORK", 0)
    monkeypatch.setattr(mod, "get_num_threads" if name == "cython" else "_threads", lambda: n)
    return name


@pytest.fixture(params=["rows", "columns"])
def split(request, monkeypatch):
    """How the team splits the hidden layers' products: always by rows, or always by columns
    (``COLUMN_SPLIT``: by columns once the output is that many times a thread's rows wide)."""
    return request.param


def _force_split(monkeypatch, name, split):
    mod = _module(name)
    if not hasattr(mod, "COLUMN_SPLIT"):
        if split == "columns":
            pytest.skip(f"the {name} backend splits every product by rows")
        return
    monkeypatch.setattr(mod, "COLUMN_SPLIT", 0.0 if split == "rows" else 1e-9)


def _blas_threads() -> int:
    return blas.thread_control()[0]()


def _teams(*sizes):
    """Teams of 2 run by default; larger ones oversubscribe a 2-core machine (slow under load): marked slow."""
    return [pytest.param((name, n), id=f"{name}-{n}-threads", marks=[pytest.mark.slow] if n > 2 else [])
            for name in TEAMED for n in sizes]


@pytest.mark.parametrize("team", _teams(2, 3), indirect=True)
@pytest.mark.parametrize("config", list(CONFIGS))
def test_team_epoch_equals_reference_float64(team, config, split, monkeypatch):
    """test_fused_epoch's comparison, every configuration (PReLU ones stay on one thread), on the team,
    its products split by rows and by columns."""
    _force_split(monkeypatch, team, split)
    fused.test_fused_epoch_equals_reference_float64(team, config)


@pytest.mark.parametrize("team", _teams(2), indirect=True)
@pytest.mark.parametrize("batch", [1, 63, 64])
def test_team_sparse_images_float64(team, batch, split, monkeypatch):
    """784-pixel-like sparse inputs (most columns zero in a batch): the compacted first layer split across threads."""
    _force_split(monkeypatch, team, split)
    rng = np.random.default_rng(1)
    X = rng.random((150, 60)) * (rng.random((150, 60)) < 0.15)
    X[:, :12] = 0  # a border that is always zero
    y = rng.integers(0, 5, 150)
    for l2, momentum in ((0.0, 0.0), (1e-3, 0.9)):  # plain SGD moves only the nonzero columns' rows
        runs = []
        for name in ("numpy", team):
            m = fastnn.MLP([60, 24, 12, 5], dtype="float64", seed=2, backend=name, l2=l2, dropout=0.2)
            if name == "numpy":
                m._be = _step_by_step(m._be)
            m.fit(X, y, epochs=2, lr=0.05, momentum=momentum, batch_size=batch, verbose=0)
            runs.append(m)
        for a, b in zip(runs[0].weights + runs[0].biases, runs[1].weights + runs[1].biases):
            np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("team", _teams(2), indirect=True)
def test_team_float32_close_to_reference(team):
    config = CONFIGS["plain-relu"]
    got, _ = _run(team, "float32", config, fused=True)
    ref, _ = _run("numpy", "float32", config, fused=False)
    for a, b in zip(ref.weights, got.weights):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("team", _teams(2), indirect=True)
def test_team_divergence_keeps_finite_weights(team):
    fused.test_fused_epoch_divergence_keeps_finite_weights(team)


@pytest.mark.parametrize("team", _teams(2), indirect=True)
def test_blas_on_one_thread_during_fit_and_restored_after(team):
    """fit holds the BLAS at one thread while the team trains (validation included), then gives the count back."""
    before = _blas_threads()
    seen = []

    class Watch(fastnn.Callback):
        def on_epoch_end(self, epoch, logs):
            seen.append(_blas_threads())

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 5)), rng.integers(0, 3, 40)
    m = fastnn.MLP([5, 8, 3], seed=0, backend=team)
    m.fit(X, y, epochs=2, batch_size=8, verbose=0, validation_split=0.25, callbacks=[Watch()])
    assert seen == [1, 1]
    assert _blas_threads() == before

    class Boom(fastnn.Callback):
        def on_epoch_end(self, epoch, logs):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        m.fit(X, y, epochs=2, batch_size=8, verbose=0, callbacks=[Boom()])
    assert _blas_threads() == before


@pytest.mark.parametrize("name", TEAMED)
def test_team_size_rules(monkeypatch, name):
    mod = _module(name)
    if (name == "cython" and not mod.HAVE_OPENMP) or blas.thread_control() is None:
        pytest.skip("no team possible in this build")
    threads = "get_num_threads" if name == "cython" else "_threads"
    monkeypatch.setattr(mod, threads, lambda: 2)
    mnist = fastnn.MLP([784, 256, 128, 10], backend=name)._spec
    tiny = fastnn.MLP([8, 16, 4], backend=name)._spec
    prelu = fastnn.MLP([784, 256, 10], activation="prelu", backend=name)._spec
    assert codes.PRELU in prelu.acts
    assert mod.team_size(mnist, 32) == 2
    assert mod.team_size(mnist, 512) == 2
    assert mod.team_size(tiny, 512) == 1  # 192 weights: synchronising costs more than the split saves
    assert mod.team_size(prelu, 512) == 1  # the slope's gradient sums over rows
    monkeypatch.setattr(mod, threads, lambda: 1)
    assert mod.team_size(mnist, 512) == 1
    with mod.fit_scope(tiny, 512) as held:  # no team: the BLAS keeps its threads
        assert held is False


@pytest.mark.skipif("cython" not in backends.available(), reason="the Cython backend is not built")
def test_cython_train_epoch_rejects_a_team_of_none():
    from fastnn.kernels.cython import _epoch
    with pytest.raises(ValueError, match="threads=0 must be at least 1"):
        _epoch.train_epoch((None,) * 6, [], None, 0, 2, 0, np.zeros(0), np.zeros(1), None, 0)
