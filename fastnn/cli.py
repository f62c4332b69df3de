"""The ``fastnn`` command: ``fastnn train`` (MNIST or CIFAR-10; the bundled MNIST subset by
default), ``fastnn info``, and the subcommands of other modules (``bench``, ``trace``, ``demo``).

``fastnn train`` checks every option before it loads data or trains: a value that cannot work
(a size that is no network for the data, an output folder that does not exist, ``--plot``
without matplotlib, ...) stops it with one line that names the problem and the fix.
"""
from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import textwrap
import time
from collections.abc import Sequence

# What each --dataset feeds the network: (input size, classes, name printed).
DATASETS: dict[str, tuple[int, int, str]] = {
    "mnist": (784, 10, "MNIST"),
    "cifar10": (3072, 10, "CIFAR-10"),
}
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"

TRAIN_EPILOG = """\
The defaults differ from MLP.fit's on purpose: fastnn train is a ready-made recipe
for MNIST (SGD with momentum 0.9, lr 0.05, batches of 64) that takes the bundled
subset above 90% test accuracy in 10 epochs; MLP.fit keeps the plain-SGD textbook
defaults (lr 0.01, no momentum, batches of 32).

examples:
  fastnn train --hidden 10,14 --epochs 20           # 784-10-14-10
  fastnn train --data ~/mnist --validation-size 5000 --early-stopping 3
  fastnn train --dataset cifar10 --data cifar-10-batches-bin --hidden 1024,512,256,128 \\
               --validation-size 5000 --save cifar.npz --plot cifar.png
"""


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default in its help: ``(default: X)``, ``(default: off)`` for a flag, and
    for an option whose default is None, the help text itself says what happens (``default: ...``)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default is None or action.default is argparse.SUPPRESS or "default" in text:
            return text
        if isinstance(action, argparse._StoreTrueAction) and action.default is False:
            return f"{text} (default: off)"
        return super()._get_help_string(action)


