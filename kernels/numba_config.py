"""The one place where Numba compilation options are set, for every @njit kernel of fastnn.

fastmath: only the flags that keep IEEE special values.  'reassoc' lets LLVM vectorise sums,
'contract' allows fused multiply-add, 'arcp' and 'nsz' are harmless here.  Never 'nnan' or
'ninf' (nor fastmath=True, which implies them): a diverging run must still produce NaN/inf so
the training loop can detect it, and isfinite checks must not be optimised away.
"""
from __future__ import annotations

from numba import njit

FASTMATH = {"reassoc", "contract", "arcp", "nsz"}  # numba wants a plain set
CACHE = True  # compiled machine code is stored beside the sources and reused by later processes


def jit(fn=None, *, parallel: bool = False, inline: str = "never"):
    """``@njit`` with fastnn's settings: cache=True, nogil, the safe fastmath flags."""
    deco = njit(cache=CACHE, nogil=True, fastmath=set(FASTMATH), parallel=parallel, inline=inline)
    return deco if fn is None else deco(fn)
