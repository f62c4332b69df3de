"""What only the Cython backend has: its fused epoch, its two matmuls, its threads, its build.

The contract kernel by kernel is tested for every backend in test_kernels.py, and fit() with the
fused epoch in test_fused_epoch.py; here the fused ``train_epoch`` is driven directly, against
``fastnn.engine.run_epoch`` on the NumPy reference, with every feature on at once.  If the
extension is not built, the tests that need it are skipped, and the availability tests check
that fastnn says why and how to fix it.
"""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastnn import backends, codes, engine
from fastnn.kernels import numpy_ref as ref

BUILT = "cython" in backends.available()
needs_build = pytest.mark.skipif(not BUILT, reason=f"cython backend unavailable: "
                                 f"{backends.unavailable_reasons().get('cython')}")


def _cy():
    return backends.get("cython")


# --------------------------------------------------------------------------- the fused epoch

SIZES = (6, 9, 7, 4)
# (hidden acts, output, loss, labels?)
NETS = {
    "prelu-tanh-softmax": ((codes.PRELU, codes.TANH), codes.SOFTMAX, codes.CROSS_ENTROPY, True),
    "relu-prelu-sigmoid-bce": ((codes.RELU, codes.PRELU), codes.SIGMOID, codes.BINARY_CROSS_ENTROPY, False),
    "elu-leaky-identity-mse": ((codes.ELU, codes.LEAKY_RELU), codes.IDENTITY, codes.MSE, False),
    "sigmoid-softmax-mse": ((codes.SIGMOID, codes.SIGMOID), codes.SOFTMAX, codes.MSE, True),
}
HYPERS = {
    "everything-nesterov": engine.Hyper(lr=0.05, momentum=0.9, nesterov=True, l1=1e-3, l2=1e-2,
                                        keep_input=0.8, keep_hidden=0.7, seed=12345),
    "everything-momentum": engine.Hyper(lr=0.03, momentum=0.8, l1=2e-3, l2=1e-3,
                                        keep_input=0.9, keep_hidden=0.5, seed=2**64 - 3),
    "plain-sgd": engine.Hyper(lr=0.1),
}


class Run:
    """One network's parameters, velocities and workspace, built identically for any backend."""

    def __init__(self, name, net, dtype, batch, n_rows=53, single_output=False):
        hidden, out_act, loss, classify = NETS[net]
        sizes = SIZES[:-1] + ((1,) if single_output else SIZES[-1:])
        self.spec = engine.NetSpec(sizes, (*hidden, out_act), loss, np.dtype(dtype))
        rng = np.random.default_rng(7)
        dt = np.dtype(dtype)
        W = [rng.normal(0, 0.4, (m, n)).astype(dt) for m, n in zip(sizes[:-1], sizes[1:])]
        b = [rng.normal(0, 0.1, n).astype(dt) for n in sizes[1:]]
        alpha = [np.linspace(0.1, 0.3, n).astype(dt) if a in codes.PARAMETRISED else np.zeros(0, dt)
                 for n, a in zip(sizes[1:], self.spec.acts)]
        self.p = engine.Params(W, b, alpha)
        self.v = engine.Params(*[[rng.normal(0, 0.01, a.shape).astype(dt) for a in g]
                                 for g in (W, b, alpha)])
        self.X = rng.normal(size=(n_rows, sizes[0])).astype(dt)
        n_out = sizes[-1]
        if loss == codes.CROSS_ENTROPY or (classify and n_out > 1):
            self.labels = rng.integers(0, n_out, n_rows)
            self.Y = np.eye(n_out, dtype=dt)[self.labels]
        elif loss == codes.BINARY_CROSS_ENTROPY:
            self.labels = rng.integers(0, 2, n_rows) if n_out == 1 else None
            self.Y = (self.labels[:, None].astype(dt) if n_out == 1
                      else rng.uniform(0, 1, (n_rows, n_out)).astype(dt))
        else:
            self.labels = None
            self.Y = rng.normal(size=(n_rows, n_out)).astype(dt)
        self.be = backends.get(name)
        self.batch = batch
        self.ws = engine.Workspace(self.be, self.spec, min(batch, n_rows), training=True)

    def epochs(self, hyper, n_epochs=3, fused=True):
        step, stats = 0, []
        order_rng = np.random.default_rng(3)
        fn = self.be.train_epoch if fused else engine.run_epoch
        for _ in range(n_epochs):
            order = order_rng.permutation(self.X.shape[0])
            stats.append(fn(self.be, self.spec, self.p, self.v, self.ws, self.X, self.Y, self.labels,
                            order, self.batch, hyper, step))
            step += -(-len(order) // self.batch)
        return stats


def _assert_same(got: Run, want: Run, got_stats, want_stats, rtol, atol):
    for group in ("W", "b", "alpha"):
        for l, (g, w) in enumerate(zip(getattr(got.p, group), getattr(want.p, group))):
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=f"{group}[{l}]")
        for l, (g, w) in enumerate(zip(getattr(got.v, group), getattr(want.v, group))):
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=f"velocity {group}[{l}]")
    for g, w in zip(got_stats, want_stats):
        assert (g.n_seen, g.n_batches, g.correct, g.diverged) == (w.n_seen, w.n_batches, w.correct, w.diverged)
        np.testing.assert_allclose(g.loss_sum, w.loss_sum, rtol=rtol)
        np.testing.assert_allclose(g.grad_norm_sum, w.grad_norm_sum, rtol=rtol)


