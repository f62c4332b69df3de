"""The ``fastnn`` command: ``fastnn train`` (MNIST, bundled subset by default) and ``fastnn info``."""
from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import time
from collections.abc import Sequence


def _int_list(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.replace(" ", "").split(",") if s]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated sizes such as 256,128, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"layer sizes must be positive integers, got {text!r}")
    return sizes


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastnn", description="Backprop kernels and MLP training.")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train an MLP on MNIST and report test accuracy",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    t.add_argument("--data", metavar="DIR", default=None,
                   help="directory with the four MNIST IDX files (.gz or raw); default: the subset "
                        "bundled with fastnn (10,000 training / 2,000 test images)")
    t.add_argument("--layers", type=_int_list, default=[256, 128],
                   help="hidden layer sizes (the full list 784,256,128,10 is accepted too)")
    t.add_argument("--activation", default="relu", help="hidden activation")
    t.add_argument("--init", default="uniform", help="weight initialisation: uniform, normal, xavier, he")
    t.add_argument("--epochs", type=int, default=10)
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--lr", type=float, default=0.05, help="learning rate")
    t.add_argument("--momentum", type=float, default=0.9)
    t.add_argument("--nesterov", action="store_true", help="Nesterov momentum")
    t.add_argument("--l1", type=float, default=0.0)
    t.add_argument("--l2", type=float, default=0.0)
    t.add_argument("--dropout", type=float, default=0.0, help="probability of dropping a hidden unit")
    t.add_argument("--input-dropout", type=float, default=0.0, help="probability of dropping an input pixel")
    t.add_argument("--validation-split", type=float, default=0.0)
    t.add_argument("--early-stopping", type=int, default=None, metavar="PATIENCE")
    t.add_argument("--backend", default=None, help="numpy, numba, cython, cuda; default: fastest CPU backend")
    t.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--save", metavar="PATH", default=None, help="save the trained model (.npz)")
    t.add_argument("--plot", metavar="PNG", default=None, help="save the loss/accuracy curves (needs matplotlib)")
    t.add_argument("--quiet", action="store_true", help="no per-epoch output")

    i = sub.add_parser("info", help="version, backends, threads and BLAS")
    i.add_argument("--warmup", action="store_true",
                   help="also time each backend's first training step (compilation, or loading the cache)")
    i.set_defaults(handler=lambda args: _info(args.warmup))
    t.set_defaults(handler=_train)
    # Subcommands that live in other modules: each module has configure_parser(parser), which
    # sets ``handler`` (a function of args returning an exit code).  Add yours to this tuple.
    for module_name, command, help_text in _PLUGINS:
        module = importlib.import_module(module_name)
        module.configure_parser(sub.add_parser(command, help=help_text))
    return parser


_PLUGINS: tuple[tuple[str, str, str], ...] = (
    ("fastnn.bench", "bench", "benchmark every kernel and a training epoch on every backend"),
    ("fastnn.tracing", "trace", "print every number of one backprop step with its equation (worked example)"),
    ("fastnn.demos", "demo", "teaching demos: vanishing gradients, perceptron vs MLP on XOR"),
)


