"""Finite-difference gradient checking: does backprop agree with the definition of a derivative?"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from fastnn.model import MLP


@dataclass
class GradientCheck:
    """Result of :func:`gradient_check`: the worst relative error and where it occurred."""

    max_rel_error: float
    n_checked: int
    worst: list[tuple[str, tuple[int, ...], float, float, float]] = field(default_factory=list)
    # (parameter, index, backprop, finite difference, relative error), worst first

    def report(self, k: int = 5) -> str:
        lines = [f"max relative error {self.max_rel_error:.2e} over {self.n_checked} parameters"]
        for name, idx, bp, fd, err in self.worst[:k]:
            lines.append(f"  {name}{list(idx)}: backprop {bp:+.6e}  finite diff {fd:+.6e}  rel err {err:.1e}")
        return "\n".join(lines)

    def __float__(self) -> float:
        return self.max_rel_error


def gradient_check(model: MLP, X, y, eps: float = 1e-6, max_per_array: int | None = None,
                   seed: int = 0) -> GradientCheck:
    """Compare backprop's dJ/dtheta with (J(theta + eps) - J(theta - eps)) / (2 eps) for every parameter.

    The relative error of each entry is ``|bp - fd| / max(|bp| + |fd|, 1e-8)``.  Needs a float64
    model (float32 differences are dominated by rounding).  ``max_per_array`` checks a random
    sample of entries per array for big networks.
    """
    if model.dtype != np.float64:
        raise ValueError("gradient_check needs a float64 model: build it with dtype='float64'")
    dW, db, dalpha = model.gradients(X, y, return_alpha=True)
    rng = np.random.default_rng(seed)
    rows = []
    groups = [("W", model.weights, dW), ("b", model.biases, db), ("alpha", model.alphas, dalpha)]
    for kind, params, grads in groups:
        for l, (P, G) in enumerate(zip(params, grads)):
            if G.size == 0:  # no gradient: a fixed alpha_j (LeakyReLU slope, ELU alpha) is not a parameter
                continue
            flat_idx = np.arange(P.size)
            if max_per_array is not None and P.size > max_per_array:
                flat_idx = rng.choice(P.size, max_per_array, replace=False)
            for i in flat_idx:
                idx = np.unravel_index(i, P.shape)
                old = P[idx]
                P[idx] = old + eps
                j_plus = model.loss(X, y)
                P[idx] = old - eps
                j_minus = model.loss(X, y)
                P[idx] = old
                fd = (j_plus - j_minus) / (2 * eps)
                bp = float(G[idx])
                err = abs(bp - fd) / max(abs(bp) + abs(fd), 1e-8)
                rows.append((f"{kind}{l}", tuple(int(j) for j in idx), bp, fd, err))
    rows.sort(key=lambda r: -r[4])
    return GradientCheck(rows[0][4] if rows else 0.0, len(rows), rows[:20])