@needs_build
@pytest.mark.parametrize("hyper", list(HYPERS))
@pytest.mark.parametrize("net", list(NETS))
def test_fused_epoch_equals_reference_float64(net, hyper):
    """Weights, velocities and epoch stats of 3 epochs, 53 rows in batches of 8 (the last has 5)."""
    got, want = Run("cython", net, np.float64, 8), Run("numpy", net, np.float64, 8)
    got_stats = got.epochs(HYPERS[hyper])
    want_stats = want.epochs(HYPERS[hyper], fused=False)
    _assert_same(got, want, got_stats, want_stats, rtol=1e-9, atol=1e-12)
    assert not any(s.diverged for s in got_stats)
    assert got_stats[0].n_batches == 7 and got_stats[0].n_seen == 53


@needs_build
def test_fused_epoch_single_sigmoid_unit_accuracy():
    """A single sigmoid output unit predicts a > 1/2; labels are counted like engine.count_correct."""
    got = Run("cython", "relu-prelu-sigmoid-bce", np.float64, 16, single_output=True)
    want = Run("numpy", "relu-prelu-sigmoid-bce", np.float64, 16, single_output=True)
    hyper = HYPERS["everything-nesterov"]
    got_stats, want_stats = got.epochs(hyper), want.epochs(hyper, fused=False)
    _assert_same(got, want, got_stats, want_stats, rtol=1e-9, atol=1e-12)
    assert sum(s.correct for s in got_stats) > 0


@needs_build
@pytest.mark.parametrize("net", ["prelu-tanh-softmax", "elu-leaky-identity-mse"])
def test_fused_epoch_float32_close_to_reference(net):
    hyper = HYPERS["everything-nesterov"]
    got, want = Run("cython", net, np.float32, 8), Run("numpy", net, np.float32, 8)
    got_stats, want_stats = got.epochs(hyper), want.epochs(hyper, fused=False)
    for g, w in zip(got.p.arrays(), want.p.arrays()):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
    for g, w in zip(got_stats, want_stats):
        np.testing.assert_allclose(g.loss_sum, w.loss_sum, rtol=1e-4)
        np.testing.assert_allclose(g.grad_norm_sum, w.grad_norm_sum, rtol=1e-4)


@needs_build
def test_fused_epoch_batch_larger_than_data_and_step_by_step_equal():
    """One batch holding every row; and the fused loop equals the step-by-step loop on its own kernels."""
    hyper = HYPERS["everything-momentum"]
    got, want = Run("cython", "prelu-tanh-softmax", np.float64, 500), Run("numpy", "prelu-tanh-softmax", np.float64, 500)
    _assert_same(got, want, got.epochs(hyper), want.epochs(hyper, fused=False), rtol=1e-9, atol=1e-12)
    fused, steps = Run("cython", "prelu-tanh-softmax", np.float64, 8), Run("cython", "prelu-tanh-softmax", np.float64, 8)
    _assert_same(fused, steps, fused.epochs(hyper), steps.epochs(hyper, fused=False), rtol=1e-9, atol=1e-12)


