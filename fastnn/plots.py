"""Training curves, gradients and pictures of the course (needs the ``plot`` extra: pip install 'fastnn[plot]').

    plot_history(history, "curves.png")          loss and accuracy per epoch, train and validation
    plot_batch_loss(history, "batches.png")      every mini-batch's loss against the epoch means
    plot_grad_norms(history, "grads.png")        ||dJ/dW_l|| per epoch, one line per layer
    plot_layer_grad_norms({"sigmoid": h1, "relu": h2}, "vanishing.png")   networks side by side
    plot_decision_boundary(model, X, y, "xor.png")  the class regions of a 2-input classifier, with the points
    plot_activations("activations.png")          every activation f(z) and its derivative f'(z)

Every function saves a PNG to ``path`` and returns the path; with ``path=None`` it returns the
matplotlib Figure instead (for a notebook, or to adjust it before saving).
"""
from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

import numpy as np

from fastnn.training import History


def _pyplot(path: str | os.PathLike | None = "file"):
    try:
        import matplotlib

        if path is not None and "matplotlib.pyplot" not in sys.modules:
            matplotlib.use("Agg")  # a file only: works on machines without a display
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install 'fastnn[plot]'") from None
    return plt


def _finish(fig, path: str | os.PathLike | None):
    """Save and close ``fig`` and return ``path``; with no path, return the open figure."""
    fig.tight_layout()
    if path is None:
        return fig
    fig.savefig(path, dpi=100)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return os.fspath(path)


def plot_history(history: History, path: str | os.PathLike | None = None):
    """Loss (and accuracy, when there is one) per epoch, train and validation, saved to ``path``."""
    plt = _pyplot(path)
    has_acc = any(a == a for a in history.accuracy)  # NaN for regression
    fig, axes = plt.subplots(1, 2 if has_acc else 1, figsize=(10 if has_acc else 5, 3.6), squeeze=False)
    epochs = range(1, history.epochs + 1)
    ax = axes[0, 0]
    ax.plot(epochs, history.loss, "o-", label="train")
    if history.val_loss:
        ax.plot(epochs, history.val_loss, "s-", label="validation")
    ax.set(xlabel="epoch", ylabel="loss", title="loss")
    ax.legend()
    if has_acc:
        ax = axes[0, 1]
        ax.plot(epochs, history.accuracy, "o-", label="train")
        if history.val_accuracy:
            ax.plot(epochs, history.val_accuracy, "s-", label="validation")
        ax.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
        ax.legend()
    return _finish(fig, path)


def _grad_norm_series(history: History) -> np.ndarray:
    norms = np.asarray(history.grad_norms, dtype=np.float64)
    if norms.size == 0:
        raise ValueError("history has no gradient norms (no epoch was trained); fit the model first")
    return norms


def plot_grad_norms(history: History, path: str | os.PathLike | None = None):
    """Save the mean gradient norm ||dJ/dW_l|| of every layer per epoch (log scale) to ``path``.

    Layers whose lines sit orders of magnitude below the others learn that much more slowly: with
    sigmoid hidden layers that is the first layers (vanishing gradients).
    """
    if not isinstance(history, History):
        raise TypeError(f"history must be the fastnn.History returned by fit, got {type(history).__name__}")
    norms = _grad_norm_series(history)
    plt = _pyplot(path)
    fig, ax = plt.subplots(figsize=(6, 3.8))
    epochs = np.arange(1, norms.shape[0] + 1)
    for l in range(norms.shape[1]):
        ax.plot(epochs, np.maximum(norms[:, l], 1e-300), "o-", ms=3, label=f"layer {l + 1}")
    ax.set(xlabel="epoch", ylabel="mean ||dJ/dW||", yscale="log", title="gradient norm per layer")
    ax.legend(fontsize="small", ncol=2 if norms.shape[1] > 5 else 1)
    return _finish(fig, path)


def plot_layer_grad_norms(norms: Mapping[str, History | Sequence[float] | np.ndarray],
                          path: str | os.PathLike | None = None, title: str = "gradient norm by layer"):
    """Compare networks: one line per network of ||dJ/dW_l|| against the layer l (log scale).

    ``norms`` maps a network's name to its per-layer norms, or to a :class:`History` (its norms
    averaged over the epochs).  This is the vanishing-gradient picture of ``fastnn demo vanishing``.
    """
    if not isinstance(norms, Mapping) or not norms:
        raise TypeError("norms must be a non-empty dict {network name: per-layer norms or History}")
    series = {}
    for name, v in norms.items():
        arr = _grad_norm_series(v).mean(axis=0) if isinstance(v, History) else np.asarray(v, dtype=np.float64)
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(f"norms[{name!r}] must be one value per layer, got shape {arr.shape}")
        series[str(name)] = arr
    plt = _pyplot(path)
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for name, arr in series.items():
        ax.plot(np.arange(1, arr.size + 1), np.maximum(arr, 1e-300), "o-", label=name)
    ax.set(xlabel="layer (1 = next to the input)", ylabel="mean ||dJ/dW||", yscale="log", title=title)
    ax.legend(fontsize="small")
    return _finish(fig, path)


