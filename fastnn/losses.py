"""The loss functions of the course: per-sample values, gradients and output deltas in NumPy.

    >>> import numpy as np
    >>> from fastnn import losses
    >>> a, y = np.array([[0.8, 0.3]]), np.array([[1.0, 0.0]])
    >>> losses.get("squared_error").value(a, y)       # sum_j (y_j - a_j)^2, as the course writes it
    array([0.13])
    >>> losses.get("mse").value(a, y)                 # what fastnn trains with: half of it
    array([0.065])

``mse`` is **half** the squared error, J_b = 1/2 sum_j (a_j - y_j)^2, so that its gradient is plain
a - y; fit, evaluate and cross_validate report its mean over samples.  ``squared_error`` is the
whole sum, J_b = sum_j (a_j - y_j)^2, as many textbooks and the course write it: exactly twice
``mse``.  ``zero_one`` counts mistakes and has no useful gradient (it is what accuracy measures);
the others are its smooth surrogates that training can follow.

Values of mse and the binary cross-entropy come from the NumPy reference backend's own kernel
(``fastnn.kernels.numpy_ref.sample_loss``), which every compiled backend is tested against; deltas from
its ``output_delta``.  The reference takes the cross-entropy's logs from the logits z (so they never
see ln 0); here, given probabilities a, it is -sum_j y_j ln a_j directly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastnn.kernels import codes
from fastnn.kernels import numpy_ref as ref

__all__ = ["Loss", "get", "names"]

_OUTPUT_CODES = {"identity": codes.IDENTITY, "sigmoid": codes.SIGMOID, "softmax": codes.SOFTMAX}


def _pair(a: object, y: object) -> tuple[np.ndarray, np.ndarray]:
    """a and y as float64 (B, n) arrays of the same shape (one sample may be given as a 1-D row)."""
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    y = np.asarray(y)
    if y.dtype.kind not in "fiub":
        raise TypeError(f"y must hold numbers (one-hot rows or targets), got dtype {y.dtype}")
    y = np.atleast_2d(y.astype(np.float64))
    if a.ndim != 2 or a.shape != y.shape:
        raise ValueError(f"a and y must have the same shape (B, n), got {a.shape} and {y.shape}; "
                         f"for class labels use one-hot rows, e.g. np.eye(n)[labels]")
    return a, y


def _labels(a: np.ndarray) -> np.ndarray:
    """The label rule of fastnn's accuracy: argmax, or a > 1/2 for a single output unit."""
    return ref.predicted_labels(a, threshold=a.shape[1] == 1)


