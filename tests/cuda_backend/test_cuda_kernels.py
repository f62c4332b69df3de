"""Every CUDA kernel against the NumPy reference, on shapes that cross block and tile edges.

Inputs come as C-order and Fortran-order device arrays and as strided views of wider device arrays
(the contract lets inputs be any strided view); outputs are fresh device buffers.  Dropout is
compared bit for bit.  In the simulator the launch sizes are tiny (see conftest.py), and one test
re-runs kernels under other launch sizes to show the grid-stride loops make them irrelevant.
"""
from __future__ import annotations

import numpy as np
import pytest

from fastnn import codes
from fastnn.kernels import numpy_ref as ref

from .conftest import CUDA_OK

if CUDA_OK:
    from fastnn.kernels import numba_cuda as cu

RTOL = {np.float32: 1e-5, np.float64: 1e-12}
SHAPES = {"1x3x4": (1, 3, 4), "3x5x7": (3, 5, 7), "5x9x3": (5, 9, 3)}  # (B, n_in, n_out)
LAYOUTS = ["C", "F", "view"]
HIDDEN = list(codes.ACTIVATIONS.items())
PAIRS = [(out, loss) for out, losses in codes.OUTPUT_LOSSES.items() for loss in losses]


def _close(actual, expected, dtype, what=""):
    """Relative to the largest magnitude, as tests/test_kernels.py does."""
    actual = np.asarray(actual, dtype=np.float64)
    scale = max(float(np.max(np.abs(expected))) if np.size(expected) else 0.0, 1.0)
    np.testing.assert_allclose(actual, expected, rtol=RTOL[dtype], atol=RTOL[dtype] * scale + 1e-12, err_msg=what)


def _device(x: np.ndarray, layout: str):
    """x on the device as a C array, a Fortran array, or a strided view into a wider device array.

    An empty x (the (0,) alpha of a layer that is not PReLU) comes as a plain device array: a view of
    nothing tests nothing, and on a GPU slicing an empty device array raises ("non-empty slice into
    empty slice"), which the simulator does not.
    """
    if layout == "C" or x.size == 0:
        return cu.to_device(np.ascontiguousarray(x))
    if layout == "F":
        return cu.to_device(np.asfortranarray(x))
    wide = np.zeros(x.shape[:-1] + (2 * x.shape[-1],), dtype=x.dtype)
    wide[..., ::2] = x
    d = cu.to_device(wide)
    return d[:, ::2] if x.ndim == 2 else d[::2]


class Case:
    """Random float64 values representable in the case's dtype, as host arrays."""

    def __init__(self, shape, dtype, layout, seed=0):
        rng = np.random.default_rng(seed)
        B, n_in, n_out = SHAPES[shape]
        self.B, self.n_in, self.n_out, self.dtype, self.layout = B, n_in, n_out, dtype, layout
        cast = lambda a: a.astype(dtype).astype(np.float64)  # noqa: E731
        self.a_prev = cast(rng.uniform(-1, 1, (B, n_in)))
        self.W = cast(rng.normal(0, 0.5, (n_in, n_out)))
        self.b = cast(rng.normal(0, 0.5, n_out))
        z = rng.normal(0, 1.5, (B, n_out))
        z[np.abs(z) < 0.05] += 0.2
        self.z = cast(z)
        self.delta_next = cast(rng.normal(size=(B, n_out)))
        self.W_next = cast(rng.normal(0, 0.5, (n_in, n_out)))
        z_in = rng.normal(0, 1.5, (B, n_in))
        z_in[np.abs(z_in) < 0.05] += 0.2
        self.z_in = cast(z_in)
        self.y_onehot = np.eye(n_out)[rng.integers(0, n_out, B)]
        self.y_real = cast(rng.uniform(0, 1, (B, n_out)))

    def inp(self, x):
        return _device(np.asarray(x).astype(self.dtype), self.layout)

    def out(self, shape):
        return cu.empty(shape, self.dtype)


CASES = [(s, d, l) for s in SHAPES for d in (np.float32, np.float64) for l in LAYOUTS]


@pytest.fixture(params=CASES, ids=[f"{s}-{np.dtype(d).name}-{l}" for s, d, l in CASES])
def case(request):
    return Case(*request.param)


def _alpha(act, n):
    return np.linspace(0.1, 0.4, n) if act in codes.PARAMETRISED else np.zeros(0)  # alpha_j per unit


