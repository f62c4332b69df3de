"""See backprop: a numeric trace of one training step, layer by layer, each line with its equation.

    >>> import fastnn
    >>> print(fastnn.trace())            # the worked example of the course's backpropagation lecture   # doctest: +SKIP
    >>> t = fastnn.trace(model, x, y, lr=0.1)                               # doctest: +SKIP
    >>> t["dW2"], t["delta1"], t.loss                                       # doctest: +SKIP

The numbers are not re-derived here: the trace runs :func:`fastnn.engine.forward`, the backend's
``loss_value``, :func:`fastnn.engine.backward` and :func:`fastnn.engine.update` (the very calls
``fit`` makes, on the model's own backend) and records the buffers they fill.  This module only
names and prints them.  From the command line: ``fastnn trace``.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from fastnn import codes, engine
from fastnn.engine import Params

if TYPE_CHECKING:
    from fastnn.model import MLP

__all__ = ["Trace", "TraceStep", "trace", "worked_example"]

# The worked example of the course's backpropagation lecture: 3-3-2, sigmoid everywhere, MSE, one sample.
WORKED_X = [[0.02, 0.04, 0.01]]
WORKED_Y = [[0.9, 0.5]]
WORKED_W = [[[0.25, 0.15, 0.30], [0.25, 0.20, 0.35], [0.10, 0.25, 0.15]],
            [[0.40, 0.25], [0.35, 0.30], [0.01, 0.35]]]
WORKED_B = [[0.4, 0.4, 0.4], [0.7, 0.7]]

@dataclass
class TraceStep:
    """One line of a trace: which phase, which layer (1-based; None for the loss), a name, its
    equation, and the value (an array in float64, or a float for the loss)."""

    phase: str  # "parameters", "forward", "loss", "backward" or "update"
    layer: int | None
    name: str  # e.g. "z1", "a2", "J", "delta2", "dW2", "W2_new"
    equation: str
    value: np.ndarray | float


@dataclass
class Trace:
    """A step-by-step record of one forward pass, the loss, the backward pass and one SGD step.

    ``steps`` lists every quantity in the order it is computed; ``trace["dW2"]`` looks one up by
    name.  Names: ``W1``, ``b1`` (parameters before the step), ``a0`` (the input), ``z1``, ``a1``,
    ..., ``J`` (the loss), ``delta2``, ``dW2``, ``db2``, ... (and ``g1`` = dJ/da1 around skip
    connections, ``dalpha1`` for PReLU), then ``W1_new``, ``b1_new`` after the update.
    ``print(trace)`` shows it with the equations, ``precision`` decimals.
    """

    steps: list[TraceStep]
    lr: float
    loss: float  # J, regularised as model.loss reports it
    description: str
    precision: int = 4
    max_items: int = 64  # arrays bigger than this print summarised (first and last entries)
    names: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.names = {s.name: i for i, s in enumerate(self.steps)}

    def __getitem__(self, name: str) -> np.ndarray | float:
        """The value recorded under ``name`` (KeyError lists the names there are)."""
        if name not in self.names:
            raise KeyError(f"no step named {name!r} in this trace; names: {', '.join(self.names)}")
        return self.steps[self.names[name]].value

    def __contains__(self, name: object) -> bool:
        return name in self.names

    @property
    def output(self) -> np.ndarray:
        """The network output a_L (y_hat)."""
        return self[f"a{max(s.layer or 0 for s in self.steps)}"]  # type: ignore[return-value]

    def _format(self, value: np.ndarray | float, indent: int) -> str:
        p = self.precision
        if not isinstance(value, np.ndarray):
            return f"{value:.{p}f}"
        text = np.array2string(value, precision=p, floatmode="fixed", suppress_small=False,
                               threshold=self.max_items, edgeitems=3, max_line_width=10_000)
        return text.replace("\n", "\n" + " " * indent)

    def __str__(self) -> str:
        titles = {"parameters": "Parameters before the step",
                  "forward": "Forward pass",
                  "loss": "Loss",
                  "backward": "Backward pass (deltas are per sample; 1/B is applied in dW and db)",
                  "update": f"SGD update (lr = {self.lr:g})"}
        width = min(max(len(s.equation) for s in self.steps), 40)
        lines = [self.description, "Row vectors, batch first: z = a_prev W + b, and W[i, j] joins unit i "
                 "of the layer below to unit j of the layer above."]
        phase = None
        for s in self.steps:
            if s.phase != phase:
                phase = s.phase
                lines += ["", titles[phase]]
            eq = s.equation.ljust(width)
            lines.append(f"  {eq} = {self._format(s.value, len(eq) + 5)}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Trace: {self.description}; {len(self.steps)} steps, loss {self.loss:.{self.precision}f}>"


def worked_example(backend: str | None = None, dtype: str = "float64") -> tuple[MLP, np.ndarray, np.ndarray]:
    """(model, x, y) of the course's worked backprop example: a 3-3-2 sigmoid network, MSE, one sample.

    Its trace with lr = 1 shows y_hat = [0.7609, 0.7760], J = 0.0478, dJ/dW2[1,0] = -0.0152 and
    W2[1,0] = 0.3652 after the step.
    """
    from fastnn.model import MLP

    model = MLP([3, 3, 2], activation="sigmoid", output="sigmoid", loss="mse", backend=backend,
                dtype=dtype, seed=0)
    model.weights = WORKED_W
    model.biases = WORKED_B
    return model, np.array(WORKED_X), np.array(WORKED_Y)


def trace(model: MLP | None = None, x: object = None, y: object = None, lr: float = 1.0, *,
          precision: int = 4) -> Trace:
    """Trace one step of backprop and SGD on ``model`` for the batch ``(x, y)``; the model is not changed.

    With no arguments it traces the worked example of the course's backpropagation lecture (see :func:`worked_example`).
    ``x``: one sample (1-D) or a batch (B, n_in); ``y``: labels or targets as for ``fit``.
    Dropout is off (as in :meth:`MLP.gradients`); L1 and L2 are included.  To take the same step
    for real: ``model.fit(x, y, epochs=1, batch_size=len(x), lr=lr, shuffle=False)``.
    Returns a :class:`Trace`: ``print`` it, or read values such as ``trace["dW2"]``.
    """
    from fastnn.model import MLP
    from fastnn.validation import check_float

    if model is None:
        if x is not None or y is not None:
            raise ValueError("trace() with x or y needs the model too: trace(model, x, y, lr)")
        model, x, y = worked_example()
    elif not isinstance(model, MLP):
        raise TypeError(f"model must be a fastnn.MLP, got {type(model).__name__}")
    elif x is None or y is None:
        raise ValueError("trace(model, x, y, lr) needs a sample x and its target y; "
                         "call trace() with no arguments for the worked example")
    lr = check_float("lr", lr, 0.0, math.inf, low_open=True, high_open=True, hint="try lr=1.0")
    if isinstance(precision, bool) or not isinstance(precision, int) or not 0 <= precision <= 16:
        raise ValueError(f"precision must be an integer number of decimals in 0..16, got {precision!r}")

    X = model._X(x, "x")
    if X.shape[0] == 1 and np.ndim(y) == 0:
        y = [y]  # one sample, one label or target
    Y, _ = model._Y(y, X.shape[0], "y")
    run = _one_step(model, X, Y, lr)
    steps = _parameter_steps(model, run) + _forward_steps(model, run) + _loss_steps(run) + _backward_steps(model, run)
    steps += _update_steps(run)
    B = X.shape[0]
    arch = "-".join(map(str, model.layers))
    acts = ", ".join(dict.fromkeys(model.activation)) or "no hidden layer"
    residual = ", residual" if run.spec.residual else ""
    desc = (f"Backprop trace: {arch} network ({acts}; {model.output} output{residual}), "
            f"loss {model.loss_name}, {B} sample{'s' if B > 1 else ''}, lr = {lr:g}, backend {model.backend}, "
            f"{model.dtype.name}")
    return Trace(steps, lr, run.data_loss + run.reg, desc, precision)


@dataclass
class _Step:
    """Every buffer one training step fills, copied to the host in float64 (what a trace prints)."""

    spec: engine.NetSpec
    B: int
    x: np.ndarray
    y: np.ndarray
    z: list[np.ndarray]
    a: list[np.ndarray]
    data_loss: float
    reg: float
    start: list[np.ndarray]  # W, b, alpha of every layer before the step
    grads: list[list[np.ndarray]]  # dW, db, dalpha
    delta: list[np.ndarray]
    g: list[np.ndarray | None]  # dJ/da_l, kept only around skip connections
    fprime: list[np.ndarray]  # f'(z_l) of the hidden layers
    new: list[np.ndarray]  # W, b, alpha after the step


def _one_step(model: MLP, X: np.ndarray, Y: np.ndarray, lr: float) -> _Step:
    """Exactly the calls of one training step (no dropout), on a copy of the model's parameters."""
    be, spec = model._be, model._spec
    B, L = X.shape[0], spec.n_layers

    def host(arr) -> np.ndarray:
        return np.array(be.to_host(arr), dtype=np.float64)  # a copy, in float64

    p = Params(*[[be.to_device(a.copy()) for a in group] for group in (model.weights, model.biases, model.alphas)])
    hyper = engine.Hyper(lr=lr, l1=model.l1, l2=model.l2)
    ws = engine.Workspace(be, spec, B, training=True)
    dalpha = engine.make_grad_buffers(be, spec, p)
    xb, yb = be.to_device(X), be.to_device(Y)

    out = engine.forward(be, spec, p, ws, xb)
    data_loss = be.loss_value(spec.loss, spec.acts[-1], ws.z[-1][:B], out, yb)
    reg = engine.penalty(be, p, hyper)
    start = [host(a) for a in p.arrays()]
    engine.backward(be, spec, p, ws, xb, yb, hyper, 0, dalpha)
    grads = [[host(g) for g in group] for group in (ws.dW, ws.db, dalpha)]
    # dJ/da is kept in ws.g only around skip connections (elsewhere propagate_delta fuses it away).
    g = [host(ws.g[l][:B]) if spec.skip[l] or spec.skip[l + 1] else None for l in range(L - 1)]
    fprime = []  # by the backend's own kernel, only for display
    for l in range(L - 1):
        d = be.empty((B, spec.sizes[l + 1]), spec.dtype)
        be.activation_derivative(spec.acts[l], ws.z[l][:B], p.alpha[l], d)
        fprime.append(host(d))
    no_momentum = Params(*[[be.to_device(np.zeros_like(h)) for h in group]
                           for group in (model.weights, model.biases, model.alphas)])
    engine.update(be, p, (ws.dW, ws.db, dalpha), no_momentum, hyper)
    return _Step(spec, B, host(xb), host(yb), [host(z[:B]) for z in ws.z], [host(a[:B]) for a in ws.a],
                 data_loss, reg, start, grads, [host(d[:B]) for d in ws.delta], g, fprime,
                 [host(a) for a in p.arrays()])


