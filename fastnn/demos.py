"""Teaching demos, from Python or the command line (``fastnn demo vanishing``, ``fastnn demo perceptron``).

``vanishing_gradients``: deep sigmoid networks barely train their first layers, because every
    sigmoid layer multiplies the backpropagated error by f'(z) <= 1/4.  The demo trains an
    8-layer sigmoid network, the same network with ReLU, and the sigmoid network with residual
    (skip) connections, and compares the gradient norm ||dJ/dW_l|| of every layer (from
    ``History.grad_norms``).
``perceptron_vs_mlp``: the perceptron learns AND and OR but not XOR; an MLP with one hidden
    layer learns all three.
``decision_boundary``: train an MLP on a 2-D problem (noisy XOR, the two spirals) and draw the
    class regions it learned (``fastnn demo boundary``).
``fastnn demo activations``: draws every activation and its derivative
    (fastnn.plots.plot_activations).
"""
from __future__ import annotations

import argparse
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from fastnn.validation import check_float, check_positive_int

__all__ = ["VanishingResult", "vanishing_gradients", "vanishing_conclusion", "perceptron_vs_mlp", "LOGIC_GATES",
           "BOUNDARY_PROBLEMS", "decision_boundary"]

# The networks the vanishing-gradient demo compares: name -> MLP keyword arguments.  Each hidden
# activation gets its textbook initialisation, so the sigmoid network is not handicapped by init.
VANISHING_NETWORKS: dict[str, dict[str, object]] = {
    "sigmoid": {"activation": "sigmoid", "init": "xavier"},
    "relu": {"activation": "relu", "init": "he"},
    "sigmoid + residual": {"activation": "sigmoid", "init": "xavier", "residual": True},
}


@dataclass
class VanishingResult:
    """Per-network gradient norms of the vanishing-gradient demo.

    ``norms[name]`` holds mean ||dJ/dW_l|| over the first epoch's batches, one value per layer
    (layer 1 next to the input); ``histories[name]`` the full :class:`fastnn.History`.
    """

    layers: list[int]
    n_samples: int
    norms: dict[str, np.ndarray] = field(default_factory=dict)
    histories: dict = field(default_factory=dict)

    def ratio(self, name: str) -> float:
        """||dJ/dW_1|| / ||dJ/dW_L||: the first layer's gradient relative to the last layer's."""
        n = self.norms[name]
        return float(n[0] / n[-1])

    def conclusion(self) -> str:
        """What the measured first/last ratios show, in words (see :func:`vanishing_conclusion`)."""
        return vanishing_conclusion({name: self.ratio(name) for name in self.norms}, depth=len(self.layers) - 1)

    def __str__(self) -> str:
        L = len(self.layers) - 1
        arch = f"{self.layers[0]}-{self.layers[1]}x{L - 1}-{self.layers[-1]}"
        head = ["network", *[f"layer {l}" for l in range(1, L + 1)], "first/last", "accuracy"]
        rows = []
        for name, n in self.norms.items():
            acc = self.histories[name].accuracy[-1]
            rows.append([name, *[f"{v:.1e}" for v in n], f"{self.ratio(name):.1e}", f"{acc:.3f}"])
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        def fmt(r: list[str]) -> str:
            return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))

        epochs = self.histories[next(iter(self.histories))].epochs
        return "\n".join([
            f"Vanishing gradients: mean ||dJ/dW_l|| over the first epoch, {L}-layer networks {arch}, "
            f"{self.n_samples} samples (accuracy: training set, after {epochs} epoch{'s' if epochs > 1 else ''})",
            fmt(head), *map(fmt, rows),
        ])