# --------------------------------------------------------------------------- products


@pytest.mark.parametrize("method", ["blas", "blocked", "naive"])
def test_matmul(case, method):
    C = case.out((case.B, case.n_out))
    cu.matmul(case.inp(case.a_prev), case.inp(case.W), C, method=method)
    _close(cu.to_host(C), case.a_prev @ case.W, case.dtype, method)


def test_matmul_over_many_tiles_and_a_capped_grid():
    """More output tiles than blocks and a depth of several tiles, odd sizes on every side."""
    rng = np.random.default_rng(1)
    A, B = rng.normal(size=(7, 11)), rng.normal(size=(11, 9))
    for method in ("blas", "naive"):
        C = cu.empty((7, 9), np.float64)
        cu.matmul(cu.to_device(A), cu.to_device(B), C, method=method)
        np.testing.assert_allclose(cu.to_host(C), A @ B, rtol=1e-12, atol=1e-12)


def test_linear_forward(case):
    z = case.out((case.B, case.n_out))
    cu.linear_forward(case.inp(case.a_prev), case.inp(case.W), case.inp(case.b), z)
    _close(cu.to_host(z), case.a_prev @ case.W + case.b, case.dtype)


def test_backprop_error_and_param_grads(case):
    g = case.out((case.B, case.n_in))
    cu.backprop_error(case.inp(case.delta_next), case.inp(case.W_next), g)
    expected = np.empty((case.B, case.n_in))
    ref.backprop_error(case.delta_next, case.W_next, expected)
    _close(cu.to_host(g), expected, case.dtype, "backprop_error")
    for l1, l2 in [(0.0, 0.0), (1e-3, 1e-2)]:
        dW, db = case.out(case.W.shape), case.out(case.b.shape)
        cu.param_grads(case.inp(case.a_prev), case.inp(case.delta_next), case.inp(case.W), l1, l2, dW, db)
        exp_dW, exp_db = np.empty_like(case.W), np.empty_like(case.b)
        ref.param_grads(case.a_prev, case.delta_next, case.W, l1, l2, exp_dW, exp_db)
        _close(cu.to_host(dW), exp_dW, case.dtype, f"dW l1={l1} l2={l2}")
        _close(cu.to_host(db), exp_db, case.dtype, "db")
        got = cu.penalty(case.inp(case.W), l1, l2)
        assert type(got) is float
        _close(got, ref.penalty(case.W, l1, l2), case.dtype, "penalty")


# --------------------------------------------------------------------------- activations and losses


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_activate_and_derivative(dtype, layout):
    c = Case("5x9x3", dtype, layout)
    for name, act in HIDDEN + [("softmax", codes.SOFTMAX)]:
        alpha = _alpha(act, c.n_out)
        a = c.out(c.z.shape)
        cu.activate(act, c.inp(c.z), c.inp(alpha), a)
        expected = np.empty_like(c.z)
        ref.activate(act, c.z, alpha, expected)
        _close(cu.to_host(a), expected, dtype, f"activate {name}")
        if act != codes.SOFTMAX:
            d = c.out(c.z.shape)
            cu.activation_derivative(act, c.inp(c.z), c.inp(alpha), d)
            ref.activation_derivative(act, c.z, alpha, expected)
            _close(cu.to_host(d), expected, dtype, f"derivative {name}")


@pytest.mark.parametrize("output,loss", PAIRS, ids=[f"{o}-{l}" for o, l in PAIRS])
def test_loss_value_and_output_delta(case, output, loss):
    act, lc = codes.OUTPUTS[output], codes.LOSSES[loss]
    y = case.y_onehot if loss == "cross_entropy" else case.y_real
    a = np.empty_like(case.z)
    ref.activate(act, case.z, np.zeros(0), a)
    a = a.astype(case.dtype).astype(np.float64)
    got = cu.loss_value(lc, act, case.inp(case.z), case.inp(a), case.inp(y))
    assert type(got) is float
    _close(got, ref.loss_value(lc, act, case.z, a, y), case.dtype, "loss")
    delta = case.out(case.z.shape)
    cu.output_delta(lc, act, case.inp(a), case.inp(y), delta)
    expected = np.empty_like(case.z)
    ref.output_delta(lc, act, a, y, expected)
    _close(cu.to_host(delta), expected, case.dtype, "output delta")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("shape", ["3x5x7", "5x9x3"])