@needs_build
def test_fused_epoch_divergence_stops_before_updating():
    """A non-finite loss (data loss + penalty) stops the epoch before that batch's update, as run_epoch does."""
    hyper = engine.Hyper(lr=0.1)
    got, want = Run("cython", "elu-leaky-identity-mse", np.float64, 8), Run("numpy", "elu-leaky-identity-mse", np.float64, 8)
    for r in (got, want):
        r.Y[30] = np.inf  # row 30 poisons whichever batch it lands in
    with np.errstate(all="ignore"):
        got_stats, want_stats = got.epochs(hyper, n_epochs=1), want.epochs(hyper, n_epochs=1, fused=False)
    assert got_stats[0].diverged and want_stats[0].diverged
    _assert_same(got, want, got_stats, want_stats, rtol=1e-9, atol=1e-12)
    assert all(np.isfinite(a).all() for a in got.p.arrays())


@needs_build
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("settings", ["plain-sgd", "nesterov-l1-l2"])
def test_fused_epoch_sparse_first_layer_steps_by_runs_of_rows(monkeypatch, threads, settings):
    """The sparse first layer's update steps W_1 one block of consecutive rows at a time: a run of
    nonzero input columns (plain SGD: only those), or the zero-gradient rows between two runs.  Runs
    that cross a thread's share of the rows (teams of 2 and 3) still give the reference's weights."""
    import fastnn
    from fastnn.kernels import blas

    cy = _cy()
    if threads > 1:
        if not cy.HAVE_OPENMP or blas.thread_control() is None:
            pytest.skip("no team in this build")
        monkeypatch.setattr(cy, "TEAM_MIN_WORK", 0)
        monkeypatch.setattr(cy, "get_num_threads", lambda: threads)
    rng = np.random.default_rng(4)
    X = np.zeros((90, 40))
    for lo, hi in ((3, 11), (14, 15), (17, 29), (33, 40)):  # the columns that may be nonzero, in runs
        X[:, lo:hi] = rng.normal(size=(90, hi - lo)) * (rng.random((90, hi - lo)) < 0.5)
    y = rng.integers(0, 3, 90)
    model, fit = {"plain-sgd": ({}, {}),
                  "nesterov-l1-l2": ({"l1": 1e-3, "l2": 1e-2}, {"momentum": 0.9, "nesterov": True})}[settings]
    runs = []
    for name in ("numpy", "cython"):
        m = fastnn.MLP([40, 10, 3], dtype="float64", seed=1, backend=name, **model)
        h = m.fit(X, y, epochs=2, lr=0.05, batch_size=16, verbose=0, **fit)
        runs.append((m, h))
    (want, h_want), (got, h_got) = runs
    for a, b in zip(want.weights + want.biases, got.weights + got.biases):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(h_got.loss, h_want.loss, rtol=1e-9)
    np.testing.assert_allclose(h_got.grad_norms, h_want.grad_norms, rtol=1e-9)


@needs_build
def test_fused_epoch_rejects_bad_buffers():
    run = Run("cython", "prelu-tanh-softmax", np.float64, 8)
    hyper = HYPERS["plain-sgd"]
    order = np.arange(run.X.shape[0])
    run.p.W[1] = np.asfortranarray(run.p.W[1])
    with pytest.raises(ValueError, match="C-contiguous"):
        run.be.train_epoch(run.be, run.spec, run.p, run.v, run.ws, run.X, run.Y, run.labels, order, 8, hyper, 0)
    run = Run("cython", "prelu-tanh-softmax", np.float64, 8)
    with pytest.raises(ValueError, match="workspace holds"):
        run.be.train_epoch(run.be, run.spec, run.p, run.v, run.ws, run.X, run.Y, run.labels, order, 16, hyper, 0)
    with pytest.raises(ValueError, match="outside"):
        run.be.train_epoch(run.be, run.spec, run.p, run.v, run.ws, run.X, run.Y, run.labels, order + 1, 8, hyper, 0)