def vanishing_gradients(X: np.ndarray | None = None, y: np.ndarray | None = None, depth: int = 8,
                        width: int = 32, epochs: int = 2, n_samples: int = 2000, batch_size: int = 64,
                        lr: float = 0.1, backend: str | None = None, seed: int = 0,
                        networks: dict[str, dict[str, object]] | None = None) -> VanishingResult:
    """Train ``depth``-layer networks (``depth - 1`` hidden layers of ``width`` units) and compare
    their per-layer gradient norms.

    ``X``, ``y``: classification data (default: the first ``n_samples`` images of the bundled
    MNIST subset).  ``networks``: name -> MLP keyword arguments (default: sigmoid, ReLU and
    sigmoid + residual, see ``VANISHING_NETWORKS``).  Every network gets the same data, seed and
    SGD settings.  Typical result: the sigmoid network's first layer gets a gradient about 10^-4
    times its last layer's; ReLU's and the residual network's stay within about one order.
    """
    from fastnn.model import MLP

    depth = check_positive_int("depth", depth, minimum=3)
    width = check_positive_int("width", width)
    epochs = check_positive_int("epochs", epochs)
    batch_size = check_positive_int("batch_size", batch_size)
    lr = check_float("lr", lr, 0.0, np.inf, low_open=True, high_open=True, hint="try lr=0.1")
    if X is None and y is None:
        from fastnn.datasets import load_mnist_subset

        n_samples = check_positive_int("n_samples", n_samples)
        (X, y), _ = load_mnist_subset()
        X, y = X[:n_samples], y[:n_samples]
    elif X is None or y is None:
        raise ValueError("pass both X and y, or neither (then the bundled MNIST subset is used)")
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim != 2 or y.ndim != 1:
        raise ValueError(f"X must be 2-D and y 1-D integer labels, got shapes {X.shape} and {y.shape}")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
        raise ValueError("y must hold integer class labels 0..k-1")
    n_classes = int(y.max()) + 1
    sizes = [X.shape[1], *([width] * (depth - 1)), max(n_classes, 2)]
    result = VanishingResult(layers=sizes, n_samples=X.shape[0])
    for name, kwargs in (networks or VANISHING_NETWORKS).items():
        model = MLP(sizes, seed=seed, backend=backend, **kwargs)  # type: ignore[arg-type]
        history = model.fit(X, y, epochs=epochs, batch_size=batch_size, lr=lr, verbose=0)
        result.norms[name] = history.grad_norms[0].copy()
        result.histories[name] = history
    return result


# Why a network keeps or loses its first layers' gradient; said only when the measurement shows it.
_WHY_VANISHED = {"sigmoid": "each sigmoid layer multiplies the backpropagated error by f'(z) <= 1/4"}
_WHY_KEPT = {
    "relu": "f'(z) = 1 wherever a ReLU unit is active",
    "sigmoid + residual": "each skip connection adds dJ/da_l to dJ/da_(l-1) unchanged (dJ/da_(l-1) = ... + dJ/da_l)",
}


def vanishing_conclusion(ratios: Mapping[str, float], depth: int | None = None) -> str:
    """Words for the measured ratios ``||dJ/dW_1|| / ||dJ/dW_L||`` (first layer over last), one per network.

    A network whose first layer's gradient is at least 10 times smaller than its last layer's is
    said to lose ``log10(last/first)`` orders of magnitude; within a factor of 10 either way it
    keeps the gradient within one order; 10 times larger or more, it grows.  The textbook
    reason (sigmoid's f' <= 1/4, ReLU's f' = 1, the skip connections' identity path) is added only
    for a default network whose measurement agrees with it, so the sentence never claims more
    than the numbers show.
    """
    sentences = []
    for name, r in ratios.items():
        if not (math.isfinite(r) and r > 0):
            sentences.append(f"The {name} network's first/last ratio is {r}: a gradient norm of zero or "
                             "not finite, so nothing can be read from it.")
            continue
        k = -math.log10(r)  # orders of magnitude the first layer's gradient is below the last layer's
        if k >= 1:
            text = (f"The {name} network's first layer gets a gradient {k:.1f} orders of magnitude smaller "
                    f"than its last layer's (first/last = {r:.1e})")
            why = _WHY_VANISHED.get(name)
        elif k > -1:
            factor = f"{1 / r:.1f} times smaller" if r < 1 else f"{r:.1f} times larger"
            text = (f"The {name} network keeps its first layer's gradient within one order of magnitude of "
                    f"its last layer's ({factor}, first/last = {r:.2g})")
            why = _WHY_KEPT.get(name)
        else:
            text = (f"The {name} network's first layer gets a gradient {-k:.1f} orders of magnitude larger "
                    f"than its last layer's (first/last = {r:.1e}): it grows instead of vanishing")
            why = None
        sentences.append(text + (f": {why}." if why else "."))
    if ratios and all(math.isfinite(r) and 0.1 < r for r in ratios.values()):
        at = f" at depth {depth}" if depth else ""
        sentences.append(f"No network's first-layer gradient fell an order of magnitude below its last "
                         f"layer's{at}; compare with a deeper network (e.g. depth 8, the demo's default).")
    return " ".join(sentences)