def test_fused_softmax_cross_entropy(dtype, shape):
    """The epoch's fused output kernel: softmax, delta = a - y and per-sample losses at an offset."""
    c = Case(shape, dtype, "C")
    a, delta = c.out(c.z.shape), c.out(c.z.shape)
    losses = cu.to_device(np.full(c.B + 2, -1.0))
    cu._softmax_xent_kernel[cu._blocks(c.B), cu.TPB](c.inp(c.z), c.inp(c.y_onehot), a, delta, losses, 2)
    exp_a = np.empty_like(c.z)
    ref.activate(codes.SOFTMAX, c.z, np.zeros(0), exp_a)
    _close(cu.to_host(a), exp_a, dtype, "softmax")
    _close(cu.to_host(delta), cu.to_host(a).astype(np.float64) - c.y_onehot, dtype, "delta")
    per_sample = cu.to_host(losses)
    assert list(per_sample[:2]) == [-1.0, -1.0]  # written at the offset only
    expected = [ref.loss_value(codes.CROSS_ENTROPY, codes.SOFTMAX, c.z[i:i + 1], exp_a[i:i + 1], c.y_onehot[i:i + 1])
                for i in range(c.B)]
    _close(per_sample[2:], expected, dtype, "per-sample cross-entropy")


@pytest.mark.parametrize("name,act", HIDDEN, ids=[n for n, _ in HIDDEN])
def test_backward_kernels(case, name, act):
    """backprop_error + activation_backward and the fused propagate_delta, with PReLU's dalpha."""
    B, n = case.B, case.n_in
    alpha = _alpha(act, n)
    exp_g, exp_d, exp_da = np.empty((B, n)), np.empty((B, n)), np.empty(alpha.shape)
    ref.backprop_error(case.delta_next, case.W_next, exp_g)
    ref.activation_backward(act, case.z_in, alpha, exp_g, exp_d, exp_da)
    d, da = case.out((B, n)), case.out(alpha.shape)
    cu.activation_backward(act, case.inp(case.z_in), case.inp(alpha), case.inp(exp_g), d, da)
    _close(cu.to_host(d), exp_d, case.dtype, "activation_backward")
    d2, da2 = case.out((B, n)), case.out(alpha.shape)
    cu.propagate_delta(case.inp(case.delta_next), case.inp(case.W_next), case.inp(case.z_in), act,
                       case.inp(alpha), d2, da2)
    _close(cu.to_host(d2), exp_d, case.dtype, "propagate_delta")
    if act == codes.PRELU:
        _close(cu.to_host(da), exp_da, case.dtype, "dalpha")
        _close(cu.to_host(da2), exp_da, case.dtype, "dalpha (fused)")


def test_activation_backward_in_place():
    """g and delta may be the same buffer (the fused epoch and propagate_delta rely on it)."""
    c = Case("5x9x3", np.float64, "C")
    alpha = _alpha(codes.PRELU, c.n_out)
    exp_d, exp_da = np.empty_like(c.z), np.empty(c.n_out)
    ref.activation_backward(codes.PRELU, c.z, alpha, c.delta_next, exp_d, exp_da)
    buf, da = cu.to_device(c.delta_next.copy()), cu.empty((c.n_out,), np.float64)
    cu.activation_backward(codes.PRELU, cu.to_device(c.z), cu.to_device(alpha), buf, buf, da)
    _close(cu.to_host(buf), exp_d, np.float64)
    _close(cu.to_host(da), exp_da, np.float64)


# --------------------------------------------------------------------------- update, dropout, epoch helpers


@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_sgd_update(case, momentum, nesterov):
    v0 = case.z * 0.1
    W, v = cu.to_device(case.z.astype(case.dtype)), cu.to_device(v0.astype(case.dtype))
    cu.sgd_update(W, case.inp(case.delta_next), v, 0.05, momentum, nesterov)
    exp_W, exp_v = case.z.copy(), v0.copy()
    ref.sgd_update(exp_W, case.delta_next, exp_v, 0.05, momentum, nesterov)
    _close(cu.to_host(W), exp_W, case.dtype, "W")
    _close(cu.to_host(v), exp_v, case.dtype, "v")
    # 1-D parameters (biases, PReLU slopes) take the same kernel through a (1, n) view
    b, vb = cu.to_device(case.b.astype(case.dtype)), cu.to_device((case.b * 0.2).astype(case.dtype))
    db = case.b[::-1].copy()
    cu.sgd_update(b, cu.to_device(db.astype(case.dtype)), vb, 0.05, momentum, nesterov)
    exp_b, exp_vb = case.b.copy(), case.b * 0.2
    ref.sgd_update(exp_b, db, exp_vb, 0.05, momentum, nesterov)
    _close(cu.to_host(b), exp_b, case.dtype, "b")
    _close(cu.to_host(vb), exp_vb, case.dtype, "vb")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("shape", [(1, 3), (3, 7), (5, 9)], ids=["1x3", "3x7", "5x9"])