# --------------------------------------------------------------------------- matmul: blocked vs BLAS

MATMUL_SHAPES = [(1, 1, 1), (1, 300, 1), (7, 3, 5), (64, 256, 64), (65, 257, 63), (131, 517, 37), (200, 40, 300)]


@needs_build
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("shape", MATMUL_SHAPES, ids=["x".join(map(str, s)) for s in MATMUL_SHAPES])
def test_blocked_matmul_equals_blas(shape, dtype):
    m, k, n = shape
    rng = np.random.default_rng(sum(shape))
    A, B = rng.normal(size=(m, k)).astype(dtype), rng.normal(size=(k, n)).astype(dtype)
    C_blas, C_blocked = np.empty((m, n), dtype), np.full((m, n), np.nan, dtype)  # NaN: every entry must be written
    _cy().matmul(A, B, C_blas, method="blas")
    _cy().matmul(A, B, C_blocked, method="blocked")
    exact = A.astype(np.float64) @ B.astype(np.float64)
    tol = {np.float32: 1e-5, np.float64: 1e-13}[dtype] * max(1.0, np.sqrt(k))
    scale = max(np.abs(exact).max(), 1.0)
    np.testing.assert_allclose(C_blocked, C_blas, rtol=0, atol=tol * scale)
    np.testing.assert_allclose(C_blas, exact, rtol=0, atol=tol * scale)


@needs_build
def test_matmul_strided_inputs_and_shape_errors():
    rng = np.random.default_rng(0)
    A = np.asfortranarray(rng.normal(size=(9, 11)))
    B = rng.normal(size=(22, 6))[::2]  # every other row: not contiguous
    for method in ("blas", "blocked"):
        C = np.empty((9, 6))
        _cy().matmul(A, B, C, method=method)
        np.testing.assert_allclose(C, A @ B, rtol=1e-12)
        with pytest.raises(ValueError, match="B's rows"):
            _cy().matmul(A, B[:5], C, method=method)
        with pytest.raises(ValueError, match="C's columns"):
            _cy().matmul(A, B, np.empty((9, 5)), method=method)


@needs_build
def test_blocked_matmul_same_bits_on_any_thread_count():
    """Threads own whole row blocks, so each entry's sum runs in the same order whatever their number."""
    cy = _cy()
    rng = np.random.default_rng(1)
    A, B = rng.normal(size=(300, 400)).astype(np.float32), rng.normal(size=(400, 50)).astype(np.float32)
    before = cy.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3):
            cy.set_num_threads(n)
            C = np.empty((300, 50), np.float32)
            cy.matmul(A, B, C, method="blocked")
            results.append(C)
    finally:
        cy.set_num_threads(before)
    for C in results[1:]:
        np.testing.assert_array_equal(C, results[0])


# --------------------------------------------------------------------------- threads


@needs_build
def test_set_and_get_num_threads():
    cy = _cy()
    before = cy.get_num_threads()
    try:
        cy.set_num_threads(1)
        assert cy.get_num_threads() == 1
        cy.set_num_threads(3)
        assert cy.get_num_threads() == (3 if cy.HAVE_OPENMP else 1)
    finally:
        cy.set_num_threads(before)
    assert cy.get_num_threads() == before
    with pytest.raises(ValueError, match="at least 1"):
        cy.set_num_threads(0)


@needs_build
def test_built_with_openmp_where_the_compiler_has_it():
    """setup.py probes the compiler with a tiny OpenMP program; GCC and Clang with libomp pass it."""
    import os
    import shutil

    cy = _cy()
    if os.environ.get("FASTNN_OPENMP", "1").strip().lower() in ("0", "false", "no", "off"):
        pytest.skip("FASTNN_OPENMP=0: built without OpenMP on purpose")
    if shutil.which("gcc") is None:
        pytest.skip("no gcc here: whether OpenMP was found depends on the compiler that built fastnn")
    assert cy.HAVE_OPENMP, "gcc is here but the extension was built without OpenMP: see setup.py's probe"


