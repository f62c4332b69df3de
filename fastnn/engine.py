"""The training engine: one forward pass, one backward pass, one SGD step, one epoch.

Everything here is a sequence of calls to the backend contract (kernels/README.md), so a student
can read backpropagation top to bottom in :func:`forward`, :func:`backward` and :func:`update`.
A backend may replace :func:`run_epoch` by a fused ``train_epoch`` with the same signature
(a whole epoch in one compiled call); both must give the same weights.

Residual (skip) connections: a hidden layer with ``spec.skip[l]`` computes
``a_l = f(z_l) + a_{l-1}`` (dropout, when on, masks the f(z_l) branch only), and in the backward
pass the skip hands dJ/da_l straight to the layer below: dJ/da_{l-1} = delta_l W_l^T + dJ/da_l.
The fused ``train_epoch`` loops of the compiled backends do not know about skips, so residual
networks always train through :func:`run_epoch` here, still on the same backend's kernels.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import numpy as np

from fastnn.kernels import contract, numpy_ref
from fastnn.kernels.codes import LEARNED, SIGMOID, SOFTMAX
from fastnn.kernels.contract import EpochStats


@dataclass(frozen=True)
class NetSpec:
    """The static description of a network: layer sizes and the codes of its formulas."""

    sizes: tuple[int, ...]  # input first, e.g. (784, 256, 128, 10)
    acts: tuple[int, ...]  # one code per layer after the input; the last is the output's
    loss: int
    dtype: np.dtype
    # One flag per layer after the input: True where a_l = f(z_l) + a_{l-1} (a residual hidden
    # layer whose width equals the previous hidden layer's).  Empty means no skips anywhere.
    skip: tuple[bool, ...] = ()

    def __post_init__(self) -> None:
        skip = tuple(bool(s) for s in self.skip) or (False,) * (len(self.sizes) - 1)
        if len(skip) != len(self.sizes) - 1:
            raise ValueError(f"skip needs one flag per layer after the input ({len(self.sizes) - 1}), got {len(skip)}")
        for l, s in enumerate(skip):
            if s and not (0 < l < len(skip) - 1 and self.sizes[l] == self.sizes[l + 1]):
                raise ValueError(f"layer {l + 1} cannot have a skip connection: only hidden layers after "
                                 f"the first whose width equals the previous hidden layer's can")
        object.__setattr__(self, "skip", skip)

    @property
    def n_layers(self) -> int:
        return len(self.sizes) - 1

    @property
    def residual(self) -> bool:
        """True when some layer has a skip connection (then only :func:`run_epoch` can train it)."""
        return any(self.skip)


@dataclass(frozen=True)
class Hyper:
    """Training settings that the kernels see."""

    lr: float = 0.01
    momentum: float = 0.0
    nesterov: bool = False
    l1: float = 0.0
    l2: float = 0.0
    keep_input: float = 1.0  # 1 - input_dropout
    keep_hidden: float = 1.0  # 1 - dropout
    seed: int = 0  # dropout stream


@dataclass
class Params:
    """Parameters: W (n_in, n_out), b (n_out,), alpha (n_out,) for LeakyReLU, ELU and PReLU layers else (0,).

    alpha_j is the activation's parameter per unit: a fixed slope (LeakyReLU) or alpha (ELU), or
    PReLU's learned slope; only PReLU's is trained (it alone gets a gradient buffer).
    """

    W: list
    b: list
    alpha: list

    def arrays(self) -> list:
        return [*self.W, *self.b, *self.alpha]


class Workspace:
    """Preallocated buffers for batches of up to ``batch`` samples (views are taken for smaller)."""

    def __init__(self, be: ModuleType, spec: NetSpec, batch: int, training: bool):
        emp, dt = be.empty, spec.dtype
        outs = spec.sizes[1:]
        self.batch = batch
        self.x = emp((batch, spec.sizes[0]), dt)  # input batch (dropout writes here, not into X)
        self.y = emp((batch, spec.sizes[-1]), dt)
        self.z = [emp((batch, n), dt) for n in outs]
        self.a = [emp((batch, n), dt) for n in outs]
        if training:
            self.delta = [emp((batch, n), dt) for n in outs]
            self.g = [emp((batch, n), dt) for n in outs]  # dJ/da, used where dropout or a skip sits
            self.dW = [emp((m, n), dt) for m, n in zip(spec.sizes[:-1], outs)]
            self.db = [emp((n,), dt) for n in outs]
            # Residual nets with dropout: dJ/da_l must survive for the skip while its masked copy
            # feeds activation_backward, so those layers get a second buffer.
            self.g_branch = [emp((batch, n), dt) if s else None for n, s in zip(outs, spec.skip)]


def add_into(be, dst, src) -> None:
    """dst <- dst + src   (the backend's ``add`` hook; host arrays need none: kernels/contract.py).

    Only skip connections need it; the CPU backends hold host NumPy arrays, so ``+=`` is exact.
    """
    contract.hook(be, "add")(dst, src)


def _keep(hyper: Hyper | None, layer: int) -> float:
    """Keep probability of the activations entering layer ``layer`` (0 = the input)."""
    if hyper is None:
        return 1.0
    return hyper.keep_input if layer == 0 else hyper.keep_hidden


def forward(be, spec: NetSpec, p: Params, ws: Workspace, x, hyper: Hyper | None = None, step: int = 0):
    """z_l = a_{l-1} W_l + b_l;  a_l = f_l(z_l)  for every layer; dropout when ``hyper`` is given.

    Residual layers (``spec.skip[l]``) add the skip: a_l = f_l(z_l) [* mask/keep] + a_{l-1}.

    ``x`` is the backend array of the batch (B rows).  Returns the output activations (a view
    into the workspace).
    """
    B = x.shape[0]
    a_prev = x
    if _keep(hyper, 0) < 1.0:
        a_prev = ws.x[:B]
        a_prev[:] = x
        be.dropout(a_prev, hyper.keep_input, hyper.seed, step, 0)
    last = spec.n_layers - 1
    for l in range(spec.n_layers):
        z, a = ws.z[l][:B], ws.a[l][:B]
        be.linear_forward(a_prev, p.W[l], p.b[l], z)
        be.activate(spec.acts[l], z, p.alpha[l], a)
        if l < last and _keep(hyper, l + 1) < 1.0:
            be.dropout(a, hyper.keep_hidden, hyper.seed, step, l + 1)
        if spec.skip[l]:
            add_into(be, a, a_prev)  # a_l = f(z_l) + a_{l-1}: the identity path of a residual block
        a_prev = a
    return ws.a[last][:B]


def backward(be, spec: NetSpec, p: Params, ws: Workspace, x, y, hyper: Hyper, step: int,
             dalpha: list) -> None:
    """delta_L = dJ/dz_L;  delta_l = f'(z_l) * (delta_{l+1} W_{l+1}^T) [* mask/keep];  dW, db.

    Call right after :func:`forward` with the same ``hyper`` and ``step``: the dropout masks are
    drawn again from the same counters instead of being stored.  Layer 1 needs no input delta.

    Skip connections: where a_l = f(z_l) + a_{l-1}, the error reaching a_{l-1} has two paths,
    g_{l-1} = dJ/da_{l-1} = delta_l W_l^T + g_l, so g is kept explicitly (``ws.g``) around them.
    """
    B = x.shape[0]
    L = spec.n_layers
    be.output_delta(spec.loss, spec.acts[-1], ws.a[-1][:B], y, ws.delta[-1][:B])
    for l in range(L - 1, -1, -1):
        if l == 0:
            a_prev = ws.x[:B] if _keep(hyper, 0) < 1.0 else x
        else:
            a_prev = ws.a[l - 1][:B]
        be.param_grads(a_prev, ws.delta[l][:B], p.W[l], hyper.l1, hyper.l2, ws.dW[l], ws.db[l])
        if l == 0:
            break
        delta_prev, z_prev = ws.delta[l - 1][:B], ws.z[l - 1][:B]
        dropped = _keep(hyper, l) < 1.0
        if dropped or spec.skip[l] or spec.skip[l - 1]:
            g = ws.g[l - 1][:B]
            be.backprop_error(ws.delta[l][:B], p.W[l], g)  # dJ/da_{l-1} through W_l
            if spec.skip[l]:
                add_into(be, g, ws.g[l][:B])  # ... plus dJ/da_l through the skip a_l = f(z_l) + a_{l-1}
            branch = g
            if dropped:
                if spec.skip[l - 1]:  # keep g_{l-1} unmasked: the skip below needs it as it is
                    branch = ws.g_branch[l - 1][:B]
                    branch[:] = g  # [:] (not [...]): device arrays take a slice key only
                be.dropout(branch, hyper.keep_hidden, hyper.seed, step, l)  # same mask as the forward pass
            be.activation_backward(spec.acts[l - 1], z_prev, p.alpha[l - 1], branch, delta_prev, dalpha[l - 1])
        else:
            be.propagate_delta(ws.delta[l][:B], p.W[l], z_prev, spec.acts[l - 1], p.alpha[l - 1],
                               delta_prev, dalpha[l - 1])


def update(be, p: Params, grads: tuple[list, list, list], velocity: Params, hyper: Hyper) -> None:
    """W <- W - lr dW (with momentum: v <- mu v - lr dW; W <- W + v), for W, b and PReLU alpha."""
    for params, g, v in zip((p.W, p.b, p.alpha), grads, (velocity.W, velocity.b, velocity.alpha)):
        for w_l, g_l, v_l in zip(params, g, v):
            if g_l.size:  # an empty gradient: no parameter, or a fixed alpha_j (LeakyReLU, ELU)
                be.sgd_update(w_l, g_l, v_l, hyper.lr, hyper.momentum, hyper.nesterov)


def penalty(be, p: Params, hyper: Hyper) -> float:
    """R = sum_l l2/2 ||W_l||^2 + l1 ||W_l||_1."""
    if not (hyper.l1 or hyper.l2):
        return 0.0
    return sum(be.penalty(W, hyper.l1, hyper.l2) for W in p.W)


def count_correct(spec: NetSpec, out: np.ndarray, labels: np.ndarray) -> int:
    """Number of rows whose predicted class equals ``labels`` (host arrays)."""
    return int(np.count_nonzero(predict_labels(spec, out) == labels))


def predict_labels(spec: NetSpec, out: np.ndarray) -> np.ndarray:
    """Class labels from output activations: argmax, or a > 1/2 for a single sigmoid unit."""
    return numpy_ref.predicted_labels(out, threshold=spec.acts[-1] == SIGMOID and out.shape[1] == 1)


def is_classifier(spec: NetSpec) -> bool:
    return spec.acts[-1] in (SOFTMAX, SIGMOID)


def make_grad_buffers(be, spec: NetSpec, p: Params) -> list:
    """dalpha buffers: (n_out,) for PReLU layers, whose alpha is learned, and (0,) elsewhere."""
    return [be.empty(a.shape if act in LEARNED else (0,), spec.dtype) for a, act in zip(p.alpha, spec.acts)]


def run_epoch(be, spec: NetSpec, p: Params, velocity: Params, ws: Workspace, X, Y, labels,
              order: np.ndarray, batch_size: int, hyper: Hyper, step0: int) -> EpochStats:
    """One epoch of mini-batch SGD, step by step through the kernels.

    ``X``, ``Y`` are host arrays (n, n_in), (n, n_out) in the model dtype; ``labels`` the class of
    each row (or None for regression); ``order`` the sample order of this epoch; batch ``k`` uses
    dropout counter ``step0 + k``.
    """
    n = len(order)
    stats = EpochStats(grad_norm_sum=np.zeros(spec.n_layers))
    batch_losses = []
    dalpha = make_grad_buffers(be, spec, p)
    for k, start in enumerate(range(0, n, batch_size)):
        idx = order[start:start + batch_size]
        B = len(idx)
        xb = be.to_device(np.take(X, idx, axis=0))
        yb = be.to_device(np.take(Y, idx, axis=0))
        step = step0 + k
        out = forward(be, spec, p, ws, xb, hyper, step)
        batch_loss = be.loss_value(spec.loss, spec.acts[-1], ws.z[-1][:B], out, yb) + penalty(be, p, hyper)
        if not np.isfinite(batch_loss):
            stats.diverged = True
            break
        backward(be, spec, p, ws, xb, yb, hyper, step, dalpha)
        update(be, p, (ws.dW, ws.db, dalpha), velocity, hyper)
        batch_losses.append(batch_loss)
        stats.loss_sum += batch_loss * B
        stats.n_seen += B
        stats.n_batches += 1
        stats.grad_norm_sum += [float(np.linalg.norm(be.to_host(dW))) for dW in ws.dW]
        if labels is not None:
            stats.correct += count_correct(spec, be.to_host(out), labels[idx])
    stats.batch_loss = np.array(batch_losses, dtype=np.float64)
    return stats


def predict(be, spec: NetSpec, p: Params, X: np.ndarray, Y: np.ndarray | None = None,
            chunk: int = 4096) -> tuple[np.ndarray, float]:
    """Output activations of all rows of host array X (no dropout) and, given Y, the summed data loss."""
    n = X.shape[0]
    p = Params(*[[be.to_device(a) for a in group] for group in (p.W, p.b, p.alpha)])  # no-op on CPU
    ws = Workspace(be, spec, min(n, chunk), training=False)
    out = np.empty((n, spec.sizes[-1]), dtype=spec.dtype)
    loss_sum = 0.0
    for start in range(0, n, chunk):
        xb = be.to_device(X[start:start + chunk])
        B = xb.shape[0]
        a = forward(be, spec, p, ws, xb)
        out[start:start + B] = be.to_host(a)
        if Y is not None:
            yb = be.to_device(Y[start:start + chunk])
            loss_sum += be.loss_value(spec.loss, spec.acts[-1], ws.z[-1][:B], a, yb) * B
    return out, loss_sum
