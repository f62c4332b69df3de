"""One training epoch per hidden activation and backend: what the vectorised e^x and tanh buy.

    FASTNN_MNIST=../shared/data/mnist python benchmarks/experiments/activations.py [--acts sigmoid,tanh,elu,relu]
        [--batch 128] [--rounds 5] [--rows 60000] [--momentum 0.9] [--l2 1e-4] [--dtype float64]

For each activation, one MNIST epoch (784-256-128-10, softmax / cross-entropy, SGD, float32 unless
``--dtype float64``) per backend (numpy, numba, cython, and PyTorch when it is installed),
round-robin, ``--rounds`` times; prints the medians, each backend's speed-up over numpy and torch's
time over each, and at the end each activation's epoch time over ReLU's on the same backend.
ReLU is the control: it has no transcendental function.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import fastnn
from fastnn import bench

TORCH_ACT = {"sigmoid": "Sigmoid", "tanh": "Tanh", "elu": "ELU", "relu": "ReLU"}


def _torch_epoch(act: str, X: np.ndarray, y: np.ndarray, batch: int, momentum: float, l2: float):
    """The same network, loop and optimiser in PyTorch (None when torch is not installed)."""
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(0)
    torch.set_num_threads(fastnn.get_num_threads())
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))
    f = getattr(torch.nn, TORCH_ACT[act])
    net = torch.nn.Sequential(torch.nn.Linear(784, 256), f(), torch.nn.Linear(256, 128), f(), torch.nn.Linear(128, 10))
    net = net.to(Xt.dtype)
    # weight_decay = l2 on every parameter; fastnn penalises weights only (a small difference)
    opt = torch.optim.SGD(net.parameters(), lr=bench.EPOCH_LR, momentum=momentum, weight_decay=l2)
    loss_fn = torch.nn.CrossEntropyLoss()

    def run() -> None:
        perm = torch.randperm(len(Xt))
        for s in range(0, len(Xt), batch):
            idx = perm[s:s + batch]
            opt.zero_grad()
            loss_fn(net(Xt[idx]), yt[idx]).backward()
            opt.step()

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--acts", default="sigmoid,tanh,elu,relu")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--rows", type=int, default=60000, help="training rows per epoch")
    ap.add_argument("--momentum", type=float, default=0.0)
    ap.add_argument("--l2", type=float, default=0.0)
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    ap.add_argument("--data", default=None, help="MNIST directory (default: $FASTNN_MNIST, else the bundled subset)")
    args = ap.parse_args()
    X, y = bench.epoch_data(args.data, n=args.rows)
    X = np.ascontiguousarray(X, dtype=args.dtype)
    names = [n for n in ("numpy", "numba", "cython") if n in fastnn.backends.available()]
    print(f"{bench.cpu_model()}, {fastnn.get_num_threads()} threads; {len(X)} rows, batch {args.batch}, "
          f"{args.dtype}, momentum {args.momentum}, l2 {args.l2}, medians of {args.rounds} round-robin epochs")
    medians: dict[str, dict[str, float]] = {}
    for act in args.acts.split(","):
        runs = {}
        for n in names:
            m = fastnn.MLP(bench.LAYERS, activation=act, seed=0, backend=n, dtype=args.dtype, l2=args.l2)
            fit = dict(epochs=1, batch_size=args.batch, lr=bench.EPOCH_LR, momentum=args.momentum, verbose=0)
            m.fit(X[:2000], y[:2000], **fit)  # compile
            runs[n] = (lambda m=m, fit=fit: m.fit(X, y, **fit))
        torch_run = _torch_epoch(act, X, y, args.batch, args.momentum, args.l2)
        if torch_run is not None:
            torch_run()  # warm-up
            runs["torch"] = torch_run
        times: dict[str, list[float]] = {n: [] for n in runs}
        for _ in range(args.rounds):
            for n, run in runs.items():
                t0 = time.perf_counter()
                run()
                times[n].append(time.perf_counter() - t0)
        med = {n: statistics.median(ts) for n, ts in times.items()}
        cells = []
        for n, t in med.items():
            cell = f"{n} {t:.3f} s"
            if n != "numpy":
                cell += f" ({med['numpy'] / t:.2f}x numpy"
                cell += f", torch/{n} {med['torch'] / t:.2f})" if "torch" in med and n != "torch" else ")"
            cells.append(cell)
        print(f"{act}: " + "; ".join(cells), flush=True)
        medians[act] = med
    if "relu" in medians:
        for act, med in medians.items():
            if act != "relu":
                print(f"{act} / relu epoch time: " + ", ".join(f"{n} {t / medians['relu'][n]:.2f}"
                                                             for n, t in med.items() if n in medians["relu"]))


if __name__ == "__main__":
    main()
