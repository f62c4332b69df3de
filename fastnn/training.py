"""The training loop around the engine: epochs, validation, early stopping, callbacks, history.

The per-batch work happens in :func:`fastnn.engine.run_epoch` (or a backend's fused
``train_epoch``); this module only loops over epochs, so the hot path stays in the kernels.
"""
from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from fastnn import engine
from fastnn.kernels import contract
from fastnn.progress import EpochReporter
from fastnn.validation import check_float, check_positive_int

if TYPE_CHECKING:
    from fastnn.model import MLP


class TrainingDivergedWarning(RuntimeWarning):
    """The loss became NaN or infinite; training stopped and the last finite weights were restored."""


@dataclass
class History:
    """Per-epoch record of a fit: losses, accuracies (NaN for regression), gradient norms, times."""

    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    grad_norms_list: list[np.ndarray] = field(default_factory=list)
    epoch_time: list[float] = field(default_factory=list)
    stopped_early: bool = False
    best_epoch: int | None = None  # 0-based, set by early stopping
    diverged: bool = False

    @property
    def epochs(self) -> int:
        return len(self.loss)

    @property
    def grad_norms(self) -> np.ndarray:
        """(epochs, layers): mean over the epoch's batches of ||dJ/dW_l||_F."""
        if not self.grad_norms_list:
            return np.zeros((0, 0))
        return np.vstack(self.grad_norms_list)

    @property
    def history(self) -> dict[str, list[float]]:
        """Keras-style dict of the per-epoch series."""
        out = {"loss": self.loss, "accuracy": self.accuracy}
        if self.val_loss:
            out |= {"val_loss": self.val_loss, "val_accuracy": self.val_accuracy}
        return out

    def __repr__(self) -> str:
        last = {k: round(v[-1], 4) for k, v in self.history.items() if v}
        return f"History(epochs={self.epochs}, last={last}, stopped_early={self.stopped_early}, diverged={self.diverged})"


class Callback:
    """Hooks called by fit; override what you need.  ``on_epoch_end`` returning True stops training."""

    model: MLP | None = None

    def on_train_begin(self, model: MLP) -> None:
        self.model = model

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> bool | None:
        return None

    def on_train_end(self, history: History) -> None:
        return None


class _FunctionCallback(Callback):
    def __init__(self, fn: Callable[[int, dict[str, float]], Any]):
        self.fn = fn

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> bool | None:
        return bool(self.fn(epoch, logs))


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    ``monitor``: 'val_loss' (default when there is validation data, else 'loss'), 'loss',
    'val_accuracy' or 'accuracy' (accuracies are maximised).  The best weights are restored.
    """

    def __init__(self, patience: int = 5, min_delta: float = 0.0, monitor: str | None = None,
                 restore_best_weights: bool = True):
        self.patience = check_positive_int("patience", patience, minimum=0)
        self.min_delta = check_float("min_delta", min_delta, 0.0, math.inf, high_open=True)
        if monitor not in (None, "loss", "val_loss", "accuracy", "val_accuracy"):
            raise ValueError(f"monitor {monitor!r} is not supported; choose loss, val_loss, accuracy or val_accuracy")
        self.monitor = monitor
        self.restore_best_weights = restore_best_weights


def _as_callback(cb: object) -> Callback:
    if isinstance(cb, Callback):
        return cb
    if callable(cb):
        return _FunctionCallback(cb)
    raise TypeError(f"callbacks must be Callback objects or functions f(epoch, logs), got {cb!r}")


def _split_validation(model: MLP, X, Y, labels, validation_split, validation_data):
    """Training and validation arrays from either a held-out fraction or explicit data."""
    if validation_data is not None:
        if validation_split:
            raise ValueError("pass either validation_split or validation_data, not both")
        if not (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
            raise ValueError("validation_data must be a pair (X_val, y_val)")
        Xv = model._X(validation_data[0], "validation X")
        Yv, lv = model._Y(validation_data[1], Xv.shape[0], "validation y")
        return X, Y, labels, (Xv, Yv, lv)
    if not validation_split:
        return X, Y, labels, None
    n = X.shape[0]
    n_val = int(round(n * validation_split))
    if n_val < 1 or n_val >= n:
        raise ValueError(
            f"validation_split={validation_split} leaves {n - n_val} training and {n_val} validation "
            f"samples out of {n}; both need at least one"
        )
    perm = model._shuffle_rng.permutation(n)  # a random, seeded hold-out
    tr, va = perm[n_val:], perm[:n_val]
    lab = (lambda idx: None) if labels is None else (lambda idx: labels[idx])
    return X[tr], Y[tr], lab(tr), (X[va], Y[va], lab(va))


def _augmented(augment: Callable[..., np.ndarray], X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """This epoch's augmented copy of the training rows, checked to be a drop-in for X."""
    Xa = augment(X, rng)
    if not isinstance(Xa, np.ndarray) or Xa.shape != X.shape:
        raise ValueError(f"augment {augment!r} must return an array of the shape of X {X.shape}, "
                         f"got {getattr(Xa, 'shape', type(Xa).__name__)}")
    return np.ascontiguousarray(Xa, dtype=X.dtype)


