"""The backend contract, kernel by kernel.

Part 1 checks the reference against independent definitions (finite differences, hand formulas).
Part 2 holds every available backend to the reference over dtypes x awkward shapes and layouts:
batch 1, odd sizes, Fortran order and strided (non-contiguous) inputs.  Outputs are always
C-contiguous buffers, as the engine allocates them.
"""
from __future__ import annotations

import numpy as np
import pytest
from conftest import ATOL, RTOL

from fastnn import backends, codes
from fastnn.kernels import numpy_ref as ref

HIDDEN = list(codes.ACTIVATIONS.items())
PAIRS = [(out, loss) for out, losses in codes.OUTPUT_LOSSES.items() for loss in losses]
SHAPES = {"batch1": (1, 3, 4), "odd": (7, 13, 5), "wide": (33, 65, 17)}  # (B, n_in, n_out)
LAYOUTS = ["C", "F", "strided"]


def _z(rng, shape, dtype=np.float64):
    """Values away from the kinks of relu-like functions at 0, so finite differences are fair."""
    z = rng.normal(0, 1.5, size=shape)
    z[np.abs(z) < 0.05] += 0.2
    return z.astype(dtype)


def _alpha(act, n, dtype=np.float64):
    """alpha_j per unit, different for every unit, for the activations that take one (else empty)."""
    if act == codes.PRELU:
        return np.linspace(0.1, 0.4, n).astype(dtype)
    if act == codes.LEAKY_RELU:
        return np.linspace(0.01, 0.3, n).astype(dtype)
    if act == codes.ELU:
        return np.linspace(0.5, 1.5, n).astype(dtype)
    return np.zeros(0, dtype)


# --------------------------------------------------------------------------- part 1: the reference


@pytest.mark.parametrize("name,act", HIDDEN, ids=[n for n, _ in HIDDEN])
def test_reference_derivative_is_the_derivative(name, act):
    rng = np.random.default_rng(1)
    z = _z(rng, (6, 5))
    alpha = _alpha(act, 5)
    d = np.empty_like(z)
    ref.activation_derivative(act, z, alpha, d)
    eps = 1e-6
    ap, am = np.empty_like(z), np.empty_like(z)
    ref.activate(act, z + eps, alpha, ap)
    ref.activate(act, z - eps, alpha, am)
    np.testing.assert_allclose(d, (ap - am) / (2 * eps), rtol=1e-7, atol=1e-9)


def test_reference_activations_by_hand():
    z = np.array([[-2.0, -0.5, 0.0, 0.5, 3.0]])
    a = np.empty_like(z)
    table = {
        codes.IDENTITY: z,
        codes.SIGMOID: 1 / (1 + np.exp(-z)),
        codes.TANH: np.tanh(z),
        codes.RELU: np.maximum(z, 0),
        codes.LEAKY_RELU: np.where(z > 0, z, 0.01 * z),
        codes.ELU: np.where(z > 0, z, np.exp(z) - 1),
    }
    for act, expected in table.items():
        alpha = np.full(5, {codes.LEAKY_RELU: 0.01, codes.ELU: 1.0}[act]) if act in codes.PARAMETRISED else np.zeros(0)
        ref.activate(act, z, alpha, a)
        np.testing.assert_allclose(a, expected, rtol=1e-15, atol=1e-15, err_msg=codes.ACTIVATION_NAMES[act])
    ref.activate(codes.PRELU, z, np.full(5, 0.25), a)
    np.testing.assert_allclose(a, np.where(z > 0, z, 0.25 * z))
    # the fixed parameters are per unit too: a LeakyReLU slope and an ELU alpha of one's choosing
    ref.activate(codes.LEAKY_RELU, z, np.full(5, 0.2), a)
    np.testing.assert_allclose(a, np.where(z > 0, z, 0.2 * z), rtol=1e-15)
    ref.activate(codes.ELU, z, np.full(5, 0.5), a)
    np.testing.assert_allclose(a, np.where(z > 0, z, 0.5 * np.expm1(z)), rtol=1e-15)


def test_reference_softmax_and_sigmoid_extremes():
    z = np.array([[1000.0, 0.0, -1000.0], [1.0, 2.0, 3.0]], dtype=np.float32)
    a = np.empty_like(z)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is fine
        ref.activate(codes.SOFTMAX, z, np.zeros(0, np.float32), a)
        np.testing.assert_allclose(a.sum(axis=1), 1, rtol=1e-6)
        np.testing.assert_allclose(a[0], [1, 0, 0])
        ref.activate(codes.SIGMOID, z, np.zeros(0, np.float32), a)
    assert a[0, 0] == 1 and a[0, 2] == 0