def _hidden_sizes(text: str) -> list[int]:
    """``--hidden``: comma-separated hidden layer sizes; ``none`` or ``""``: no hidden layer."""
    if text.strip().lower() in ("", "none"):
        return []
    try:
        sizes = [int(s) for s in text.replace(" ", "").split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated sizes such as 256,128 (or none for no hidden layer), got {text!r}") from None
    if min(sizes) < 1:
        raise argparse.ArgumentTypeError(
            f"hidden layer sizes must be integers >= 1, got {text!r}; for no hidden layer write --hidden none")
    return sizes


def _sizes_text(sizes: Sequence[int]) -> str:
    return ",".join(map(str, sizes)) or "none"


class _ReplacedByHidden(argparse.Action):
    """``--layers`` (it took hidden sizes, or the full list) is refused, naming the --hidden to write."""

    def __call__(self, parser, namespace, values, option_string=None):
        try:
            sizes = [int(s) for s in str(values).replace(" ", "").split(",") if s]
        except ValueError:
            sizes = []
        how = "for 784-10-14-10 write --hidden 10,14"
        n_ins = {n_in for n_in, _, _ in DATASETS.values()}
        if len(sizes) >= 2 and sizes[0] in n_ins:
            end = -1 if sizes[-1] == 10 else len(sizes)
            how = f"for {'-'.join(map(str, sizes))} write --hidden {_sizes_text(sizes[1:end])}"
        elif len(sizes) >= 2 and sizes[-1] == 10:
            how = (f"if {values} lists hidden and output sizes (784-{'-'.join(map(str, sizes))}), write "
                   f"--hidden {_sizes_text(sizes[:-1])}; if it lists hidden sizes only, write --hidden {values}")
        elif sizes:
            how = f"write --hidden {_sizes_text(sizes)}"
        parser.error(f"{option_string} was replaced by --hidden, which takes the hidden layer sizes only "
                     f"(the input and output layers come from the data): {how}")


def _add_train_parser(sub) -> argparse.ArgumentParser:
    t = sub.add_parser(
        "train", help="train an MLP on MNIST or CIFAR-10 and report test accuracy",
        formatter_class=_HelpFormatter, epilog=TRAIN_EPILOG,
        description=textwrap.fill(
            "Train a fully connected network (input - hidden layers - 10 softmax outputs) by mini-batch "
            "SGD and report its test loss and accuracy. Every option is checked before any data is read "
            "or any training starts.", 80))
    from fastnn import backends, codes, schedules
    from fastnn.model import INITS

    data = t.add_argument_group("data")
    data.add_argument("--dataset", choices=list(DATASETS), default="mnist",
                      help="mnist: 28x28 digits, 784 inputs; cifar10: 32x32 colour images, 3072 inputs "
                           "(not bundled: needs --data or FASTNN_CIFAR10)")
    data.add_argument("--data", metavar="DIR", default=None,
                      help="mnist: a folder with the four MNIST IDX files (.gz or raw); default: the subset "
                           "bundled with fastnn (10,000 training / 2,000 test images). cifar10: the "
                           "extracted binary version (the cifar-10-batches-bin folder, or the folder "
                           f"holding it; download cifar-10-binary.tar.gz from {CIFAR10_URL}); default: $FASTNN_CIFAR10")
    data.add_argument("--validation-size", type=int, default=None, metavar="N",
                      help="hold out N random training images (seeded by --seed) as validation data, "
                           "e.g. 5000; default: none")
    data.add_argument("--validation-split", type=float, default=0.0, metavar="FRACTION",
                      help="hold out this fraction of the training images instead (0 = none)")

    net = t.add_argument_group("network")
    net.add_argument("--hidden", type=_hidden_sizes, default="256,128", metavar="SIZES",
                     help="hidden layer sizes only; the input and output layers come from the data: "
                          "256,128 builds 784-256-128-10 on MNIST, 10,14 builds 784-10-14-10; "
                          "none (or \"\") builds no hidden layer (784-10)")
    net.add_argument("--layers", action=_ReplacedByHidden, help=argparse.SUPPRESS)
    net.add_argument("--activation", default="relu",
                     help=f"hidden activation: {', '.join(codes.ACTIVATIONS)}")
    net.add_argument("--init", default="uniform", help=f"weight initialisation: {', '.join(INITS)}")
    net.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                     help="floating-point type of parameters and data")
    net.add_argument("--seed", type=int, default=0,
                     help="seeds the initial weights, shuffling, dropout masks and the --validation-size hold-out")

    sgd = t.add_argument_group("training (SGD)")
    sgd.add_argument("--epochs", type=int, default=10, help="passes over the training images")
    sgd.add_argument("--batch-size", type=int, default=64, help="images per SGD step")
    sgd.add_argument("--lr", type=float, default=0.05, help="learning rate")
    sgd.add_argument("--lr-schedule", choices=schedules.names(), default=None,
                     help="learning rate per epoch, starting from --lr: step (halved every 10 epochs), "
                          "exponential (x 0.95 per epoch), cosine (down to 0 at the last epoch); "
                          "default: --lr for every epoch")
    sgd.add_argument("--momentum", type=float, default=0.9, help="momentum, in [0, 1); 0 = plain SGD")
    sgd.add_argument("--nesterov", action="store_true", help="Nesterov momentum (needs --momentum > 0)")
    sgd.add_argument("--l1", type=float, default=0.0,
                     help="L1 penalty: adds l1 * sum |W| over the weights (not biases) to the loss")
    sgd.add_argument("--l2", type=float, default=0.0,
                     help="L2 penalty (weight decay): adds l2/2 * sum W^2 over the weights to the loss")
    sgd.add_argument("--dropout", type=float, default=0.0, help="probability of dropping a hidden unit")
    sgd.add_argument("--input-dropout", type=float, default=0.0, help="probability of dropping an input pixel")
    sgd.add_argument("--early-stopping", type=int, default=None, metavar="PATIENCE",
                     help="stop when the validation loss has not improved for PATIENCE epochs and keep the "
                          "best weights (needs --validation-size or --validation-split); default: off")

    run = t.add_argument_group("running")
    run.add_argument("--backend", default=None,
                     help=f"{', '.join(backends.known())}; default: the fastest CPU backend here "
                          "(fastnn info lists them)")
    run.add_argument("--threads", type=int, default=None, metavar="N",
                     help="threads for every pool fastnn uses (fastnn.set_num_threads(N), 1 to the number "
                          "of CPU cores); default: fastnn's current setting (fastnn info shows it)")
    run.add_argument("--quiet", action="store_true",
                     help="no per-epoch lines (the data, network and result lines still print)")

    out = t.add_argument_group("outputs (their folders must exist; files there are overwritten)")
    out.add_argument("--save", metavar="PATH", default=None,
                     help="save the trained model to PATH (.npz is added when missing); load it with "
                          "fastnn.load(PATH) or trace it with fastnn trace --model PATH; default: not saved")
    out.add_argument("--plot", metavar="PNG", default=None,
                     help="save the loss/accuracy curves to PNG (.png is added when there is no extension) "
                          "and the per-layer gradient norms beside it (PNG's name + _grad_norms); needs "
                          "matplotlib: pip install 'fastnn[plot]'; default: no plot")
    t.set_defaults(handler=_train)
    return t


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastnn", description="Backprop kernels and MLP training.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train_parser(sub)

    i = sub.add_parser("info", help="version, backends, threads and BLAS")
    i.add_argument("--warmup", action="store_true",
                   help="also time each backend's first training step (compilation, or loading the cache)")
    i.set_defaults(handler=lambda args: _info(args.warmup))
    # Subcommands that live in other modules: each module has configure_parser(parser), which
    # sets ``handler`` (a function of args returning an exit code).  Add yours to this tuple.
    for module_name, command, help_text in _PLUGINS:
        module = importlib.import_module(module_name)
        module.configure_parser(sub.add_parser(command, help=help_text))
    return parser


