"""The benchmark suite: every kernel and a whole training epoch, on every backend, in one report.

One list of cases (:func:`cases`) feeds both ``fastnn bench`` (this module's own timer, no test
framework needed) and the pytest-benchmark suite in ``benchmarks/``, so the two cannot drift.
Every case first checks its result against the NumPy reference on the same inputs: the report
carries the maximum error next to the speed-up, and a fast wrong kernel is flagged, not crowned.

    fastnn bench --quick                   # one size, float32, epoch at batch 128: about a minute
    fastnn bench                           # float32 and float64, batch 32/128/512 epochs
    fastnn bench --compare old.json        # flag kernels that got slower than a saved run
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from fastnn import backends, codes
from fastnn.kernels import contract

LAYERS = [784, 256, 128, 10]


def epoch_gflop(sizes: list[int], rows: int) -> float:
    """Dense GFLOP of one epoch: every layer's forward product and weight gradient, and the input
    delta of every layer but the first (nothing learns from dJ/dX)."""
    products = [a * b for a, b in zip(sizes[:-1], sizes[1:])]
    return 2 * rows * (2 * sum(products) + sum(products[1:])) / 1e9


GFLOP_PER_EPOCH = epoch_gflop(LAYERS, 60000)
EPOCH_LR = 0.05
EVAL_ROWS = 5000  # an epoch case's result(): [training accuracy, loss on the first EVAL_ROWS rows after the epoch]


@dataclass
class Case:
    """One thing to time: ``run()`` is timed; ``result()`` (after one run) is compared to the reference."""

    group: str  # what is computed, at which size and dtype: rows of the report
    backend: str  # numpy, numba, cython, cuda, or a peer: torch, sklearn
    run: Callable[[], object]
    result: Callable[[], np.ndarray | float | None] = lambda: None
    sync: Callable[[], None] = lambda: None  # waits for a device (CUDA) inside the timed region


@dataclass
class Record:
    """The measured outcome of one case."""

    group: str
    backend: str
    median_s: float
    iqr_s: float
    rounds: int
    first_call_s: float  # includes compilation on a cold cache
    max_rel_err: float | None = None  # against numpy on the same inputs
    speedup: float | None = None  # numpy median / this median, same group
    extra: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- the cases


def _kernel_cases(be_name: str, dtype: np.dtype, B: int, n_in: int, n_out: int) -> Iterator[Case]:
    """Cases for every kernel of one backend at one layer size."""
    be = backends.get(be_name)
    rng = np.random.default_rng(0)
    dt = np.dtype(dtype)
    size = f"{B}x{n_in}->{n_out} {dt.name}"
    a_prev = be.to_device(rng.random((B, n_in)).astype(dt))
    W = be.to_device((rng.standard_normal((n_in, n_out)) * 0.05).astype(dt))
    b = be.to_device(np.zeros(n_out, dt))
    z_host = rng.standard_normal((B, n_out)).astype(dt)
    z = be.to_device(z_host)
    no_alpha = be.to_device(np.zeros(0, dt))
    # alpha_j of the parametrised activations, at their defaults (LeakyReLU's slope, ELU's alpha)
    alphas = {codes.LEAKY_RELU: be.to_device(np.full(n_out, codes.LEAKY_SLOPE, dt)),
              codes.ELU: be.to_device(np.full(n_out, codes.ELU_ALPHA, dt))}
    out = be.empty((B, n_out), dt)
    host = be.to_host

    for method in ("blas", "blocked"):
        yield Case(f"matmul {method} {size}", be_name, lambda m=method: be.matmul(a_prev, W, out, method=m),
                   lambda: host(out).copy())
    yield Case(f"linear_forward {size}", be_name, lambda: be.linear_forward(a_prev, W, b, out),
               lambda: host(out).copy())
    for name, code in [*codes.ACTIVATIONS.items(), ("softmax", codes.SOFTMAX)]:
        if name in ("identity", "prelu"):
            continue
        alpha = alphas.get(code, no_alpha)
        yield Case(f"activate {name} {size}", be_name, lambda c=code, al=alpha: be.activate(c, z, al, out),
                   lambda: host(out).copy())
        if name != "softmax":
            yield Case(f"activation_derivative {name} {size}", be_name,
                       lambda c=code, al=alpha: be.activation_derivative(c, z, al, out), lambda: host(out).copy())
    delta_next = be.to_device(rng.standard_normal((B, n_in)).astype(dt))
    W_next = be.to_device((rng.standard_normal((n_out, n_in)) * 0.05).astype(dt))
    yield Case(f"propagate_delta relu {size}", be_name,
               lambda: be.propagate_delta(delta_next, W_next, z, codes.RELU, no_alpha, out, no_alpha),
               lambda: host(out).copy())
    dW, db = be.empty((n_in, n_out), dt), be.empty((n_out,), dt)
    yield Case(f"param_grads l1+l2 {size}", be_name, lambda: be.param_grads(a_prev, z, W, 1e-5, 1e-4, dW, db),
               lambda: np.concatenate([host(dW).ravel(), host(db)]))
    W_upd, v = be.to_device(host(W).copy()), be.to_device(np.zeros((n_in, n_out), dt))
    W0 = host(W).copy()

    def sgd():
        be.assign(W_upd, W0)  # the same step every round, so the result is comparable
        be.assign(v, np.zeros_like(W0))
        be.sgd_update(W_upd, W, v, 0.01, 0.9, False)

    yield Case(f"sgd_update momentum {n_in}x{n_out} {dt.name}", be_name, sgd, lambda: host(W_upd).copy())
    drop = be.empty((B, n_out), dt)

    def dropout():
        be.assign(drop, z_host)
        be.dropout(drop, 0.5, 1, 2, 1)

    yield Case(f"dropout {B}x{n_out} {dt.name}", be_name, dropout, lambda: host(drop).copy())


def _epoch_case(be_name: str, X: np.ndarray, y: np.ndarray, batch: int, dtype: str = "float32") -> Case:
    import fastnn

    model = fastnn.MLP(LAYERS, activation="relu", seed=0, backend=be_name, dtype=dtype)
    holder: dict = {}

    def run():
        holder["h"] = model.fit(X, y, epochs=1, batch_size=batch, lr=EPOCH_LR, verbose=0)

    return Case(f"epoch {'-'.join(map(str, LAYERS))} batch {batch} {dtype}", be_name, run,
                lambda: np.array([holder["h"].accuracy[-1], model.evaluate(X[:EVAL_ROWS], y[:EVAL_ROWS])["loss"]]))


def torch_epoch(sizes: list[int], X: np.ndarray, y: np.ndarray, batch: int,
                lr: float = EPOCH_LR) -> tuple[Callable[[], float], Callable[[int], float]] | None:
    """PyTorch's step-by-step loop over fastnn's network (ReLU hidden layers, softmax + cross-entropy) and
    plain SGD, on fastnn's thread count: (run, loss_on) or None without PyTorch.  run() trains one
    shuffled epoch and returns its training accuracy; loss_on(rows) is the loss on the first rows."""
    try:
        import torch
    except ImportError:
        return None
    from fastnn.cpu import get_num_threads

    torch.manual_seed(0)
    torch.set_num_threads(get_num_threads())
    Xt = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
    layers: list = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    net = torch.nn.Sequential(*layers[:-1])
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()

    def run() -> float:
        perm = torch.randperm(len(Xt))
        correct = 0
        for s in range(0, len(Xt), batch):
            idx = perm[s:s + batch]
            opt.zero_grad()
            out = net(Xt[idx])
            loss = loss_fn(out, yt[idx])
            loss.backward()
            opt.step()
            correct += int((out.argmax(1) == yt[idx]).sum())
        return correct / len(Xt)

    def loss_on(rows: int) -> float:
        with torch.no_grad():
            return float(loss_fn(net(Xt[:rows]), yt[:rows]))

    return run, loss_on


def _torch_epoch_case(X: np.ndarray, y: np.ndarray, batch: int) -> Case | None:
    peer = torch_epoch(LAYERS, X, y, batch)
    if peer is None:
        return None
    train, loss_on = peer
    holder: dict = {}

    def run():  # the same network, loop and optimiser as fastnn's epoch
        holder["acc"] = train()

    return Case(f"epoch {'-'.join(map(str, LAYERS))} batch {batch} float32", "torch", run,
                lambda: np.array([holder["acc"], loss_on(EVAL_ROWS)]))


def _sklearn_epoch_case(X: np.ndarray, y: np.ndarray, batch: int) -> Case | None:
    try:
        from sklearn.neural_network import MLPClassifier
    except ImportError:
        return None
    import warnings

    holder: dict = {}

    def run():  # one epoch of scikit-learn's own SGD MLP, same sizes
        clf = MLPClassifier(hidden_layer_sizes=(256, 128), solver="sgd", batch_size=batch,
                            learning_rate_init=EPOCH_LR, momentum=0.0, max_iter=1, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning after one epoch is the point
            clf.fit(X, y)
        holder["acc"] = clf.score(X[:5000], y[:5000])
        holder["clf"] = clf

    def result():
        from sklearn.metrics import log_loss

        clf = holder["clf"]
        loss = log_loss(y[:EVAL_ROWS], clf.predict_proba(X[:EVAL_ROWS]), labels=clf.classes_)
        return np.array([holder["acc"], loss])

    return Case(f"epoch {'-'.join(map(str, LAYERS))} batch {batch} float32", "sklearn", run, result)


def epoch_data(mnist_dir: str | os.PathLike | None = None, n: int = 60000) -> tuple[np.ndarray, np.ndarray]:
    """MNIST training images from ``mnist_dir`` (or $FASTNN_MNIST), else the bundled subset tiled to n rows."""
    from fastnn import datasets

    try:
        (X, y), _ = datasets.load_mnist(mnist_dir)
    except FileNotFoundError:
        (X, y), _ = datasets.load_mnist_subset()
        reps = -(-n // len(X))
        X, y = np.tile(X, (reps, 1)), np.tile(y, reps)
    return X[:n], y[:n]


def cases(quick: bool = True, backends_: list[str] | None = None, large: bool = False,
          mnist_dir: str | os.PathLike | None = None, epochs: bool = True, peers: bool = True,
          kernels: bool = True) -> Iterator[Case]:
    """All cases: kernels at the first MNIST layer's size (B=128; with ``large`` also B=1024),
    float32 (and float64 unless ``quick``), and epochs at batch 128 (quick) or 32/128/512."""
    names = backends_ or [b for b in backends.available() if b != "cuda" or _real_gpu()]
    dtypes = ["float32"] if quick else ["float32", "float64"]
    sizes = [(128, 784, 256)] + ([(1024, 784, 256)] if large else [])
    for dt in dtypes if kernels else []:
        for B, n_in, n_out in sizes:
            for name in names:
                for case in _kernel_cases(name, dt, B, n_in, n_out):
                    case.sync = _sync(name)  # device backends: wait for the kernels inside the timing
                    yield case
    if not epochs:
        return
    X, y = epoch_data(mnist_dir)
    for batch in ([128] if quick else [32, 128, 512]):
        for name in names:
            case = _epoch_case(name, X, y, batch)
            case.sync = _sync(name)
            yield case
        if peers:
            for make in (_torch_epoch_case, _sklearn_epoch_case):
                case = make(X, y, batch)
                if case is not None:
                    yield case


def _sync(be_name: str) -> Callable[[], None]:
    """The backend's ``synchronize`` (cuda: wait for the GPU), or nothing for CPU backends."""
    return contract.hook(backends.get(be_name), "synchronize")


