"""The command line says what it does: every option's default in its help, bad input refused
before any data is read or any training starts (one line naming the problem and the fix),
CIFAR-10 and a hold-out from the CLI, and demo / trace messages worded from what was measured."""
import argparse
import inspect
import os
import sys
from pathlib import Path

import numpy as np
import pytest

import fastnn
from fastnn import cli, datasets
from fastnn.cli import main
from fastnn.demos import vanishing_conclusion

ROOT = Path(__file__).resolve().parents[1]


def _train_parser() -> argparse.ArgumentParser:
    sub = next(a for a in cli._build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["train"]


def _option_blocks(help_text: str) -> dict[str, str]:
    """Option string -> its help block (the option line and its continuation lines)."""
    blocks: dict[str, str] = {}
    current = None
    for line in help_text.splitlines():
        stripped = line.strip()
        if line.startswith("  -") and not line.startswith("   "):
            current = stripped.split()[0].rstrip(",")
            blocks[current] = stripped
        elif current and line.startswith("    ") and stripped:
            blocks[current] += " " + stripped
        else:
            current = None
    return blocks


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if data is read or training starts: the CLI must refuse before either."""
    def fail(*args, **kwargs):
        raise AssertionError("reached data loading or training; the input should have been refused first")

    for name in ("load_mnist", "load_mnist_subset", "load_cifar10"):
        monkeypatch.setattr(datasets, name, fail)
    monkeypatch.setattr(fastnn.MLP, "fit", fail)


@pytest.fixture
def restore_threads():
    before = fastnn.get_num_threads()
    yield
    fastnn.set_num_threads(before)


# --------------------------------------------------------------------------- help


def test_train_help_shows_every_default(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "120")
    with pytest.raises(SystemExit) as exc:
        main(["train", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    blocks = _option_blocks(text)
    options = [a for a in _train_parser()._actions
               if a.option_strings and a.help is not argparse.SUPPRESS and a.dest != "help"]
    assert len(options) >= 24
    for action in options:
        block = blocks[action.option_strings[0]]
        assert "default" in block, f"{action.option_strings[0]} shows no default: {block!r}"
    for opt, shown in [("--epochs", "(default: 10)"), ("--batch-size", "(default: 64)"),
                       ("--momentum", "(default: 0.9)"), ("--l1", "(default: 0.0)"), ("--l2", "(default: 0.0)"),
                       ("--validation-split", "(default: 0.0)"), ("--seed", "(default: 0)"),
                       ("--hidden", "(default: 256,128)"), ("--nesterov", "(default: off)"),
                       ("--dataset", "(default: mnist)")]:
        assert shown in blocks[opt], (opt, blocks[opt])
    assert "(default: None)" not in text
    assert "--layers" not in text


def test_train_help_explains_why_its_defaults_differ_from_fit():
    parser = _train_parser()
    epilog = parser.epilog
    cli_defaults = {a.dest: a.default for a in parser._actions}
    assert (cli_defaults["lr"], cli_defaults["momentum"], cli_defaults["batch_size"]) == (0.05, 0.9, 64)
    assert "momentum 0.9, lr 0.05, batches of 64" in epilog
    fit = inspect.signature(fastnn.MLP.fit).parameters
    assert (fit["lr"].default, fit["momentum"].default, fit["batch_size"].default) == (0.01, 0.0, 32)
    assert "MLP.fit keeps the plain-SGD textbook" in epilog and "(lr 0.01, no momentum, batches of 32)" in epilog


def test_everything_the_help_names_exists():
    parser = _train_parser()
    text = parser.format_help()
    # The examples in the epilog parse with this parser (every option they use exists).
    examples = parser.epilog.replace("\\\n", " ").split("examples:")[1]
    commands = [line.split("#")[0].split() for line in examples.splitlines() if line.strip()]
    assert len(commands) == 3
    for words in commands:
        assert words[:2] == ["fastnn", "train"]
        parser.parse_args(words[2:])
    # Activations, inits and backends the help lists are the ones the library accepts.
    for a in fastnn.codes.ACTIVATIONS:
        assert a in text
        fastnn.MLP([3, 4, 2], activation=a, backend="numpy")
    from fastnn.model import INITS

    for init in INITS:
        assert init in text
        fastnn.MLP([3, 4, 2], init=init, backend="numpy")
    assert "numpy, numba, cython, cuda" in text and fastnn.backends.known() == ["numpy", "numba", "cython", "cuda"]
    # The schedules' settings it quotes are the library's.
    from fastnn import schedules

    assert "step (halved every 10 epochs), exponential (x 0.95 per epoch), cosine (down to 0" in " ".join(text.split())
    assert (schedules.get("step").drop, schedules.get("step").every) == (0.5, 10)
    assert schedules.get("exponential").gamma == 0.95 and schedules.get("cosine").lr_min == 0.0
    # The pip extra, the functions and the commands it names.
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert "pip install 'fastnn[plot]'" in text and any(d.startswith("matplotlib") for d in extras["plot"])
    assert "fastnn.set_num_threads(N)" in text and callable(fastnn.set_num_threads)
    assert "fastnn.load(PATH)" in text and callable(fastnn.load)
    sub = next(a for a in cli._build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert {"info", "trace", "demo"} <= set(sub.choices)
    assert "--model" in sub.choices["trace"].format_help()


# --------------------------------------------------------------------------- --hidden and --layers


@pytest.mark.parametrize("value,advice", [
    ("10,14,10", "if 10,14,10 lists hidden and output sizes (784-10-14-10), write --hidden 10,14; "
                 "if it lists hidden sizes only, write --hidden 10,14,10"),
    ("784,256,128,10", "for 784-256-128-10 write --hidden 256,128"),
    ("256,128", "write --hidden 256,128"),
])
def test_layers_is_refused_naming_the_hidden_to_write(value, advice, capsys, no_work):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--layers", value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--layers was replaced by --hidden" in err and advice in err


def test_hidden_builds_hidden_layers_only(capsys):
    assert main(["train", "--hidden", "10,14", "--epochs", "1", "--backend", "numpy", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "network 784-10-14-10, 8,154 parameters" in out
    assert "test accuracy:" in out


def test_hidden_sizes_parse():
    parser = _train_parser()
    assert parser.parse_args([]).hidden == [256, 128]
    assert parser.parse_args(["--hidden", "10, 14"]).hidden == [10, 14]
    assert parser.parse_args(["--hidden", "none"]).hidden == []
    assert parser.parse_args(["--hidden", ""]).hidden == []
    assert cli.network_sizes([10, 14], 784, 10) == [784, 10, 14, 10]
    assert cli.network_sizes([], 784, 10) == [784, 10]
    assert cli.network_sizes([784], 784, 10) == [784, 784, 10]  # one hidden layer as wide as the input
    assert cli.network_sizes([1024, 512, 256, 128], 3072, 10) == [3072, 1024, 512, 256, 128, 10]


@pytest.mark.parametrize("value,message", [
    ("784,256,10", "--hidden takes the hidden layer sizes only; the input (784) and output (10) layers come "
                   "from the data, so --hidden 784,256,10 would build 784-784-256-10-10. "
                   "For 784-256-10 write --hidden 256"),
    ("784,256,128", "For 784-256-128-10 write --hidden 256,128"),
    ("784,10", "For 784-10 write --hidden none"),
])
def test_hidden_with_the_input_size_first_is_refused(value, message, capsys, no_work):
    assert main(["train", "--hidden", value]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("value,message", [
    ("256,0", "hidden layer sizes must be integers >= 1, got '256,0'; for no hidden layer write --hidden none"),
    ("256,-3", "hidden layer sizes must be integers >= 1"),
    ("256,abc", "expected comma-separated sizes such as 256,128"),
    ("256,,128", "expected comma-separated sizes"),
])
def test_hidden_sizes_that_are_no_network_are_refused(value, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--hidden", value])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_hidden_ending_in_the_class_count_gets_a_note(capsys):
    assert main(["train", "--hidden", "8,10", "--epochs", "1", "--backend", "numpy", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "network 784-8-10-10" in captured.out
    assert "if it was meant as the output layer, write --hidden 8" in captured.err


# --------------------------------------------------------------------------- refused before any work


@pytest.mark.parametrize("argv,message", [
    (["--save", "/nonexistent/dir/m.npz"],
     "--save /nonexistent/dir/m.npz: folder /nonexistent/dir does not exist; create it with mkdir -p /nonexistent/dir"),
    (["--save", "/nonexistent/dir/m"], "folder /nonexistent/dir does not exist"),
    (["--plot", "/nonexistent/plots/curves.png"],
     "--plot /nonexistent/plots/curves.png: folder /nonexistent/plots does not exist; create it with mkdir -p"),
    (["--plot", "curves.xyz"], "matplotlib cannot write .xyz files; use one of"),
    (["--threads", "0"], "--threads 0: n must be an integer >= 1, got 0"),
    (["--threads", str((os.cpu_count() or 1) + 1)], "threads is more than the"),
    (["--dataset", "cifar10"], "CIFAR-10 is not bundled with fastnn: download the binary version"),
    (["--data", "/nonexistent/mnist"], "--data /nonexistent/mnist: no such folder"),
    (["--validation-size", "0"], "--validation-size must be an integer >= 1, got 0"),
    (["--validation-size", "50", "--validation-split", "0.1"], "pass --validation-size or --validation-split, not both"),
    (["--early-stopping", "3"], "--early-stopping watches the validation loss: add --validation-size N"),
    (["--epochs", "0"], "--epochs must be an integer >= 1, got 0"),
    (["--batch-size", "0"], "--batch-size must be an integer >= 1"),
    (["--lr", "-1"], "--lr must be in (0.0, inf)"),
    (["--momentum", "1"], "--momentum must be in [0.0, 1.0)"),
    (["--nesterov", "--momentum", "0"], "--nesterov needs --momentum > 0"),
    (["--activation", "swish"], "activation 'swish' is not supported"),
    (["--init", "zeros"], "init 'zeros' is not supported"),
    (["--dropout", "1.5"], "dropout must be in"),
    (["--backend", "gpu9000"], "backend 'gpu9000' is unknown"),
])
def test_bad_train_input_is_refused_before_any_work(argv, message, capsys, no_work, restore_threads):
    assert main(["train", *argv]) == 2
    captured = capsys.readouterr()
    assert message in captured.err, captured.err
    assert "Traceback" not in captured.err and "epoch" not in captured.out


def test_output_paths_that_are_folders_or_under_files_are_refused(tmp_path, capsys, no_work):
    assert main(["train", "--save", str(tmp_path)]) == 2
    assert f"--save {tmp_path}: that is a folder; give a file name, e.g. {tmp_path / 'model.npz'}" in capsys.readouterr().err
    assert main(["train", "--plot", str(tmp_path)]) == 2
    assert "that is a folder" in capsys.readouterr().err
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    assert main(["train", "--plot", str(a_file / "curves.png")]) == 2
    assert f"folder {a_file} is not a folder" in capsys.readouterr().err


def test_plot_without_matplotlib_is_refused_before_training(monkeypatch, tmp_path, capsys, no_work):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.backend_bases", None)
    assert main(["train", "--plot", str(tmp_path / "c.png")]) == 2
    err = capsys.readouterr().err
    assert "--plot needs matplotlib, which is not installed: pip install 'fastnn[plot]'" in err


def test_plot_without_extension_gets_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert main(["train", "--epochs", "1", "--hidden", "8", "--backend", "numpy", "--quiet",
                 "--plot", str(tmp_path / "curves")]) == 0
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "curves_grad_norms.png").is_file()


def test_threads_option_sets_fastnn_threads(capsys, restore_threads):
    assert main(["train", "--threads", "1", "--hidden", "8", "--epochs", "1", "--backend", "numpy", "--quiet"]) == 0
    assert "1 thread(s)" in capsys.readouterr().out
    assert fastnn.get_num_threads() == 1


def test_lr_schedule_reaches_fit(monkeypatch, capsys):
    seen = {}
    fit = fastnn.MLP.fit

    def spy(self, *args, **kwargs):
        seen.update(kwargs)
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(fastnn.MLP, "fit", spy)
    assert main(["train", "--lr-schedule", "cosine", "--lr", "0.1", "--hidden", "8", "--epochs", "2",
                 "--backend", "numpy", "--quiet"]) == 0
    assert seen["lr_schedule"] == "cosine" and seen["lr"] == 0.1 and seen["epochs"] == 2
    with pytest.raises(SystemExit):
        main(["train", "--lr-schedule", "linear"])
    assert "invalid choice: 'linear'" in capsys.readouterr().err


def test_validation_size_holds_out_that_many_images(capsys):
    assert main(["train", "--validation-size", "1000", "--early-stopping", "2", "--hidden", "8", "--epochs", "1",
                 "--backend", "numpy"]) == 0
    out = capsys.readouterr().out
    assert "10,000 training and 2,000 test images (1,000 random training images held out for validation, seed 0)" in out
    assert "val_loss" in out
    assert main(["train", "--validation-size", "10000", "--hidden", "8", "--backend", "numpy"]) == 2
    assert "--validation-size 10000 leaves no training images: bundled MNIST subset has 10,000; use at most 9,999" \
        in capsys.readouterr().err


# --------------------------------------------------------------------------- CIFAR-10


def _write_cifar(folder: Path, per_batch: int = 12, seed: int = 0) -> None:
    """A tiny CIFAR-10 in the binary format: label byte + 3072 pixel bytes per record."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        labels = rng.integers(0, 10, per_batch, dtype=np.uint8)
        pixels = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        (folder / name).write_bytes(np.hstack([labels[:, None], pixels]).tobytes())


def test_cifar10_trains_from_binary_batches_with_a_validation_size(tmp_path, capsys):
    data = tmp_path / "cifar-10-batches-bin"
    _write_cifar(data)
    argv = ["train", "--dataset", "cifar10", "--data", str(data), "--hidden", "16,8,8,8", "--epochs", "1",
            "--batch-size", "16", "--validation-size", "12", "--backend", "numpy"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert (f"CIFAR-10 from {data}: 60 training and 12 test images "
            "(12 random training images held out for validation, seed 0)") in out
    assert "network 3072-16-8-8-8-10," in out
    assert "epoch 1/1" in out and "val_loss" in out and "test accuracy:" in out
    # The folder the archive extracts into works too (its parent holds cifar-10-batches-bin/).
    assert main([*argv[:4], str(tmp_path), *argv[5:], "--quiet"]) == 0
    assert f"CIFAR-10 from {tmp_path}: 60 training" in capsys.readouterr().out


def test_cifar10_from_the_environment(tmp_path, capsys, monkeypatch):
    """FASTNN_CIFAR10 stands in for --data (and for load_cifar10's path)."""
    data = tmp_path / "cifar-10-batches-bin"
    _write_cifar(data)
    monkeypatch.setenv("FASTNN_CIFAR10", str(tmp_path))
    assert main(["train", "--dataset", "cifar10", "--hidden", "8", "--epochs", "1", "--backend", "numpy",
                 "--quiet"]) == 0
    assert f"CIFAR-10 from {tmp_path}: 60 training" in capsys.readouterr().out
    from fastnn.datasets import load_cifar10

    (X, y), _ = load_cifar10()
    assert X.shape == (60, 3072)
    monkeypatch.delenv("FASTNN_CIFAR10")
    with pytest.raises(FileNotFoundError, match="no path given and \\$FASTNN_CIFAR10 is not set"):
        load_cifar10()


def test_cifar10_refusals(tmp_path, capsys, no_work, monkeypatch):
    monkeypatch.delenv("FASTNN_CIFAR10", raising=False)
    assert main(["train", "--dataset", "cifar10"]) == 2
    err = capsys.readouterr().err
    assert "https://www.cs.toronto.edu/~kriz/cifar.html" in err and "pass --data cifar-10-batches-bin" in err
    assert main(["train", "--dataset", "cifar10", "--data", str(tmp_path), "--hidden", "3072,512,10"]) == 2
    assert "the input (3072) and output (10) layers come from the data" in capsys.readouterr().err


# --------------------------------------------------------------------------- demo and trace


def test_vanishing_conclusion_for_a_shallow_network_claims_no_orders_of_magnitude():
    text = vanishing_conclusion({"sigmoid": 0.52, "relu": 1.3, "sigmoid + residual": 0.8}, depth=3)
    assert "orders of magnitude" not in text
    assert "The sigmoid network keeps its first layer's gradient within one order of magnitude" in text
    assert "1/4" not in text  # the vanishing explanation is not given when nothing vanished
    assert "No network's first-layer gradient fell an order of magnitude below its last layer's at depth 3" in text


def test_vanishing_conclusion_for_a_deep_network_says_how_many_orders():
    text = vanishing_conclusion({"sigmoid": 2.0e-4, "relu": 3.0, "sigmoid + residual": 0.15}, depth=8)
    assert ("The sigmoid network's first layer gets a gradient 3.7 orders of magnitude smaller than its last "
            "layer's (first/last = 2.0e-04): each sigmoid layer multiplies the backpropagated error by f'(z) <= 1/4.") in text
    assert "The relu network keeps its first layer's gradient within one order of magnitude" in text
    assert "3.0 times larger" in text and "6.7 times smaller" in text
    assert "No network" not in text
    # ReLU losing its gradient gets no ReLU excuse; a growing gradient is called that.
    text = vanishing_conclusion({"relu": 1e-3, "tanh": 50.0})
    assert "3.0 orders of magnitude smaller" in text and "f'(z) = 1" not in text
    assert "1.7 orders of magnitude larger" in text and "grows instead of vanishing" in text
    assert "nothing can be read" in vanishing_conclusion({"sigmoid": 0.0})


def test_demo_vanishing_prints_the_measured_conclusion(capsys):
    assert main(["demo", "vanishing", "--depth", "3", "--width", "8", "--samples", "200", "--epochs", "1",
                 "--backend", "numpy"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    ratios = {}
    for line in lines[2:5]:
        name, values = line[:18].strip(), line[18:].split()
        ratios[name] = float(values[-2])
    assert set(ratios) == {"sigmoid", "relu", "sigmoid + residual"}
    assert lines[-1].startswith("The sigmoid network")
    assert ("orders of magnitude smaller" in lines[-1]) == (ratios["sigmoid"] <= 0.1)


def test_demo_plot_is_checked_before_training(monkeypatch, capsys):
    import fastnn.demos

    monkeypatch.setattr(fastnn.demos, "vanishing_gradients", lambda **kw: pytest.fail("trained before the check"))
    assert main(["demo", "vanishing", "--plot", "/nonexistent/dir/v.png"]) == 2
    assert "folder /nonexistent/dir does not exist; create it with mkdir -p /nonexistent/dir" in capsys.readouterr().err


def test_demo_help_shows_every_default(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "120")
    with pytest.raises(SystemExit):
        main(["demo", "vanishing", "--help"])
    blocks = _option_blocks(capsys.readouterr().out)
    for opt in ["--depth", "--width", "--epochs", "--samples", "--lr", "--backend", "--seed", "--plot"]:
        assert "default" in blocks[opt], blocks[opt]


def test_trace_x_of_the_wrong_length_names_the_network_inputs(tmp_path, capsys):
    model = fastnn.MLP([2, 3, 2], backend="numpy", seed=0)
    with pytest.raises(ValueError, match="x is one sample of 3 values but the network takes 2 inputs"):
        fastnn.trace(model, [0.5, -1, 3], 1)  # the library's own check, as fit and predict make it
    path = model.save(tmp_path / "m.npz")
    argv = ["trace", "--model", path, "--y", "1", "--backend", "numpy"]
    assert main([*argv, "--x", "0.5,-1,3"]) == 2
    err = capsys.readouterr().err
    assert f"--x has 3 values but the network in {path} (2-3-2) takes 2 inputs; pass 2 comma-separated values" in err
    assert main([*argv, "--x", "0.5,-1"]) == 0
    assert "Backprop trace: 2-3-2 network" in capsys.readouterr().out

