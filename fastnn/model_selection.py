"""Choosing models honestly: held-out splits, k-fold cross-validation, bagging.

    >>> from fastnn.model_selection import train_test_split, cross_validate, Bagging
    >>> X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, seed=0)     # doctest: +SKIP
    >>> cv = cross_validate(lambda: fastnn.MLP([784, 64, 10], seed=0), X, y, k=5,
    ...                     fit_kwargs={"epochs": 5, "lr": 0.05}, n_jobs=2)      # doctest: +SKIP
    >>> print(cv)                  # per-fold train/test loss and accuracy, mean and std

Independent fits (folds, bagging members) run in parallel through joblib when ``n_jobs`` is not
None/1 (``pip install joblib``).  They take whatever joblib backend is active, so the same call
runs on a cluster::

    import joblib                                       # pip install 'fastnn[distributed]'
    from dask.distributed import Client
    client = Client("scheduler-address:8786")          # registers joblib's "dask" backend
                                                        # (Client(LocalCluster()) on one machine)
    with joblib.parallel_config(backend="dask"):
        cv = cross_validate(make_model, X, y, k=10, n_jobs=-1)

    from ray.util.joblib import register_ray           # Ray: the same with backend="ray"
    register_ray()
    with joblib.parallel_config(backend="ray"):
        bag = Bagging(make_model, n_estimators=32, n_jobs=-1).fit(X, y)

``make_model`` must then be picklable by cloudpickle (a lambda or a local function is fine) and
the workers need fastnn installed.  With joblib's default "loky" backend each worker is a
process that limits its BLAS threads to its share of the cores, so parallel folds do not
oversubscribe the machine.  Early stopping on a validation split is an option of ``fit``:
``fit_kwargs={"validation_split": 0.1, "early_stopping": 3}`` (the split is taken from each
training fold, never from the test fold).
"""
from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from fastnn.validation import check_positive_int

if TYPE_CHECKING:
    from fastnn.model import MLP

__all__ = ["train_test_split", "KFold", "cross_validate", "CVResult", "Bagging"]


# --------------------------------------------------------------------------- helpers


def _check_seed(seed: object) -> int | None:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0):
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    return None if seed is None else int(seed)


def _n_samples(X: object, name: str = "X") -> int:
    n = getattr(X, "shape", None)
    if n is None:
        try:
            return len(X)  # type: ignore[arg-type]
        except TypeError:
            raise TypeError(f"{name} must be an array of samples, got {type(X).__name__}") from None
    if len(n) == 0:
        raise ValueError(f"{name} must have one row per sample, got a scalar")
    return int(n[0])


def _take(a: object, idx: np.ndarray) -> np.ndarray:
    return np.asarray(a)[idx]


def _parallel(fn: Callable, tasks: list[tuple], n_jobs: int | None) -> list:
    """[fn(*t) for t in tasks], through joblib when it is installed (and so under any active
    joblib backend: loky, threading, dask, ray), in this process otherwise."""
    if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Integral) or n_jobs == 0):
        raise ValueError(f"n_jobs must be None, a positive integer or a negative one (-1 = all cores), got {n_jobs!r}")
    try:
        import joblib
    except ImportError:
        if n_jobs not in (None, 1):
            raise ImportError(f"n_jobs={n_jobs} runs fits in parallel with joblib, which is not installed: "
                              f"pip install joblib (or leave n_jobs=None)") from None
        return [fn(*t) for t in tasks]
    return joblib.Parallel(n_jobs=n_jobs)(joblib.delayed(fn)(*t) for t in tasks)


def _new_model(make_model: Callable[[], Any]) -> MLP:
    from fastnn.model import MLP

    model = make_model()
    if not isinstance(model, MLP):
        raise TypeError(f"make_model() must return a new fastnn.MLP, got {type(model).__name__}; "
                        f"pass a function such as lambda: fastnn.MLP([784, 64, 10], seed=0)")
    return model


