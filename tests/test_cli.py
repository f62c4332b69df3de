"""The command line: the main job, its options, saved outputs and error messages."""
import re
import subprocess
import sys

import numpy as np
import pytest

import fastnn
from fastnn.cli import main


def test_fastnn_train_default_reaches_90_percent(capsys):
    """The README's main job, exactly as a newcomer runs it (in-process to save start-up time)."""
    assert main(["train"]) == 0
    out = capsys.readouterr().out
    assert "bundled MNIST subset" in out and "epoch 10/10" in out
    last = out.strip().splitlines()[-1]
    match = re.fullmatch(r"test accuracy: (0\.\d{4})", last)
    assert match, last
    assert float(match.group(1)) >= 0.90


def test_train_options_save_and_plot(tmp_path, capsys):
    model_path, png = tmp_path / "m.npz", tmp_path / "curves.png"
    code = main(["train", "--epochs", "2", "--hidden", "32", "--activation", "tanh",
                 "--batch-size", "100", "--lr", "0.1", "--momentum", "0.5", "--nesterov", "--l1", "1e-5",
                 "--l2", "1e-4", "--dropout", "0.1", "--input-dropout", "0.1", "--dtype", "float64",
                 "--seed", "3", "--validation-split", "0.1", "--early-stopping", "3", "--init", "xavier",
                 "--backend", "numpy", "--save", str(model_path), "--plot", str(png), "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "epoch 1/2" not in out and "test accuracy:" in out
    m = fastnn.load(model_path)
    assert m.layers == [784, 32, 10] and m.activation == ["tanh"] and m.dtype == np.float64
    assert m.dropout == 0.1 and m.l2 == 1e-4 and m.init == "xavier"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_on_a_data_directory(tmp_path, capsys):
    import gzip
    import struct

    from fastnn.datasets import load_mnist_subset

    (X, y), (Xt, yt) = load_mnist_subset()

    def write(name, arr, dims):
        magic = struct.pack(">BBBB", 0, 0, 8, len(dims)) + b"".join(struct.pack(">I", d) for d in dims)
        with gzip.open(tmp_path / (name + ".gz"), "wb") as f:
            f.write(magic + arr.astype(np.uint8).tobytes())

    write("train-images-idx3-ubyte", np.round(X[:500] * 255), (500, 28, 28))
    write("train-labels-idx1-ubyte", y[:500], (500,))
    write("t10k-images-idx3-ubyte", np.round(Xt[:100] * 255), (100, 28, 28))
    write("t10k-labels-idx1-ubyte", yt[:100], (100,))
    assert main(["train", "--data", str(tmp_path), "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert f"MNIST from {tmp_path}: 500 training and 100 test images" in out
    assert "test accuracy:" in out


@pytest.mark.parametrize("argv,message", [
    (["train", "--data", "/nonexistent/mnist"], "/nonexistent/mnist"),
    (["train", "--backend", "gpu9000"], "backend 'gpu9000' is unknown"),
    (["train", "--dropout", "1.5"], "dropout must be in"),
    (["train", "--epochs", "0"], "epochs must be an integer >= 1"),
    (["train", "--activation", "swish"], "activation 'swish' is not supported"),
])
def test_train_errors_are_one_clear_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_bad_hidden_option_is_rejected(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--hidden", "256,abc"])
    assert "comma-separated sizes" in capsys.readouterr().err


def test_info(capsys):
    assert main(["info", "--warmup"]) == 0
    out = capsys.readouterr().out
    assert f"fastnn {fastnn.__version__}" in out
    assert "backends available: numpy" in out and "CPU cores:" in out and "BLAS" in out
    assert "compiled backends' BLAS (FASTNN_BLAS): " in out
    if "cython" in fastnn.backends.available():
        assert "cython build (FASTNN_CYTHON_ISA): " in out
    for name in fastnn.backends.available():
        assert f"first training step on {name}:" in out


def test_console_script_is_installed():
    """`fastnn` on PATH (the README's command), not only the module."""
    result = subprocess.run([sys.executable, "-m", "fastnn.cli", "info"], capture_output=True, text=True)
    assert result.returncode == 0 and "backends available" in result.stdout
    import shutil

    assert shutil.which("fastnn"), "the fastnn console script is not on PATH: reinstall with pip install -e ."
