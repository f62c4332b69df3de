"""Data augmentation for image rows: each epoch trains on a freshly shifted copy of X.

    >>> import fastnn
    >>> from fastnn.augment import RandomShift
    >>> model = fastnn.MLP([784, 128, 10], seed=0)
    >>> model.fit(X, y, epochs=10, augment=RandomShift(max_shift=2))   # doctest: +SKIP

``fit`` calls the augmentation once per epoch on the whole training set, *before* the epoch runs,
so a backend's fused compiled epoch still sees one plain array.  The random stream comes from
the model's seed (and continues across ``fit`` calls), so a seeded run is reproducible.
Validation data is never augmented.

An augmentation is any object with ``__call__(X, rng) -> X_new`` (same shape and dtype) and,
optionally, ``check(n_features)``, which ``fit`` calls first to reject data it cannot handle.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np

__all__ = ["RandomShift", "shift_images"]


def _check_shape(image_shape: object) -> tuple[int, ...]:
    """(H, W) or (C, H, W) of positive integers."""
    try:
        shape = tuple(image_shape)  # type: ignore[arg-type]
    except TypeError:
        shape = ()
    if len(shape) not in (2, 3) or any(
            isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1 for s in shape):
        raise ValueError(f"image_shape must be (height, width) or (channels, height, width) of positive "
                         f"integers, got {image_shape!r}")
    return tuple(int(s) for s in shape)


def _image_shape(n_features: int, image_shape: Sequence[int] | None) -> tuple[int, ...]:
    """(H, W) or (C, H, W) of one row of ``n_features`` values; a square (H, H) when not given."""
    if image_shape is None:
        side = math.isqrt(n_features)
        if side * side != n_features:
            raise ValueError(
                f"rows of {n_features} features are not square images (e.g. 784 = 28 x 28); pass "
                f"image_shape=(height, width), or (channels, height, width) for channel-major rows "
                f"such as CIFAR-10's (3, 32, 32)"
            )
        return (side, side)
    shape = _check_shape(image_shape)
    if math.prod(shape) != n_features:
        raise ValueError(f"image_shape {shape} holds {math.prod(shape)} values but the rows have "
                         f"{n_features} features; pass the shape of one image")
    return shape


def shift_images(X: np.ndarray, shifts: np.ndarray, image_shape: Sequence[int] | None = None,
                 fill: float = 0.0) -> np.ndarray:
    """A copy of the image rows of ``X`` with row i moved by ``shifts[i] = (dy, dx)`` pixels.

    Positive dy moves the picture down, positive dx to the right; pixels shifted in from outside
    are ``fill``.  ``X`` is (n, n_features) with rows in C order of ``image_shape`` ((H, W) or
    (C, H, W); default a square H x H).  Vectorised: X is padded once, and every row picks its
    own window of the padded array in one gather.
    """
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
    shape = _image_shape(X.shape[1], image_shape)
    shifts = np.asarray(shifts)
    if shifts.shape != (X.shape[0], 2) or not np.issubdtype(shifts.dtype, np.integer):
        raise ValueError(f"shifts must be integers of shape ({X.shape[0]}, 2), one (dy, dx) per row, "
                         f"got {shifts.dtype} {shifts.shape}")
    H, W = shape[-2:]
    n = X.shape[0]
    dy = np.clip(shifts[:, 0], -H, H)  # a shift by the full height already leaves only fill
    dx = np.clip(shifts[:, 1], -W, W)
    p = int(max(np.abs(dy).max(initial=0), np.abs(dx).max(initial=0)))
    # Pad by p on every side; the shifted image is then the H x W window starting at (p - dy, p - dx).
    padded = np.full((n, *shape[:-2], H + 2 * p, W + 2 * p), fill, dtype=X.dtype)
    padded[..., p:p + H, p:p + W] = X.reshape(n, *shape)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (H, W), axis=(-2, -1))
    windows = np.moveaxis(windows, (-4, -3), (1, 2))  # (n, 2p+1, 2p+1, [C,] H, W), still a view
    out = windows[np.arange(n), p - dy, p - dx]  # one gather: every row's own window
    return np.ascontiguousarray(out).reshape(X.shape)


class RandomShift:
    """Move every image by a random (dy, dx), each uniform in -max_shift..max_shift pixels.

    Parameters
    ----------
    max_shift : largest shift in pixels, e.g. 2 for MNIST (28 x 28).
    image_shape : (height, width) or (channels, height, width) of one row; None: the rows are
        square single-channel images (n_features must be a perfect square, as MNIST's 784).
    fill : value of the pixels shifted in from outside the frame (0 = MNIST's background).
    """

    def __init__(self, max_shift: int = 2, image_shape: Sequence[int] | None = None,
                 fill: float = 0.0) -> None:
        if isinstance(max_shift, bool) or not isinstance(max_shift, numbers.Integral) or max_shift < 0:
            raise ValueError(f"max_shift must be a non-negative integer number of pixels, got {max_shift!r}; "
                             f"try max_shift=2 for 28 x 28 images")
        if isinstance(fill, bool) or not isinstance(fill, numbers.Real) or not math.isfinite(fill):
            raise ValueError(f"fill must be a finite number (the background value), got {fill!r}")
        self.max_shift = int(max_shift)
        self.image_shape = None if image_shape is None else _check_shape(image_shape)
        self.fill = float(fill)

    def __repr__(self) -> str:
        return f"RandomShift(max_shift={self.max_shift}, image_shape={self.image_shape}, fill={self.fill})"

    def check(self, n_features: int) -> tuple[int, ...]:
        """The image shape of rows of ``n_features`` values; ValueError when they are not images."""
        shape = _image_shape(n_features, self.image_shape)
        if self.max_shift >= min(shape[-2:]):
            raise ValueError(f"max_shift={self.max_shift} moves {shape[-2]} x {shape[-1]} images out of "
                             f"the frame; use a few pixels, e.g. max_shift=2")
        return shape

    def __call__(self, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A shifted copy of X (same shape and dtype), shifts drawn from ``rng``."""
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
        shape = self.check(X.shape[1])
        s = self.max_shift
        if s == 0:
            return X.copy()
        shifts = rng.integers(-s, s + 1, size=(X.shape[0], 2))
        return shift_images(X, shifts, shape, self.fill)

