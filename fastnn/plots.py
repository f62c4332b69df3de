"""Training curves and gradient norms as PNG files (needs the ``plot`` extra: pip install 'fastnn[plot]').

    plot_history(history, "curves.png")          loss and accuracy per epoch, train and validation
    plot_grad_norms(history, "grads.png")        ||dJ/dW_l|| per epoch, one line per layer
    plot_layer_grad_norms({"sigmoid": h1, "relu": h2}, "vanishing.png")   networks side by side
    plot_decision_boundary(model, X, y, "xor.png")  the class regions of a 2-input classifier, with the points
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from fastnn.training import History


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: works on machines without a display
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install 'fastnn[plot]'") from None
    return plt


def plot_history(history: History, path: str | os.PathLike) -> str:
    """Save loss (and accuracy, when there is one) per epoch, train and validation, to ``path``."""
    plt = _pyplot()
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
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return os.fspath(path)


def _grad_norm_series(history: History) -> np.ndarray:
    norms = np.asarray(history.grad_norms, dtype=np.float64)
    if norms.size == 0:
        raise ValueError("history has no gradient norms (no epoch was trained); fit the model first")
    return norms


def plot_grad_norms(history: History, path: str | os.PathLike) -> str:
    """Save the mean gradient norm ||dJ/dW_l|| of every layer per epoch (log scale) to ``path``.

    Layers whose lines sit orders of magnitude below the others learn that much more slowly: with
    sigmoid hidden layers that is the first layers (vanishing gradients).
    """
    if not isinstance(history, History):
        raise TypeError(f"history must be the fastnn.History returned by fit, got {type(history).__name__}")
    norms = _grad_norm_series(history)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    epochs = np.arange(1, norms.shape[0] + 1)
    for l in range(norms.shape[1]):
        ax.plot(epochs, np.maximum(norms[:, l], 1e-300), "o-", ms=3, label=f"layer {l + 1}")
    ax.set(xlabel="epoch", ylabel="mean ||dJ/dW||", yscale="log", title="gradient norm per layer")
    ax.legend(fontsize="small", ncol=2 if norms.shape[1] > 5 else 1)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return os.fspath(path)


def plot_layer_grad_norms(norms: Mapping[str, History | Sequence[float] | np.ndarray],
                          path: str | os.PathLike, title: str = "gradient norm by layer") -> str:
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
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for name, arr in series.items():
        ax.plot(np.arange(1, arr.size + 1), np.maximum(arr, 1e-300), "o-", label=name)
    ax.set(xlabel="layer (1 = next to the input)", ylabel="mean ||dJ/dW||", yscale="log", title=title)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return os.fspath(path)


def plot_decision_boundary(model, X: object, y: object, path: str | os.PathLike, *, resolution: int = 300,
                           margin: float = 0.25, title: str | None = None) -> str:
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
    plt = _pyplot()
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
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return os.fspath(path)
