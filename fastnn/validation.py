"""Input checks, done once at the public boundary; kernels trust what passes here.

Every message names the bad value and says how to fix it.
"""
from __future__ import annotations

import numbers

import numpy as np


def check_positive_int(name: str, value: object, minimum: int = 1) -> int:
    """An integer >= minimum (bools are rejected: ``epochs=True`` is a mistake, not 1)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def check_float(name: str, value: object, low: float, high: float, *, low_open: bool = False,
                high_open: bool = False, hint: str = "") -> float:
    """A finite real number in the interval [low, high] (open ends as requested)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    v = float(value)
    lo_ok = v > low if low_open else v >= low
    hi_ok = v < high if high_open else v <= high
    if not (np.isfinite(v) and lo_ok and hi_ok):
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be in {interval}, got {value!r}{'; ' + hint if hint else ''}")
    return v


def check_dtype(dtype: object) -> np.dtype:
    """float32 or float64."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype {dtype!r} is not supported; choose 'float32' (fast) or 'float64' (exact checks)")
    return dt


def _numeric(name: str, arr: np.ndarray) -> None:
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_) or np.iscomplexobj(arr):
        raise TypeError(
            f"{name} must hold real numbers, got dtype {arr.dtype}; convert it first, "
            f"e.g. {name} = np.asarray({name}, dtype=np.float32)"
        )


def _finite(name: str, arr: np.ndarray) -> tuple[float, float] | None:
    """Refuse NaN and inf; return (min, max) of a floating array (None for other dtypes)."""
    if np.issubdtype(arr.dtype, np.floating) and arr.size:
        # min and max are NaN or infinite iff some value is: two passes without a temporary
        # (np.isfinite(X) on 60,000 MNIST images allocates and faults in 47 MB on every fit)
        low, high = arr.min(), arr.max()
        if np.isfinite(low) and np.isfinite(high):
            return float(low), float(high)
        bad = ~np.isfinite(arr)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"{name} contains {int(bad.sum())} NaN or infinite value(s), the first at index "
                f"{where}; remove or impute them before training or predicting"
            )
    return None


def check_X(X: object, n_features: int, dtype: np.dtype, name: str = "X",
            extremes: list | None = None) -> np.ndarray:
    """Samples as a C-contiguous (n, n_features) array of ``dtype``; one 1-D sample is accepted.

    ``extremes``: a list that receives (min, max) of the values, from the pass that checks them.
    """
    try:
        arr = np.asarray(X)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} could not be read as a numeric array: {exc}") from None
    _numeric(name, arr)
    if arr.ndim == 1:  # one sample of n_features values, or n samples of a single feature
        if arr.shape[0] == n_features:
            arr = arr.reshape(1, -1)
        elif n_features == 1:
            arr = arr[:, None]
        else:
            raise ValueError(
                f"{name} is one sample of {arr.shape[0]} values but the network takes {n_features} inputs; "
                f"pass {n_features} values per sample (several samples: a 2-D array (n_samples, {n_features}))"
            )
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, {n_features}), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); pass at least one sample")
    if arr.shape[1] != n_features:
        raise ValueError(
            f"{name} has {arr.shape[1]} features per sample but the network's input layer has "
            f"{n_features}; reshape the data (e.g. images to (n, {n_features})) or build the MLP "
            f"with layers=[{arr.shape[1]}, ...]"
        )
    low_high = _finite(name, arr)
    if extremes is not None:
        extremes.append(low_high if low_high is not None else (float(arr.min()), float(arr.max())))
    return np.ascontiguousarray(arr, dtype=dtype)


def check_y(y: object, n_samples: int, n_outputs: int, classifier: bool, single_sigmoid: bool,
            dtype: np.dtype, name: str = "y") -> tuple[np.ndarray, np.ndarray | None]:
    """Targets as (Y of shape (n, n_outputs) in ``dtype``, integer labels or None).

    Classifiers take integer labels (1-D) or one-hot / probability rows (2-D); a single sigmoid
    unit takes 0/1 labels.  Regression (identity output) takes real targets, 1-D when n_outputs == 1.
    """
    try:
        arr = np.asarray(y)
    except Exception as exc:
        raise TypeError(f"{name} could not be read as a numeric array: {exc}") from None
    if arr.dtype.kind in "OUS" and arr.size and classifier:  # strings, objects: class names, not numbers
        first = arr.reshape(-1)[0]
        first = first.item() if isinstance(first, np.generic) else first
        kind = "Python objects" if arr.dtype.kind == "O" else "strings"
        raise TypeError(
            f"{name} holds {kind} such as {first!r}, but fastnn's MLP takes integer "
            f"class labels 0..k-1: encode them with classes, {name} = np.unique({name}, return_inverse=True) "
            f"(classes[i] names label i), or use fastnn.sklearn.MLPClassifier, which takes any labels"
        )
    _numeric(name, arr)
    if arr.ndim == 0 or arr.shape[0] == 0:
        raise ValueError(f"{name} is empty or a scalar (shape {arr.shape}); pass one target per sample")
    if arr.shape[0] != n_samples:
        raise ValueError(
            f"X has {n_samples} samples but {name} has {arr.shape[0]}; pass one target per sample"
        )
    _finite(name, arr)
    labels = None
    if arr.ndim == 1 or (arr.ndim == 2 and arr.shape[1] == 1 and n_outputs == 1):
        flat = arr.reshape(-1)
        if classifier:
            if not np.all(np.equal(np.mod(flat, 1), 0)):
                raise ValueError(
                    f"{name} holds non-integer values but the network classifies; pass integer class "
                    f"labels 0..{max(n_outputs, 2) - 1} or one-hot rows of width {n_outputs}"
                )
            n_classes = 2 if single_sigmoid else n_outputs
            lo, hi = int(flat.min()), int(flat.max())
            if lo < 0 or hi >= n_classes:
                bad = lo if lo < 0 else hi
                raise ValueError(
                    f"label {bad} in {name} is out of range: the output layer has {n_outputs} "
                    f"unit(s), so labels must be in 0..{n_classes - 1}; relabel the classes or "
                    f"change the last layer size"
                )
            labels = flat.astype(np.int64)
            if single_sigmoid:
                Y = labels.astype(dtype)[:, None]
            else:
                Y = np.zeros((n_samples, n_outputs), dtype=dtype)
                Y[np.arange(n_samples), labels] = 1
            return Y, labels
        if n_outputs != 1:
            raise ValueError(
                f"{name} is 1-D but the network has {n_outputs} outputs; pass targets of shape "
                f"({n_samples}, {n_outputs})"
            )
        return np.ascontiguousarray(flat[:, None], dtype=dtype), None
    if arr.ndim != 2 or arr.shape[1] != n_outputs:
        raise ValueError(
            f"{name} has shape {arr.shape} but the network has {n_outputs} outputs; pass integer "
            f"labels (n,) or targets of shape ({n_samples}, {n_outputs})"
        )
    Y = np.ascontiguousarray(arr, dtype=dtype)
    if classifier:
        labels = (Y[:, 0] > 0.5).astype(np.int64) if single_sigmoid else np.argmax(Y, axis=1)
    return Y, labels
