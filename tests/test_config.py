"""kernels/config.py: the one reader of FASTNN_* environment variables."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from fastnn.kernels import config

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_when_unset(monkeypatch):
    for name in config.SETTINGS:
        monkeypatch.delenv(name, raising=False)
    assert config.get("FASTNN_BLAS") == "auto"
    assert config.get("FASTNN_CYTHON_ISA") == "auto"
    assert config.get("FASTNN_CUDA_TPB") == 128
    assert config.get("FASTNN_CUDA_TILE") == 16
    assert config.get("FASTNN_OPENMP") is True
    assert config.get("FASTNN_MARCH_NATIVE") is False
    assert config.get("FASTNN_BACKEND") == ""
    assert config.get("FASTNN_MNIST") == ""


def test_values_are_parsed(monkeypatch, tmp_path):
    monkeypatch.setenv("FASTNN_BLAS", " SciPy ")
    monkeypatch.setenv("FASTNN_CUDA_TPB", "32")
    monkeypatch.setenv("FASTNN_OPENMP", "off")
    monkeypatch.setenv("FASTNN_MNIST", "~/mnist")
    assert config.get("FASTNN_BLAS") == "scipy"
    assert config.get("FASTNN_CUDA_TPB") == 32
    assert config.get("FASTNN_OPENMP") is False
    assert config.get("FASTNN_MNIST") == str(Path("~/mnist").expanduser())


@pytest.mark.parametrize("name, value, fix", [
    ("FASTNN_BLAS", "mkl", "one of auto, numpy, scipy"),
    ("FASTNN_CYTHON_ISA", "sse9", "one of auto, avx512, avx2, baseline"),
    ("FASTNN_CUDA_TPB", "100", "a power of two from 1 to 1024"),
    ("FASTNN_CUDA_TILE", "64", "an integer from 1 to 32"),
    ("FASTNN_CUDA_MAX_BLOCKS", "many", "an integer from 1 to 65535"),
    ("FASTNN_OPENMP", "maybe", "set it to 1 or 0"),
])
def test_a_bad_value_names_the_variable_and_the_fix(monkeypatch, name, value, fix):
    monkeypatch.setenv(name, value)
    with pytest.raises(config.ConfigError, match=f"{name}={value!r} is not valid; .*{re.escape(fix)}"):
        config.get(name)
    row = dict((r[0], r[1]) for r in config.table())
    assert row[name].startswith("INVALID:")  # fastnn info shows the problem instead of failing


def test_unknown_names_are_refused():
    with pytest.raises(KeyError, match="not a fastnn setting"):
        config.get("FASTNN_NOPE")


def test_fastnn_info_prints_every_setting(capsys):
    from fastnn.cli import main

    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for name in config.SETTINGS:
        assert f"  {name} = " in out


def test_only_the_config_module_reads_fastnn_variables():
    """Every FASTNN_* variable is read through kernels/config.py: grep the package, setup.py and the benchmarks."""
    reads = re.compile(r"(environ(\.get)?\s*[\[(]|getenv\s*\()\s*['\"]FASTNN_")
    files = [ROOT / "setup.py", *sorted((ROOT / "kernels").rglob("*.py")), *sorted((ROOT / "kernels").rglob("*.pyx")),
             *sorted((ROOT / "fastnn").rglob("*.py")), *sorted((ROOT / "benchmarks").rglob("*.py"))]
    offenders = [f"{p.relative_to(ROOT)}" for p in files
                 if p.name != "config.py" and reads.search(p.read_text())]
    assert not offenders, f"these read FASTNN_* variables themselves instead of kernels/config.py: {offenders}"
    documented = (ROOT / "kernels" / "README.md").read_text()
    assert all(name in documented for name in config.SETTINGS), "kernels/README.md must list every setting"