@pytest.mark.parametrize("output,loss", PAIRS, ids=[f"{o}-{l}" for o, l in PAIRS])
def test_reference_output_delta_is_dJ_dz(output, loss):
    """delta_L[b, j] = d(B * J)/dz[b, j]: the output delta is the per-sample gradient."""
    rng = np.random.default_rng(2)
    act, lc = codes.OUTPUTS[output], codes.LOSSES[loss]
    B, n = 4, 3
    z = rng.normal(size=(B, n))
    if loss == "cross_entropy":
        y = np.eye(n)[rng.integers(0, n, B)]
    else:
        y = rng.uniform(0, 1, size=(B, n))

    def J(zz):
        a = np.empty_like(zz)
        ref.activate(act, zz, np.zeros(0), a)
        return ref.loss_value(lc, act, zz, a, y) * B

    a = np.empty_like(z)
    ref.activate(act, z, np.zeros(0), a)
    delta = np.empty_like(z)
    ref.output_delta(lc, act, a, y, delta)
    eps = 1e-6
    fd = np.zeros_like(z)
    for idx in np.ndindex(z.shape):
        zp, zm = z.copy(), z.copy()
        zp[idx] += eps
        zm[idx] -= eps
        fd[idx] = (J(zp) - J(zm)) / (2 * eps)
    np.testing.assert_allclose(delta, fd, rtol=1e-6, atol=1e-9)


def test_reference_losses_by_hand():
    z = np.array([[2.0, 1.0, 0.1]])
    a = np.exp(z) / np.exp(z).sum()
    y = np.array([[0.0, 1.0, 0.0]])
    assert ref.loss_value(codes.CROSS_ENTROPY, codes.SOFTMAX, z, a, y) == pytest.approx(-np.log(a[0, 1]))
    s = 1 / (1 + np.exp(-z))
    bce = -(y * np.log(s) + (1 - y) * np.log(1 - s)).sum()
    assert ref.loss_value(codes.BINARY_CROSS_ENTROPY, codes.SIGMOID, z, s, y) == pytest.approx(bce)
    assert ref.loss_value(codes.MSE, codes.IDENTITY, z, z, y) == pytest.approx(0.5 * ((z - y) ** 2).sum())
    # Extreme logits: the loss stays finite and exact, never log(0).
    big = np.array([[800.0, -800.0]])
    assert ref.loss_value(codes.CROSS_ENTROPY, codes.SOFTMAX, big, np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])) == pytest.approx(1600)


def test_reference_param_grads_and_penalty_by_hand():
    rng = np.random.default_rng(3)
    a_prev, delta, W = rng.normal(size=(5, 4)), rng.normal(size=(5, 3)), rng.normal(size=(4, 3))
    dW, db = np.empty_like(W), np.empty(3)
    ref.param_grads(a_prev, delta, W, 0.1, 0.01, dW, db)
    expected = sum(np.outer(a_prev[b], delta[b]) for b in range(5)) / 5 + 0.01 * W + 0.1 * np.sign(W)
    np.testing.assert_allclose(dW, expected, rtol=1e-12)
    np.testing.assert_allclose(db, delta.mean(axis=0), rtol=1e-12)
    assert ref.penalty(W, 0.1, 0.01) == pytest.approx(0.005 * (W ** 2).sum() + 0.1 * np.abs(W).sum())


def test_reference_sgd_update_by_hand():
    W, dW = np.array([1.0, -2.0]), np.array([0.5, 0.25])
    v = np.array([0.1, 0.0])
    w1, v1 = W.copy(), v.copy()
    ref.sgd_update(w1, dW, v1, 0.1, 0.0, False)
    np.testing.assert_allclose(w1, [0.95, -2.025])
    np.testing.assert_allclose(v1, [0.1, 0.0])  # plain SGD leaves the velocity alone
    w2, v2 = W.copy(), v.copy()
    ref.sgd_update(w2, dW, v2, 0.1, 0.9, False)
    np.testing.assert_allclose(v2, [0.09 - 0.05, -0.025])
    np.testing.assert_allclose(w2, W + v2)
    w3, v3 = W.copy(), v.copy()
    ref.sgd_update(w3, dW, v3, 0.1, 0.9, True)
    np.testing.assert_allclose(w3, W + 0.9 * v3 - 0.1 * dW)