# --------------------------------------------------------------------------- perceptron vs MLP

LOGIC_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
LOGIC_GATES: dict[str, np.ndarray] = {
    "AND": np.array([0, 0, 0, 1]),
    "OR": np.array([0, 1, 1, 1]),
    "XOR": np.array([0, 1, 1, 0]),
}


def perceptron_vs_mlp(epochs: int = 100, backend: str | None = None, seed: int = 0) -> dict[str, dict[str, float]]:
    """Training accuracy of a perceptron and of a 2-8-2 tanh MLP on AND, OR and XOR.

    Returns ``{gate: {"perceptron": acc, "perceptron_epochs": n, "mlp": acc}}``.  The perceptron
    reaches 1.0 on AND and OR (linearly separable) and stays below 1.0 on XOR; the MLP reaches 1.0
    on all three.
    """
    from fastnn.model import MLP
    from fastnn.perceptron import Perceptron

    epochs = check_positive_int("epochs", epochs)
    out = {}
    for gate, t in LOGIC_GATES.items():
        p = Perceptron(lr=1.0).fit(LOGIC_X, t, epochs=epochs)
        mlp = MLP([2, 8, 2], activation="tanh", seed=seed, backend=backend)
        mlp.fit(LOGIC_X, t, epochs=500, batch_size=4, lr=0.5, momentum=0.9, verbose=0)
        out[gate] = {"perceptron": p.score(LOGIC_X, t), "perceptron_epochs": p.n_epochs_,
                     "perceptron_converged": p.converged_, "mlp": mlp.evaluate(LOGIC_X, t)["accuracy"]}
    return out


# --------------------------------------------------------------------------- decision boundary

# problem -> (data, network and training settings that learn it from seed 0).  The spirals need two
# wide ReLU layers and many epochs: at 2 x 32 tanh units and 600 epochs plain SGD + momentum
# reaches only ~0.87 training accuracy on them.
BOUNDARY_PROBLEMS: dict[str, dict[str, object]] = {
    "xor": {"data": {"n": 200, "noise": 0.1}, "hidden": (8,), "activation": "tanh", "epochs": 200, "lr": 0.1},
    "spirals": {"data": {"n": 200, "noise": 0.0}, "hidden": (64, 64), "activation": "relu", "epochs": 1000,
                "lr": 0.05},
}


