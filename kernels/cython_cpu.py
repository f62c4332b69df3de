"""The Cython backend: the kernel contract compiled from kernels/cython/*.pyx, plus a fused epoch.

A thin re-export.  The compiled kernels (``_kernels.pyx``) take C-contiguous float32/float64
arrays and check shapes; the wrappers here only copy strided inputs to C order, as the contract
allows any view as input.  Matrix products go to NumPy's bundled OpenBLAS through a CBLAS
function pointer, or to SciPy's (``scipy.linalg.cython_blas``) where NumPy has none (kernels/blas.py);
``matmul(..., method="blocked")`` is a hand-written cache-blocked kernel on OpenMP threads, for
teaching and comparison.  ``train_epoch`` runs a whole epoch in one nogil call (``_epoch.pyx``).

Every module is built three times on x86-64 (setup.py): for the portable default CPU, with AVX2 + FMA
(``_kernels_avx2``, ``_epoch_avx2``) and with AVX-512 (``_kernels_avx512``, ``_epoch_avx512``), all
from the same source.  ``ISA`` says which pair was loaded: by default (``FASTNN_CYTHON_ISA=auto``) the
widest one the CPU runs; ``avx512``, ``avx2`` or ``baseline`` insist on one.

If the extensions were not built (no C compiler or no Cython at install time) importing this module
raises ImportError saying so and how to fix it, and fastnn lists the backend as unavailable.
"""
from __future__ import annotations

import numpy as np

from fastnn.kernels import blas, codes, config, sparse_input, team
from fastnn.kernels.contract import EpochStats
from fastnn.kernels.numpy_ref import GOLDEN, assign, empty, to_device, to_host  # noqa: F401 - re-exports

NAME = "cython"
_ABI_VERSION = 3  # must equal _kernels.ABI_VERSION: a different value means a stale build

_FIX = ("rebuild it from fastnn's source folder with a C compiler present: pip install -e . "
        "(pip install -v shows the build log; its 'fastnn:' lines say what went wrong)")


class IsaChoiceError(config.ConfigError):
    """FASTNN_CYTHON_ISA asks for a build this machine cannot run; the message says what to set instead."""

    names_its_fix = True  # fastnn.backends reports the message without its generic install hint


ISA_CHOICES = config.SETTINGS["FASTNN_CYTHON_ISA"].choices


# The builds beyond the portable one, widest first: (name, NumPy's CPU features it needs, what they are)
ISA_BUILDS = (
    ("avx512", ("AVX512_SKX", "AVX2", "FMA3"), "AVX-512 (F, CD, BW, DQ, VL)"),
    ("avx2", ("AVX2", "FMA3"), "AVX2 and FMA"),
)