def _fit_kwargs(fit_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    if fit_kwargs is None:
        return {"verbose": 0}
    if not isinstance(fit_kwargs, Mapping):
        raise TypeError(f"fit_kwargs must be a dict of MLP.fit arguments, got {type(fit_kwargs).__name__}")
    return {"verbose": 0} | dict(fit_kwargs)


# --------------------------------------------------------------------------- splits


def train_test_split(X: object, y: object, test_size: float | int = 0.25, *, shuffle: bool = True,
                     stratify: object = None,
                     seed: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X_train, X_test, y_train, y_test): a held-out test set.

    ``test_size``: a fraction in (0, 1) or a number of samples.  ``stratify``: class labels
    (usually ``y``) whose proportions both parts keep.  ``shuffle=False`` takes the last rows as
    the test set (time-ordered data).
    """
    seed = _check_seed(seed)
    n = _n_samples(X)
    if _n_samples(y, "y") != n:
        raise ValueError(f"X has {n} samples but y has {_n_samples(y, 'y')}; pass one target per sample")
    if isinstance(test_size, bool) or not isinstance(test_size, numbers.Real):
        raise TypeError(f"test_size must be a fraction in (0, 1) or a number of samples, got {test_size!r}")
    if isinstance(test_size, numbers.Integral):
        n_test = int(test_size)
    elif 0 < test_size < 1:
        n_test = int(math.ceil(test_size * n))
    else:
        raise ValueError(f"test_size={test_size} must be a fraction in (0, 1) or a number of samples")
    if not 1 <= n_test < n:
        raise ValueError(f"test_size={test_size} leaves {n - n_test} training and {n_test} test samples "
                         f"out of {n}; both need at least one")
    rng = np.random.default_rng(seed)
    if stratify is not None:
        if not shuffle:
            raise ValueError("stratify needs shuffle=True")
        labels = np.asarray(stratify)
        if labels.shape[:1] != (n,):
            raise ValueError(f"stratify must hold one label per sample ({n}), got shape {labels.shape}")
        test = _stratified_pick(labels, n_test, rng)
        train = np.setdiff1d(np.arange(n), test)
        train, test = rng.permutation(train), rng.permutation(test)
    else:
        order = rng.permutation(n) if shuffle else np.arange(n)
        train, test = order[:n - n_test], order[n - n_test:]
    return _take(X, train), _take(X, test), _take(y, train), _take(y, test)


def _stratified_pick(labels: np.ndarray, n_pick: int, rng: np.random.Generator) -> np.ndarray:
    """n_pick indices with each class in proportion (largest remainders settle the rounding)."""
    classes, inverse = np.unique(labels, return_inverse=True)
    counts = np.bincount(inverse.reshape(-1))
    exact = counts * n_pick / labels.shape[0]
    take = np.floor(exact).astype(int)
    extra = n_pick - take.sum()
    take[np.argsort(-(exact - take), kind="stable")[:extra]] += 1
    picked = [rng.choice(np.flatnonzero(inverse == c), take[c], replace=False) for c in range(len(classes))]
    return np.sort(np.concatenate(picked))


class KFold:
    """k-fold cross-validation splits: every sample is in exactly one test fold.

    ``n_splits = n`` is leave-one-out.  ``shuffle=True`` shuffles once (seeded) before cutting
    the folds; fold sizes differ by at most one.
    """

    def __init__(self, n_splits: int = 5, *, shuffle: bool = False, seed: int | None = None) -> None:
        self.n_splits = check_positive_int("n_splits", n_splits, minimum=2)
        self.shuffle = bool(shuffle)
        self.seed = _check_seed(seed)

    def __repr__(self) -> str:
        return f"KFold(n_splits={self.n_splits}, shuffle={self.shuffle}, seed={self.seed})"

    def get_n_splits(self, X: object = None) -> int:
        """Number of folds."""
        return self.n_splits

    def split(self, X: object) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (train indices, test indices) for each fold."""
        n = _n_samples(X)
        if self.n_splits > n:
            raise ValueError(f"n_splits={self.n_splits} is more than the {n} samples; "
                             f"use at most n_splits={n} (leave-one-out)")
        order = np.random.default_rng(self.seed).permutation(n) if self.shuffle else np.arange(n)
        sizes = np.full(self.n_splits, n // self.n_splits)
        sizes[: n % self.n_splits] += 1
        start = 0
        for size in sizes:
            test = order[start:start + size]
            train = np.concatenate([order[:start], order[start + size:]])
            start += size
            yield train, test


# --------------------------------------------------------------------------- cross-validation


@dataclass
class CVResult:
    """Per-fold results of :func:`cross_validate` (arrays of length k); accuracies are NaN for regression."""

    train_loss: np.ndarray
    test_loss: np.ndarray
    train_accuracy: np.ndarray
    test_accuracy: np.ndarray
    fit_time: np.ndarray
    epochs: np.ndarray  # epochs actually trained (early stopping may end a fold sooner)
    models: list = field(default_factory=list)  # the fitted models, with return_models=True

    @property
    def k(self) -> int:
        return len(self.test_loss)

    def __getitem__(self, key: str) -> np.ndarray:
        """Dictionary-style access, e.g. ``cv["test_accuracy"]``."""
        if key not in self.as_dict():
            raise KeyError(f"{key!r}; CVResult has: {', '.join(self.as_dict())}")
        return getattr(self, key)

    def as_dict(self) -> dict[str, np.ndarray]:
        """The per-fold arrays by name (as scikit-learn's cross_validate returns them)."""
        return {k: getattr(self, k) for k in
                ("train_loss", "test_loss", "train_accuracy", "test_accuracy", "fit_time", "epochs")}

    def __str__(self) -> str:
        lines = [f"{self.k}-fold cross-validation"]
        for k in ("train_loss", "test_loss", "train_accuracy", "test_accuracy"):
            v = getattr(self, k)
            if np.all(np.isnan(v)):
                continue
            lines.append(f"  {k:<15} {np.mean(v):.4f} +- {np.std(v):.4f}   per fold: "
                         + " ".join(f"{x:.4f}" for x in v[:10]) + (" ..." if len(v) > 10 else ""))
        lines.append(f"  fit time        {np.sum(self.fit_time):.2f} s in all")
        return "\n".join(lines)


def _fit_fold(make_model: Callable[[], Any], X: np.ndarray, y: np.ndarray, train: np.ndarray,
              test: np.ndarray, fit_kwargs: dict[str, Any], return_model: bool) -> tuple:
    model = _new_model(make_model)
    t0 = time.perf_counter()
    history = model.fit(X[train], y[train], **fit_kwargs)
    fit_time = time.perf_counter() - t0
    tr = model.evaluate(X[train], y[train])
    te = model.evaluate(X[test], y[test])
    return (tr["loss"], te["loss"], tr["accuracy"], te["accuracy"], fit_time, history.epochs,
            model if return_model else None)


def cross_validate(make_model: Callable[[], Any], X: object, y: object, k: int = 5, *,
                   fit_kwargs: Mapping[str, Any] | None = None, shuffle: bool = True,
                   seed: int | None = 0, n_jobs: int | None = None, cv: KFold | None = None,
                   return_models: bool = False) -> CVResult:
    """Train a fresh model on each of ``k`` folds and score it on the held-out fold.

    ``make_model()``: returns a new, untrained :class:`fastnn.MLP` (it is called once per fold).
    ``fit_kwargs``: arguments of ``MLP.fit`` (epochs, lr, validation_split, early_stopping, ...;
    ``verbose`` defaults to 0).  ``k = len(X)`` is leave-one-out.  ``cv``: a :class:`KFold` to use
    instead of ``k``/``shuffle``/``seed``.  ``n_jobs``: folds in parallel with joblib (-1: all
    cores; see the module docstring for Dask and Ray).  Losses and accuracies come from
    ``model.evaluate`` on the training and test rows after fitting.
    """
    if not callable(make_model):
        raise TypeError(f"make_model must be a function returning a new fastnn.MLP, got {make_model!r}")
    X = np.asarray(X)
    y = np.asarray(y)
    n = _n_samples(X)
    if _n_samples(y, "y") != n:
        raise ValueError(f"X has {n} samples but y has {_n_samples(y, 'y')}; pass one target per sample")
    if cv is None:
        cv = KFold(k, shuffle=shuffle, seed=seed)
    elif not isinstance(cv, KFold):
        raise TypeError(f"cv must be a fastnn.model_selection.KFold, got {type(cv).__name__}")
    kwargs = _fit_kwargs(fit_kwargs)
    tasks = [(make_model, X, y, tr, te, kwargs, return_models) for tr, te in cv.split(X)]
    rows = _parallel(_fit_fold, tasks, n_jobs)
    cols = list(zip(*rows))
    return CVResult(*(np.array(c, dtype=np.float64) for c in cols[:5]), epochs=np.array(cols[5], dtype=np.int64),
                    models=list(cols[6]) if return_models else [])


# --------------------------------------------------------------------------- bagging


def _fit_member(make_model: Callable[[], Any], X: np.ndarray, y: np.ndarray, idx: np.ndarray,
                fit_kwargs: dict[str, Any]) -> MLP:
    model = _new_model(make_model)
    model.fit(X[idx], y[idx], **fit_kwargs)
    return model


class Bagging:
    """Bootstrap aggregating: ``n_estimators`` models, each trained on a bootstrap sample (rows
    drawn with replacement), predictions averaged.

    Classifiers average their class probabilities (``predict_proba``) and predict the argmax;
    regressors average their outputs.  Averaging models that err differently lowers the variance
    part of the error.  ``make_model`` returns a new, untrained MLP; give each member a different
    seed through it if you like (``lambda: MLP(..., seed=None)``) - the bootstrap samples differ
    in any case.  ``max_samples``: bootstrap size as a fraction of n.  ``n_jobs``: members in
    parallel with joblib.
    """

    def __init__(self, make_model: Callable[[], Any], n_estimators: int = 10, *, max_samples: float = 1.0,
                 seed: int | None = None, n_jobs: int | None = None) -> None:
        if not callable(make_model):
            raise TypeError(f"make_model must be a function returning a new fastnn.MLP, got {make_model!r}")
        self.make_model = make_model
        self.n_estimators = check_positive_int("n_estimators", n_estimators)
        if isinstance(max_samples, bool) or not isinstance(max_samples, numbers.Real) or not 0 < max_samples <= 1:
            raise ValueError(f"max_samples must be a fraction in (0, 1], got {max_samples!r}")
        self.max_samples = float(max_samples)
        self.seed = _check_seed(seed)
        self.n_jobs = n_jobs
        self.estimators_: list[MLP] = []

    def __repr__(self) -> str:
        return (f"Bagging(n_estimators={self.n_estimators}, max_samples={self.max_samples}, "
                f"seed={self.seed}, n_jobs={self.n_jobs})")

    def fit(self, X: object, y: object, **fit_kwargs: Any) -> Bagging:
        """Train the members on bootstrap samples of (X, y); ``fit_kwargs`` go to ``MLP.fit``.

        Also sets ``samples_`` (the row indices each member saw) and ``oob_score_``: the
        out-of-bag score (accuracy, or R^2 for regression) over the rows that some member did not
        see, each predicted by the members that did not see it (None if there are none).
        """
        X = np.asarray(X)
        y = np.asarray(y)
        n = _n_samples(X)
        if _n_samples(y, "y") != n:
            raise ValueError(f"X has {n} samples but y has {_n_samples(y, 'y')}; pass one target per sample")
        rng = np.random.default_rng(self.seed)
        m = max(1, int(round(self.max_samples * n)))
        self.samples_ = [rng.integers(0, n, m) for _ in range(self.n_estimators)]
        kwargs = _fit_kwargs(fit_kwargs)
        tasks = [(self.make_model, X, y, idx, kwargs) for idx in self.samples_]
        self.estimators_ = _parallel(_fit_member, tasks, self.n_jobs)
        self.oob_score_ = self._oob_score(X, y)
        return self

    def _oob_score(self, X: np.ndarray, y: np.ndarray) -> float | None:
        n = X.shape[0]
        first = self.estimators_[0]
        outs = np.zeros((n, first.layers[-1]))
        counts = np.zeros(n)
        for model, idx in zip(self.estimators_, self.samples_):
            out = np.ones(n, dtype=bool)
            out[idx] = False
            if out.any():
                outs[out] += model.forward(X[out])
                counts[out] += 1
        seen = counts > 0  # rows some member never trained on
        if not seen.any():
            return None
        avg = outs[seen] / counts[seen, None]
        Y, labels = first._Y(y[seen], int(seen.sum()))
        if first.is_classifier:
            from fastnn import engine

            return float(np.mean(engine.predict_labels(first._spec, avg) == labels))
        return _r2(Y, avg)

    def _check_fitted(self) -> None:
        if not self.estimators_:
            raise ValueError("this Bagging ensemble is not fitted yet; call fit(X, y) first")

    def forward(self, X: object) -> np.ndarray:
        """The members' output activations, averaged: shape (n, n_outputs)."""
        self._check_fitted()
        return np.mean([m.forward(X) for m in self.estimators_], axis=0)

    def predict_proba(self, X: object) -> np.ndarray:
        """Averaged class probabilities (members must be classifiers)."""
        self._check_fitted()
        return np.mean([m.predict_proba(X) for m in self.estimators_], axis=0)

    def predict(self, X: object) -> np.ndarray:
        """Class labels from the averaged probabilities, or the averaged regression outputs."""
        self._check_fitted()
        first = self.estimators_[0]
        if first.is_classifier:
            return np.argmax(self.predict_proba(X), axis=1)
        out = self.forward(X)
        return out[:, 0] if out.shape[1] == 1 else out

    def score(self, X: object, y: object) -> float:
        """Accuracy for classifiers; for regression R^2 = 1 - SS_res / SS_tot of the averaged output."""
        self._check_fitted()
        first = self.estimators_[0]
        X = first._X(X)
        Y, labels = first._Y(y, X.shape[0])
        if first.is_classifier:
            return float(np.mean(self.predict(X) == labels))
        return _r2(Y, self.forward(X))


def _r2(Y: np.ndarray, out: np.ndarray) -> float:
    """Coefficient of determination, averaged over outputs: 1 - sum (y - out)^2 / sum (y - mean y)^2."""
    ss_res = np.sum((Y - out) ** 2, axis=0)
    ss_tot = np.sum((Y - Y.mean(axis=0)) ** 2, axis=0)
    return float(np.mean(1 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0)))