def decision_boundary(problem: str = "xor", *, hidden: tuple[int, ...] | None = None, activation: str | None = None,
                      epochs: int | None = None, lr: float | None = None, backend: str | None = None,
                      seed: int = 0):
    """Train an MLP on a 2-D problem; returns ``(model, X, y, accuracy)`` for plot_decision_boundary.

    ``problem``: ``xor`` (200 noisy points around the four corners) or ``spirals`` (two interleaved
    spirals, 200 points).  Unset settings take the problem's defaults (BOUNDARY_PROBLEMS); training
    is mini-batch SGD with momentum 0.9 and batches of 16.
    """
    from fastnn import datasets
    from fastnn.model import MLP

    if problem not in BOUNDARY_PROBLEMS:
        raise ValueError(f"problem must be one of {', '.join(BOUNDARY_PROBLEMS)}, got {problem!r}")
    conf = BOUNDARY_PROBLEMS[problem]
    hidden = tuple(conf["hidden"] if hidden is None else hidden)
    epochs = check_positive_int("epochs", conf["epochs"] if epochs is None else epochs)
    lr = check_float("lr", conf["lr"] if lr is None else lr, 0.0, math.inf, low_open=True, high_open=True)
    make = datasets.xor if problem == "xor" else datasets.two_spirals
    X, y = make(**conf["data"], seed=seed)
    model = MLP([2, *hidden, 2], activation=activation or conf["activation"], seed=seed, backend=backend)
    model.fit(X, y, epochs=epochs, batch_size=16, lr=lr, momentum=0.9, verbose=0)
    return model, X, y, model.evaluate(X, y)["accuracy"]


# --------------------------------------------------------------------------- the CLI command


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """``fastnn demo vanishing`` and ``fastnn demo perceptron``."""
    sub = parser.add_subparsers(dest="demo", required=True)
    v = sub.add_parser("vanishing", help="8-layer sigmoid vs ReLU vs residual: gradient norm per layer",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       description="Train a deep sigmoid network, the same network with ReLU, and the sigmoid "
                                   "network with skip connections on the same data, then compare each layer's "
                                   "mean gradient norm ||dJ/dW_l|| over the first epoch.")
    v.add_argument("--depth", type=int, default=8, help="number of weight layers (at least 3)")
    v.add_argument("--width", type=int, default=32, help="units per hidden layer")
    v.add_argument("--epochs", type=int, default=2, help="training epochs (the norms are the first epoch's)")
    v.add_argument("--samples", type=int, default=2000, help="images from the bundled MNIST subset")
    v.add_argument("--lr", type=float, default=0.1, help="learning rate (plain SGD, batches of 64)")
    v.add_argument("--backend", default=None, help="numpy, numba, cython, cuda; default: the fastest CPU backend")
    v.add_argument("--seed", type=int, default=0, help="seeds every network's initial weights and shuffling")
    v.add_argument("--plot", metavar="PNG", default=None,
                   help="save the per-layer norms as a plot (needs matplotlib: pip install 'fastnn[plot]'; "
                        "the folder must exist); default: no plot")
    v.set_defaults(handler=_run_vanishing)
    p = sub.add_parser("perceptron", help="perceptron vs MLP on AND, OR and XOR")
    p.add_argument("--backend", default=None, help="backend of the MLP; default: the fastest CPU backend")
    p.set_defaults(handler=_run_perceptron)
    b = sub.add_parser("boundary", help="train on XOR or the two spirals and draw the decision regions",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       description="Train an MLP on a 2-D classification problem and save a picture of the class "
                                   "regions it learned, with the training points on top. Unset network and "
                                   "training settings take the problem's defaults (xor: 8 tanh units, 200 "
                                   "epochs, lr 0.1; spirals: 64,64 relu units, 1000 epochs, lr 0.05).")
    b.add_argument("--problem", choices=list(BOUNDARY_PROBLEMS), default="xor", help="the 2-D data set")
    b.add_argument("--hidden", default=None, metavar="SIZES",
                   help="comma-separated hidden layer sizes, e.g. 16,16; default: the problem's")
    b.add_argument("--activation", default=None, help="hidden activation, e.g. tanh, relu; default: the problem's")
    b.add_argument("--epochs", type=int, default=None, help="training epochs; default: the problem's")
    b.add_argument("--lr", type=float, default=None, help="learning rate; default: the problem's")
    b.add_argument("--backend", default=None, help="numpy, numba, cython, cuda; default: the fastest CPU backend")
    b.add_argument("--seed", type=int, default=0, help="seeds the data noise, initial weights and shuffling")
    b.add_argument("--plot", metavar="PNG", default="boundary.png",
                   help="where the picture goes (needs matplotlib: pip install 'fastnn[plot]')")
    b.set_defaults(handler=_run_boundary)
    a = sub.add_parser("activations", help="draw every activation f(z) and its derivative f'(z)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    a.add_argument("--names", default=None, metavar="NAMES",
                   help="comma-separated activations, e.g. sigmoid,tanh,relu; default: all elementwise ones")
    a.add_argument("--slope", type=float, default=None, help="leaky_relu's slope for z < 0; default: 0.01")
    a.add_argument("--alpha", type=float, default=None, help="elu's alpha and prelu's slope; default: 1 and 0.25")
    a.add_argument("--plot", metavar="PNG", default="activations.png",
                   help="where the picture goes (needs matplotlib: pip install 'fastnn[plot]')")
    a.set_defaults(handler=_run_activations)


