"""Epochs on dense inputs and on wide networks: fastnn against one thread, PyTorch and JAX, round-robin.

    python benchmarks/experiments/dense.py [--rows 60000] [--batches 32,128,512] [--rounds 5]
    python benchmarks/experiments/dense.py --wide [--rows 20000] [--widths 256,1024,2048] [--batch 128]

MNIST's first layer is sparse (a fifth of the pixels are nonzero), and fastnn's fused epochs skip the
zero columns; standardised or random features have none to skip.  This times one epoch of plain SGD
(lr 0.05, ReLU, softmax + cross-entropy, float32) on random standard-normal inputs whose labels are a
random linear function of them (learnable, so every runner's loss falls):

- default mode: 784-256-128-10 at each ``--batches`` size;
- ``--wide``: 784-H-H-10 at ``--batch`` for each ``--widths`` H.

Runners, one epoch each in turn (``--rounds`` times after one warm-up, with fastnn.bench.SETTLE_S of
pause before each so no other library's BLAS threads are still spinning): fastnn's default backend at
its default threads (``fastnn``), the same at one thread (``fastnn 1t``), ``--backends`` (other fastnn
backends), and, when installed, PyTorch's loop (``torch``, as in ``fastnn bench``) and JAX's whole
epoch compiled as ``jax.jit`` over a ``jax.lax.scan`` of SGD steps (``jax``; it drops the last partial
batch, so it trains on up to batch-1 fewer rows).  Prints each runner's median, its GFLOP/s over the
dense flop count, the percentage of the machine's float32 GEMM rate (``fastnn.bench.gemm_rate``, as
``fastnn bench`` measures it) and each peer's time over fastnn's.
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

import fastnn
from fastnn import bench

LR = bench.EPOCH_LR


def dense_data(rows: int, n_in: int = 784, n_classes: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Standard-normal float32 rows; labels argmax(X @ T) for a random T, so a network can learn them."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, n_in), dtype=np.float32)
    y = np.argmax(X @ rng.standard_normal((n_in, n_classes), dtype=np.float32), axis=1).astype(np.int64)
    return X, y


def fastnn_runner(sizes: list[int], X, y, batch: int, backend: str | None = None,
                  threads: int | None = None) -> Callable[[], float]:
    """One ``fit(epochs=1)`` of a fastnn MLP (at ``threads`` threads if given); returns the epoch's loss."""
    model = fastnn.MLP(sizes, activation="relu", seed=0, backend=backend)

    def run() -> float:
        saved = fastnn.get_num_threads()
        if threads is not None:
            fastnn.set_num_threads(threads)
        try:
            return float(model.fit(X, y, epochs=1, batch_size=batch, lr=LR, verbose=0).loss[-1])
        finally:
            fastnn.set_num_threads(saved)
    return run


def torch_runner(sizes: list[int], X, y, batch: int) -> Callable[[], float] | None:
    """PyTorch's step-by-step loop over the same network and optimiser (fastnn bench's peer), on fastnn's
    thread count; returns the epoch's training accuracy."""
    peer = bench.torch_epoch(sizes, X, y, batch, lr=LR)
    return None if peer is None else peer[0]


def jax_runner(sizes: list[int], X, y, batch: int) -> Callable[[], float] | None:
    """A whole epoch compiled by XLA: jit over lax.scan of SGD steps, shuffled by a gather inside the jit."""
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    rng = np.random.default_rng(0)
    params = [(jnp.asarray(rng.uniform(-1, 1, (a, b)).astype(np.float32) * np.float32(np.sqrt(6 / a))),
               jnp.zeros(b, jnp.float32)) for a, b in zip(sizes[:-1], sizes[1:])]
    Xj, yj = jnp.asarray(X), jnp.asarray(y.astype(np.int32))
    n_batches = len(X) // batch

    def loss_fn(p, xb, yb):
        h = xb
        for W, b in p[:-1]:
            h = jax.nn.relu(h @ W + b)
        W, b = p[-1]
        logp = jax.nn.log_softmax(h @ W + b)
        return -jnp.mean(jnp.take_along_axis(logp, yb[:, None], axis=1))

    def step(p, xy):
        loss, g = jax.value_and_grad(loss_fn)(p, *xy)
        return jax.tree_util.tree_map(lambda w, d: w - LR * d, p, g), loss

    @jax.jit
    def epoch(p, key):
        perm = jax.random.permutation(key, len(X))[:n_batches * batch]
        xs = Xj[perm].reshape(n_batches, batch, -1)
        ys = yj[perm].reshape(n_batches, batch)
        p, losses = jax.lax.scan(step, p, (xs, ys))
        return p, jnp.mean(losses)

    state = {"p": params, "key": jax.random.PRNGKey(0)}

    def run() -> float:
        state["key"], sub = jax.random.split(state["key"])
        state["p"], loss = epoch(state["p"], sub)
        return float(loss.block_until_ready())
    return run