def _cpu_features() -> dict[str, bool]:
    """NumPy's run-time CPU detection (which also checks that the OS saves the wide registers)."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:  # a NumPy without it: only the portable build is safe
        return {}
    return dict(features)


def _cpu_has_avx2_fma() -> bool:
    """AVX2 and FMA usable here."""
    return _cpu_runs("avx2")


def _cpu_runs(isa: str) -> bool:
    """Whether this CPU has every feature the build `isa` was compiled for."""
    features = _cpu_features()
    needs = dict((name, need) for name, need, _ in ISA_BUILDS)[isa]
    return all(features.get(f) for f in needs)


def _built(isa: str) -> bool:
    import importlib.util

    return all(importlib.util.find_spec(f"fastnn.kernels.cython.{m}_{isa}") is not None for m in ("_kernels", "_epoch"))


def choose_isa() -> tuple[str, str]:
    """('avx512', 'avx2' or 'baseline', why): which build of the extension modules to load (FASTNN_CYTHON_ISA)."""
    try:
        setting = config.get("FASTNN_CYTHON_ISA")
    except config.ConfigError as exc:
        raise IsaChoiceError(str(exc)) from None
    if setting == "baseline":
        return "baseline", "FASTNN_CYTHON_ISA=baseline"
    reasons = []
    for isa, _, what in ISA_BUILDS:
        if setting not in ("auto", isa):
            continue
        cpu, built = _cpu_runs(isa), _built(isa)
        if cpu and built:
            return isa, f"FASTNN_CYTHON_ISA={setting}: the CPU has {what}"
        why = (f"this CPU lacks {what}" if not cpu
               else f"the {isa} build is missing (not x86-64, or its compiler rejected the flags)")
        if setting == isa:
            raise IsaChoiceError(f"FASTNN_CYTHON_ISA={isa}, but {why}; unset FASTNN_CYTHON_ISA to use the "
                                 f"best build this machine runs")
        reasons.append(why)
    return "baseline", f"portable build: {reasons[-1]}"


ISA, ISA_REASON = choose_isa()
try:
    if ISA == "avx512":
        from fastnn.kernels.cython import _epoch_avx512 as _epoch
        from fastnn.kernels.cython import _kernels_avx512 as _kernels
    elif ISA == "avx2":
        from fastnn.kernels.cython import _epoch_avx2 as _epoch
        from fastnn.kernels.cython import _kernels_avx2 as _kernels
    else:
        from fastnn.kernels.cython import _epoch, _kernels
except ImportError as exc:
    raise ImportError(f"the Cython backend's compiled extension is not built or does not load ({exc}); {_FIX}") from exc


def check_available() -> None:
    """Raise ImportError with the reason and the fix if the compiled extension is stale or mismatched."""
    if getattr(_kernels, "ABI_VERSION", None) != _ABI_VERSION:
        raise ImportError(f"the Cython backend's compiled extension is out of date "
                          f"(ABI {getattr(_kernels, 'ABI_VERSION', None)}, sources {_ABI_VERSION}); {_FIX}")
    expected = {name: getattr(codes, name) for name in _kernels.CODES if hasattr(codes, name)}
    expected["GOLDEN"] = GOLDEN
    drift = {k: (v, expected.get(k)) for k, v in _kernels.CODES.items() if expected.get(k) != v}
    if drift:
        raise ImportError(f"the Cython backend was compiled with codes that differ from kernels/codes.py "
                          f"(compiled, expected): {drift}; update kernels/cython/_core.pxd, then {_FIX}")


check_available()

HAVE_OPENMP: bool = _kernels.HAVE_OPENMP

# Matrix products: NumPy's bundled OpenBLAS when usable, else SciPy's (kernels/blas.py says why).
BLAS = blas.choice()
for _module in (_kernels, _epoch):
    _module.set_blas(BLAS.sgemm, BLAS.dgemm)


def _c(x) -> np.ndarray:
    """Inputs may be any strided view; the compiled kernels take C order (a copy only when needed)."""
    return np.ascontiguousarray(x)


def _flat(x) -> np.ndarray:
    """A C-contiguous output as 1-D (a view, so the kernel writes into x)."""
    if not x.flags.c_contiguous:
        raise ValueError("outputs and parameters must be C-contiguous buffers (from empty)")
    return x.reshape(-1)


# --------------------------------------------------------------------------- threads


def set_num_threads(n: int) -> None:
    """Threads of the OpenMP pool that runs matmul(method='blocked') (no-op without OpenMP)."""
    _kernels.set_num_threads(int(n))


def get_num_threads() -> int:
    """Threads the OpenMP pool uses (1 in a build without OpenMP)."""
    return int(_kernels.get_num_threads())


# --------------------------------------------------------------------------- the contract


def matmul(A, B, C, method: str = "blas") -> None:
    """C = A B by BLAS ('blas') or the hand-written cache-blocked OpenMP kernel ('blocked')."""
    if method == "blas":
        _kernels.matmul_blas(_c(A), _c(B), C)
    elif method == "blocked":
        _kernels.matmul_blocked(_c(A), _c(B), C)
    else:
        raise ValueError(f"matmul method {method!r} is not supported; choose 'blas' or 'blocked'")


def linear_forward(a_prev, W, b, z) -> None:
    """z = a_prev W + b."""
    _kernels.linear_forward(_c(a_prev), _c(W), _c(b), z)


def activate(act: int, z, alpha, a) -> None:
    """a = f(z)   (softmax per row, shifted by the row max)."""
    _kernels.activate(act, _c(z), _c(alpha), a)


def activation_derivative(act: int, z, alpha, d) -> None:
    """d = f'(z)   (not for softmax)."""
    if act == codes.SOFTMAX:
        raise ValueError(f"activation code {act} has no elementwise derivative")
    _kernels.activation_derivative(act, _c(z), _c(alpha), d)


def loss_value(loss: int, act: int, z, a, y) -> float:
    """J = (1/B) sum_b J_b   (float64; logs from z)."""
    return float(_kernels.loss_value(loss, act, _c(z), _c(a), _c(y)))


def output_delta(loss: int, act: int, a, y, delta) -> None:
    """delta_L = dJ_b/dz_L."""
    _kernels.output_delta(loss, act, _c(a), _c(y), delta)


def backprop_error(delta_next, W_next, g) -> None:
    """g = delta_next W_next^T."""
    _kernels.backprop_error(_c(delta_next), _c(W_next), g)


def activation_backward(act: int, z, alpha, g, delta, dalpha) -> None:
    """delta = f'(z) * g;  PReLU: dalpha = (1/B) sum_b g min(z, 0)."""
    _kernels.activation_backward(act, _c(z), _c(alpha), _c(g), delta, dalpha)


def propagate_delta(delta_next, W_next, z, act: int, alpha, delta, dalpha) -> None:
    """delta = f'(z) * (delta_next W_next^T)."""
    _kernels.propagate_delta(_c(delta_next), _c(W_next), _c(z), act, _c(alpha), delta, dalpha)


def param_grads(a_prev, delta, W, l1: float, l2: float, dW, db) -> None:
    """dW = a_prev^T delta / B + l2 W + l1 sign(W);  db = (1/B) sum_b delta_b."""
    _kernels.param_grads(_c(a_prev), _c(delta), _c(W), float(l1), float(l2), dW, db)