def test_dropout_bit_for_bit(dtype, shape):
    rng = np.random.default_rng(2)
    x = rng.normal(size=shape).astype(dtype)
    for keep, seed, step, layer in [(0.5, 42, 3, 1), (0.8, 0, 0, 0), (1 / 3, 7, 123456789, 2)]:
        d = cu.to_device(x)
        cu.dropout(d, keep, seed, step, layer)
        expected = x.copy()
        ref.dropout(expected, keep, seed, step, layer)
        np.testing.assert_array_equal(cu.to_host(d), expected)


def test_dropout_mask_on_a_strided_view():
    """A view into a wider buffer: the mask follows the view's own row-major index, the rest is untouched."""
    x = np.arange(1.0, 31.0).reshape(5, 6)
    wide = cu.to_device(x)
    cu.dropout(wide[:, 1:4], 0.5, 3, 1, 2)
    got = cu.to_host(wide)
    expected = x[:, 1:4].copy()
    ref.dropout(expected, 0.5, 3, 1, 2)
    np.testing.assert_array_equal(got[:, 1:4], expected)
    np.testing.assert_array_equal(got[:, [0, 4, 5]], x[:, [0, 4, 5]])


def test_add():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(5, 7)), rng.normal(size=(5, 7))
    d = cu.to_device(a)
    cu.add(d, _device(b, "view"))
    np.testing.assert_array_equal(cu.to_host(d), a + b)


def test_gather_and_hits():
    """The epoch's device-side helpers: rows in a shuffled order, and argmax hits at an offset."""
    rng = np.random.default_rng(4)
    X, order = rng.normal(size=(9, 5)), rng.permutation(9)
    out = cu.empty((4, 5), np.float64)
    cu._gather(cu.to_device(X), cu.to_device(order), 3, out)
    np.testing.assert_array_equal(cu.to_host(out), X[order[3:7]])
    probs = rng.uniform(size=(4, 3))
    probs[1] = [0.2, 0.5, 0.5]  # a tie goes to the first maximum, as np.argmax does
    labels = rng.integers(0, 3, 9)
    hits = cu.to_device(np.full(9, -1, dtype=np.int8))
    cu._hits_kernel[cu._blocks(4), cu.TPB](cu.to_device(probs), cu.to_device(labels), cu.to_device(order), 3,
                                           False, hits)
    expected = (np.argmax(probs, axis=1) == labels[order[3:7]]).astype(np.int8)
    np.testing.assert_array_equal(cu.to_host(hits)[3:7], expected)
    assert (cu.to_host(hits)[[0, 1, 2, 7, 8]] == -1).all()
    single = rng.uniform(size=(4, 1))
    cu._hits_kernel[cu._blocks(4), cu.TPB](cu.to_device(single), cu.to_device(labels % 2), cu.to_device(order), 0,
                                           True, hits)
    np.testing.assert_array_equal(cu.to_host(hits)[:4], ((single[:, 0] > 0.5) == (labels % 2)[order[:4]]))


# --------------------------------------------------------------------------- launch sizes, plumbing, errors


