"""Training curves as PNG files (needs the ``plot`` extra: pip install 'fastnn[plot]')."""
from __future__ import annotations

import os

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