_PLUGINS: tuple[tuple[str, str, str], ...] = (
    ("fastnn.bench", "bench", "benchmark every kernel and a training epoch on every backend"),
    ("fastnn.tracing", "trace", "print every number of one backprop step with its equation (worked example)"),
    ("fastnn.demos", "demo", "teaching demos: vanishing gradients, perceptron vs MLP, decision boundary, activations"),
)


# --------------------------------------------------------------------------- checks before any work


def check_output_file(option: str, path: str, example: str = "out") -> None:
    """Refuse an output path whose folder is missing or read-only, or that names a folder
    (``example``: a file name the message suggests inside that folder)."""
    if os.path.isdir(path):
        raise ValueError(f"{option} {path}: that is a folder; give a file name, e.g. {os.path.join(path, example)}")
    folder = os.path.dirname(os.path.abspath(path))
    shown = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        what = "is not a folder" if os.path.exists(folder) else "does not exist"
        raise FileNotFoundError(f"{option} {path}: folder {shown} {what}; create it with mkdir -p {shown}, "
                                "or choose another path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"{option} {path}: folder {shown} is not writable; choose a folder you can write to")


def check_plot_file(option: str, path: str) -> str:
    """The path a plot will be written to (``.png`` added when there is no extension), after
    checking that matplotlib imports, knows the format and that the folder is writable."""
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        raise ImportError(f"{option} needs matplotlib, which is not installed: pip install 'fastnn[plot]' "
                          f"(or leave out {option})") from None
    if os.path.isdir(path):
        check_output_file(option, path, "curves.png")  # refuses a folder, naming a file to give instead
    stem, ext = os.path.splitext(path)
    if not ext:
        path, ext = path + ".png", ".png"
    formats = FigureCanvasBase.get_supported_filetypes()
    if ext[1:].lower() not in formats:
        raise ValueError(f"{option} {path}: matplotlib cannot write {ext} files; use one of "
                         f"{', '.join('.' + f for f in sorted(formats))} (e.g. {stem}.png)")
    check_output_file(option, path, "curves.png")
    return path


def network_sizes(hidden: Sequence[int], n_in: int, n_out: int) -> list[int]:
    """The layer sizes ``--hidden`` builds on data with ``n_in`` inputs and ``n_out`` classes:
    ``[n_in, *hidden, n_out]``.  A list that starts with the input size (a full layer list, as
    ``--layers`` took) is refused with the ``--hidden`` that was probably meant."""
    hidden = list(hidden)
    if len(hidden) >= 2 and hidden[0] == n_in:
        meant = hidden[1:-1] if hidden[-1] == n_out else hidden[1:]
        raise ValueError(
            f"--hidden takes the hidden layer sizes only; the input ({n_in}) and output ({n_out}) layers "
            f"come from the data, so --hidden {_sizes_text(hidden)} would build "
            f"{'-'.join(map(str, [n_in, *hidden, n_out]))}. For {'-'.join(map(str, [n_in, *meant, n_out]))} "
            f"write --hidden {_sizes_text(meant)} (a first hidden layer of exactly {n_in} units: "
            f"build it in Python, fastnn.MLP([{n_in}, {n_in}, ...]))")
    return [n_in, *hidden, n_out]


def _check_train_args(args: argparse.Namespace) -> dict[str, object]:
    """Every check that needs no data (refusing bad input before any work); returns what training needs."""
    from fastnn.validation import check_float, check_positive_int

    n_in, n_out, name = DATASETS[args.dataset]
    if args.dataset == "cifar10" and not args.data:
        from fastnn.kernels import config

        args.data = config.get("FASTNN_CIFAR10") or None
        if not args.data:
            raise ValueError("CIFAR-10 is not bundled with fastnn: download the binary version "
                             f"(cifar-10-binary.tar.gz, 'CIFAR-10 binary version' on {CIFAR10_URL}), extract "
                             "it (tar xzf cifar-10-binary.tar.gz) and pass --data cifar-10-batches-bin "
                             "(or set FASTNN_CIFAR10 to that folder)")
    if args.data and not os.path.isdir(os.path.expanduser(args.data)):
        raise FileNotFoundError(f"--data {args.data}: no such folder; pass the folder holding the {name} files")
    if args.validation_size is not None:
        check_positive_int("--validation-size", args.validation_size)
        if args.validation_split:
            raise ValueError("pass --validation-size or --validation-split, not both")
    check_float("--validation-split", args.validation_split, 0.0, 1.0, high_open=True, hint="e.g. 0.1")
    sizes = network_sizes(args.hidden, n_in, n_out)
    check_positive_int("--epochs", args.epochs)
    check_positive_int("--batch-size", args.batch_size)
    check_float("--lr", args.lr, 0.0, float("inf"), low_open=True, high_open=True, hint="e.g. 0.05")
    check_float("--momentum", args.momentum, 0.0, 1.0, high_open=True, hint="0.9 is common; 0 is plain SGD")
    if args.nesterov and args.momentum == 0:
        raise ValueError("--nesterov needs --momentum > 0, e.g. --momentum 0.9")
    if args.early_stopping is not None:
        check_positive_int("--early-stopping", args.early_stopping)
        if not (args.validation_size or args.validation_split):
            raise ValueError("--early-stopping watches the validation loss: add --validation-size N "
                             "(e.g. 5000) or --validation-split FRACTION (e.g. 0.1)")
    save = plot = None
    if args.save:
        if os.path.isdir(args.save):
            check_output_file("--save", args.save, "model.npz")  # refuses a folder, naming a file to give instead
        save = args.save if args.save.endswith(".npz") else args.save + ".npz"
        check_output_file("--save", save)
    if args.plot:
        plot = check_plot_file("--plot", args.plot)
    if args.threads is not None:
        import fastnn

        try:
            fastnn.set_num_threads(args.threads)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"--threads {args.threads}: {exc}") from None
    return {"sizes": sizes, "name": name, "save": save, "plot": plot}


