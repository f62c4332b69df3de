"""Rosenblatt's perceptron: one layer, a sign activation and the perceptron learning rule.

The historical starting point of the course, kept deliberately small:

    y_hat = sign(w . x + b)                 (+1 or -1; sign(0) = +1)
    for every misclassified sample:  w <- w + lr * y * x,   b <- b + lr * y

It converges when the classes are linearly separable (AND, OR) and never can on XOR, which no
single line separates; a small :class:`fastnn.MLP` with one hidden layer can.  See
``fastnn demo perceptron``.
"""
from __future__ import annotations

import numbers

import numpy as np

from fastnn.validation import check_float, check_positive_int

__all__ = ["Perceptron"]


class Perceptron:
    """A single-layer perceptron trained by the perceptron learning rule.

    Parameters
    ----------
    lr : learning rate of the rule w <- w + lr y x (with zero initial weights any lr > 0 gives
        the same predictions; it matters once you set ``weights_`` yourself).
    seed : None presents the samples in their given order every epoch (the textbook rule); an
        integer shuffles them each epoch with that seed.

    Attributes after ``fit``: ``weights_`` (n_features,), ``bias_``, ``errors_`` (mistakes per
    epoch), ``n_epochs_``, ``converged_`` (an epoch without a mistake), ``classes_`` (the two
    labels, in the convention of ``fit``'s y: [0, 1] or [-1, 1]).
    """

    def __init__(self, lr: float = 1.0, seed: int | None = None) -> None:
        self.lr = check_float("lr", lr, 0.0, np.inf, low_open=True, high_open=True, hint="lr=1.0 is classic")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0):
            raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
        self.seed = seed

    def __repr__(self) -> str:
        return f"Perceptron(lr={self.lr!r}, seed={self.seed!r})"

    @staticmethod
    def _X(X: object, n_features: int | None = None) -> np.ndarray:
        arr = np.asarray(X)
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_) or np.iscomplexobj(arr):
            raise TypeError(f"X must hold real numbers, got dtype {arr.dtype}")
        if arr.ndim != 2 or arr.shape[0] == 0:
            raise ValueError(f"X must be a non-empty 2-D array (n_samples, n_features), got shape {arr.shape}")
        if n_features is not None and arr.shape[1] != n_features:
            raise ValueError(f"X has {arr.shape[1]} features but the perceptron was fitted with {n_features}")
        arr = arr.astype(np.float64)
        if not np.all(np.isfinite(arr)):
            raise ValueError("X contains NaN or infinite values; remove or impute them first")
        return arr

    def fit(self, X: object, y: object, epochs: int = 100) -> Perceptron:
        """Apply the perceptron rule for up to ``epochs`` passes over the data; returns self.

        ``y``: labels 0/1 or -1/+1 (both classes present).  Training stops early after an epoch
        with no mistake (``converged_`` is then True).  Weights and bias start at zero.
        """
        epochs = check_positive_int("epochs", epochs)
        X = self._X(X)
        t = np.asarray(y)
        if t.ndim != 1 or t.shape[0] != X.shape[0]:
            raise ValueError(f"y must be 1-D with one label per row of X ({X.shape[0]}), got shape {t.shape}")
        if not np.issubdtype(t.dtype, np.number) and t.dtype != np.bool_:
            raise TypeError(f"y must hold labels 0/1 or -1/+1, got dtype {t.dtype}")
        values = set(np.unique(t).tolist())
        if values == {0, 1}:
            self.classes_ = np.array([0, 1])
        elif values == {-1, 1}:
            self.classes_ = np.array([-1, 1])
        else:
            raise ValueError(f"y must hold the two labels 0/1 or -1/+1 (both present), got {sorted(values)}")
        s = np.where(t == 1, 1.0, -1.0)  # the rule works with -1/+1
        rng = None if self.seed is None else np.random.default_rng(self.seed)
        w, b = np.zeros(X.shape[1]), 0.0
        self.errors_: list[int] = []
        self.converged_ = False
        for _ in range(epochs):
            order = np.arange(X.shape[0]) if rng is None else rng.permutation(X.shape[0])
            mistakes = 0
            for i in order:
                y_hat = 1.0 if X[i] @ w + b >= 0 else -1.0
                if y_hat != s[i]:  # the perceptron rule: move the boundary toward the sample
                    w += self.lr * s[i] * X[i]
                    b += self.lr * s[i]
                    mistakes += 1
            self.errors_.append(mistakes)
            if mistakes == 0:
                self.converged_ = True
                break
        self.weights_, self.bias_ = w, b
        self.n_epochs_ = len(self.errors_)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "weights_"):
            raise ValueError("this Perceptron is not fitted yet; call fit(X, y) first")

    def decision_function(self, X: object) -> np.ndarray:
        """w . x + b per row (its sign is the prediction)."""
        self._check_fitted()
        return self._X(X, self.weights_.shape[0]) @ self.weights_ + self.bias_

    def predict(self, X: object) -> np.ndarray:
        """Labels in the convention of ``fit``'s y: 0/1 or -1/+1 (w . x + b >= 0 gives the positive class)."""
        positive = self.decision_function(X) >= 0
        return np.where(positive, self.classes_[1], self.classes_[0])

    def score(self, X: object, y: object) -> float:
        """Fraction of rows whose predicted label equals y."""
        pred = self.predict(X)
        y = np.asarray(y)
        if y.shape != pred.shape:
            raise ValueError(f"y must have one label per row of X, shape {pred.shape}, got {y.shape}")
        return float(np.mean(pred == y))
