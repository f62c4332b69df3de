"""The team that adapts to the machine (kernels/team.py, ``Adaptive``): each epoch times a few batches
at each team size and trains the rest at the fastest.

The chunked epoch must give the weights a single call gives (bit for bit when every chunk runs on the
same team, to the team split's rounding otherwise), and on a real machine the choice must follow the
load: one thread when every core is busy with other processes, the whole team when idle.
"""
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import fastnn
from fastnn import backends, engine
from fastnn.kernels import blas, team

TEAMED = [name for name in ("numba", "cython") if name in backends.available()]
pytestmark = pytest.mark.skipif(not TEAMED, reason="no compiled CPU backend is installed")


def test_fastest_prefers_fewer_threads_unless_clearly_faster():
    assert team.fastest({1: 1.0, 2: 0.62}) == 2  # an idle 2-core machine
    assert team.fastest({1: 1.0, 2: 2.7}) == 1  # a busy one
    assert team.fastest({1: 1.0, 2: 0.95}) == 1  # a tie goes to one thread
    assert team.fastest({1: 1.0, 2: 0.6, 4: 0.58}) == 2  # 4 threads are not 10% faster than 2
    assert team.fastest({1: 1.0, 2: 0.6, 4: 0.4}) == 4
    assert team.candidates(2) == [1, 2] and team.candidates(8) == [1, 4, 8] and team.candidates(1) == [1]


def test_combine_adds_chunks_up():
    a = team.EpochStats(loss_sum=1.0, correct=2, n_seen=3, grad_norm_sum=np.array([1.0, 2.0]), n_batches=1,
                        batch_loss=np.array([0.5]))
    b = team.EpochStats(loss_sum=2.0, correct=1, n_seen=4, grad_norm_sum=np.array([0.5, 0.5]), n_batches=2,
                        diverged=True, batch_loss=np.array([0.25, 0.75]))
    c = team.combine([a, b])
    assert (c.loss_sum, c.correct, c.n_seen, c.n_batches, c.diverged) == (3.0, 3, 7, 3, True)
    np.testing.assert_array_equal(c.grad_norm_sum, [1.5, 2.5])
    np.testing.assert_array_equal(c.batch_loss, [0.5, 0.25, 0.75])


def _problem(seed=0, n=1000, dtype="float64"):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 20)).astype(dtype)
    y = rng.integers(0, 4, n)
    return X, y


def _fused(name, adaptive: team.Adaptive | None, threads: int | None, dropout=0.2, momentum=0.9):
    """(weights, stats) of one fused epoch, through Adaptive or as a single call with ``threads``."""
    model = fastnn.MLP([20, 16, 12, 4], activation="tanh", dropout=dropout, dtype="float64", seed=3, backend=name)
    X, y = _problem()
    be, spec = model._be, model._spec
    Y = np.eye(4)[y]
    ws = engine.Workspace(be, spec, 32, training=True)
    params = engine.Params([w.copy() for w in model.weights], [b.copy() for b in model.biases],
                           [a.copy() for a in model.alphas])
    velocity = engine.Params(*[[np.zeros_like(a) for a in g] for g in (params.W, params.b, params.alpha)])
    hyper = engine.Hyper(lr=0.05, momentum=momentum, nesterov=False, l1=0.0, l2=1e-4, keep_input=1.0,
                         keep_hidden=1.0 - dropout, seed=model.seed)
    order = np.random.default_rng(1).permutation(len(X))
    epoch = be.train_epoch if adaptive is None else adaptive
    kwargs = {} if adaptive is not None else {"threads": threads}
    stats = epoch(be, spec, params, velocity, ws, X, Y, y, order, 32, hyper, 7, **kwargs)
    return params, stats


class _FakeClock:
    """A clock on which an epoch call of ``threads`` threads takes ``cost[threads]`` seconds per batch."""

    def __init__(self, train_epoch, cost: dict[int, float]):
        self.t, self.train_epoch, self.cost, self.calls = 0.0, train_epoch, cost, []

    def __call__(self) -> float:
        return self.t

    def epoch(self, *args, threads):
        stats = self.train_epoch(*args, threads=threads) if self.train_epoch else _stats(args[8], args[9])
        self.calls.append((threads, stats.n_batches))
        self.t += self.cost[threads] * stats.n_batches
        return stats