def _run_vanishing(args: argparse.Namespace) -> int:
    png = None
    if args.plot:  # checked before any training
        from fastnn.cli import check_plot_file

        png = check_plot_file("--plot", args.plot)
    result = vanishing_gradients(depth=args.depth, width=args.width, epochs=args.epochs,
                                 n_samples=args.samples, lr=args.lr, backend=args.backend, seed=args.seed)
    print(result)
    print(result.conclusion())
    if png:
        from fastnn.plots import plot_layer_grad_norms

        print(f"plot saved to {plot_layer_grad_norms(result.norms, png, title='vanishing gradients')}")
    return 0


def _run_perceptron(args: argparse.Namespace) -> int:
    res = perceptron_vs_mlp(backend=args.backend)
    print("Training accuracy on the four points of each logic gate")
    print(f"{'gate':<5} {'perceptron':>10} {'epochs':>7} {'converged':>10} {'MLP 2-8-2':>10}")
    for gate, r in res.items():
        print(f"{gate:<5} {r['perceptron']:>10.2f} {r['perceptron_epochs']:>7} "
              f"{'yes' if r['perceptron_converged'] else 'no':>10} {r['mlp']:>10.2f}")
    print("XOR is not linearly separable: no single line w.x + b = 0 splits its classes, so the "
          "perceptron rule never settles; one hidden layer solves it.")
    return 0


def _run_boundary(args: argparse.Namespace) -> int:
    from fastnn.cli import _hidden_sizes, check_plot_file

    png = check_plot_file("--plot", args.plot)  # before any training
    hidden = None if args.hidden is None else tuple(_hidden_sizes(args.hidden))
    model, X, y, accuracy = decision_boundary(args.problem, hidden=hidden, activation=args.activation,
                                              epochs=args.epochs, lr=args.lr, backend=args.backend, seed=args.seed)
    from fastnn.plots import plot_decision_boundary

    sizes = "-".join(str(n) for n in model.layers)
    print(f"{args.problem}: {sizes} {model.activation[0]} network, training accuracy {accuracy:.3f}")
    title = f"{args.problem}, {sizes} {model.activation[0]}: accuracy {accuracy:.3f}"
    print(f"plot saved to {plot_decision_boundary(model, X, y, png, title=title)}")
    return 0


def _run_activations(args: argparse.Namespace) -> int:
    from fastnn import activations
    from fastnn.cli import check_plot_file

    png = check_plot_file("--plot", args.plot)
    names = None if args.names is None else [n.strip() for n in args.names.split(",") if n.strip()]
    for name in names or []:
        if name not in activations.names() or name == "softmax":
            raise ValueError(f"--names: {name!r} is not an elementwise activation; choose from "
                             f"{', '.join(n for n in activations.names() if n != 'softmax')}")
    params = {k: v for k, v in (("slope", args.slope), ("alpha", args.alpha)) if v is not None}
    from fastnn.plots import plot_activations

    print(f"plot saved to {plot_activations(png, names, **params)}")
    return 0
