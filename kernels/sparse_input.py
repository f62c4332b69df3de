"""The sparse-input path of the fused epochs (Numba and Cython): its threshold and buffers, in one place.

A batch whose input has at most ``SPARSE_MAX_FILL`` of its columns nonzero runs the first layer's two
products on those columns only (kernels/README.md, "Sparse inputs in the fused epochs").  Both fused
epochs take the buffers below in this order, so the two backends cannot drift apart.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

SPARSE_MAX_FILL = 0.9  # compact the input when at most this fraction of its columns is nonzero; 0: never


class SparseBuffers(NamedTuple):
    """The sparse path's buffers and threshold, the record both fused epochs take (fields: ``buffers``)."""
    flags: np.ndarray
    cols: np.ndarray
    xc: np.ndarray
    Wc: np.ndarray
    Gc: np.ndarray
    zero_row: np.ndarray
    identity: np.ndarray
    max_cols: int


def buffers(n_in: int, n_1: int, rows: int, dtype) -> SparseBuffers:
    """(flags, cols, xc, Wc, Gc, zero_row, identity, max_cols) for one epoch; max_cols <= 0: always dense.

    flags (n_in,) uint8 and cols (n_in,) int64: the batch's nonzero columns; xc (rows * n_in,): the
    compacted batch; Wc, Gc (n_in * n_1,): the gathered rows of W_1 and of dW_1; zero_row (n_1,): the
    gradient of a row outside the batch's columns; identity: 0..rows-1, the row numbers of the batch buffer.
    """
    max_cols = int(SPARSE_MAX_FILL * n_in)
    return SparseBuffers(np.zeros(n_in, dtype=np.uint8), np.zeros(n_in, dtype=np.int64),
                         np.empty(rows * n_in, dtype=dtype), np.empty(n_in * n_1, dtype=dtype),
                         np.empty(n_in * n_1, dtype=dtype), np.zeros(n_1, dtype=dtype),
                         np.arange(rows, dtype=np.int64), max_cols)
