"""The one table that maps names to the small integer codes compiled kernels take.

njit, Cython and cuda.jit kernels cannot take a dict of Python functions, so every backend
receives an activation or loss as an ``int``.  The codes live here and only here, inside the
kernels package (kernels import nothing from the API layer); ``fastnn.codes`` re-exports them.
The Cython backend mirrors the numbers as C constants in kernels/cython/_core.pxd, and a test
holds the two equal.
"""
from __future__ import annotations

__all__ = [
    "IDENTITY", "SIGMOID", "TANH", "RELU", "LEAKY_RELU", "ELU", "PRELU", "SOFTMAX",
    "LEAKY_SLOPE", "ELU_ALPHA", "PRELU_INIT", "PARAMETRISED", "LEARNED", "ACTIVATIONS", "OUTPUTS",
    "MSE", "CROSS_ENTROPY", "BINARY_CROSS_ENTROPY", "LOSSES", "OUTPUT_LOSSES",
    "ACTIVATION_NAMES", "LOSS_NAMES", "ACTIVATION_TEXT", "LOSS_TEXT", "activation_text",
    "activation_code", "output_code", "loss_code",
]

# Activation codes.  Hidden layers may use any of the first seven; SOFTMAX is output-only.
IDENTITY = 0
SIGMOID = 1
TANH = 2
RELU = 3
LEAKY_RELU = 4  # fixed slope alpha_j for z < 0 (the layer's `alpha` vector, LEAKY_SLOPE by default)
ELU = 5  # fixed alpha_j (the layer's `alpha` vector, ELU_ALPHA by default)
PRELU = 6  # learnable slope per unit (the layer's `alpha` vector)
SOFTMAX = 7

# The activations whose formula takes a parameter per unit, alpha_j: every kernel reads it from the
# layer's `alpha` vector, so one code path serves a fixed LeakyReLU slope, a fixed ELU alpha and
# PReLU's learned slopes.  Only LEARNED ones get a gradient and an update.
PARAMETRISED = (LEAKY_RELU, ELU, PRELU)
LEARNED = (PRELU,)

# Defaults of the fixed parameters (MLP(leaky_slope=..., elu_alpha=...) sets them per model).
LEAKY_SLOPE = 0.01
ELU_ALPHA = 1.0
PRELU_INIT = 0.25  # He et al. (2015), "Delving deep into rectifiers"

ACTIVATIONS: dict[str, int] = {
    "identity": IDENTITY,
    "sigmoid": SIGMOID,
    "tanh": TANH,
    "relu": RELU,
    "leaky_relu": LEAKY_RELU,
    "elu": ELU,
    "prelu": PRELU,
}
OUTPUTS: dict[str, int] = {"softmax": SOFTMAX, "sigmoid": SIGMOID, "identity": IDENTITY}

# Loss codes.
MSE = 0  # J = 1/2 sum_j (a_j - y_j)^2 per sample
CROSS_ENTROPY = 1  # J = -sum_j y_j ln a_j per sample (softmax output)
BINARY_CROSS_ENTROPY = 2  # J = -sum_j [y_j ln a_j + (1-y_j) ln(1-a_j)] per sample (sigmoid output)

LOSSES: dict[str, int] = {
    "mse": MSE,
    "cross_entropy": CROSS_ENTROPY,
    "binary_cross_entropy": BINARY_CROSS_ENTROPY,
}
# Which losses each output activation supports; the first is the default.
OUTPUT_LOSSES: dict[str, tuple[str, ...]] = {
    "softmax": ("cross_entropy", "mse"),
    "sigmoid": ("binary_cross_entropy", "mse"),
    "identity": ("mse",),
}

ACTIVATION_NAMES = {v: k for k, v in ACTIVATIONS.items()} | {SOFTMAX: "softmax"}

# Each formula as text, in the notation of fastnn's traces and docs (a = f(z)); the constants come from
# the definitions above, so the text cannot disagree with what the kernels compute.
def _times(c: float, expr: str) -> str:
    return expr if c == 1 else f"{c:g} {expr}"


def activation_text(name: str, alpha: float | None = None) -> tuple[str, str]:
    """(f(z), f'(z)) of activation ``name`` as text; ``alpha``: a fixed LeakyReLU slope or ELU alpha to
    write in (None: the default; PReLU's learned slopes always read ``alpha``)."""
    if name == "leaky_relu":
        c = LEAKY_SLOPE if alpha is None else alpha
        return f"z if z > 0 else {c:g} z", f"1 if z > 0 else {c:g}"
    if name == "elu":
        c = ELU_ALPHA if alpha is None else alpha
        return f"z if z > 0 else {_times(c, '(e^z - 1)')}", f"1 if z > 0 else {_times(c, 'e^z')}"
    return _FIXED_TEXT[name]


_FIXED_TEXT: dict[str, tuple[str, str]] = {
    "identity": ("z", "1"),
    "sigmoid": ("1 / (1 + e^-z)", "a (1 - a)"),
    "tanh": ("tanh(z)", "1 - a^2"),
    "relu": ("max(z, 0)", "[z > 0]"),
    "prelu": ("z if z > 0 else alpha z", "1 if z > 0 else alpha"),
    "softmax": ("e^z_j / sum_k e^z_k", "a_j ([j = k] - a_k)   (the Jacobian)"),
}
ACTIVATION_TEXT: dict[str, tuple[str, str]] = {  # name -> (f(z), f'(z)) with the default parameters
    name: activation_text(name) for name in (*ACTIVATIONS, "softmax")}
LOSS_TEXT: dict[int, str] = {  # the per-sample loss J_b; the reported loss is its mean over the batch
    MSE: "1/2 sum_j (a_j - y_j)^2",
    CROSS_ENTROPY: "-sum_j y_j ln a_j",
    BINARY_CROSS_ENTROPY: "-sum_j [y_j ln a_j + (1 - y_j) ln(1 - a_j)]",
}
LOSS_NAMES = {v: k for k, v in LOSSES.items()}


def _choose(kind: str, name: object, table: dict[str, int]) -> int:
    """Look up ``name`` in ``table``; an unknown name raises ValueError listing the choices."""
    if not isinstance(name, str) or name not in table:
        raise ValueError(
            f"{kind} {name!r} is not supported; choose one of: {', '.join(table)}"
        )
    return table[name]


def activation_code(name: object) -> int:
    """Code of a hidden-layer activation name."""
    return _choose("activation", name, ACTIVATIONS)


def output_code(name: object) -> int:
    """Code of an output activation name."""
    return _choose("output", name, OUTPUTS)


def loss_code(name: object) -> int:
    """Code of a loss name."""
    return _choose("loss", name, LOSSES)
