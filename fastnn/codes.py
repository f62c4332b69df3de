"""The activation and loss codes (a re-export: the table lives in ``fastnn.kernels.codes``)."""
from __future__ import annotations

from fastnn.kernels.codes import *  # noqa: F403
from fastnn.kernels.codes import __all__  # noqa: F401