def test_reference_propagate_delta_is_the_composition():
    rng = np.random.default_rng(4)
    delta_next, W_next, z = rng.normal(size=(6, 3)), rng.normal(size=(5, 3)), _z(rng, (6, 5))
    alpha = _alpha(codes.PRELU, 5)
    g, d1, d2 = np.empty((6, 5)), np.empty((6, 5)), np.empty((6, 5))
    da1, da2 = np.empty(5), np.empty(5)
    ref.backprop_error(delta_next, W_next, g)
    ref.activation_backward(codes.PRELU, z, alpha, g, d1, da1)
    ref.propagate_delta(delta_next, W_next, z, codes.PRELU, alpha, d2, da2)
    np.testing.assert_allclose(d1, d2, rtol=1e-14)
    np.testing.assert_allclose(da1, da2, rtol=1e-14)
    np.testing.assert_allclose(da1, (g * np.minimum(z, 0)).mean(axis=0), rtol=1e-14)


# --------------------------------------------------------------------------- dropout hash


def _splitmix_scalar(seed, step, layer, i):
    """The dropout uniform u_i computed with Python ints, one at a time, as a specification."""
    key = ref.dropout_key(seed, step, layer)
    return (ref._mix64(key + (i + 1) * ref.GOLDEN) >> 11) / 2.0 ** 53


def test_dropout_hash_matches_scalar_specification():
    u = ref.dropout_uniform(50, 123, 7, 2)
    np.testing.assert_array_equal(u, [_splitmix_scalar(123, 7, 2, i) for i in range(50)])
    # Pinned values: any backend or refactoring that changes the stream fails here.
    assert ref._mix64(0x9E3779B97F4A7C15) == 0xE220A8397B1DCDAF  # SplitMix64's first output for seed 0
    np.testing.assert_array_equal(np.round(ref.dropout_uniform(3, 0, 0, 0), 12),
                                  np.round([_splitmix_scalar(0, 0, 0, i) for i in range(3)], 12))


def test_dropout_mask_statistics_and_independence():
    keep = 0.8
    m = ref.dropout_mask((200, 250), keep, 5, 0, 1)
    # 50,000 Bernoulli(0.8) draws: 6 standard deviations is 0.0107.
    assert abs(m.mean() - keep) < 0.011
    assert (m == ref.dropout_mask((200, 250), keep, 5, 0, 1)).all()
    for other in [(6, 0, 1), (5, 1, 1), (5, 0, 2)]:  # seed, step or layer changes the mask
        agree = (m == ref.dropout_mask((200, 250), keep, *other)).mean()
        assert agree < 0.75  # independent masks agree on keep^2 + (1-keep)^2 = 0.68
    x = np.ones((200, 250), dtype=np.float32)
    ref.dropout(x, keep, 5, 0, 1)
    np.testing.assert_array_equal(x, np.where(m, np.float32(1 / keep), 0))


# --------------------------------------------------------------------------- part 2: backends vs reference


def _layout(x: np.ndarray, layout: str) -> np.ndarray:
    if layout == "F":
        return np.asfortranarray(x)
    if layout == "strided":
        wide = np.zeros((x.shape[0], 2 * x.shape[1]) if x.ndim == 2 else (2 * x.shape[0],), dtype=x.dtype)
        view = wide[:, ::2] if x.ndim == 2 else wide[::2]
        view[...] = x
        return view
    return np.ascontiguousarray(x)


def _close(actual, expected, dtype, what=""):
    """Relative to the largest magnitude, so entries near zero do not demand impossible digits."""
    actual = np.asarray(actual, dtype=np.float64)
    scale = max(float(np.max(np.abs(expected))) if np.size(expected) else 0.0, 1.0)
    np.testing.assert_allclose(actual, expected, rtol=RTOL[dtype], atol=RTOL[dtype] * scale + ATOL[dtype],
                               err_msg=what)


