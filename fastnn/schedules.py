"""Learning-rate schedules: the rate of each epoch, ``lr_t``, for ``fit(..., lr_schedule=...)``.

A schedule is any callable ``epoch -> lr`` with epochs counted from 1, as the training log counts
them.  The named ones start from ``fit``'s ``lr`` (their ``lr0``) unless given one:

    step          lr_t = lr0 * drop^floor((t - 1) / every)              StepDecay(drop=0.5, every=10)
    exponential   lr_t = lr0 * gamma^(t - 1)                            ExponentialDecay(gamma=0.95)
    cosine        lr_t = lr_min + (lr0 - lr_min) (1 + cos(pi (t - 1) / T)) / 2      CosineDecay(lr_min=0)

with T the number of epochs of the fit.  Every epoch keeps one rate for all of its mini-batches
(the fused epochs take the rate as an argument), and ``History.lr`` records it.

    >>> model.fit(X, y, epochs=30, lr=0.1, lr_schedule="cosine")              # doctest: +SKIP
    >>> model.fit(X, y, lr_schedule=StepDecay(drop=0.1, every=10))            # doctest: +SKIP
    >>> model.fit(X, y, lr_schedule=lambda t: 0.1 / t)                        # doctest: +SKIP
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from fastnn.validation import check_float, check_positive_int

__all__ = ["Schedule", "StepDecay", "ExponentialDecay", "CosineDecay", "get", "names", "resolve"]


@dataclass(frozen=True)
class Schedule:
    """Base of the named schedules: ``lr0`` (None: fit's ``lr``) and the fit's ``epochs`` bound at fit time."""

    lr0: float | None = None
    epochs: int | None = None

    def bind(self, lr: float, epochs: int) -> Schedule:
        """This schedule with ``lr0`` (when unset) and ``epochs`` taken from the fit."""
        return replace(self, lr0=lr if self.lr0 is None else self.lr0, epochs=epochs)

    def __call__(self, epoch: int) -> float:
        if self.lr0 is None:
            raise ValueError(f"{type(self).__name__} has no starting rate yet: pass lr0=..., or give it to fit, "
                             f"which starts it from its lr")
        return self.rate(check_positive_int("epoch", epoch))

    def rate(self, epoch: int) -> float:
        raise NotImplementedError


@dataclass(frozen=True)
class StepDecay(Schedule):
    """lr_t = lr0 * drop^floor((t - 1) / every): the rate falls by ``drop`` every ``every`` epochs."""

    drop: float = 0.5
    every: int = 10

    def __post_init__(self) -> None:
        check_float("drop", self.drop, 0.0, 1.0, low_open=True, hint="e.g. 0.5 halves the rate")
        check_positive_int("every", self.every)

    def rate(self, epoch: int) -> float:
        return self.lr0 * self.drop ** ((epoch - 1) // self.every)


@dataclass(frozen=True)
class ExponentialDecay(Schedule):
    """lr_t = lr0 * gamma^(t - 1): the rate shrinks by the factor ``gamma`` every epoch."""

    gamma: float = 0.95

    def __post_init__(self) -> None:
        check_float("gamma", self.gamma, 0.0, 1.0, low_open=True, hint="e.g. 0.95")

    def rate(self, epoch: int) -> float:
        return self.lr0 * self.gamma ** (epoch - 1)


@dataclass(frozen=True)
class CosineDecay(Schedule):
    """lr_t = lr_min + (lr0 - lr_min) (1 + cos(pi (t - 1) / T)) / 2: from lr0 down towards lr_min over T epochs."""

    lr_min: float = 0.0

    def __post_init__(self) -> None:
        check_float("lr_min", self.lr_min, 0.0, math.inf, high_open=True)

    def rate(self, epoch: int) -> float:
        T = self.epochs or epoch
        return self.lr_min + (self.lr0 - self.lr_min) * (1 + math.cos(math.pi * (epoch - 1) / T)) / 2


_NAMED: dict[str, type[Schedule]] = {"step": StepDecay, "exponential": ExponentialDecay, "cosine": CosineDecay}


def names() -> list[str]:
    """The named schedules ``get`` and ``fit(lr_schedule=...)`` accept."""
    return list(_NAMED)


def get(name: str, **params: float) -> Schedule:
    """The named schedule with its parameters, e.g. ``get("step", drop=0.1, every=5)``."""
    if name not in _NAMED:
        raise ValueError(f"learning-rate schedule {name!r} is unknown; choose one of {', '.join(_NAMED)}, "
                         f"or pass a function epoch -> lr")
    return _NAMED[name](**params)


def resolve(schedule: str | Callable[[int], float] | None, lr: float, epochs: int) -> Callable[[int], float]:
    """The function epoch -> lr a fit uses: constant ``lr`` (None), a named or Schedule object bound to the
    fit's ``lr`` and ``epochs``, or the user's own function, whose rates are checked epoch by epoch."""
    if schedule is None:
        return lambda epoch: lr
    if isinstance(schedule, str):
        schedule = get(schedule)
    if isinstance(schedule, Schedule):
        return schedule.bind(lr, epochs)
    if not callable(schedule):
        raise TypeError(f"lr_schedule must be None, one of {', '.join(_NAMED)}, a fastnn.schedules.Schedule "
                        f"or a function epoch -> lr, got {schedule!r}")
    return schedule


def rate(schedule: Callable[[int], float], epoch: int) -> float:
    """The schedule's rate for ``epoch`` (from 1), checked: a finite number > 0."""
    value = schedule(epoch)
    try:
        return check_float("lr", value, 0.0, math.inf, low_open=True, high_open=True)
    except (TypeError, ValueError):
        raise ValueError(f"lr_schedule gave {value!r} for epoch {epoch}; a learning rate must be a finite "
                         f"number > 0") from None
