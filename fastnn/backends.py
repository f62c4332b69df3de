"""Backend registry: which kernel modules exist, which are usable here, and how to choose one.

A backend is chosen by name (``MLP(backend="numba")``), else by the ``FASTNN_BACKEND`` environment
variable, else the fastest CPU backend that is available.  ``"cuda"`` is never picked silently.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from fastnn.kernels import config, contract

# name -> (module under fastnn.kernels, is a CPU backend, how to make it available)
_KNOWN: dict[str, tuple[str, bool, str]] = {
    "numpy": ("numpy_ref", True, "always available"),
    "numba": ("numba_cpu", True, "install numba: pip install 'numba>=0.68'"),
    "cython": (
        "cython_cpu",
        True,
        "reinstall fastnn from source with a C compiler so its extensions build: pip install -e .",
    ),
    "cuda": (
        "numba_cuda",
        False,
        "needs an NVIDIA GPU and driver with pip install 'fastnn[cuda]', "
        "or set NUMBA_ENABLE_CUDASIM=1 to run it on the CPU simulator",
    ),
}
# Default preference among CPU backends, fastest first.
_CPU_PREFERENCE = ("cython", "numba", "numpy")

_NOT_IMPLEMENTED = "not implemented in this version of fastnn yet"
_cache: dict[str, ModuleType] = {}
_errors: dict[str, str] = {}
_explained: set[str] = set()  # backends whose error message already says how to fix it


def _load(name: str) -> ModuleType | None:
    """Import a backend module once; remember why it failed if it did."""
    if name in _cache:
        return _cache[name]
    if name in _errors:
        return None
    module_name, _, _ = _KNOWN[name]
    try:
        module = importlib.import_module(f"fastnn.kernels.{module_name}")
        contract.hook(module, "check_available")()  # raises with the reason when e.g. no GPU is present
    except ModuleNotFoundError as exc:
        if exc.name == f"fastnn.kernels.{module_name}":
            _errors[name] = _NOT_IMPLEMENTED
        else:
            _errors[name] = f"{type(exc).__name__}: {exc}"
        return None
    except Exception as exc:  # any import failure makes the backend unavailable
        _errors[name] = f"{type(exc).__name__}: {exc}"
        if getattr(exc, "names_its_fix", False):  # e.g. a bad FASTNN_BLAS: the install hint would mislead
            _explained.add(name)
        return None
    _cache[name] = module
    return module


def known() -> list[str]:
    """Every backend name fastnn knows, available here or not."""
    return list(_KNOWN)


def available() -> list[str]:
    """Names of the backends usable on this machine, in a stable order."""
    return [name for name in _KNOWN if _load(name) is not None]


def unavailable_reasons() -> dict[str, str]:
    """For each unavailable backend: why, and how to fix it."""
    available()
    return {name: _reason(name) for name in _KNOWN if name in _errors}


def _reason(name: str) -> str:
    if _errors[name] == _NOT_IMPLEMENTED or name in _explained:
        return _errors[name]
    return f"{_errors[name]} (fix: {_KNOWN[name][2]})"


def default_name() -> str:
    """FASTNN_BACKEND if set, else the fastest available CPU backend."""
    env = config.get("FASTNN_BACKEND")
    if env:
        return env
    for name in _CPU_PREFERENCE:
        if _load(name) is not None:
            return name
    return "numpy"  # unreachable in practice: the reference has no optional dependencies


def get(name: str | None = None) -> ModuleType:
    """The kernel module of backend ``name`` (None: the default); ValueError if unusable."""
    if name is None:
        name = default_name()
    if not isinstance(name, str) or name not in _KNOWN:
        raise ValueError(
            f"backend {name!r} is unknown; choose one of the available backends: "
            f"{', '.join(available())} (fastnn knows: {', '.join(_KNOWN)})"
        )
    module = _load(name)
    if module is None:
        raise ValueError(
            f"backend {name!r} is not available here: {_reason(name)}. "
            f"Available now: {', '.join(available())}"
        )
    return module