def _parameter_steps(model: MLP, run: _Step) -> list[TraceStep]:
    L = run.spec.n_layers
    W0, b0, al0 = run.start[:L], run.start[L:2 * L], run.start[2 * L:]
    steps = []
    for l in range(1, L + 1):
        steps.append(TraceStep("parameters", l, f"W{l}", f"W{l}", W0[l - 1]))
        steps.append(TraceStep("parameters", l, f"b{l}", f"b{l}", b0[l - 1]))
        if run.spec.acts[l - 1] in codes.LEARNED:  # fixed alpha_j appear in f's formula instead
            steps.append(TraceStep("parameters", l, f"alpha{l}", f"alpha{l} (PReLU slopes)", al0[l - 1]))
    return steps


def _forward_steps(model: MLP, run: _Step) -> list[TraceStep]:
    """z_l = a_{l-1} W_l + b_l and a_l = f(z_l), layer by layer."""
    names, L = model.activation + [model.output], run.spec.n_layers
    steps = [TraceStep("forward", 0, "a0", "a0 = x", run.x)]
    for l in range(1, L + 1):
        steps.append(TraceStep("forward", l, f"z{l}", f"z{l} = a{l - 1} W{l} + b{l}", run.z[l - 1]))
        skip = f" + a{l - 1}   (skip)" if run.spec.skip[l - 1] else ""
        out_note = "   (y_hat)" if l == L else ""
        steps.append(TraceStep("forward", l, f"a{l}", f"a{l} = {names[l - 1]}(z{l}){skip}{out_note}", run.a[l - 1]))
    return steps


