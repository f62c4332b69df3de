"""The one place where Numba compilation options are set, for every @njit kernel of fastnn.

fastmath: only the flags that keep IEEE special values.  'reassoc' lets LLVM vectorise sums,
'contract' allows fused multiply-add, 'arcp' and 'nsz' are harmless here.  Never 'nnan' or
'ninf' (nor fastmath=True, which implies them): a diverging run must still produce NaN/inf so
the training loop can detect it, and isfinite checks must not be optimised away.

Caching: Numba keys a cached function on its own source file only, so a kernel in numba_cpu.py
that inlines a formula from formulas.py or vecmath.py kept its stale machine code after an edit
of those files (it happened: a test failed on code that no longer existed).  The locators below
add every source the kernels compile (this folder's .py files, kernels/codes.py among them) to the key.
"""
from __future__ import annotations

import os
from pathlib import Path

from numba import njit
from numba.core import caching

FASTMATH = {"reassoc", "contract", "arcp", "nsz"}  # numba wants a plain set
CACHE = True  # compiled machine code is stored beside the sources and reused by later processes


def jit(fn=None, *, parallel: bool = False, inline: str = "never"):
    """``@njit`` with fastnn's settings: cache=True, nogil, the safe fastmath flags."""
    deco = njit(cache=CACHE, nogil=True, fastmath=set(FASTMATH), parallel=parallel, inline=inline)
    return deco if fn is None else deco(fn)


# --------------------------------------------------------------------------- cache freshness

_KERNELS_DIR = Path(__file__).resolve().parent


def sources_stamp(directory: Path = _KERNELS_DIR) -> tuple:
    """(name, mtime_ns, size) of every .py file the compiled kernels are built from: the cache key's second half."""
    files = sorted(directory.glob("*.py"))
    return tuple((f.name, st.st_mtime_ns, st.st_size) for f in files for st in [os.stat(f)])


class _KernelSourcesMixin:
    """A Numba cache locator for fastnn's kernel files whose freshness stamp covers all of their sources."""

    def get_source_stamp(self):
        return super().get_source_stamp(), sources_stamp()

    @classmethod
    def from_function(cls, py_func, py_file):
        if Path(py_file).resolve().parent != _KERNELS_DIR:
            return None  # someone else's function: Numba's own locators
        return super().from_function(py_func, py_file)


class _UserProvided(_KernelSourcesMixin, caching.UserProvidedCacheLocator):
    """NUMBA_CACHE_DIR, when set."""


class _InTree(_KernelSourcesMixin, caching.InTreeCacheLocator):
    """kernels/__pycache__, when writable."""


class _UserWide(_KernelSourcesMixin, caching.UserWideCacheLocator):
    """The user's cache folder, for a read-only install."""


LOCATORS = (_UserProvided, _InTree, _UserWide)
# Numba's list of locators is internal (tested with 0.68); were it ever renamed, caching would still
# work, keyed on each file alone as before.
_locator_classes = getattr(getattr(caching, "CacheImpl", None), "_locator_classes", None)
if isinstance(_locator_classes, list) and not set(LOCATORS) & set(_locator_classes):
    _locator_classes[:0] = LOCATORS
