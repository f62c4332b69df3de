"""The backend contract, written down once: what a backend module must define, what it may define,
and what a fused epoch reports back.

A backend is a plain module (``kernels/numpy_ref.py`` is the definition, read it first).  The API
layer (``fastnn.engine``, ``fastnn.training``, ...) calls only the names listed here, and calls an
optional hook only through :func:`hook`, so this file is the whole interface between the two
layers.  Nothing under ``kernels/`` imports from the API layer: the activation and loss codes live
in ``kernels/codes.py``, and :class:`EpochStats` lives here.

kernels/README.md explains every kernel's equation and every hook's purpose;
tests/test_backends.py holds every backend module to :data:`REQUIRED` and the hooks' signatures.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Protocol, runtime_checkable

import numpy as np

# --------------------------------------------------------------------------- required kernels

#: Every backend module defines these (plus ``NAME``, its name as ``fastnn.backends`` knows it).
REQUIRED: tuple[str, ...] = (
    "to_device", "to_host", "empty", "assign",
    "matmul", "linear_forward", "activate", "activation_derivative",
    "loss_value", "output_delta",
    "backprop_error", "activation_backward", "propagate_delta",
    "param_grads", "penalty", "sgd_update", "dropout",
)


@runtime_checkable
class Backend(Protocol):
    """The required part of a backend module, with the signatures of kernels/numpy_ref.py.

    Arrays are the backend's own (NumPy arrays on the CPU backends, device arrays on CUDA); every
    kernel writes into the outputs named last and returns nothing, except ``loss_value`` and
    ``penalty``, which return a Python float.
    """

    NAME: str

    def to_device(self, x: np.ndarray) -> Any: ...
    def to_host(self, x: Any) -> np.ndarray: ...
    def empty(self, shape: tuple[int, ...], dtype: np.dtype) -> Any: ...
    def assign(self, dst: Any, src: np.ndarray) -> None: ...
    def matmul(self, A: Any, B: Any, C: Any, method: str = "blas") -> None: ...
    def linear_forward(self, a_prev: Any, W: Any, b: Any, z: Any) -> None: ...
    def activate(self, act: int, z: Any, alpha: Any, a: Any) -> None: ...
    def activation_derivative(self, act: int, z: Any, alpha: Any, d: Any) -> None: ...
    def loss_value(self, loss: int, act: int, z: Any, a: Any, y: Any) -> float: ...
    def output_delta(self, loss: int, act: int, a: Any, y: Any, delta: Any) -> None: ...
    def backprop_error(self, delta_next: Any, W_next: Any, g: Any) -> None: ...
    def activation_backward(self, act: int, z: Any, alpha: Any, g: Any, delta: Any, dalpha: Any) -> None: ...
    def propagate_delta(self, delta_next: Any, W_next: Any, z: Any, act: int, alpha: Any, delta: Any,
                        dalpha: Any) -> None: ...
    def param_grads(self, a_prev: Any, delta: Any, W: Any, l1: float, l2: float, dW: Any, db: Any) -> None: ...
    def penalty(self, W: Any, l1: float, l2: float) -> float: ...
    def sgd_update(self, W: Any, dW: Any, v: Any, lr: float, momentum: float, nesterov: bool) -> None: ...
    def dropout(self, x: Any, keep: float, seed: int, step: int, layer: int) -> None: ...


# --------------------------------------------------------------------------- what an epoch reports


@dataclass
class EpochStats:
    """What an epoch reports back: sums, so partial epochs and chunks combine by addition."""

    loss_sum: float = 0.0  # sum over samples of the regularised per-sample loss
    correct: int = 0
    n_seen: int = 0
    grad_norm_sum: np.ndarray = field(default_factory=lambda: np.zeros(0))  # per layer, summed over batches
    n_batches: int = 0
    diverged: bool = False  # a batch loss was NaN or inf; the epoch stopped before updating with it
    # each completed batch's regularised mean loss, in order (n_batches entries; chunks concatenate):
    # loss_sum is their sum weighted by the batch sizes
    batch_loss: np.ndarray = field(default_factory=lambda: np.zeros(0))


# --------------------------------------------------------------------------- optional hooks


def _no_scope(spec, batch_size: int) -> AbstractContextManager:
    return contextlib.nullcontext()


def _host_add(dst, src) -> None:
    np.add(dst, src, out=dst)


def _nothing(*args) -> None:
    return None


def _one_thread(spec, batch_size: int) -> int:
    return 1


@dataclass(frozen=True)
class Hook:
    """An optional function of a backend module: its signature, what it is for, and the stand-in used
    when the backend does not define it (None: the caller must check with :func:`has_hook`)."""

    signature: str
    purpose: str
    default: Callable | None


#: Every optional hook the API layer calls.  Add a hook here first; kernels/README.md lists the same.
HOOKS: dict[str, Hook] = {
    "train_epoch": Hook(
        "train_epoch(be, spec, p, velocity, ws, X, Y, labels, order, batch_size, hyper, step0, threads) -> EpochStats",
        "a whole epoch in one compiled call; the same weights as fastnn.engine.run_epoch (the caller "
        "falls back to run_epoch when absent, and always for residual networks); threads (default None: "
        "team_size's) is the team to split each batch over, which fit chooses by timing (kernels/team.py)",
        None),
    "fit_scope": Hook(
        "fit_scope(spec, batch_size) -> context manager",
        "held around every epoch of a fit that uses train_epoch (the CPU backends hold the BLAS at one "
        "thread while their own thread team trains)",
        _no_scope),
    "team_size": Hook(
        "team_size(spec, batch_size) -> int",
        "how many threads train_epoch splits a batch over (for `fastnn info`, benchmarks and tests)",
        _one_thread),
    "add": Hook(
        "add(dst, src) -> None",
        "dst <- dst + src on backend arrays (residual connections); host arrays need none",
        _host_add),
    "synchronize": Hook(
        "synchronize() -> None",
        "wait until queued work is done (CUDA), so that a timer measures the work",
        _nothing),
    "set_num_threads": Hook(
        "set_num_threads(n) -> None",
        "apply fastnn.set_num_threads(n) to the backend's own thread pool (Cython's OpenMP team)",
        _nothing),
    "check_available": Hook(
        "check_available() -> None",
        "raise, naming the fix, when the module imports but cannot run here (no GPU, a stale build)",
        _nothing),
}


def has_hook(be: ModuleType, name: str) -> bool:
    """True when backend module ``be`` defines the optional hook ``name`` itself."""
    if name not in HOOKS:
        raise KeyError(f"{name!r} is not a hook of the backend contract; known: {', '.join(HOOKS)}")
    return callable(getattr(be, name, None))


def hook(be: ModuleType, name: str) -> Callable | None:
    """Backend ``be``'s optional hook ``name``, or the contract's stand-in (None for train_epoch)."""
    if has_hook(be, name):
        return getattr(be, name)
    return HOOKS[name].default


def missing(be: ModuleType) -> list[str]:
    """The required names backend module ``be`` lacks (empty when it keeps the contract)."""
    absent = [name for name in REQUIRED if not callable(getattr(be, name, None))]
    if not isinstance(getattr(be, "NAME", None), str):
        absent.insert(0, "NAME")
    return absent