def _stats(rows, batch_size):
    n = -(-len(rows) // batch_size)
    return team.EpochStats(n_seen=len(rows), n_batches=n, grad_norm_sum=np.zeros(1), batch_loss=np.zeros(n))


def _epoch_on(adaptive, n_rows=400, batch_size=8):
    return adaptive(None, None, None, None, None, None, None, None, np.arange(n_rows), batch_size, None, 0)


def test_probes_then_trains_on_the_fastest_and_rechecks_later():
    clock = _FakeClock(None, {1: 1e-3, 2: 0.6e-3})  # an idle 2-core machine: seconds per batch
    adaptive = team.Adaptive(clock.epoch, full=2, probe_batches=4, clock=clock)
    _epoch_on(adaptive)  # 50 batches: 1 + 4 at one thread, 1 (waking the team) + 4 at two, the other 40 at two
    assert clock.calls == [(1, 1), (1, 4), (2, 1), (2, 4), (2, 40)] and adaptive.chosen == [2]
    assert adaptive.probed == [pytest.approx({1: 1e-3, 2: 0.6e-3})]
    clock.calls.clear()
    _epoch_on(adaptive)  # within the recheck interval: no probes
    assert clock.calls == [(2, 50)] and adaptive.chosen == [2, 2]
    clock.cost[2] = 3e-3  # a neighbour starts: two threads now take 5x longer than probed
    clock.calls.clear()
    _epoch_on(adaptive)  # this epoch still runs on two threads, and notices
    _epoch_on(adaptive)  # the next one probes: two threads give up after two single batches
    assert clock.calls == [(2, 50), (1, 1), (1, 4), (2, 1), (2, 1), (1, 43)] and adaptive.chosen == [2, 2, 2, 1]
    assert adaptive.probed[-1] == pytest.approx({1: 1e-3, 2: 3e-3})
    clock.t += team.RECHECK_MAX_S  # long after: the next epoch probes again, and the neighbour has gone
    clock.cost[2] = 0.6e-3
    clock.calls.clear()
    _epoch_on(adaptive)
    assert clock.calls == [(1, 1), (1, 4), (2, 1), (2, 4), (2, 40)] and adaptive.chosen[-1] == 2


def test_a_call_s_fixed_cost_does_not_drop_a_faster_team():
    """Each call costs 1.2 ms besides its batches (the Numba backend's typed lists); a batch 0.35 ms on one
    thread and 0.25 ms on two.  The team's single-batch calls (1.45 ms) are compared with one thread's
    single-batch call (1.55 ms), not with its per-batch time in a whole probe (0.5 ms), so the team stays."""
    cost = {1: 0.35e-3, 2: 0.25e-3}
    clock = _FakeClock(None, cost)
    plain = clock.epoch

    def epoch(*args, threads):
        stats = plain(*args, threads=threads)
        clock.t += 1.2e-3  # the call's own cost
        return stats

    adaptive = team.Adaptive(epoch, full=2, probe_batches=8, clock=clock)
    _epoch_on(adaptive, n_rows=800)  # 100 batches
    assert clock.calls[:4] == [(1, 1), (1, 8), (2, 1), (2, 8)] and adaptive.chosen == [2]


@pytest.mark.parametrize("name", TEAMED)
@pytest.mark.parametrize("winner", [1, 2])
def test_chunked_epoch_gives_the_single_call_weights(name, winner):
    """Probes of 2 batches at 1 and 2 threads, then the rest at the winner: bit for bit the weights of
    one call at the winner's size when the winner is the only size (full = winner), and within the team
    split's rounding of it otherwise; dropout masks, batch losses and counts line up."""
    if blas.thread_control() is None:
        pytest.skip("fastnn cannot set this BLAS's thread count: no team")
    be = backends.get(name)
    clock = _FakeClock(be.train_epoch, {winner: 1.0, 3 - winner: 1.5})
    adaptive = team.Adaptive(clock.epoch, full=2, probe_batches=2, clock=clock)
    got, stats = _fused(name, adaptive, None)
    assert adaptive.chosen == [winner] and set(adaptive.probed[0]) == {1, 2}
    want, want_stats = _fused(name, None, winner)
    assert stats.n_batches == want_stats.n_batches == 32 and stats.n_seen == want_stats.n_seen == 1000
    assert stats.correct == want_stats.correct
    np.testing.assert_allclose(stats.batch_loss, want_stats.batch_loss, rtol=1e-9)
    for g, w in zip(got.W + got.b, want.W + want.b):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12)
    # every chunk on one team size: exactly the single call
    same = team.Adaptive(be.train_epoch, full=1, probe_batches=2)
    exact, _ = _fused(name, same, None)
    one, _ = _fused(name, None, 1)
    for g, w in zip(exact.W + exact.b, one.W + one.b):
        np.testing.assert_array_equal(g, w)


def test_short_epochs_reuse_the_last_choice():
    clock = _FakeClock(None, {1: 1.0, 2: 0.6})
    adaptive = team.Adaptive(clock.epoch, full=2, probe_batches=4, clock=clock)
    _epoch_on(adaptive, n_rows=80)  # 10 batches of 8: fewer than (2 sizes + 2) x 4
    assert clock.calls == [(2, 10)] and adaptive.chosen == [2]
    adaptive.chosen.append(1)
    _epoch_on(adaptive, n_rows=80)
    assert clock.calls[-1] == (1, 10)


# --------------------------------------------------------------------------- on the real machine