# --------------------------------------------------------------------------- more than the shared kernel tests


@needs_build
@pytest.mark.parametrize("seed", [0, 2**63 + 5, 2**64 - 1, -1])
def test_dropout_bit_for_bit_on_noncontiguous_and_extreme_seeds(seed):
    rng = np.random.default_rng(0)
    base = rng.normal(size=(13, 22)).astype(np.float32)
    x = base.copy()[:, ::2]  # a strided output view: the mask still follows the row-major index
    _cy().dropout(x, 0.6, seed, 5, 2)
    expected = base[:, ::2].copy()
    ref.dropout(expected, 0.6, seed, 5, 2)
    np.testing.assert_array_equal(x, expected)
    assert _cy()._kernels.dropout_key(seed & (2**64 - 1), 5, 2) == ref.dropout_key(seed, 5, 2)


@needs_build
def test_kernels_reject_wrong_shapes_instead_of_writing_out_of_bounds():
    cy = _cy()
    a, W, b = np.ones((4, 3)), np.ones((3, 5)), np.ones(5)
    with pytest.raises(ValueError, match="W's rows"):
        cy.linear_forward(a, np.ones((2, 5)), b, np.empty((4, 5)))
    with pytest.raises(ValueError, match="z's columns"):
        cy.linear_forward(a, W, b, np.empty((4, 4)))
    with pytest.raises(ValueError, match="alpha has length"):
        cy.activate(codes.PRELU, np.ones((4, 5)), np.ones(4), np.empty((4, 5)))
    with pytest.raises(ValueError, match="dW's rows"):
        cy.param_grads(a, np.ones((4, 5)), W, 0.0, 0.0, np.empty((2, 5)), np.empty(5))
    with pytest.raises(ValueError, match="unknown loss"):
        cy.loss_value(9, codes.SOFTMAX, np.ones((4, 5)), np.ones((4, 5)), np.ones((4, 5)))
    with pytest.raises(ValueError, match="activation code 12"):
        cy.activate(12, np.ones((4, 5)), np.zeros(0), np.empty((4, 5)))


@needs_build
@pytest.mark.skipif(np.finfo(np.longdouble).nmant <= 52, reason="C's long double is double here")
def test_loss_value_is_rounded_once():
    """The loss is summed in extended precision, so J is within about half an ulp of the exact mean."""
    from fractions import Fraction

    rng = np.random.default_rng(5)
    a = rng.uniform(0, 1, (50, 7))
    y = rng.uniform(0, 1, (50, 7))
    got = _cy().loss_value(codes.MSE, codes.IDENTITY, a, a, y)
    exact = sum((Fraction(float(ai)) - Fraction(float(yi))) ** 2 for ai, yi in zip(a.ravel(), y.ravel())) / 2 / 50
    assert abs(Fraction(got) - exact) <= Fraction(float(np.spacing(got))) * Fraction(51, 100)


@needs_build
def test_fused_epoch_refuses_residual_networks():
    run = Run("cython", "elu-leaky-identity-mse", np.float64, 8)
    spec = engine.NetSpec((6, 9, 9, 4), run.spec.acts, run.spec.loss, run.spec.dtype, skip=(False, True, False)) \
        if "skip" in engine.NetSpec.__dataclass_fields__ else None
    if spec is None:
        pytest.skip("this fastnn has no skip connections")
    with pytest.raises(ValueError, match="skip connections"):
        run.be.train_epoch(run.be, spec, run.p, run.v, run.ws, run.X, run.Y, None, np.arange(10), 8,
                           HYPERS["plain-sgd"], 0)


# --------------------------------------------------------------------------- availability


@pytest.fixture
def fresh_registry(monkeypatch):
    """backends' caches emptied, and cython_cpu forgotten, so that the next import runs again."""
    monkeypatch.setattr(backends, "_cache", {})
    monkeypatch.setattr(backends, "_errors", {})
    monkeypatch.setattr(backends, "_explained", set())
    for name in ("fastnn.kernels.cython_cpu",):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return monkeypatch