def _loss_steps(run: _Step) -> list[TraceStep]:
    """The target, the data loss J and, with L1/L2, the penalty R and their sum."""
    B = run.B
    J_eq = (f"{'J_data' if run.reg else 'J'} = mean over {B} sample{'s' if B > 1 else ''} of "
            f"{codes.LOSS_TEXT[run.spec.loss]}")
    steps = [TraceStep("loss", None, "y", "y (target)", run.y)]
    if run.reg:
        steps.append(TraceStep("loss", None, "J_data", J_eq, run.data_loss))
        steps.append(TraceStep("loss", None, "penalty", "R = l2/2 sum ||W||^2 + l1 sum ||W||_1", run.reg))
        steps.append(TraceStep("loss", None, "J", "J = J_data + R", run.data_loss + run.reg))
    else:
        steps.append(TraceStep("loss", None, "J", J_eq, run.data_loss))
    return steps


def _backward_steps(model: MLP, run: _Step) -> list[TraceStep]:
    """delta_L, then for each layer below: g (around skips), f'(z), delta, and every layer's dW, db, dalpha."""
    spec, names, L = run.spec, model.activation + [model.output], run.spec.n_layers
    steps = []
    def add(*a) -> None:
        steps.append(TraceStep("backward", *a))

    for l in range(L, 0, -1):
        f = names[l - 1]
        if l == L:
            add(l, f"delta{l}", f"delta{l} = dJ/dz{l} = {_output_delta_eq(spec.loss, f, l)}", run.delta[l - 1])
        else:
            if spec.skip[l - 1] or spec.skip[l]:
                extra = f" + g{l + 1}   (skip)" if spec.skip[l] else ""
                add(l, f"g{l}", f"g{l} = dJ/da{l} = delta{l + 1} W{l + 1}^T{extra}", run.g[l - 1])
                rhs = f"g{l}"
            else:
                rhs = f"(delta{l + 1} W{l + 1}^T)"
            fixed = {"leaky_relu": model.leaky_slope, "elu": model.elu_alpha}.get(f)
            add(l, f"fprime{l}", f"{f}'(z{l}) = {_numbered(codes.activation_text(f, fixed)[1], l)}",
                run.fprime[l - 1])
            add(l, f"delta{l}", f"delta{l} = {f}'(z{l}) * {rhs}", run.delta[l - 1])
        reg_eq = (" + l2 W" if model.l2 else "") + (" + l1 sign(W)" if model.l1 else "")
        add(l, f"dW{l}", f"dW{l} = dJ/dW{l} = a{l - 1}^T delta{l} / B{reg_eq}", run.grads[0][l - 1])
        add(l, f"db{l}", f"db{l} = dJ/db{l} = mean_b delta{l}", run.grads[1][l - 1])
        if run.grads[2][l - 1].size:
            add(l, f"dalpha{l}", f"dalpha{l} = mean_b dJ/da{l} * min(z{l}, 0)", run.grads[2][l - 1])
    return steps