@dataclass(frozen=True)
class Loss:
    """One loss: ``value(a, y)`` per sample, ``mean(a, y)``, ``gradient(a, y)`` = dJ_b/da and
    ``delta(a, y)`` = dJ_b/dz for its output activation, with the per-sample formula as text."""

    name: str
    formula: str  # J_b, per sample
    output: str  # the output activation its delta assumes (a = output(z))

    def value(self, a: object, y: object) -> np.ndarray:
        """J_b for every sample (row) b, float64, shape (B,).

        a: the network's outputs (B, n) (probabilities for the cross-entropies); y: targets of the
        same shape (one-hot rows for classes).  ``zero_one`` also takes integer labels (B,) as y.
        """
        if self.name == "zero_one":
            y_arr = np.asarray(y)
            if y_arr.ndim == 1:  # class labels
                a = np.asarray(a, dtype=np.float64)
                if a.ndim != 2 or a.shape[0] != y_arr.shape[0]:
                    raise ValueError(f"with labels y of shape {y_arr.shape}, a must be (B, n) with B = "
                                     f"{y_arr.shape[0]}, got {a.shape}")
                return (_labels(a) != y_arr).astype(np.float64)
            a, y = _pair(a, y)
            return (_labels(a) != _labels(y)).astype(np.float64)
        a, y = _pair(a, y)
        if self.name == "mse":
            return ref.sample_loss(codes.MSE, a, a, y)
        if self.name == "squared_error":
            return 2.0 * ref.sample_loss(codes.MSE, a, a, y)
        tiny = np.finfo(np.float64).tiny  # a probability of exactly 0 would give ln 0
        if self.name == "cross_entropy":
            # -sum_j y_j ln a_j of the a given.  Not through the reference's log-softmax of z = ln a:
            # that renormalises the row, so a row not summing to 1 (or a perturbed one, in a
            # finite-difference check) would get another value and gradient than the formula's.
            return -np.sum(y * np.log(np.maximum(a, tiny)), axis=1)
        # binary cross-entropy: z = ln a - ln(1 - a), the logit whose sigmoid is a
        p = np.clip(a, tiny, 1.0 - np.finfo(np.float64).epsneg)
        return ref.sample_loss(codes.BINARY_CROSS_ENTROPY, np.log(p) - np.log1p(-p), a, y)

    def mean(self, a: object, y: object) -> float:
        """(1/B) sum_b J_b: the number fit and evaluate report (before any L1/L2 penalty)."""
        return float(np.mean(self.value(a, y)))

    def gradient(self, a: object, y: object) -> np.ndarray:
        """dJ_b/da for every sample: a - y (mse), 2 (a - y) (squared_error), -y / a (cross_entropy),
        (a - y) / (a (1 - a)) (binary_cross_entropy)."""
        self._has_gradient()
        a, y = _pair(a, y)
        if self.name == "mse":
            return a - y
        if self.name == "squared_error":
            return 2.0 * (a - y)
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.name == "cross_entropy":
                return -y / a
            return (a - y) / (a * (1.0 - a))

    def delta(self, a: object, y: object, output: str | None = None) -> np.ndarray:
        """delta_L = dJ_b/dz_L for every sample, through the output activation (default: ``self.output``).

        softmax + cross_entropy and sigmoid + binary_cross_entropy give a - y: the pairs are chosen
        so that the output's slope cancels.  With mse the slope stays: sigmoid gives (a - y) a (1 - a).
        """
        self._has_gradient()
        output = self.output if output is None else output
        allowed = [o for o, losses in codes.OUTPUT_LOSSES.items() if self._train_name in losses]
        if output not in allowed:
            raise ValueError(f"{self.name}'s delta is defined here for output {' or '.join(allowed)}, "
                             f"got {output!r}")
        a, y = _pair(a, y)
        d = np.empty_like(a)
        ref.output_delta(codes.LOSSES[self._train_name], _OUTPUT_CODES[output], a, y, d)
        return 2.0 * d if self.name == "squared_error" else d

    @property
    def _train_name(self) -> str:
        return "mse" if self.name == "squared_error" else self.name

    def _has_gradient(self) -> None:
        if self.name == "zero_one":
            raise TypeError("the 0-1 loss is flat almost everywhere (its gradient is 0 or undefined), so no "
                            "gradient method can follow it; train with a surrogate (cross_entropy, mse) and "
                            "report zero_one")

    def __call__(self, a: object, y: object) -> np.ndarray:
        return self.value(a, y)


_LOSSES: dict[str, Loss] = {
    "mse": Loss("mse", codes.LOSS_TEXT[codes.MSE] + "   (half the squared error)", "identity"),
    "squared_error": Loss("squared_error", "sum_j (a_j - y_j)^2   (twice mse)", "identity"),
    "cross_entropy": Loss("cross_entropy", codes.LOSS_TEXT[codes.CROSS_ENTROPY], "softmax"),
    "binary_cross_entropy": Loss("binary_cross_entropy", codes.LOSS_TEXT[codes.BINARY_CROSS_ENTROPY], "sigmoid"),
    "zero_one": Loss("zero_one", "[predicted class != true class]", "softmax"),
}


def names() -> list[str]:
    """Every loss name :func:`get` knows."""
    return list(_LOSSES)


def get(name: str) -> Loss:
    """The loss ``name``: mse, squared_error, cross_entropy, binary_cross_entropy or zero_one."""
    if name not in _LOSSES:
        raise ValueError(f"loss {name!r} is not known; choose one of: {', '.join(_LOSSES)}")
    return _LOSSES[name]