def fit(model: MLP, X, y, *, epochs: int = 10, batch_size: int = 32, lr: float = 0.01,
        momentum: float = 0.0, nesterov: bool = False, validation_split: float = 0.0,
        validation_data=None, early_stopping=None, shuffle: bool = True, verbose: bool | int = True,
        callbacks: Sequence[Any] | None = None, augment: Callable[..., np.ndarray] | None = None) -> History:
    """Mini-batch SGD over ``epochs``; see :meth:`fastnn.MLP.fit`."""
    epochs = check_positive_int("epochs", epochs)
    batch_size = check_positive_int("batch_size", batch_size)
    lr = check_float("lr", lr, 0.0, math.inf, low_open=True, high_open=True, hint="try 0.01")
    momentum = check_float("momentum", momentum, 0.0, 1.0, high_open=True, hint="0.9 is common")
    if nesterov and momentum == 0:
        raise ValueError("nesterov=True needs momentum > 0, e.g. momentum=0.9")
    validation_split = check_float("validation_split", validation_split, 0.0, 1.0, high_open=True)
    if isinstance(early_stopping, EarlyStopping):
        stopper = early_stopping
    elif early_stopping is None or early_stopping is False:
        stopper = None
    else:
        stopper = EarlyStopping(patience=early_stopping)
    cbs = [_as_callback(cb) for cb in (callbacks or [])]

    X = model._X(X)
    Y, labels = model._Y(y, X.shape[0])
    X, Y, labels, val = _split_validation(model, X, Y, labels, validation_split, validation_data)
    if augment is not None:
        if not callable(augment):
            raise TypeError(f"augment must be an augmentation such as fastnn.augment.RandomShift(max_shift=2) "
                            f"(a callable f(X, rng) -> X), got {augment!r}")
        check = getattr(augment, "check", None)
        if check is not None:
            check(X.shape[1])  # e.g. RandomShift: are the rows images?
    monitor = None
    if stopper is not None:
        monitor = stopper.monitor or ("val_loss" if val is not None else "loss")
        if monitor.startswith("val_") and val is None:
            raise ValueError(f"early stopping monitors {monitor!r} but there is no validation data; "
                             f"pass validation_split or validation_data, or monitor='loss'")
        if monitor.endswith("accuracy") and not model.is_classifier:
            raise ValueError(f"early stopping cannot monitor {monitor!r} for a regression network")

    be, spec = model._be, model._spec
    hyper = engine.Hyper(lr=lr, momentum=momentum, nesterov=bool(nesterov), l1=model.l1, l2=model.l2,
                         keep_input=1.0 - model.input_dropout, keep_hidden=1.0 - model.dropout,
                         seed=model.seed)
    host = model._params
    dev = engine.Params(*[[be.to_device(a) for a in group] for group in (host.W, host.b, host.alpha)])
    velocity = engine.Params(*[[be.to_device(np.zeros_like(a)) for a in group]
                               for group in (host.W, host.b, host.alpha)])
    n = X.shape[0]
    ws = engine.Workspace(be, spec, min(batch_size, n), training=True)
    # A backend's fused train_epoch runs the whole epoch in one compiled call, but it knows no
    # skip connections: residual networks go step by step through the same backend's kernels.
    run_epoch = engine.run_epoch if spec.residual else (contract.hook(be, "train_epoch") or engine.run_epoch)
    history = History()
    reporter = EpochReporter(epochs, verbose)
    for cb in cbs:
        cb.on_train_begin(model)
    best, best_params, wait = None, None, 0

    def snapshot() -> list[np.ndarray]:
        return [be.to_host(a).copy() for a in dev.arrays()]

    def restore(saved: list[np.ndarray]) -> None:
        for d, s in zip(dev.arrays(), saved):
            be.assign(d, s)

    # A backend may hold something for the whole loop (numba, cython: the BLAS on one thread while
    # the epochs run on their own thread team, so that a validation pass cannot leave BLAS threads
    # spinning into the next epoch: kernels/team.py).
    held = contextlib.ExitStack()
    try:
        if run_epoch is not engine.run_epoch:
            held.enter_context(contract.hook(be, "fit_scope")(spec, batch_size))
        for epoch in range(epochs):
            t0 = time.perf_counter()
            before = snapshot()
            order = model._shuffle_rng.permutation(n) if shuffle else np.arange(n)
            X_epoch = X if augment is None else _augmented(augment, X, model._augment_rng)
            with np.errstate(over="ignore", invalid="ignore"):  # divergence is detected and reported below
                stats = run_epoch(be, spec, dev, velocity, ws, X_epoch, Y, labels, order, batch_size, hyper,
                                  model._step)
            model._step += -(-n // batch_size)  # every epoch advances the dropout counter alike
            if stats.diverged:
                restore(before)
                history.diverged = True
                warnings.warn(
                    f"training diverged in epoch {epoch + 1}: the loss became NaN or infinite. "
                    f"Training stopped and the weights from the end of epoch {epoch} were restored. "
                    f"Lower the learning rate (lr={lr}) or add L2 regularisation.",
                    TrainingDivergedWarning, stacklevel=3)
                break
            logs = {"loss": stats.loss_sum / stats.n_seen,
                    "accuracy": stats.correct / stats.n_seen if labels is not None else math.nan}
            if val is not None:
                out, loss_sum = engine.predict(be, spec, dev, val[0], val[1])
                logs["val_loss"] = loss_sum / len(val[0]) + engine.penalty(be, dev, hyper)
                logs["val_accuracy"] = (engine.count_correct(spec, out, val[2]) / len(val[0])
                                        if val[2] is not None else math.nan)
            history.loss.append(logs["loss"])
            history.accuracy.append(logs["accuracy"])
            if val is not None:
                history.val_loss.append(logs["val_loss"])
                history.val_accuracy.append(logs["val_accuracy"])
            history.grad_norms_list.append(stats.grad_norm_sum / max(stats.n_batches, 1))
            history.epoch_time.append(time.perf_counter() - t0)
            logs["time"] = history.epoch_time[-1]
            reporter.epoch_end(epoch, logs)

            stop = False
            if stopper is not None:
                value = logs[monitor]
                better = (best is None or
                          (value > best + stopper.min_delta if monitor.endswith("accuracy")
                           else value < best - stopper.min_delta))
                if better:
                    best, wait, history.best_epoch = value, 0, epoch
                    if stopper.restore_best_weights:
                        best_params = snapshot()
                else:
                    wait += 1
                    if wait >= stopper.patience:
                        history.stopped_early = stop = True
            for cb in cbs:
                stop = bool(cb.on_epoch_end(epoch, logs)) or stop
            if stop:
                break
        if best_params is not None and history.best_epoch != history.epochs - 1:
            restore(best_params)
    finally:
        held.close()
        reporter.close()
        for h, d in zip(host.arrays(), dev.arrays()):
            if d is not h:  # device backends: bring the trained weights home
                h[...] = be.to_host(d)
    for cb in cbs:
        cb.on_train_end(history)
    return history