def _update_steps(run: _Step) -> list[TraceStep]:
    """W <- W - lr dW for every parameter (the trace takes a plain SGD step)."""
    L, new = run.spec.n_layers, run.new
    steps = []
    for l in range(1, L + 1):
        steps.append(TraceStep("update", l, f"W{l}_new", f"W{l} <- W{l} - lr dW{l}", new[l - 1]))
        steps.append(TraceStep("update", l, f"b{l}_new", f"b{l} <- b{l} - lr db{l}", new[L + l - 1]))
        if new[2 * L + l - 1].size:
            steps.append(TraceStep("update", l, f"alpha{l}_new", f"alpha{l} <- alpha{l} - lr dalpha{l}",
                                   new[2 * L + l - 1]))
    return steps


def _numbered(text: str, l: int) -> str:
    """A formula of kernels/codes.py with layer l's names: z -> z{l}, a -> a{l}, alpha -> alpha{l}."""
    import re

    return re.sub(r"\b(z|a|alpha)\b", lambda m: f"{m.group(1)}{l}", text)


def _output_delta_eq(loss: int, f: str, l: int) -> str:
    if (loss, f) in ((codes.CROSS_ENTROPY, "softmax"), (codes.BINARY_CROSS_ENTROPY, "sigmoid")):
        return f"a{l} - y"
    if f == "identity":
        return f"a{l} - y"
    if f == "softmax":
        return f"a{l} * ((a{l} - y) - sum_j (a{l} - y)_j a{l}_j)   (softmax Jacobian)"
    return f"(a{l} - y) * a{l} (1 - a{l})"  # MSE with a sigmoid output


