"""The backend registry: listing, choosing, and clear errors for what is missing."""
import numpy as np
import pytest

import fastnn
from fastnn import backends


def test_available_lists_the_reference_first():
    names = backends.available()
    assert names[0] == "numpy"
    assert set(names) <= set(backends.known())
    assert set(backends.unavailable_reasons()) == set(backends.known()) - set(names)


def test_default_is_a_cpu_backend_and_env_var_overrides(monkeypatch):
    monkeypatch.delenv("FASTNN_BACKEND", raising=False)
    assert backends.default_name() in backends.available()
    assert backends.default_name() != "cuda"
    monkeypatch.setenv("FASTNN_BACKEND", "numpy")
    assert fastnn.MLP([2, 2]).backend == "numpy"
    monkeypatch.setenv("FASTNN_BACKEND", "nope")
    with pytest.raises(ValueError, match="backend 'nope' is unknown"):
        fastnn.MLP([2, 2])


def test_unavailable_backend_explains(monkeypatch):
    missing = [n for n in backends.known() if n not in backends.available()]
    if not missing:
        pytest.skip("every backend is available here")
    with pytest.raises(ValueError, match=f"backend '{missing[0]}' is not available here: .*Available now: numpy"):
        fastnn.MLP([2, 2], backend=missing[0])


def test_every_backend_module_implements_the_contract():
    """Every backend keeps kernels/contract.py: the required kernels, and its hooks' signatures."""
    import inspect

    from fastnn.kernels import contract

    for name in backends.available():
        module = backends.get(name)
        assert module.NAME == name
        assert not contract.missing(module), f"{name} lacks {contract.missing(module)}"
        assert isinstance(module, contract.Backend)
        for hook, spec in contract.HOOKS.items():
            if contract.has_hook(module, hook):
                want = spec.signature.split("(", 1)[1].split(")", 1)[0].replace(" ", "").split(",")
                got = list(inspect.signature(getattr(module, hook)).parameters)
                assert got == [w for w in want if w], f"{name}.{hook}{tuple(got)} differs from the contract's {spec.signature}"


def test_hooks_are_the_contracts_and_have_stand_ins():
    from fastnn.kernels import contract, numpy_ref

    with pytest.raises(KeyError, match="not a hook"):
        contract.hook(numpy_ref, "fused_everything")
    assert contract.hook(numpy_ref, "train_epoch") is None  # the engine's run_epoch takes over
    x = np.ones(3)
    contract.hook(numpy_ref, "add")(x, np.ones(3))
    assert x.tolist() == [2.0, 2.0, 2.0]
    with contract.hook(numpy_ref, "fit_scope")(None, 32):
        pass


def test_no_kernel_module_imports_the_api_layer():
    """kernels/ is the lower layer: it imports nothing from fastnn.* outside fastnn.kernels."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "kernels"
    offenders = []
    for path in sorted(root.rglob("*.py")) + sorted(root.rglob("*.pyx")) + sorted(root.rglob("*.pxd")):
        for line in path.read_text().splitlines():
            words = line.split()
            if len(words) >= 2 and words[0] in ("from", "import", "cimport") and words[1].split(".")[0] == "fastnn":
                if not words[1].startswith("fastnn.kernels"):
                    offenders.append(f"{path.relative_to(root.parent)}: {line.strip()}")
    assert not offenders, "kernel modules import the API layer:\n" + "\n".join(offenders)