SPIN = "import time\nend = time.time() + 60\nwhile time.time() < end:\n    pass\n"  # 60 s at most


def _threads_chosen(name: str, fits: int = 3, epochs: int = 3) -> list[int]:
    """Threads per epoch over ``fits`` fits (each probes in its first epoch and reuses the choice after)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(6144, 784)).astype(np.float32)  # dense: every batch takes the full product
    y = rng.integers(0, 10, len(X))
    model = fastnn.MLP([784, 256, 128, 10], seed=0, backend=name, dtype="float32")
    model.fit(X[:512], y[:512], epochs=1, batch_size=128, verbose=0)  # compile, load from the cache
    return [t for _ in range(fits) for t in model.fit(X, y, epochs=epochs, batch_size=128, lr=0.01, verbose=0).threads]


def _team_beats_one_thread(name: str, monkeypatch, below: float = 0.8) -> bool:
    """Whether, right now, a full-team epoch (FASTNN_ADAPTIVE_TEAM=0) takes under ``below`` of a
    one-thread epoch: the best of 3 each, same network and data as _threads_chosen."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(6144, 784)).astype(np.float32)
    y = rng.integers(0, 10, len(X))
    model = fastnn.MLP([784, 256, 128, 10], seed=0, backend=name, dtype="float32")
    best = {}
    full = fastnn.get_num_threads()
    with monkeypatch.context() as m:
        m.setenv("FASTNN_ADAPTIVE_TEAM", "0")
        for threads in (full, 1):
            fastnn.set_num_threads(threads)
            try:
                best[threads] = min(model.fit(X, y, epochs=1, batch_size=128, lr=0.01, verbose=0).epoch_time[0]
                                    for _ in range(3))
            finally:
                fastnn.set_num_threads(full)
    return best[full] < below * best[1]


needs_two_cores = pytest.mark.skipif((os.cpu_count() or 1) < 2 or fastnn.get_num_threads() < 2,
                                     reason="a team needs two threads and two cores")


@needs_two_cores
@pytest.mark.slow  # 10-25 s each: real epochs on a loaded machine
@pytest.mark.parametrize("name", TEAMED)
def test_a_busy_machine_trains_on_one_thread(name):
    """Every core but one busy with a CPU-bound process (started and stopped here, 60 s at most): one
    thread has a core to itself, while a team's slowest thread shares one with a neighbour (2-40x
    slower batches), so the epochs choose one thread.  (With every core busy even one thread shares,
    and the two sizes come closer than timing tells apart reliably.)"""
    if blas.thread_control() is None:
        pytest.skip("fastnn cannot set this BLAS's thread count: no team")
    neighbours = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(max(1, os.cpu_count() - 1))]
    try:
        time.sleep(0.5)  # the neighbours are running
        chosen = _threads_chosen(name)
    finally:
        for p in neighbours:
            p.kill()
        for p in neighbours:
            p.wait(5)
    assert chosen.count(1) >= 2 * len(chosen) // 3, f"{name}: threads per epoch {chosen} on a busy machine"


@needs_two_cores
@pytest.mark.slow
@pytest.mark.parametrize("name", TEAMED)
def test_an_idle_machine_trains_on_the_whole_team(name, monkeypatch):
    """The premise is checked first, apart from the adaptive code: on this shared host a neighbour
    outside the process can make the team no faster than one thread for seconds at a time (fixed-size
    epochs then showed it), and then one thread is the right choice, not a failure."""
    if blas.thread_control() is None:
        pytest.skip("fastnn cannot set this BLAS's thread count: no team")
    for _ in range(4):
        if _team_beats_one_thread(name, monkeypatch):
            break
        time.sleep(5)
    else:
        pytest.skip("the host is busy: fixed-size team epochs were not faster than one thread in 4 tries")
    chosen = _threads_chosen(name)
    full = backends.get(name).team_size(fastnn.MLP([784, 256, 128, 10], backend=name, dtype="float32")._spec, 128)
    assert chosen.count(full) >= 2 * len(chosen) // 3, \
        f"{name}: threads per epoch {chosen} on an idle machine (team of {full})"


@needs_two_cores
@pytest.mark.parametrize("setting", ["0", "1"])
def test_fit_can_be_told_not_to_adapt(monkeypatch, setting):
    if blas.thread_control() is None:
        pytest.skip("fastnn cannot set this BLAS's thread count: no team")
    monkeypatch.setenv("FASTNN_ADAPTIVE_TEAM", setting)
    X = np.random.default_rng(0).normal(size=(4096, 784)).astype(np.float32)
    y = np.arange(len(X)) % 10
    model = fastnn.MLP([784, 256, 128, 10], backend=TEAMED[0], dtype="float32", seed=0)
    threads = model.fit(X, y, epochs=1, batch_size=128, verbose=0).threads
    assert (threads == []) if setting == "0" else (len(threads) == 1)