def _forget_extension(monkeypatch, name):
    """Make the next ``from fastnn.kernels.cython import name`` look for the module again."""
    import fastnn.kernels.cython as package

    monkeypatch.delattr(package, name, raising=False)  # from-imports take the attribute if it is there
    monkeypatch.delitem(sys.modules, f"fastnn.kernels.cython.{name}", raising=False)


def test_missing_extension_makes_backend_unavailable_with_the_fix(fresh_registry):
    # None in sys.modules makes "import fastnn.kernels.cython._kernels" raise ImportError, exactly
    # as when the extension was never compiled.
    fresh_registry.setenv("FASTNN_CYTHON_ISA", "baseline")  # the pair simulated missing is the portable one
    _forget_extension(fresh_registry, "_kernels")
    fresh_registry.setitem(sys.modules, "fastnn.kernels.cython._kernels", None)
    with pytest.raises(ImportError, match=r"not built.*pip install -e \."):
        importlib.import_module("fastnn.kernels.cython_cpu")
    fresh_registry.delitem(sys.modules, "fastnn.kernels.cython_cpu", raising=False)
    assert "cython" not in backends.available()
    assert "numpy" in backends.available()
    reason = backends.unavailable_reasons()["cython"]
    assert "not built" in reason and "pip install -e ." in reason
    with pytest.raises(ValueError, match="backend 'cython' is not available here"):
        backends.get("cython")
    assert backends.default_name() != "cython"
    # the rest of fastnn works without it
    import fastnn

    m = fastnn.MLP([3, 4, 2], seed=0, backend="numpy")
    m.fit(np.ones((4, 3)), [0, 1, 0, 1], epochs=1, verbose=0)


def test_broken_extension_reports_the_original_error(fresh_registry):
    """An extension that fails to load (e.g. built against another Python) says so, with the fix."""

    class Broken:
        def find_spec(self, name, path=None, target=None):
            if name == "fastnn.kernels.cython._epoch":
                raise ImportError("undefined symbol: sgemm_ (simulated)")
            return None

    fresh_registry.setenv("FASTNN_CYTHON_ISA", "baseline")  # the pair simulated broken is the portable one
    _forget_extension(fresh_registry, "_epoch")
    fresh_registry.setattr(sys, "meta_path", [Broken(), *sys.meta_path])
    assert "cython" not in backends.available()
    reason = backends.unavailable_reasons()["cython"]
    assert "undefined symbol: sgemm_ (simulated)" in reason and "pip install -e ." in reason


@needs_build
def test_stale_build_or_code_drift_is_refused(monkeypatch):
    cy = _cy()
    monkeypatch.setattr(cy._kernels, "ABI_VERSION", 0)
    with pytest.raises(ImportError, match="out of date"):
        cy.check_available()
    monkeypatch.undo()
    monkeypatch.setitem(cy._kernels.CODES, "RELU", 99)
    with pytest.raises(ImportError, match="differ from kernels/codes.py"):
        cy.check_available()
    monkeypatch.undo()
    cy.check_available()


