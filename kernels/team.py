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
import math
import time
from collections.abc import Callable

import numpy as np

from fastnn.kernels import blas, codes
from fastnn.kernels.contract import EpochStats

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


# --------------------------------------------------------------------------- a team that adapts to the machine

# A team is only as fast as its slowest thread: on a machine that is busy with other work, one of
# them shares a core with a neighbour, the others wait for it at every step, and the epoch runs
# slower than on one thread, while on an idle machine the team beats one thread
# (benchmarks/results/results-2026-12-04-busy.md has both).  Which case holds is only known by
# timing, and it changes while a fit runs, so each epoch starts with a few batches at each
# candidate team size and trains the rest at the fastest.  The probes are batches of the epoch
# itself (nothing is trained twice) and the results are those of a single call up to the rounding
# of the team split (parity at 1e-9).
PROBE_BATCHES = 8  # batches timed per candidate team size, each epoch
# A larger team is kept only when its batches take under this fraction of a smaller team's time: a
# tie goes to fewer threads, which leave the cores to the rest of the machine.
LARGER_TEAM_BELOW = 0.9
# On a busy machine a team's batch can take many times one thread's (its threads wait out each other's
# time slices at every barrier), so a larger team is first tried on single batches and dropped when
# two in a row take over this many times the best smaller team's: the probe then costs two batches.
# (One is not enough: the first batch after the one-thread probe wakes the team's sleeping threads.)
# A team that passes is then timed on PROBE_BATCHES more batches, without the waking ones, as one
# thread is after a single batch of its own (the yardstick's).
GIVE_UP_ABOVE = 2.0
SINGLE_BATCH_TRIES = 2
# Between probes an epoch trains on the last choice.  The next probe comes RECHECK_FIRST_S after a
# probe that changed the choice, twice as long after each that confirmed it (up to RECHECK_MAX_S), and
# at once, in the next epoch, when an epoch's batches took over SLOWER_THAN_PROBED times what the probe
# measured (the machine got busier, or quieter work left the choice behind).
RECHECK_FIRST_S = 1.0
RECHECK_MAX_S = 16.0
SLOWER_THAN_PROBED = 1.3


def combine(parts: list[EpochStats]) -> EpochStats:
    """The EpochStats of consecutive chunks of one epoch, as one epoch's."""
    return EpochStats(loss_sum=sum(s.loss_sum for s in parts), correct=sum(s.correct for s in parts),
                      n_seen=sum(s.n_seen for s in parts),
                      grad_norm_sum=np.sum([s.grad_norm_sum for s in parts], axis=0),
                      n_batches=sum(s.n_batches for s in parts), diverged=any(s.diverged for s in parts),
                      batch_loss=np.concatenate([np.asarray(s.batch_loss, dtype=np.float64) for s in parts]))


def candidates(full: int) -> list[int]:
    """Team sizes worth probing: all threads, half of them, one."""
    return sorted({full, max(1, full // 2), 1})


def fastest(per_batch: dict[int, float], below: float = LARGER_TEAM_BELOW) -> int:
    """The team size to train with, from seconds per batch at each size: a larger team only where it
    takes under ``below`` times the time of the best smaller one."""
    best = min(per_batch)
    for size in sorted(per_batch):
        if per_batch[size] < below * per_batch[best]:
            best = size
    return best


class Adaptive:
    """A backend's fused ``train_epoch`` that picks its team size each epoch from timed probes.

    Called like the epoch it wraps (kernels/contract.py); ``chosen`` holds the team size each epoch
    trained with, ``probed`` the seconds per batch each probe measured.  Epochs too short to probe,
    and those between probes, reuse the last choice.
    """

    def __init__(self, train_epoch: Callable[..., EpochStats], full: int, probe_batches: int = PROBE_BATCHES,
                 clock: Callable[[], float] = time.perf_counter):
        self.train_epoch, self.full, self.probe_batches, self.clock = train_epoch, full, probe_batches, clock
        self.chosen: list[int] = []
        self.probed: list[dict[int, float]] = []  # per probing epoch: seconds per batch at each size
        self.expected = 0.0  # seconds per batch of the chosen size, as last probed
        self.next_probe_at = -math.inf
        self.interval = RECHECK_FIRST_S

    def __call__(self, be, spec, p, velocity, ws, X, Y, labels, order, batch_size, hyper, step0) -> EpochStats:
        def run(rows, step, size):
            return self.train_epoch(be, spec, p, velocity, ws, X, Y, labels, rows, batch_size, hyper, step,
                                    threads=size)

        sizes = candidates(self.full)
        n_batches = -(-len(order) // batch_size)
        if len(sizes) < 2 or n_batches < (len(sizes) + 2) * self.probe_batches:
            team = self.chosen[-1] if self.chosen else self.full
            self.chosen.append(team)
            return run(order, step0, team)
        if self.chosen and self.clock() < self.next_probe_at:
            team = self.chosen[-1]
            self.chosen.append(team)
            t0 = self.clock()
            stats = run(order, step0, team)
            if (self.clock() - t0) / n_batches > SLOWER_THAN_PROBED * self.expected:
                self.next_probe_at, self.interval = -math.inf, RECHECK_FIRST_S
            return stats
        parts, per_batch, start, step = [], {}, 0, step0

        def timed(size, batches):
            nonlocal start, step
            t0 = self.clock()
            parts.append(run(order[start:start + batches * batch_size], step, size))
            start, step = start + batches * batch_size, step + batches
            return self.clock() - t0

        # A larger team's first batches are timed one call each, so the yardstick is one thread's time
        # for a call of one batch too: a call costs more than its batch (the Numba backend builds its
        # typed lists on every call, which can take longer than a batch of 32), and against one
        # thread's whole-probe time per batch a faster team could read as twice as slow and be dropped.
        single: dict[int, float] = {}  # seconds of a call of one batch, per team size
        for team in sizes:  # one thread first: the cheap probe, and the yardstick for the others
            if single:
                yardstick, singles = GIVE_UP_ABOVE * min(single.values()), []
                while len(singles) < SINGLE_BATCH_TRIES:
                    singles.append(timed(team, 1))
                    if singles[-1] <= yardstick or parts[-1].diverged:
                        break
                single[team] = min(singles)
                if min(singles) > yardstick and not parts[-1].diverged:
                    per_batch[team] = min(singles)
                    continue
            else:
                single[team] = timed(team, 1)
            # then a whole probe on warm threads: the single batches woke the team's
            per_batch[team] = (single[team] if parts[-1].diverged
                               else timed(team, self.probe_batches) / self.probe_batches)
            if parts[-1].diverged:  # the epoch stops here, as a single call would
                self.chosen.append(team)
                self.probed.append(per_batch)
                return combine(parts)
        team = fastest(per_batch)
        confirmed = bool(self.chosen) and self.chosen[-1] == team
        self.interval = min(2 * self.interval, RECHECK_MAX_S) if confirmed else RECHECK_FIRST_S
        self.next_probe_at, self.expected = self.clock() + self.interval, per_batch[team]
        self.chosen.append(team)
        self.probed.append(per_batch)
        parts.append(run(order[start:], step, team))
        return combine(parts)
