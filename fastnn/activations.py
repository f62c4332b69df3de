"""The activation functions of the course, with their derivatives, as plain NumPy functions.

    >>> from fastnn import activations
    >>> act = activations.get("leaky_relu", slope=0.1)
    >>> act.f([-2.0, 3.0]), act.df([-2.0, 3.0])
    (array([-0.2,  3. ]), array([0.1, 1. ]))

Each object computes with the NumPy reference backend's own kernels
(``fastnn.kernels.numpy_ref.activate`` and ``activation_derivative``), the definition every
compiled backend is tested against, so what a student plots here is what training computes.
Arrays of any shape go in (softmax works along the last axis); float32 and float64 keep their
dtype, other numbers are computed in float64.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy as np

from fastnn.kernels import codes
from fastnn.kernels import numpy_ref as ref

__all__ = ["Activation", "Softmax", "get", "names", "parameter_name"]

# name -> (keyword a user passes, its default): the parameter alpha_j of the parametrised activations
_PARAMETER: dict[str, tuple[str, float]] = {
    "leaky_relu": ("slope", codes.LEAKY_SLOPE),
    "elu": ("alpha", codes.ELU_ALPHA),
    "prelu": ("alpha", codes.PRELU_INIT),
}


def _as_float_array(z: object) -> np.ndarray:
    """z as a float32 or float64 array (other dtypes and Python numbers become float64)."""
    arr = np.asarray(z)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"an activation takes real numbers, got an array of dtype {arr.dtype}")
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    return arr


@dataclass(frozen=True)
class Activation:
    """One activation: ``f(z)`` and ``df(z)`` = f'(z) elementwise, with its formulas as text.

    ``alpha`` is the activation's parameter where it has one (LeakyReLU's slope, ELU's alpha,
    PReLU's slope): a number, or one value per unit (the last axis of z) for PReLU.
    """

    name: str
    formula: str  # f(z), in the notation of fastnn's traces (a = f(z))
    derivative: str  # f'(z)
    alpha: float | np.ndarray | None = None
    code: int = field(default=-1, repr=False)

    def _alpha_for(self, z: np.ndarray) -> np.ndarray:
        if self.alpha is None:
            return np.zeros(0, dtype=z.dtype)
        alpha = np.asarray(self.alpha, dtype=z.dtype)
        if alpha.ndim == 1 and (z.ndim == 0 or z.shape[-1] != alpha.shape[0]):
            raise ValueError(f"{self.name} has {alpha.shape[0]} per-unit alphas but z has "
                             f"{z.shape[-1] if z.ndim else 'no'} units on its last axis; give one alpha "
                             f"per unit, or a single number")
        return alpha

    def f(self, z: object) -> np.ndarray:
        """a = f(z), elementwise."""
        z = _as_float_array(z)
        a = np.empty_like(z)
        ref.activate(self.code, z, self._alpha_for(z), a)
        return a

    def df(self, z: object) -> np.ndarray:
        """f'(z), elementwise."""
        z = _as_float_array(z)
        d = np.empty_like(z)
        ref.activation_derivative(self.code, z, self._alpha_for(z), d)
        return d

    def __call__(self, z: object) -> np.ndarray:
        return self.f(z)


@dataclass(frozen=True)
class Softmax(Activation):
    """softmax(z)_j = e^z_j / sum_k e^z_k along the last axis; its derivative is a Jacobian per row."""

    def f(self, z: object) -> np.ndarray:
        """a = softmax(z) along the last axis (each row sums to 1)."""
        z = _as_float_array(z)
        if z.ndim == 0:
            raise ValueError("softmax needs at least one axis of units, got a scalar")
        rows = np.ascontiguousarray(z.reshape(-1, z.shape[-1]))
        a = np.empty_like(rows)
        ref.activate(codes.SOFTMAX, rows, np.zeros(0, dtype=z.dtype), a)
        return a.reshape(z.shape)

    def df(self, z: object) -> np.ndarray:
        raise TypeError("softmax has no elementwise derivative: each output depends on every input of its row. "
                        "Use jacobian(z), da_j/dz_k = a_j ([j = k] - a_k), shape (B, n, n)")

    def jacobian(self, z: object) -> np.ndarray:
        """da_j/dz_k = a_j ([j = k] - a_k) for every row of z (B, n): shape (B, n, n); a 1-D z gives (n, n)."""
        z = _as_float_array(z)
        if z.ndim not in (1, 2):
            raise ValueError(f"jacobian takes one row (n,) or a batch (B, n), got shape {z.shape}")
        a = self.f(np.atleast_2d(z))
        J = np.empty((a.shape[0], a.shape[1], a.shape[1]), dtype=a.dtype)
        ref.softmax_jacobian(a, J)
        return J[0] if z.ndim == 1 else J


def parameter_name(name: str) -> str | None:
    """The keyword :func:`get` takes for activation ``name``'s parameter (slope, alpha), or None."""
    return _PARAMETER[name][0] if name in _PARAMETER else None


def names() -> list[str]:
    """Every activation name :func:`get` knows (the hidden ones, then softmax)."""
    return [*codes.ACTIVATIONS, "softmax"]


def get(name: str, **params: float | np.ndarray) -> Activation:
    """The activation ``name`` with its parameter, if it has one.

    leaky_relu takes ``slope`` (default 0.01), elu ``alpha`` (default 1), prelu ``alpha`` (default
    0.25, a number or one slope per unit); the others take none.
    """
    if name not in names():
        raise ValueError(f"activation {name!r} is not known; choose one of: {', '.join(names())}")
    if name == "softmax":
        if params:
            raise TypeError(f"softmax takes no parameters, got {', '.join(params)}")
        f, df = codes.activation_text("softmax")
        return Softmax("softmax", f, df, None, codes.SOFTMAX)
    code = codes.ACTIVATIONS[name]
    if name not in _PARAMETER:
        if params:
            raise TypeError(f"{name} takes no parameters, got {', '.join(params)}")
        f, df = codes.activation_text(name)
        return Activation(name, f, df, None, code)
    key, default = _PARAMETER[name]
    unknown = set(params) - {key}
    if unknown:
        raise TypeError(f"{name} takes one parameter, {key}=, got {', '.join(sorted(unknown))}")
    alpha = params.get(key, default)
    if isinstance(alpha, numbers.Real) and not isinstance(alpha, bool):
        alpha = float(alpha)
        if not np.isfinite(alpha):
            raise ValueError(f"{name}'s {key} must be finite, got {alpha}")
        f, df = codes.activation_text(name, alpha)
    elif name == "prelu":
        alpha = np.array(alpha, dtype=np.float64)
        if alpha.ndim != 1 or not np.all(np.isfinite(alpha)):
            raise ValueError(f"prelu's alpha must be a number or a 1-D array of finite slopes, one per unit, "
                             f"got shape {alpha.shape}")
        alpha.setflags(write=False)
        f, df = codes.activation_text(name)
    else:
        raise TypeError(f"{name}'s {key} must be a real number, got {alpha!r}")
    return Activation(name, f, df, alpha, code)