def test_pyx_sources_are_in_the_repository():
    """A git clone must be able to build the backend: sources tracked, generated C and .so not."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    for name in ("_core.pxd", "_kernels.pyx", "_epoch.pyx", "__init__.py"):
        assert (root / "kernels" / "cython" / name).is_file(), name
    try:
        ignored = subprocess.run(["git", "check-ignore", "kernels/cython/_kernels.c",
                                  "kernels/cython/_kernels.cpython-311-x86_64-linux-gnu.so",
                                  "kernels/cython/_kernels.pyx"],
                                 cwd=root, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        pytest.skip("git is not available")
    if ignored.returncode not in (0, 1):
        pytest.skip("not a git checkout")
    lines = ignored.stdout.split()
    assert "kernels/cython/_kernels.c" in lines
    assert "kernels/cython/_kernels.cpython-311-x86_64-linux-gnu.so" in lines
    assert "kernels/cython/_kernels.pyx" not in lines


# --------------------------------------------------------------------------- the builds (portable, AVX2, AVX-512)


def test_isa_choice(monkeypatch):
    cy = pytest.importorskip("fastnn.kernels.cython_cpu")
    monkeypatch.setenv("FASTNN_CYTHON_ISA", "baseline")
    assert cy.choose_isa() == ("baseline", "FASTNN_CYTHON_ISA=baseline")
    monkeypatch.setenv("FASTNN_CYTHON_ISA", "sse9")
    with pytest.raises(cy.IsaChoiceError, match="FASTNN_CYTHON_ISA='sse9'.*auto, avx512, avx2, baseline"):
        cy.choose_isa()
    monkeypatch.setattr(cy, "_cpu_features", lambda: {})  # an old CPU: never a wide build
    monkeypatch.setenv("FASTNN_CYTHON_ISA", "auto")
    assert cy.choose_isa() == ("baseline", "portable build: this CPU lacks AVX2 and FMA")
    monkeypatch.setenv("FASTNN_CYTHON_ISA", "avx2")
    with pytest.raises(cy.IsaChoiceError, match="lacks AVX2 and FMA; unset FASTNN_CYTHON_ISA"):
        cy.choose_isa()
    # an AVX2 CPU without AVX-512: auto takes the AVX2 build, avx512 is refused with the reason
    monkeypatch.setattr(cy, "_cpu_features", lambda: {"AVX2": True, "FMA3": True})
    monkeypatch.setenv("FASTNN_CYTHON_ISA", "auto")
    if cy._built("avx2"):
        assert cy.choose_isa()[0] == "avx2"
    monkeypatch.setenv("FASTNN_CYTHON_ISA", "avx512")
    with pytest.raises(cy.IsaChoiceError, match="FASTNN_CYTHON_ISA=avx512, but this CPU lacks AVX-512"):
        cy.choose_isa()


def test_bad_isa_setting_is_the_reason_not_an_install_hint(fresh_registry):
    fresh_registry.setenv("FASTNN_CYTHON_ISA", "sse9")
    assert "cython" not in backends.available()
    reason = backends.unavailable_reasons()["cython"]
    assert reason.startswith("IsaChoiceError: FASTNN_CYTHON_ISA='sse9'") and "pip install" not in reason


@needs_build
def test_the_widest_build_the_cpu_runs_is_used():
    cy = pytest.importorskip("fastnn.kernels.cython_cpu")
    if os.environ.get("FASTNN_CYTHON_ISA", "auto") != "auto":
        pytest.skip("the build is chosen by hand")
    want = next((isa for isa, _, _ in cy.ISA_BUILDS if cy._cpu_runs(isa)), "baseline")
    assert cy.ISA == want
    if want != "baseline":
        assert cy._epoch.__name__.endswith(f"_epoch_{want}") and cy._kernels.__name__.endswith(f"_kernels_{want}")


@needs_build
@pytest.mark.slow
def test_portable_build_passes_the_kernel_and_fused_epoch_tests():
    """The suite runs on the build the CPU picks; this runs the cython cases again on the portable one."""
    cy = pytest.importorskip("fastnn.kernels.cython_cpu")
    if cy.ISA == "baseline":
        pytest.skip("the whole suite already runs on the portable build here")
    root = Path(__file__).resolve().parent
    env = {**os.environ, "FASTNN_CYTHON_ISA": "baseline"}
    which = subprocess.run([sys.executable, "-c", "from fastnn.kernels import cython_cpu as c; print(c._epoch.__name__)"],
                           capture_output=True, text=True, env=env, timeout=300)
    assert which.stdout.strip() == "fastnn.kernels.cython._epoch", which.stderr  # the portable module, not _avx2
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--runslow",
                          "-k", "cython", str(root / "test_kernels.py"), str(root / "test_fused_epoch.py"),
                          str(root / "test_team.py")],
                         capture_output=True, text=True, env=env, timeout=900, cwd=root.parent)
    assert res.returncode == 0, res.stdout[-3000:]
    assert " passed" in res.stdout and " failed" not in res.stdout