# --------------------------------------------------------------------------- fastnn train


def _load_data(args: argparse.Namespace, name: str):
    from fastnn import datasets

    if args.dataset == "cifar10":
        return datasets.load_cifar10(args.data), f"{name} from {args.data}"
    if args.data:
        return datasets.load_mnist(args.data), f"{name} from {args.data}"
    return datasets.load_mnist_subset(), "bundled MNIST subset"


def _train(args: argparse.Namespace) -> int:
    import numpy as np

    import fastnn

    t0 = time.perf_counter()
    plan = _check_train_args(args)
    sizes = plan["sizes"]
    # The model first: activation, init, dropout, L1/L2 and backend are checked before the data is read.
    model = fastnn.MLP(sizes, activation=args.activation, init=args.init, l1=args.l1, l2=args.l2,
                       dropout=args.dropout, input_dropout=args.input_dropout, backend=args.backend,
                       dtype=args.dtype, seed=args.seed)
    ((X, y), (Xt, yt)), source = _load_data(args, plan["name"])
    if X.shape[1] != sizes[0]:  # cannot happen with the loaders' formats; guards a changed loader
        raise ValueError(f"{source} has {X.shape[1]} values per image, expected {sizes[0]}")
    n_train, validation_data, held_out = len(X), None, ""
    if args.validation_size is not None:
        n_val = args.validation_size
        if n_val >= len(X):
            raise ValueError(f"--validation-size {n_val} leaves no training images: {source} has "
                             f"{len(X):,}; use at most {len(X) - 1:,}")
        perm = np.random.default_rng(args.seed).permutation(len(X))
        X, y, validation_data = X[perm[n_val:]], y[perm[n_val:]], (X[perm[:n_val]], y[perm[:n_val]])
        held_out = f" ({n_val:,} random training images held out for validation, seed {args.seed})"
    elif args.validation_split:
        held_out = f" ({args.validation_split:g} of the training images held out for validation)"
    print(f"{source}: {n_train:,} training and {len(Xt):,} test images{held_out}")
    print(f"network {'-'.join(map(str, sizes))}, {model.n_params:,} parameters, "
          f"backend {model.backend}, {model.dtype.name}, {fastnn.get_num_threads()} thread(s)")
    if len(args.hidden) >= 2 and args.hidden[-1] == sizes[-1]:
        print(f"note: --hidden {_sizes_text(args.hidden)} ends with {sizes[-1]}, which is a hidden layer here; "
              f"if it was meant as the output layer, write --hidden {_sizes_text(args.hidden[:-1])}",
              file=sys.stderr)
    history = model.fit(X, y, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                        lr_schedule=args.lr_schedule, momentum=args.momentum, nesterov=args.nesterov,
                        validation_split=args.validation_split, validation_data=validation_data,
                        early_stopping=args.early_stopping, verbose=0 if args.quiet else 1)
    if plan["save"]:
        print(f"model saved to {model.save(plan['save'])}")
    if plan["plot"]:
        from fastnn.plots import plot_grad_norms, plot_history

        png = plan["plot"]
        print(f"curves saved to {plot_history(history, png)}")
        stem, ext = os.path.splitext(png)
        print(f"gradient norms per layer saved to {plot_grad_norms(history, stem + '_grad_norms' + ext)}")
    result = model.evaluate(Xt, yt)
    print(f"trained {history.epochs} epoch{'s' if history.epochs != 1 else ''} in {sum(history.epoch_time):.1f} s "
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
    except (ValueError, TypeError, OSError, ImportError) as exc:
        # User errors (bad option values, missing files or folders) read better without a traceback.
        print(f"fastnn {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