def missing_peers() -> dict[str, str]:
    """Optional peers that are not installed, with how to install them."""
    out = {}
    try:
        import torch  # noqa: F401
    except ImportError:
        out["torch"] = "pip install torch==2.13.0 (the CPU build)"
    try:
        import sklearn  # noqa: F401
    except ImportError:
        out["sklearn"] = "pip install scikit-learn"
    return out


def _real_gpu() -> bool:
    """True only on a real GPU: simulator timings say nothing about CUDA speed."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return False
    try:
        from numba import cuda

        return cuda.is_available()
    except Exception:  # a broken CUDA install is no GPU to time: the suite runs without the cuda rows
        return False


# --------------------------------------------------------------------------- timing


def _timed(case: Case) -> float:
    t0 = time.perf_counter()
    case.run()
    case.sync()
    return time.perf_counter() - t0


def _record(case: Case, times: list[float], first: float) -> Record:
    q = statistics.quantiles(times, n=4) if len(times) >= 2 else [times[0]] * 3
    return Record(case.group, case.backend, statistics.median(times), q[2] - q[0], len(times), first)


# An OpenBLAS worker spins for 2^28 cycles (about 0.1 s at 2.5 GHz) after its last job before it
# sleeps.  NumPy and SciPy each bundle their own OpenBLAS (and PyTorch its own threads), so a case
# that follows one on another library shares the cores with that library's spinning threads and
# reads slower than it is (`python benchmarks/experiments/blas_settle.py` shows the bias).  Cases of
# at least SETTLE_AFTER_S therefore start after a pause of SETTLE_S, as long as 2^28 cycles at 1 GHz;
# shorter ones (kernels) would take too long.
SETTLE_S = 0.3
SETTLE_AFTER_S = 0.05


def gemm_rate(batch: int = 512, seconds: float = 0.5) -> float:
    """GFLOP/s of this machine's float32 GEMM on the epoch's largest product, (batch x 784) @ (784 x 256).

    np.matmul: NumPy's BLAS, the one the compiled backends call by default (kernels/blas.py).  An
    epoch's GFLOP_PER_EPOCH at this rate is the floor no epoch can beat: the report gives each epoch
    row's fraction of it.
    """
    rng = np.random.default_rng(0)
    A = rng.standard_normal((batch, LAYERS[0])).astype(np.float32)
    B = rng.standard_normal((LAYERS[0], LAYERS[1])).astype(np.float32)
    C = np.empty((batch, LAYERS[1]), dtype=np.float32)
    time.sleep(SETTLE_S)  # another pool's threads stop spinning first
    np.matmul(A, B, out=C)
    times: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 5:
        t0 = time.perf_counter()
        np.matmul(A, B, out=C)
        times.append(time.perf_counter() - t0)
    return 2 * batch * LAYERS[0] * LAYERS[1] / statistics.median(times) / 1e9


def measure_group(group: list[Case], min_time: float = 0.2, min_rounds: int = 3, max_rounds: int = 50,
                  settle_s: float = SETTLE_S) -> list[Record]:
    """Time the cases of one group round-robin: first calls (compile + run) apart, then rounds of one
    run per case until each has ``min_rounds`` runs and ``min_time`` seconds (or ``max_rounds``).

    Round-robin, not one case after another, because a shared machine drifts: a noisy neighbour or
    a CPU that clocks down after a minute of load would otherwise favour whichever case ran first,
    and the ratios between backends are what the report is for.  A case whose first call took at
    least SETTLE_AFTER_S starts each run after a pause of ``settle_s`` (see SETTLE_S).
    """
    firsts = [_timed(case) for case in group]
    times: list[list[float]] = [[] for _ in group]
    while True:
        for case, ts, first in zip(group, times, firsts):
            if settle_s > 0 and first >= SETTLE_AFTER_S:
                time.sleep(settle_s)
            ts.append(_timed(case))
        n = len(times[0])
        if n >= max_rounds or (n >= min_rounds and all(sum(ts) >= min_time for ts in times)):
            break
    return [_record(case, ts, first) for case, ts, first in zip(group, times, firsts)]


def measure(case: Case, min_time: float = 0.2, min_rounds: int = 3, max_rounds: int = 50) -> Record:
    """First call (compile + run) timed apart; then median and IQR of at least ``min_rounds`` runs."""
    return measure_group([case], min_time, min_rounds, max_rounds)[0]


def _rel_err(got, ref) -> float:
    got, ref = np.asarray(got, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    return float(np.max(np.abs(got - ref)) / max(float(np.max(np.abs(ref))), 1e-30))


def run_suite(case_list: list[Case], min_time: float = 0.2,
              progress: Callable[[str], None] | None = None) -> list[Record]:
    """Time every case (each group's backends round-robin); fill speed-up and error against numpy's."""
    records, results = [], {}
    groups: dict[str, list[Case]] = {}
    for case in case_list:
        groups.setdefault(case.group, []).append(case)
    if groups:
        # A warm-up pass of the first group, not recorded: the first tenth of a second of BLAS calls in a
        # process runs slow (OpenBLAS's threads start, the clock ramps up), and not evenly over the
        # backends, so the first group's ratios would be off (numba's matmul read 0.76x numpy's that way,
        # 1.0x when measured again straight after).
        measure_group(next(iter(groups.values())), min_time=min_time)
    for name, group in groups.items():
        if progress:
            progress(f"{name} [{', '.join(c.backend for c in group)}]")
        records.extend(measure_group(group, min_time=min_time))
        for case in group:
            results[(case.group, case.backend)] = case.result()
    by_group = {r.group: r for r in records if r.backend == "numpy"}
    for r in records:
        ref = by_group.get(r.group)
        if ref is None:
            continue
        r.speedup = ref.median_s / r.median_s
        got, want = results[(r.group, r.backend)], results[(r.group, "numpy")]
        if got is not None and want is not None and not r.group.startswith("epoch"):
            r.max_rel_err = _rel_err(got, want)
        elif r.group.startswith("epoch") and got is not None:
            r.extra["train_accuracy"] = float(np.asarray(got)[0])
            r.extra["gflop_per_s"] = GFLOP_PER_EPOCH / r.median_s
    return records


# --------------------------------------------------------------------------- reports


def cpu_model() -> str:
    """The CPU's model name and widest x86 vector extension (from /proc/cpuinfo on Linux), else what
    platform knows.  The vector width decides which BLAS kernels run, so reports carry it."""
    name, flags = "", set()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip().lower() == "model name" and not name:
                    name = value.strip()
                elif key.strip().lower() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    name = name or platform.processor() or platform.machine()
    isa = "AVX-512" if "avx512f" in flags else ("AVX2" if "avx2" in flags else "")
    return f"{name} ({isa})" if isa else name


def machine_info() -> dict:
    from threadpoolctl import threadpool_info

    import fastnn
    from fastnn.kernels import blas

    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "fastnn": fastnn.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": fastnn.get_num_threads(),
        "blas_env": fastnn.cpu.blas_settings(),
        "pools": [f"{p.get('internal_api')} {p.get('version')} x{p.get('num_threads')}" for p in threadpool_info()],
        "compiled_blas": blas.summary(short=True),
        "cython_isa": backends.get("cython").ISA if "cython" in backends.available() else None,
        "backends": backends.available(),
    }


def _fmt_time(s: float) -> str:
    return f"{s * 1e3:.3f} ms" if s < 1 else f"{s:.3f} s"


def markdown(records: list[Record], info: dict | None = None) -> str:
    """The report as a Markdown table: one row per case, grouped by kernel and size."""
    lines = []
    if info:
        lines.append(f"Measured {info['date']} on {info.get('cpu', '?')}, {info['cpu_count']} cores, "
                     f"{info['threads']} threads, "
                     f"{', '.join(info['pools'])}; numba/cython call {info.get('compiled_blas', '?')}'s BLAS"
                     f"{'; cython build ' + info['cython_isa'] if info.get('cython_isa') else ''}; "
                     f"BLAS env {info['blas_env'] or 'default'}.")
        if info.get("gemm_gflops"):
            rate = info["gemm_gflops"]
            lines.append(f"Float32 GEMM here: {rate:.0f} GFLOP/s (np.matmul, 512x784 @ 784x256), so a dense "
                         f"{GFLOP_PER_EPOCH:.1f}-GFLOP epoch takes at least {GFLOP_PER_EPOCH / rate:.3f} s; an epoch "
                         f"row's \"floor\" is that time over its own (above 100%: fewer flops than dense, as the "
                         f"fused epochs' sparse first layer does).")
        lines.append("")
    lines += ["| kernel / size | backend | median | IQR | speed-up vs numpy | max rel. error vs numpy |",
              "|---|---|---:|---:|---:|---:|"]
    for r in records:
        err = "" if r.max_rel_err is None else f"{r.max_rel_err:.1e}"
        if "train_accuracy" in r.extra:
            err = f"(train acc {r.extra['train_accuracy']:.3f})"
            if info and info.get("gemm_gflops") and "gflop_per_s" in r.extra:
                floor = r.extra["gflop_per_s"] / info["gemm_gflops"]
                err = f"(train acc {r.extra['train_accuracy']:.3f}; floor {floor:.0%})"
        sp = "" if r.speedup is None else f"{r.speedup:.2f}x"
        lines.append(f"| {r.group} | {r.backend} | {_fmt_time(r.median_s)} | {_fmt_time(r.iqr_s)} | {sp} | {err} |")
    slow = slower_than_reference(records)
    if slow:
        lines += ["", f"Compiled cases below {SLOW_FLOOR:.2f}x the NumPy reference:", ""]
        lines += [f"- {line.removeprefix('SLOWER THAN NUMPY ')}" for line in slow]
    return "\n".join(lines) + "\n"


TEACHING_ONLY = ("matmul blocked",)  # hand-written kernels for reading, compared with BLAS but not held to it
SLOW_FLOOR = 0.95  # a compiled case below this speed-up over the NumPy reference is reported


def slower_than_reference(records: list[Record], floor: float = SLOW_FLOOR) -> list[str]:
    """Cases where a compiled backend (not numpy, not a peer framework) is slower than the NumPy
    reference of the same run: one line each, slowest first; the teaching-only kernels are left out."""
    peers = {"torch", "sklearn", "jax"}
    slow = [r for r in records if r.backend != "numpy" and r.backend not in peers and r.speedup is not None
            and r.speedup < floor and not r.group.startswith(TEACHING_ONLY)]
    return [f"SLOWER THAN NUMPY {r.group} [{r.backend}]: {r.speedup:.2f}x ({_fmt_time(r.median_s)})"
            for r in sorted(slow, key=lambda r: r.speedup)]


def save(records: list[Record], out_dir: str | os.PathLike, info: dict | None = None, plot: bool = True) -> list[str]:
    """Write bench.json, bench.md and (with matplotlib) bench.png into ``out_dir``; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    (out / "bench.json").write_text(json.dumps({"machine": info, "records": [asdict(r) for r in records]}, indent=1))
    paths.append(str(out / "bench.json"))
    (out / "bench.md").write_text(markdown(records, info))
    paths.append(str(out / "bench.md"))
    if plot:
        try:
            paths.append(plot_speedups(records, out / "bench.png"))
        except ImportError:
            pass
    return paths


def plot_speedups(records: list[Record], path: str | os.PathLike) -> str:
    """Horizontal bars: speed-up over numpy per kernel and backend (log scale)."""
    from fastnn.plots import _pyplot

    plt = _pyplot()
    groups = list(dict.fromkeys(r.group for r in records))
    names = [b for b in dict.fromkeys(r.backend for r in records) if b != "numpy"]
    fig, ax = plt.subplots(figsize=(9, 0.28 * len(groups) * max(len(names), 1) + 1.5))
    height = 0.8 / max(len(names), 1)
    for k, name in enumerate(names):
        vals = [next((r.speedup for r in records if r.group == g and r.backend == name and r.speedup), np.nan)
                for g in groups]
        ax.barh(np.arange(len(groups)) + k * height, vals, height=height, label=name)
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_xscale("log")
    ax.set_yticks(np.arange(len(groups)) + 0.4 - height / 2, groups, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("speed-up over numpy (median times, same run)")
    if names:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return os.fspath(path)


def compare(records: list[Record], baseline: str | os.PathLike, threshold: float = 0.25) -> list[str]:
    """Cases at least ``threshold`` slower than in a saved bench.json: one line each."""
    try:
        old = json.loads(Path(baseline).read_text())["records"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"cannot read the baseline {os.fspath(baseline)!r}: {exc}; "
                         f"pass a bench.json saved by fastnn bench") from None
    before = {(r["group"], r["backend"]): r["median_s"] for r in old}
    flagged = []
    for r in records:
        t_old = before.get((r.group, r.backend))
        if t_old and r.median_s > t_old * (1 + threshold):
            flagged.append(f"REGRESSION {r.group} [{r.backend}]: {_fmt_time(t_old)} -> {_fmt_time(r.median_s)} "
                           f"({r.median_s / t_old:.2f}x slower)")
    return flagged


# --------------------------------------------------------------------------- the CLI command


def configure_parser(p) -> None:
    p.add_argument("--quick", action="store_true", help="float32 kernels and the batch-128 epoch only")
    p.add_argument("--large", action="store_true", help="also kernels at batch 1024")
    p.add_argument("--backends", default=None,
                   help="comma-separated backends (default: all available CPU ones, and cuda on a real GPU)")
    p.add_argument("--no-epochs", action="store_true", help="kernels only")
    p.add_argument("--no-kernels", action="store_true", help="epochs only")
    p.add_argument("--no-peers", action="store_true", help="skip PyTorch and scikit-learn")
    p.add_argument("--data", default=None, metavar="DIR",
                   help="MNIST directory for the epoch cases (default: $FASTNN_MNIST, else the bundled subset "
                        "tiled to 60,000 rows)")
    p.add_argument("--min-time", type=float, default=0.2, help="seconds of repeated runs per case (at least 3 runs)")
    p.add_argument("--out", default="bench-results", help="directory for bench.json, bench.md, bench.png")
    p.add_argument("--compare", default=None, metavar="JSON", help="flag cases slower than in this saved bench.json")
    p.add_argument("--threshold", type=float, default=0.25, help="relative slow-down that counts as a regression")
    p.set_defaults(handler=main)


def main(args) -> int:
    names = args.backends.split(",") if args.backends else None
    if names:
        for n in names:
            backends.get(n)  # unknown or unavailable names fail here with the list of choices
    case_list = list(cases(quick=args.quick, backends_=names, large=args.large, mnist_dir=args.data,
                           epochs=not args.no_epochs, peers=not args.no_peers, kernels=not args.no_kernels))
    if not case_list:
        raise ValueError("nothing to run: --no-epochs and --no-kernels together leave no cases; drop one of them")
    for peer, how in missing_peers().items():
        if not args.no_peers:
            print(f"peer {peer} skipped: not installed ({how})")
    print(f"{len(case_list)} cases")
    records = run_suite(case_list, min_time=args.min_time, progress=lambda s: print(f"  {s}", flush=True))
    info = machine_info()
    if any(r.group.startswith("epoch") for r in records):
        info["gemm_gflops"] = gemm_rate()
    print()
    print(markdown(records, info))
    for path in save(records, args.out, info):
        print(f"saved {path}")
    slow = slower_than_reference(records)
    print()
    print("\n".join(slow) if slow else
          f"every compiled case is at least {SLOW_FLOOR:.2f}x the NumPy reference "
          f"(leaving out the teaching kernels: {', '.join(TEACHING_ONLY)})")
    if args.compare:
        flagged = compare(records, args.compare, args.threshold)
        print("\n".join(flagged) if flagged else f"no regressions against {args.compare}")
        return 1 if flagged else 0
    return 0