def _train(args: argparse.Namespace) -> int:
    import fastnn
    from fastnn import datasets

    t0 = time.perf_counter()
    if args.data:
        (X, y), (Xt, yt) = datasets.load_mnist(args.data)
        source = f"MNIST from {args.data}"
    else:
        (X, y), (Xt, yt) = datasets.load_mnist_subset()
        source = "bundled MNIST subset"
    sizes = args.layers
    if not (len(sizes) >= 2 and sizes[0] == X.shape[1] and sizes[-1] == 10):
        sizes = [X.shape[1], *sizes, 10]
    model = fastnn.MLP(sizes, activation=args.activation, init=args.init, l1=args.l1, l2=args.l2,
                       dropout=args.dropout, input_dropout=args.input_dropout, backend=args.backend,
                       dtype=args.dtype, seed=args.seed)
    if not args.quiet:
        print(f"{source}: {len(X):,} training and {len(Xt):,} test images")
        print(f"network {'-'.join(map(str, sizes))}, {model.n_params:,} parameters, "
              f"backend {model.backend}, {model.dtype.name}")
    history = model.fit(X, y, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                        momentum=args.momentum, nesterov=args.nesterov,
                        validation_split=args.validation_split, early_stopping=args.early_stopping,
                        verbose=0 if args.quiet else 1)
    if args.save:
        print(f"model saved to {model.save(args.save)}")
    if args.plot:
        from fastnn.plots import plot_grad_norms, plot_history

        print(f"curves saved to {plot_history(history, args.plot)}")
        stem, ext = os.path.splitext(args.plot)
        print(f"gradient norms per layer saved to {plot_grad_norms(history, stem + '_grad_norms' + (ext or '.png'))}")
    result = model.evaluate(Xt, yt)
    print(f"trained {history.epochs} epochs in {sum(history.epoch_time):.1f} s "
          f"(total {time.perf_counter() - t0:.1f} s with data loading)")
    print(f"test loss: {result['loss']:.4f}")
    print(f"test accuracy: {result['accuracy']:.4f}")
    return 0


def warmup_seconds(backend: str) -> float:
    """Wall time of a backend's first tiny training run in this process (compile or cache load)."""
    import numpy as np

    import fastnn

    rng = np.random.default_rng(0)
    X, y = rng.random((16, 4), dtype=np.float32), rng.integers(0, 3, 16)
    t0 = time.perf_counter()
    model = fastnn.MLP([4, 5, 3], backend=backend, seed=0)
    model.fit(X, y, epochs=1, batch_size=8, verbose=0)
    model.predict(X)
    return time.perf_counter() - t0


def _info(warmup: bool = False) -> int:
    import numpy as np

    import fastnn
    from fastnn import backends
    from fastnn.kernels import blas as compiled_blas
    from fastnn.kernels import config

    print(f"fastnn {fastnn.__version__}  (Python {platform.python_version()}, {platform.machine()})")
    versions = []
    for mod in ("numpy", "scipy", "numba", "threadpoolctl"):
        try:
            versions.append(f"{mod} {__import__(mod).__version__}")
        except ImportError:
            versions.append(f"{mod} missing")
    print("dependencies: " + ", ".join(versions))
    print(f"backends available: {', '.join(backends.available())}  (default: {backends.default_name()})")
    for name, why in backends.unavailable_reasons().items():
        print(f"  {name}: {why}")
    print(f"CPU cores: {os.cpu_count()}, fastnn threads: {fastnn.get_num_threads()} (fastnn.set_num_threads)")
    settings = fastnn.cpu.blas_settings()
    print("BLAS environment: " + (", ".join(f"{k}={v}" for k, v in settings.items()) or "(none set)"))
    try:
        from threadpoolctl import threadpool_info

        for pool in threadpool_info():
            print(f"thread pool: {pool.get('internal_api')} {pool.get('version') or ''} "
                  f"({pool.get('user_api')}), {pool.get('num_threads')} threads, {pool.get('filepath')}")
    except ImportError:
        print("BLAS: install threadpoolctl to see the thread pools")
    blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
    print(f"numpy BLAS: {blas.get('name', '?')} {blas.get('version', '')}")
    print(f"compiled backends' BLAS (FASTNN_BLAS): {compiled_blas.summary()}")
    if "cython" in backends.available():
        cy = backends.get("cython")
        print(f"cython build (FASTNN_CYTHON_ISA): {cy.ISA}, {cy.ISA_REASON}")
    print("settings (FASTNN_* environment variables; kernels/config.py):")
    for name, value, default, _ in config.table():
        print(f"  {name} = {value}  (default {default})")
    if warmup:
        for name in backends.available():
            print(f"first training step on {name}: {warmup_seconds(name):.2f} s "
                  f"(compiling, or loading compiled code from the cache)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fastnn`` console script."""
    args = _build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (ValueError, TypeError, FileNotFoundError, ImportError) as exc:
        # User errors (bad option values, missing files) read better without a traceback.
        print(f"fastnn {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
