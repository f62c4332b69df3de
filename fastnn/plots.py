"""Training curves and gradient norms as PNG files (needs the ``plot`` extra: pip install 'fastnn[plot]').

    plot_history(history, "curves.png")          loss and accuracy per epoch, train and validation
    plot_grad_norms(history, "grads.png")        ||dJ/dW_l|| per epoch, one line per layer
    plot_layer_grad_norms({"sigmoid": h1, "relu": h2}, "vanishing.png")   networks side by side
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
