"""When the compiled backends' fused epoch runs on a thread team of its own, and what fit holds meanwhile.

With the BLAS's threads (the old way), everything between two matrix products (gathering the
batch, the sparse-input test, activations, the update) ran on one core while the BLAS's other
threads waited, spinning.  A team splits the whole epoch instead: each thread owns a slice of every
batch's rows (forward pass, loss, deltas) and of every parameter (gradient, update) and calls a
single-threaded BLAS on its slices.  The Cython backend holds one OpenMP team for the epoch with
barriers between steps (kernels/cython/_epoch.pyx); the Numba backend opens a ``prange`` over the
threads for each step (kernels/numba_cpu.py).
"""
from __future__ import annotations

import contextlib

from fastnn.kernels import blas, codes

# A team pays once a batch carries enough work: (batch + 1) x (the network's weights) multiply-adds,
# the products plus the update.  Below it the synchronisation costs more than the split saves: 2^18
# lies between the small networks where a Cython team lost and those where it won
# (`python benchmarks/experiments/team.py --small` measures both sides; its results are in
# benchmarks/results/).  This is Cython's threshold; Numba's is higher (kernels/numba_cpu.py).
MIN_WORK = 2 ** 18


def work(spec, batch_size: int) -> int:
    """(batch + 1) x the number of weights: a batch's multiply-adds, its update included."""
    return (batch_size + 1) * sum(a * b for a, b in zip(spec.sizes[:-1], spec.sizes[1:]))


def size(spec, batch_size: int, threads: int, min_work: int = MIN_WORK) -> int:
    """Threads of the fused epoch's team: ``threads`` when the work pays and the BLAS can be held to one thread.

    PReLU networks stay on one thread (the slope's gradient is a sum over the batch's rows).
    """
    if (threads < 2 or work(spec, batch_size) < min_work or codes.PRELU in spec.acts
            or blas.thread_control() is None):
        return 1
    return threads


def blas_held(team: int):
    """The BLAS on one thread while a team of ``team`` threads runs (each calls it on its own slice); else nothing.

    The backends' fused epochs hold it for one epoch, and fastnn.fit for all of them (each backend's
    ``fit_scope``): otherwise each validation pass between epochs, on the BLAS's own threads, would
    leave an OpenBLAS worker spinning (about 0.1 s, OpenBLAS's default) into the next epoch, on the
    cores the team needs.  The BLAS thread count is restored on leaving.
    """
    return blas.single_threaded() if team > 1 else contextlib.nullcontext(False)