class Case:
    """Random inputs of one shape, in float64 for the reference and cast/laid out for the backend."""

    def __init__(self, shape_name, dtype, layout, seed=0):
        rng = np.random.default_rng(seed)
        B, n_in, n_out = SHAPES[shape_name]
        self.B, self.n_in, self.n_out, self.dtype, self.layout = B, n_in, n_out, dtype, layout
        # Values exactly representable in float32, so both sides start from the same numbers.
        cast = lambda a: a.astype(dtype).astype(np.float64)  # noqa: E731
        self.a_prev = cast(rng.uniform(-1, 1, (B, n_in)))
        self.W = cast(rng.normal(0, 0.5, (n_in, n_out)))
        self.b = cast(rng.normal(0, 0.5, n_out))
        self.z = cast(_z(rng, (B, n_out)))
        self.delta_next = cast(rng.normal(size=(B, n_out)))
        self.W_next = cast(rng.normal(0, 0.5, (n_in, n_out)))  # maps n_in units to n_out: z here is (B, n_in)
        self.z_in = cast(_z(rng, (B, n_in)))
        self.y_onehot = np.eye(n_out)[rng.integers(0, n_out, B)]
        self.y_real = cast(rng.uniform(0, 1, (B, n_out)))

    def inp(self, x):
        """Input as the backend sees it: its dtype, the case's layout, moved to the device."""
        return self.be.to_device(_layout(x.astype(self.dtype), self.layout))

    def out(self, shape):
        return self.be.empty(shape, self.dtype)


@pytest.fixture(params=[(s, l) for s in SHAPES for l in LAYOUTS], ids=[f"{s}-{l}" for s in SHAPES for l in LAYOUTS])
def case(request, backend, dtype):
    c = Case(*request.param[:1], dtype, request.param[1])
    c.be = backends.get(backend)
    return c


def test_linear_forward(case):
    z = case.out((case.B, case.n_out))
    case.be.linear_forward(case.inp(case.a_prev), case.inp(case.W), case.inp(case.b), z)
    expected = np.empty((case.B, case.n_out))
    ref.linear_forward(case.a_prev, case.W, case.b, expected)
    _close(case.be.to_host(z), expected, case.dtype)


@pytest.mark.parametrize("name,act", HIDDEN + [("softmax", codes.SOFTMAX)], ids=[n for n, _ in HIDDEN] + ["softmax"])
def test_activate_and_derivative(case, name, act):
    alpha = _alpha(act, case.n_out)
    a = case.out(case.z.shape)
    case.be.activate(act, case.inp(case.z), case.inp(alpha), a)
    expected = np.empty_like(case.z)
    ref.activate(act, case.z, alpha, expected)
    _close(case.be.to_host(a), expected, case.dtype, f"activate {name}")
    if act != codes.SOFTMAX:
        d = case.out(case.z.shape)
        case.be.activation_derivative(act, case.inp(case.z), case.inp(alpha), d)
        ref.activation_derivative(act, case.z, alpha, expected)
        _close(case.be.to_host(d), expected, case.dtype, f"derivative {name}")


@pytest.mark.parametrize("output,loss", PAIRS, ids=[f"{o}-{l}" for o, l in PAIRS])
def test_loss_value_and_output_delta(case, output, loss):
    act, lc = codes.OUTPUTS[output], codes.LOSSES[loss]
    y = case.y_onehot if loss == "cross_entropy" else case.y_real
    a = np.empty_like(case.z)
    ref.activate(act, case.z, np.zeros(0), a)
    a = a.astype(case.dtype).astype(np.float64)
    got = case.be.loss_value(lc, act, case.inp(case.z), case.inp(a), case.inp(y))
    expected = ref.loss_value(lc, act, case.z, a, y)
    _close(got, expected, case.dtype, "loss")
    delta = case.out(case.z.shape)
    case.be.output_delta(lc, act, case.inp(a), case.inp(y), delta)
    exp_delta = np.empty_like(case.z)
    ref.output_delta(lc, act, a, y, exp_delta)
    _close(case.be.to_host(delta), exp_delta, case.dtype, "output delta")