def penalty(W, l1: float, l2: float) -> float:
    """R = l2/2 ||W||^2 + l1 ||W||_1."""
    if not (l1 or l2):
        return 0.0
    return float(_kernels.penalty(_c(W), float(l1), float(l2)))


def sgd_update(W, dW, v, lr: float, momentum: float, nesterov: bool) -> None:
    """v <- mu v - lr dW;  W <- W + v   (Nesterov: W <- W + mu v - lr dW; mu = 0: W <- W - lr dW)."""
    _kernels.sgd_update(_flat(W), _c(dW).reshape(-1), _flat(v), float(lr), float(momentum), bool(nesterov))


def dropout(x, keep: float, seed: int, step: int, layer: int) -> None:
    """x <- x m / keep   (inverted dropout in place, the reference's counter-based mask, bit for bit)."""
    seed = int(seed) & 0xFFFFFFFFFFFFFFFF  # the hash works mod 2^64, like the reference
    if x.flags.c_contiguous:
        _kernels.dropout(x.reshape(-1), float(keep), seed, int(step), int(layer))
    else:  # the mask follows the row-major index, so work on a C-order copy and write it back
        tmp = np.ascontiguousarray(x)
        _kernels.dropout(tmp.reshape(-1), float(keep), seed, int(step), int(layer))
        x[...] = tmp


# --------------------------------------------------------------------------- the fused epoch


# The fused epoch runs on an OpenMP team of the fastnn.set_num_threads size, the BLAS on one
# thread underneath, where kernels/team.py says a team pays.
TEAM_MIN_WORK = team.MIN_WORK
# A team splits a hidden layer's products by columns when the output is at least this many times as
# wide as a thread's rows (kernels/cython/_epoch.pyx, _by_columns); 0: always by rows.
COLUMN_SPLIT = 4.0


def team_size(spec, batch_size: int) -> int:
    """Threads of the fused epoch's team (kernels/team.py): get_num_threads() where OpenMP and the work
    allow, else 1."""
    if not HAVE_OPENMP:
        return 1
    return team.size(spec, batch_size, get_num_threads(), TEAM_MIN_WORK)


def fit_scope(spec, batch_size: int):
    """What fastnn.fit holds around its epochs: the BLAS on one thread while they run on a team (kernels/team.py)."""
    return team.blas_held(team_size(spec, batch_size))


def train_epoch(be, spec, p, velocity, ws, X, Y, labels, order, batch_size, hyper, step0,
                threads: int | None = None) -> EpochStats:
    """A whole epoch in one nogil call; same results as fastnn.engine.run_epoch (threads: the team's
    size, None for team_size's)."""
    if getattr(spec, "residual", False):
        raise ValueError("the fused train_epoch knows no skip connections; "
                         "train residual networks with fastnn.engine.run_epoch")
    dt = np.dtype(spec.dtype)
    data = _epoch.EpochData(
        X=np.ascontiguousarray(X, dtype=dt), Y=np.ascontiguousarray(Y, dtype=dt),
        labels=None if labels is None else np.ascontiguousarray(labels, dtype=np.int64),
        order=np.ascontiguousarray(order, dtype=np.int64), xbuf=ws.x, ybuf=ws.y)
    none = np.zeros(0, dtype=dt)  # a fixed alpha_j (LeakyReLU, ELU) has no velocity and no gradient
    learned = [act in codes.LEARNED for act in spec.acts]
    layers = [
        _epoch.LayerArrays(act=act, W=p.W[l], b=p.b[l], alpha=p.alpha[l],
                           vW=velocity.W[l], vb=velocity.b[l], valpha=velocity.alpha[l] if learned[l] else none,
                           z=ws.z[l], a=ws.a[l], delta=ws.delta[l], g=ws.g[l],
                           dW=ws.dW[l], db=ws.db[l], dalpha=np.empty(p.alpha[l].shape if learned[l] else 0, dt))
        for l, act in enumerate(spec.acts)
    ]
    sparse = sparse_input.buffers(data.X.shape[1], p.W[0].shape[1], ws.x.shape[0], dt)
    grad_norm_sum = np.zeros(spec.n_layers)
    batch_loss = np.zeros(max(-(-len(order) // batch_size), 1))
    threads = team_size(spec, batch_size) if threads is None else int(threads)
    with team.blas_held(threads):
        totals = _epoch.train_epoch(data, layers, hyper, spec.loss, int(batch_size), int(step0), grad_norm_sum,
                                    batch_loss, sparse, threads=threads, column_split=COLUMN_SPLIT)
    n_batches = int(totals.n_batches)
    return EpochStats(loss_sum=float(totals.loss_sum), correct=int(totals.correct), n_seen=int(totals.n_seen),
                      grad_norm_sum=grad_norm_sum, n_batches=n_batches, diverged=bool(totals.diverged),
                      batch_loss=batch_loss[:n_batches])
