"""The backend registry: listing, choosing, and clear errors for what is missing."""
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
    contract = ["matmul", "to_device", "to_host", "empty", "assign", "linear_forward", "activate",
                "activation_derivative", "loss_value", "output_delta", "backprop_error",
                "activation_backward", "propagate_delta", "param_grads", "penalty", "sgd_update",
                "dropout"]
    for name in backends.available():
        module = backends.get(name)
        assert module.NAME == name
        missing = [f for f in contract if not callable(getattr(module, f, None))]
        assert not missing, f"{name} lacks {missing}"