@pytest.mark.parametrize("name,act", HIDDEN, ids=[n for n, _ in HIDDEN])
def test_backward_kernels(case, name, act):
    """backprop_error, activation_backward and the fused propagate_delta, with PReLU's dalpha."""
    B, n = case.B, case.n_in
    alpha = _alpha(act, n)
    exp_g, exp_d, exp_da = np.empty((B, n)), np.empty((B, n)), np.empty(alpha.shape)
    ref.backprop_error(case.delta_next, case.W_next, exp_g)
    ref.activation_backward(act, case.z_in, alpha, exp_g, exp_d, exp_da)

    g = case.out((B, n))
    case.be.backprop_error(case.inp(case.delta_next), case.inp(case.W_next), g)
    _close(case.be.to_host(g), exp_g, case.dtype, "backprop_error")
    d, da = case.out((B, n)), case.out(alpha.shape)
    case.be.activation_backward(act, case.inp(case.z_in), case.inp(alpha), case.inp(exp_g), d, da)
    _close(case.be.to_host(d), exp_d, case.dtype, "activation_backward")
    d2, da2 = case.out((B, n)), case.out(alpha.shape)
    case.be.propagate_delta(case.inp(case.delta_next), case.inp(case.W_next), case.inp(case.z_in), act,
                            case.inp(alpha), d2, da2)
    _close(case.be.to_host(d2), exp_d, case.dtype, "propagate_delta")
    if act == codes.PRELU:
        _close(case.be.to_host(da), exp_da, case.dtype, "dalpha")
        _close(case.be.to_host(da2), exp_da, case.dtype, "dalpha (fused)")


@pytest.mark.parametrize("l1,l2", [(0.0, 0.0), (1e-3, 0.0), (0.0, 1e-2), (1e-3, 1e-2)])
def test_param_grads_and_penalty(case, l1, l2):
    dW, db = case.out(case.W.shape), case.out(case.b.shape)
    case.be.param_grads(case.inp(case.a_prev), case.inp(case.delta_next), case.inp(case.W), l1, l2, dW, db)
    exp_dW, exp_db = np.empty_like(case.W), np.empty_like(case.b)
    ref.param_grads(case.a_prev, case.delta_next, case.W, l1, l2, exp_dW, exp_db)
    _close(case.be.to_host(dW), exp_dW, case.dtype, "dW")
    _close(case.be.to_host(db), exp_db, case.dtype, "db")
    _close(case.be.penalty(case.inp(case.W), l1, l2), ref.penalty(case.W, l1, l2), case.dtype, "penalty")


@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_sgd_update(case, momentum, nesterov):
    v0 = case.z * 0.1
    W = case.be.to_device(case.z.astype(case.dtype))  # parameters are C-contiguous buffers
    v = case.be.to_device(v0.astype(case.dtype))
    case.be.sgd_update(W, case.inp(case.delta_next), v, 0.05, momentum, nesterov)
    exp_W, exp_v = case.z.copy(), v0.copy()
    ref.sgd_update(exp_W, case.delta_next, exp_v, 0.05, momentum, nesterov)
    _close(case.be.to_host(W), exp_W, case.dtype, "W")
    _close(case.be.to_host(v), exp_v, case.dtype, "v")


@pytest.mark.parametrize("keep", [0.5, 0.8, 1 / 3])
def test_dropout_bit_for_bit(case, keep):
    x = case.be.to_device(case.z.astype(case.dtype))
    case.be.dropout(x, keep, 42, 3, 1)
    expected = case.z.astype(case.dtype)  # the same arithmetic in the backend's dtype
    ref.dropout(expected, keep, 42, 3, 1)
    np.testing.assert_array_equal(case.be.to_host(x), expected)


@pytest.mark.parametrize("method", ["blas", "blocked"])
def test_matmul_methods(case, method):
    """Every backend offers C = A B through BLAS and through a hand-written blocked kernel."""
    C = case.out((case.B, case.n_out))
    case.be.matmul(case.inp(case.a_prev), case.inp(case.W), C, method=method)
    _close(case.be.to_host(C), case.a_prev @ case.W, case.dtype)


def test_matmul_blocked_crosses_block_edges():
    """Sizes just over the row and depth blocks, so every edge case of the tiling runs."""
    for name in backends.available():
        be = backends.get(name)
        rng = np.random.default_rng(0)
        m, k, n = 131, 517, 37
        A, B = rng.normal(size=(m, k)), rng.normal(size=(k, n))
        C = np.empty((m, n))
        be.matmul(A, B, C, method="blocked")
        np.testing.assert_allclose(C, A @ B, rtol=1e-12, atol=1e-12, err_msg=name)
        with pytest.raises(ValueError, match="choose 'blas' or 'blocked'"):
            be.matmul(A, B, C, method="strassen")