def round_robin(runners: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """Median seconds of each runner, one call each in turn after a warm-up call each (JIT compiles)."""
    times: dict[str, list[float]] = {name: [] for name in runners}
    for name, run in runners.items():
        value = run()  # fastnn's and JAX's loss, PyTorch's accuracy
        if not np.isfinite(value):
            raise RuntimeError(f"{name}: the warm-up epoch returned {value}")
    for _ in range(rounds):
        for name, run in runners.items():
            time.sleep(bench.SETTLE_S)
            t0 = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def _runners(sizes, X, y, batch, backends: list[str], peers: list[str]) -> dict[str, Callable[[], float]]:
    runners: dict[str, Callable[[], float]] = {"fastnn": fastnn_runner(sizes, X, y, batch)}
    if fastnn.get_num_threads() > 1:
        runners["fastnn 1t"] = fastnn_runner(sizes, X, y, batch, threads=1)
    for be in backends:
        runners[f"fastnn {be}"] = fastnn_runner(sizes, X, y, batch, backend=be)
    makers = {"torch": torch_runner, "jax": jax_runner}
    for peer in peers:
        run = makers[peer](sizes, X, y, batch)
        if run is None:
            print(f"({peer} is not installed: no {peer} row)")
        else:
            runners[peer] = run
    return runners


def report(title: str, medians: dict[str, float], gflop: float, gemm: float) -> None:
    """One block: each runner's median, GFLOP/s, % of the GEMM rate, and time over fastnn's."""
    print(title)
    base = medians["fastnn"]
    for name, t in medians.items():
        rate = gflop / t
        ratio = "" if name == "fastnn" else f"  {name}/fastnn {t / base:.2f}"
        print(f"  {name:14s} {t:7.3f} s  {rate:6.1f} GFLOP/s  {100 * rate / gemm:4.0f}% of GEMM{ratio}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--wide", action="store_true", help="784-H-H-10 at --batch for each --widths H")
    p.add_argument("--rows", type=int, default=None, help="rows of random data (60000; --wide: 20000)")
    p.add_argument("--batches", default="32,128,512")
    p.add_argument("--widths", default="256,1024,2048")
    p.add_argument("--batch", type=int, default=128, help="the batch size of --wide")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--backends", default="", help="other fastnn backends to time too, e.g. numba")
    p.add_argument("--peers", default="torch,jax", help="peers to time when installed ('' for none)")
    p.add_argument("--data", default=None, help=argparse.SUPPRESS)  # the experiment scripts' common flag
    args = p.parse_args(argv)
    backends = [b for b in args.backends.split(",") if b]
    peers = [q for q in args.peers.split(",") if q]
    unknown = set(peers) - {"torch", "jax"}
    if unknown:
        p.error(f"--peers: unknown {sorted(unknown)}; the peers are torch and jax")
    rows = args.rows or (20000 if args.wide else 60000)
    X, y = dense_data(rows)
    gemm = bench.gemm_rate()
    print(f"{bench.cpu_model()}, {fastnn.get_num_threads()} threads, default backend "
          f"{fastnn.backends.default_name()}; float32 GEMM {gemm:.0f} GFLOP/s; {rows} dense rows, "
          f"medians of {args.rounds} round-robin epochs")
    if args.wide:
        for H in (int(w) for w in args.widths.split(",")):
            sizes = [784, H, H, 10]
            med = round_robin(_runners(sizes, X, y, args.batch, backends, peers), args.rounds)
            report(f"784-{H}-{H}-10 batch {args.batch}", med, bench.epoch_gflop(sizes, rows), gemm)
    else:
        sizes = [784, 256, 128, 10]
        for B in (int(b) for b in args.batches.split(",")):
            med = round_robin(_runners(sizes, X, y, B, backends, peers), args.rounds)
            report(f"784-256-128-10 batch {B}", med, bench.epoch_gflop(sizes, rows), gemm)


if __name__ == "__main__":
    main()