# --------------------------------------------------------------------------- the CLI command


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers such as 0.5,0.1, got {text!r}") from None


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """``fastnn trace``: print the trace of one step (the worked example, or a saved model)."""
    parser.description = ("Print every number of one backprop + SGD step, layer by layer, with its "
                          "equation. Without --model: the worked example of the course's backpropagation "
                          "lecture (3-3-2 sigmoid "
                          "network, MSE, one sample).")
    parser.add_argument("--model", metavar="PATH", default=None, help="a model saved with model.save (.npz)")
    parser.add_argument("--x", type=_floats, default=None, metavar="V1,V2,...", help="one input sample")
    parser.add_argument("--y", type=_floats, default=None, metavar="T1,...",
                        help="its target: a class label, or comma-separated target values")
    parser.add_argument("--lr", type=float, default=1.0, help="learning rate of the SGD step")
    parser.add_argument("--precision", type=int, default=4, help="decimals printed")
    parser.add_argument("--backend", default=None, help="numpy, numba, ...; default: the fastest CPU backend")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from fastnn.io import load

    if args.model is None:
        if args.x is not None or args.y is not None:
            raise ValueError("--x and --y need --model; without --model the worked example is traced")
        model, x, y = worked_example(backend=args.backend)
    else:
        if args.x is None or args.y is None:
            raise ValueError("--model needs a sample: pass --x V1,V2,... and --y LABEL (or T1,T2,...)")
        model = load(args.model, backend=args.backend)
        n_in = model.layers[0]
        if len(args.x) != n_in:
            raise ValueError(f"--x has {len(args.x)} value{'s' if len(args.x) != 1 else ''} but the network in "
                             f"{args.model} ({'-'.join(map(str, model.layers))}) takes {n_in} input"
                             f"{'s' if n_in != 1 else ''}; pass {n_in} comma-separated values")
        x = np.array(args.x)
        y = np.array(args.y if len(args.y) > 1 else [args.y[0]])
        if len(args.y) > 1:
            y = y.reshape(1, -1)
    print(trace(model, x, y, lr=args.lr, precision=args.precision))
    return 0