def plot_decision_boundary(model, X: object, y: object, path: str | os.PathLike | None = None, *,
                           resolution: int = 300, margin: float = 0.25, title: str | None = None):
    """Save the class regions a 2-input classifier draws in the plane, with the points ``(X, y)`` on top.

    Every point of a ``resolution`` x ``resolution`` grid over the data's range (widened by ``margin``
    of its extent) is coloured by the class ``model.predict`` gives it; a classifier with one hidden
    layer bends the boundary that a perceptron draws straight (XOR, the two spirals).
    """
    from fastnn.model import MLP

    if not isinstance(model, MLP) and not hasattr(model, "predict"):
        raise TypeError(f"model must be a fitted fastnn.MLP (or have predict), got {type(model).__name__}")
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"plot_decision_boundary draws the plane: X must have 2 features per sample, "
                         f"got shape {X.shape}")
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must hold one label per sample ({X.shape[0]}), got shape {y.shape}")
    if isinstance(model, MLP) and not model.is_classifier:
        raise ValueError("plot_decision_boundary needs a classifier (output 'softmax' or 'sigmoid')")
    if isinstance(resolution, bool) or not isinstance(resolution, int) or not 2 <= resolution <= 4000:
        raise ValueError(f"resolution must be an integer number of grid points per axis in 2..4000, got {resolution!r}")
    lo, hi = X.min(axis=0), X.max(axis=0)
    pad = margin * np.maximum(hi - lo, 1e-12)
    g0 = np.linspace(lo[0] - pad[0], hi[0] + pad[0], resolution)
    g1 = np.linspace(lo[1] - pad[1], hi[1] + pad[1], resolution)
    G0, G1 = np.meshgrid(g0, g1)
    regions = np.asarray(model.predict(np.column_stack([G0.ravel(), G1.ravel()]))).reshape(G0.shape)
    classes = np.unique(np.concatenate([np.unique(regions), np.unique(y)]))
    plt = _pyplot(path)
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    fig, ax = plt.subplots(figsize=(5, 4.4))
    index = np.searchsorted(classes, regions)
    ax.contourf(G0, G1, index, levels=np.arange(len(classes) + 1) - 0.5, cmap=cmap, vmin=-0.5,
                vmax=cmap.N - 0.5, alpha=0.3)
    for k, c in enumerate(classes):
        pts = X[y == c]
        if len(pts):
            ax.scatter(pts[:, 0], pts[:, 1], s=14, color=cmap(k), edgecolor="k", linewidth=0.3, label=f"class {c}")
    accuracy = float(np.mean(np.asarray(model.predict(X)) == y))
    ax.set(xlabel="x1", ylabel="x2", title=title or f"decision regions (training accuracy {accuracy:.3f})")
    ax.legend(fontsize="small", loc="best")
    return _finish(fig, path)


def plot_batch_loss(history: History, path: str | os.PathLike | None = None, *, log_scale: bool = False):
    """Every mini-batch's training loss (one point per iteration) with each epoch's mean on top.

    The batch losses scatter, because each is measured on a different small sample while the weights
    move; their epoch means are the smooth curve that ``plot_history`` shows.
    """
    if not isinstance(history, History):
        raise TypeError(f"history must be the fastnn.History returned by fit, got {type(history).__name__}")
    if not history.batch_loss or history.iteration_loss.size == 0:
        raise ValueError("history has no mini-batch losses (no epoch was trained); fit the model first")
    plt = _pyplot(path)
    fig, ax = plt.subplots(figsize=(7, 3.8))
    losses = history.iteration_loss
    ax.plot(np.arange(1, losses.size + 1), losses, lw=0.6, alpha=0.6, label="mini-batch loss")
    ends = np.cumsum([len(b) for b in history.batch_loss])
    ax.plot(ends, history.loss[:len(ends)], "o-", color="C3", label="epoch mean (history.loss)")
    ax.set(xlabel="iteration (mini-batch)", ylabel="training loss", title="loss per mini-batch and per epoch")
    if log_scale:
        ax.set_yscale("log")
    ax.legend()
    return _finish(fig, path)


def plot_activations(path: str | os.PathLike | None = None, names: Sequence[str] | None = None, *,
                     z_range: tuple[float, float] = (-4.0, 4.0), **params: float):
    """Every activation f(z) (solid) and its derivative f'(z) (dashed), one panel each.

    ``names``: which (default: every elementwise one of :func:`fastnn.activations.names`); ``params``
    set their parameters, e.g. ``slope=0.1`` for leaky_relu, ``alpha=0.5`` for elu and prelu.
    The curves come from fastnn.activations, the reference formulas training computes with.
    """
    from fastnn import activations

    names = [n for n in activations.names() if n != "softmax"] if names is None else list(names)
    if not names:
        raise ValueError("names is empty; give at least one activation name")
    lo, hi = (float(v) for v in z_range)
    if not lo < hi:
        raise ValueError(f"z_range must be (low, high) with low < high, got {z_range!r}")
    known = {activations.parameter_name(n) for n in names} - {None}
    if set(params) - known:
        raise TypeError(f"unknown parameter(s) {', '.join(sorted(set(params) - known))} for {', '.join(names)}; "
                        f"they take: {', '.join(sorted(known)) or 'none'}")
    funcs = []
    for name in names:
        if name == "softmax":
            raise ValueError("softmax has no elementwise curve (it maps a vector to a vector); "
                             "see fastnn.activations.get('softmax').jacobian")
        own = {k: v for k, v in params.items() if k == activations.parameter_name(name)}
        funcs.append(activations.get(name, **own))
    plt = _pyplot(path)
    cols = min(4, len(funcs))
    rows = -(-len(funcs) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows), squeeze=False)
    z = np.linspace(lo, hi, 401)
    for ax, act in zip(axes.flat, funcs):
        ax.axhline(0, color="0.8", lw=0.8)
        ax.axvline(0, color="0.8", lw=0.8)
        ax.plot(z, act.f(z), label="f(z)")
        ax.plot(z, act.df(z), "--", label="f'(z)")
        label = act.name
        if isinstance(act.alpha, float):
            label += f" ({activations.parameter_name(act.name)} {act.alpha:g})"
        ax.set(title=label, xlabel="z")
        ax.legend(fontsize="small")
    for ax in list(axes.flat)[len(funcs):]:
        ax.set_visible(False)
    return _finish(fig, path)
