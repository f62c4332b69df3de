"""The training loop around the engine: epochs, validation, early stopping, callbacks, history.

The per-batch work happens in :func:`fastnn.engine.run_epoch` (or a backend's fused
``train_epoch``); this module only loops over epochs, so the hot path stays in the kernels.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from fastnn import engine, schedules
from fastnn.kernels import config, contract, team
from fastnn.progress import EpochReporter
from fastnn.validation import check_float, check_positive_int

if TYPE_CHECKING:
    from fastnn.model import MLP


class TrainingDivergedWarning(RuntimeWarning):
    """The loss became NaN or infinite or exploded; training stopped and the best finite weights were restored."""


class UnscaledInputWarning(UserWarning):
    """The inputs hold values far outside the range a network trains well on (e.g. raw 0-255 pixels)."""


class EarlyStoppingWarning(UserWarning):
    """Early stopping has no validation data and falls back to the training loss."""


# fit warns before training when some input value lies beyond +-UNSCALED_LIMIT: for data scaled to
# [0, 1] or standardised, that is a 20-sigma value, while raw pixels (0-255) or raw physical
# quantities exceed it at once.  Such inputs saturate sigmoid/tanh units and blow up the first
# products, which fails silently: a dead network at chance accuracy, or a loss that explodes.
UNSCALED_LIMIT = 20.0
# An epoch's loss above EXPLODED x the initial weights' loss is divergence, as NaN or inf is: in
# float64 a loss can grow for many epochs (to 1e295 and beyond) before it overflows.  The initial loss
# is measured on up to REFERENCE_ROWS rows spread over the training set (a fraction of an epoch).
EXPLODED = 1e4
REFERENCE_ROWS = 1024


@dataclass
class History:
    """Per-epoch record of a fit: losses, accuracies (NaN for regression), gradient norms, times.

    ``loss`` is each epoch's mean training loss (with the L1/L2 penalty; for ``mse`` half the squared
    error, see fastnn.losses); ``batch_loss`` holds, per epoch, the loss of every mini-batch in the
    order trained (the weights moved between them), whose mean weighted by batch size is ``loss``.
    """

    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    grad_norms_list: list[np.ndarray] = field(default_factory=list)
    epoch_time: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)  # the learning rate of each epoch (lr_schedule)
    batch_loss: list[np.ndarray] = field(default_factory=list)  # per epoch: each mini-batch's loss
    # per epoch: the threads a compiled backend's fused epoch trained on after timing its first
    # batches at each team size (empty when the epochs ran step by step or on a fixed team)
    threads: list[int] = field(default_factory=list)
    stopped_early: bool = False
    best_epoch: int | None = None  # set by early stopping: 1 for the first epoch, as the log counts
    diverged: bool = False

    @property
    def epochs(self) -> int:
        return len(self.loss)

    def record(self, logs: dict[str, float], stats, seconds: float) -> None:
        """Append one epoch: its logs (val_* when present), learning rate, mean gradient norms and wall time."""
        self.lr.append(logs["lr"])
        self.loss.append(logs["loss"])
        self.accuracy.append(logs["accuracy"])
        if "val_loss" in logs:
            self.val_loss.append(logs["val_loss"])
            self.val_accuracy.append(logs["val_accuracy"])
        self.grad_norms_list.append(stats.grad_norm_sum / max(stats.n_batches, 1))
        self.batch_loss.append(np.asarray(stats.batch_loss, dtype=np.float64))
        self.epoch_time.append(seconds)

    @property
    def grad_norms(self) -> np.ndarray:
        """(epochs, layers): mean over the epoch's batches of ||dJ/dW_l||_F."""
        if not self.grad_norms_list:
            return np.zeros((0, 0))
        return np.vstack(self.grad_norms_list)

    @property
    def iteration_loss(self) -> np.ndarray:
        """Every mini-batch's loss, all epochs in one array (iteration i = batch i of the whole fit)."""
        return np.concatenate(self.batch_loss) if self.batch_loss else np.zeros(0)

    @property
    def history(self) -> dict[str, list[float]]:
        """Keras-style dict of the per-epoch series."""
        out = {"loss": self.loss, "accuracy": self.accuracy}
        if self.val_loss:
            out |= {"val_loss": self.val_loss, "val_accuracy": self.val_accuracy}
        return out

    def __repr__(self) -> str:
        last = {k: round(v[-1], 4) for k, v in self.history.items() if v}
        return (f"History(epochs={self.epochs}, last={last}, stopped_early={self.stopped_early}, "
                f"diverged={self.diverged})")


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
        callbacks: Sequence[Any] | None = None, augment: Callable[..., np.ndarray] | None = None,
        lr_schedule: str | Callable[[int], float] | None = None) -> History:
    """Mini-batch SGD over ``epochs``; see :meth:`fastnn.MLP.fit`."""
    epochs = check_positive_int("epochs", epochs)
    batch_size = check_positive_int("batch_size", batch_size)
    lr = check_float("lr", lr, 0.0, math.inf, low_open=True, high_open=True, hint="try 0.01")
    momentum = check_float("momentum", momentum, 0.0, 1.0, high_open=True, hint="0.9 is common")
    if nesterov and momentum == 0:
        raise ValueError("nesterov=True needs momentum > 0, e.g. momentum=0.9")
    validation_split = check_float("validation_split", validation_split, 0.0, 1.0, high_open=True)
    schedule = schedules.resolve(lr_schedule, lr, epochs)
    cbs = [_as_callback(cb) for cb in (callbacks or [])]

    extremes: list[tuple[float, float]] = []
    X = model._X(X, extremes=extremes)
    Y, labels = model._Y(y, X.shape[0])
    X, Y, labels, val = _split_validation(model, X, Y, labels, validation_split, validation_data)
    _check_augment(augment, X)
    stopper = _Stopper.make(early_stopping, val is not None, model.is_classifier)
    _warn_if_unscaled(*extremes[0])

    be, spec = model._be, model._spec
    hyper = engine.Hyper(lr=lr, momentum=momentum, nesterov=bool(nesterov), l1=model.l1, l2=model.l2,
                         keep_input=1.0 - model.input_dropout, keep_hidden=1.0 - model.dropout,
                         seed=model.seed)
    state = _DeviceState(be, model._params)
    n = X.shape[0]
    ws = engine.Workspace(be, spec, min(batch_size, n), training=True)
    # A backend's fused train_epoch runs the whole epoch in one compiled call, but it knows no
    # skip connections: residual networks go step by step through the same backend's kernels.
    run_epoch = engine.run_epoch if spec.residual else (contract.hook(be, "train_epoch") or engine.run_epoch)
    history = History()
    reporter = EpochReporter(epochs, verbose)
    if model.loss_name == "mse":  # say which "mse": the course's squared error is twice this number
        reporter.message("loss: mse = 1/2 sum_j (a_j - y_j)^2 per sample, half the squared error "
                         "(fastnn.losses.get('squared_error') is the whole)")
    for cb in cbs:
        cb.on_train_begin(model)

    # A backend may hold something for the whole loop (numba, cython: the BLAS on one thread while
    # the epochs run on their own thread team, so that a validation pass cannot leave BLAS threads
    # spinning into the next epoch: kernels/team.py).
    held = contextlib.ExitStack()
    try:
        if run_epoch is not engine.run_epoch:
            held.enter_context(contract.hook(be, "fit_scope")(spec, batch_size))
            full = contract.hook(be, "team_size")(spec, min(batch_size, n))
            if full > 1 and config.get("FASTNN_ADAPTIVE_TEAM"):
                # a busy machine can make the team slower than one thread: each epoch times a few
                # batches at each team size and trains on at the fastest (kernels/team.py)
                run_epoch = team.Adaptive(run_epoch, full)
        # inside the scope: on the BLAS's own threads, this pass would leave them spinning (about 0.1 s,
        # OpenBLAS's default) on the cores the first epoch's team needs
        watch = _DivergenceWatch(_initial_loss(be, spec, state.params, hyper, X, Y))
        for epoch in range(epochs):
            t0 = time.perf_counter()
            before = state.snapshot()
            watch.epoch_start(before)
            hyper = dataclasses.replace(hyper, lr=schedules.rate(schedule, epoch + 1))
            order = model._shuffle_rng.permutation(n) if shuffle else np.arange(n)
            X_epoch = X if augment is None else _augmented(augment, X, model._augment_rng)
            with np.errstate(over="ignore", invalid="ignore"):  # divergence is detected and reported below
                stats = run_epoch(be, spec, state.params, state.velocity, ws, X_epoch, Y, labels, order,
                                  batch_size, hyper, model._step)
            model._step += -(-n // batch_size)  # every epoch advances the dropout counter alike
            logs = _epoch_logs(stats, labels is not None) if stats.n_seen else {"loss": math.inf}
            why = "the loss became NaN or infinite" if stats.diverged else watch.exploded(logs["loss"])
            if why:
                history.diverged = True
                saved, best_epoch = watch.best()
                state.restore(saved)
                kept = (f"the weights from the end of epoch {best_epoch} (the lowest training loss, "
                        f"{watch.best_loss:.4g}) were restored" if best_epoch else "the initial weights were restored")
                warnings.warn(
                    f"training diverged in epoch {epoch + 1}: {why}. Training stopped and {kept}. "
                    f"Lower the learning rate (lr={hyper.lr:g}), scale the inputs (and regression targets), "
                    f"or add L2 regularisation.", TrainingDivergedWarning, stacklevel=3)
                break
            watch.epoch_end(logs["loss"], epoch + 1)
            if val is not None:
                logs |= _validation_logs(be, spec, state.params, hyper, val)
            logs["lr"] = hyper.lr
            history.record(logs, stats, time.perf_counter() - t0)
            if isinstance(run_epoch, team.Adaptive):
                history.threads.append(run_epoch.chosen[-1])
            logs["time"] = history.epoch_time[-1]
            reporter.epoch_end(epoch, logs)

            stop = stopper is not None and stopper.update(logs, epoch, history, state)
            for cb in cbs:
                stop = bool(cb.on_epoch_end(epoch, logs)) or stop
            if stop:
                break
        if stopper is not None:
            note = stopper.restore_best(history, state)
            if note and int(verbose):
                reporter.message(note)
    finally:
        held.close()
        reporter.close()
        state.bring_home()
    for cb in cbs:
        cb.on_train_end(history)
    return history


def _check_augment(augment, X: np.ndarray) -> None:
    """An augmentation must be callable, and may check that the rows suit it (e.g. are images)."""
    if augment is None:
        return
    if not callable(augment):
        raise TypeError(f"augment must be an augmentation such as fastnn.augment.RandomShift(max_shift=2) "
                        f"(a callable f(X, rng) -> X), got {augment!r}")
    check = getattr(augment, "check", None)  # an optional method of fastnn.augment's classes
    if check is not None:
        check(X.shape[1])


def _epoch_logs(stats: engine.EpochStats, classifier: bool) -> dict[str, float]:
    """The epoch's mean training loss and accuracy (NaN for regression) from the summed stats."""
    return {"loss": stats.loss_sum / stats.n_seen,
            "accuracy": stats.correct / stats.n_seen if classifier else math.nan}


def _validation_logs(be, spec: engine.NetSpec, params: engine.Params, hyper: engine.Hyper, val) -> dict[str, float]:
    """val_loss (regularised like the training loss) and val_accuracy of the current weights."""
    Xv, Yv, labels_v = val
    out, loss_sum = engine.predict(be, spec, params, Xv, Yv)
    return {"val_loss": loss_sum / len(Xv) + engine.penalty(be, params, hyper),
            "val_accuracy": (engine.count_correct(spec, out, labels_v) / len(Xv)
                             if labels_v is not None else math.nan)}


class _DeviceState:
    """The parameters being trained, as backend arrays, and their momentum buffers."""

    def __init__(self, be, host: engine.Params):
        self.be, self.host = be, host
        self.params = engine.Params(*[[be.to_device(a) for a in group] for group in (host.W, host.b, host.alpha)])
        self.velocity = engine.Params(*[[be.to_device(np.zeros_like(a)) for a in group]
                                        for group in (host.W, host.b, host.alpha)])

    def snapshot(self) -> list[np.ndarray]:
        """A host copy of every parameter."""
        return [self.be.to_host(a).copy() for a in self.params.arrays()]

    def restore(self, saved: list[np.ndarray]) -> None:
        for d, s in zip(self.params.arrays(), saved):
            self.be.assign(d, s)

    def bring_home(self) -> None:
        """Device backends: copy the trained weights into the model's host arrays (CPU: the same arrays)."""
        for h, d in zip(self.host.arrays(), self.params.arrays()):
            if d is not h:
                h[...] = self.be.to_host(d)


class _Stopper:
    """Early stopping's state: the best value of the monitored metric so far and the epochs since."""

    def __init__(self, rule: EarlyStopping, monitor: str):
        self.rule, self.monitor = rule, monitor
        self.best: float | None = None
        self.best_params: list[np.ndarray] | None = None
        self.wait = 0

    @classmethod
    def make(cls, early_stopping, has_validation: bool, classifier: bool) -> _Stopper | None:
        """The stopper ``fit(early_stopping=...)`` asks for (None, an int patience or an EarlyStopping)."""
        if early_stopping is None or early_stopping is False:
            return None
        rule = early_stopping if isinstance(early_stopping, EarlyStopping) else EarlyStopping(patience=early_stopping)
        monitor = rule.monitor or ("val_loss" if has_validation else "loss")
        if rule.monitor is None and not has_validation:
            warnings.warn(
                "early stopping has no validation data, so it monitors the training loss, which keeps "
                "falling while the network overfits; pass validation_split or validation_data, or "
                "EarlyStopping(monitor='loss') to monitor the training loss on purpose",
                EarlyStoppingWarning, stacklevel=4)
        if monitor.startswith("val_") and not has_validation:
            raise ValueError(f"early stopping monitors {monitor!r} but there is no validation data; "
                             f"pass validation_split or validation_data, or monitor='loss'")
        if monitor.endswith("accuracy") and not classifier:
            raise ValueError(f"early stopping cannot monitor {monitor!r} for a regression network")
        return cls(rule, monitor)

    def update(self, logs: dict[str, float], epoch: int, history: History, state: _DeviceState) -> bool:
        """Take this epoch's value; True when ``patience`` epochs have passed without an improvement."""
        value = logs[self.monitor]
        if self.monitor.endswith("accuracy"):
            better = self.best is None or value > self.best + self.rule.min_delta
        else:
            better = self.best is None or value < self.best - self.rule.min_delta
        if better:
            self.best, self.wait, history.best_epoch = value, 0, epoch + 1
            if self.rule.restore_best_weights:
                self.best_params = state.snapshot()
            return False
        self.wait += 1
        history.stopped_early = self.wait >= self.rule.patience
        return history.stopped_early

    def restore_best(self, history: History, state: _DeviceState) -> str:
        """Put back the best epoch's weights, when asked to and when they are not the last ones.

        Returns what happened, in words, for the log ('' when nothing did).
        """
        best = f"{self.monitor} {self.best:.4f}" if self.best is not None else self.monitor
        said = ""
        if history.stopped_early:
            said = (f"early stopping: {self.monitor} did not improve for {self.rule.patience} epoch"
                    f"{'s' if self.rule.patience != 1 else ''}, so training stopped after epoch {history.epochs}. ")
        if self.best_params is not None and history.best_epoch != history.epochs:
            state.restore(self.best_params)
            return said + f"Restored the weights of epoch {history.best_epoch} (best {best})."
        if said:
            kept = "kept the last weights" if self.best_params is None else "the last epoch was the best"
            return said + f"Best: epoch {history.best_epoch} ({best}); {kept}."
        return ""


def _warn_if_unscaled(low: float, high: float) -> None:
    """UnscaledInputWarning when some input lies beyond +-UNSCALED_LIMIT (low, high: the inputs' extremes)."""
    if max(-low, high) > UNSCALED_LIMIT:
        warnings.warn(
            f"the inputs range over [{low:.4g}, {high:.4g}], far outside what a network trains well on; "
            f"scale them first: divide pixels by 255 (to [0, 1]) or standardise each feature with "
            f"fastnn.datasets.standardize. Unscaled inputs saturate the units or make the loss explode.",
            UnscaledInputWarning, stacklevel=4)


def _initial_loss(be, spec: engine.NetSpec, params: engine.Params, hyper: engine.Hyper, X: np.ndarray,
                  Y: np.ndarray) -> float:
    """The regularised loss of the weights fit starts from, on rows spread over the training set."""
    rows = slice(None, None, max(1, X.shape[0] // REFERENCE_ROWS))
    Xr, Yr = X[rows][:REFERENCE_ROWS], Y[rows][:REFERENCE_ROWS]
    with np.errstate(over="ignore", invalid="ignore"):
        _, loss_sum = engine.predict(be, spec, params, Xr, Yr)
        return loss_sum / Xr.shape[0] + engine.penalty(be, params, hyper)


class _DivergenceWatch:
    """Watches the epochs' training loss for an explosion, and keeps the weights of the lowest-loss epoch.

    The weights at the end of epoch k are the snapshot taken at the start of epoch k + 1, so keeping
    the best costs no extra copy; they are kept only when every value is finite (a last update can
    leave inf weights behind a finite loss), so a restored model never predicts inf or NaN.
    """

    def __init__(self, initial_loss: float):
        self.initial_loss = initial_loss
        self.best_loss = math.inf
        self.best_epoch = 0  # 0: the initial weights
        self._saved: list[np.ndarray] | None = None
        self._candidate: tuple[float, int] | None = None  # (loss, epoch) waiting for its weights

    def epoch_start(self, snapshot: list[np.ndarray]) -> None:
        """Take the weights that ended the previous epoch (the initial ones before epoch 1)."""
        if self._saved is None:
            self._saved = snapshot
        elif self._candidate is not None and all(np.isfinite(a).all() for a in snapshot):
            self._saved = snapshot
            self.best_loss, self.best_epoch = self._candidate
        self._candidate = None

    def exploded(self, loss: float) -> str:
        """Why this epoch's loss counts as divergence ('' when it does not)."""
        if not math.isfinite(loss):
            return "the loss became NaN or infinite"
        if math.isfinite(self.initial_loss) and loss > EXPLODED * self.initial_loss:
            return (f"the loss exploded to {loss:.4g}, over {EXPLODED:g} times the initial weights' "
                    f"{self.initial_loss:.4g}")
        return ""

    def epoch_end(self, loss: float, epoch: int) -> None:
        if loss < self.best_loss:
            self._candidate = (loss, epoch)

    def best(self) -> tuple[list[np.ndarray], int]:
        """(weights, epoch) with the lowest finite training loss so far (epoch 0: the initial weights)."""
        return self._saved, self.best_epoch