@pytest.mark.parametrize("tpb,tile,max_blocks", [(1, 1, 1), (2, 3, 1), (8, 4, 64)])
def test_results_do_not_depend_on_the_launch_configuration(monkeypatch, tpb, tile, max_blocks):
    """Grid-stride loops and tiled loops cover every size with any block size and grid cap."""
    if not cu.SIMULATOR:
        pytest.skip("a compiled kernel has its launch constants built in; the simulator reads them at run time")
    monkeypatch.setattr(cu, "TPB", tpb)
    monkeypatch.setattr(cu, "TILE", tile)
    monkeypatch.setattr(cu, "TILE_PAD", tile + 1)
    monkeypatch.setattr(cu, "MAX_BLOCKS", max_blocks)
    c = Case("5x9x3", np.float64, "view", seed=5)
    z = c.out((c.B, c.n_out))
    cu.linear_forward(c.inp(c.a_prev), c.inp(c.W), c.inp(c.b), z)
    _close(cu.to_host(z), c.a_prev @ c.W + c.b, np.float64, "linear_forward")
    dW, db = c.out(c.W.shape), c.out(c.b.shape)
    cu.param_grads(c.inp(c.a_prev), c.inp(c.delta_next), c.inp(c.W), 1e-3, 1e-2, dW, db)
    exp_dW, exp_db = np.empty_like(c.W), np.empty_like(c.b)
    ref.param_grads(c.a_prev, c.delta_next, c.W, 1e-3, 1e-2, exp_dW, exp_db)
    _close(cu.to_host(dW), exp_dW, np.float64, "dW")
    _close(cu.to_host(db), exp_db, np.float64, "db")
    _close(cu.penalty(c.inp(c.W), 1e-3, 1e-2), ref.penalty(c.W, 1e-3, 1e-2), np.float64, "penalty")
    a = c.out(c.z.shape)
    cu.activate(codes.SOFTMAX, c.inp(c.z), c.inp(np.zeros(0)), a)
    exp_a = np.empty_like(c.z)
    ref.activate(codes.SOFTMAX, c.z, np.zeros(0), exp_a)
    _close(cu.to_host(a), exp_a, np.float64, "softmax")
    x = cu.to_device(c.z)
    cu.dropout(x, 0.5, 1, 2, 3)
    exp_x = c.z.copy()
    ref.dropout(exp_x, 0.5, 1, 2, 3)
    np.testing.assert_array_equal(cu.to_host(x), exp_x)


def test_array_plumbing():
    x = np.arange(12.0).reshape(3, 4)
    d = cu.to_device(x)
    assert cu.to_device(d) is d  # device arrays pass through (the engine hands device params back in)
    np.testing.assert_array_equal(cu.to_host(d), x)
    np.testing.assert_array_equal(cu.to_host(cu.to_device(x[:, ::2])), x[:, ::2])  # strided host input
    e = cu.empty((3, 4), np.float32)
    cu.assign(e, x)
    assert cu.to_host(e).dtype == np.float32
    np.testing.assert_array_equal(cu.to_host(e), x)
    with pytest.raises(ValueError, match="shape"):
        cu.assign(e, np.zeros((4, 3)))
    nothing = cu.to_device(np.zeros(0))
    assert cu.to_host(nothing).shape == (0,)
    cu.assign(cu.empty((0,), np.float64), np.zeros(0))
    assert cu.to_host(x) is x
    # MLP.loss adds the penalty of the model's host weights: penalty takes host arrays too
    assert cu.penalty(x, 0.1, 0.2) == pytest.approx(ref.penalty(x, 0.1, 0.2), rel=1e-12)


def test_numpy_without_row_stack_gets_it_back(monkeypatch):
    """numba-cuda 0.30.4 overloads np.row_stack when it first compiles; NumPy 2.5 has none: the shim restores it."""
    monkeypatch.delattr(np, "row_stack", raising=False)
    cu._numpy_compat()
    assert np.row_stack is np.vstack
    own = object()
    monkeypatch.setattr(np, "row_stack", own, raising=False)
    cu._numpy_compat()
    assert np.row_stack is own  # a NumPy that has it keeps its own


def test_errors_say_what_to_do():
    A, C = cu.to_device(np.ones((2, 2))), cu.empty((2, 2), np.float64)
    with pytest.raises(ValueError, match="choose 'blas' or 'blocked'"):
        cu.matmul(A, A, C, method="strassen")
    with pytest.raises(ValueError, match="no elementwise derivative"):
        cu.activation_derivative(codes.SOFTMAX, A, cu.to_device(np.zeros(0)), C)
    with pytest.raises(ValueError, match="unknown activation code 42"):
        cu.activate(42, A, cu.to_device(np.zeros(0)), C)
    with pytest.raises(ValueError, match="unknown loss code 9"):
        cu.loss_value(9, codes.SOFTMAX, A, A, A)
    with pytest.raises(ValueError, match="output activation code 2 is not supported"):
        cu.output_delta(codes.MSE, codes.TANH, A, A, C)
