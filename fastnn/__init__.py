"""fastnn: backpropagation as named, readable, tested kernels, and fast MLP training.

    >>> import fastnn
    >>> model = fastnn.MLP([784, 128, 10], activation="relu", seed=0)
    >>> history = model.fit(X, y, epochs=5, batch_size=64, lr=0.05)   # doctest: +SKIP
"""
from fastnn import activations, augment, backends, codes, cpu, losses, model_selection, schedules
from fastnn._version import __version__
from fastnn.cpu import get_num_threads, set_num_threads
from fastnn.gradcheck import gradient_check
from fastnn.io import load
from fastnn.model import MLP
from fastnn.perceptron import Perceptron
from fastnn.tracing import Trace, trace
from fastnn.training import (
    Callback,
    EarlyStopping,
    EarlyStoppingWarning,
    History,
    TrainingDivergedWarning,
    UnscaledInputWarning,
)

# Not imported here, because they need optional extras: fastnn.sklearn (scikit-learn),
# fastnn.plots (matplotlib).  fastnn.demos holds the teaching demos (``fastnn demo ...``).

__all__ = [
    "MLP",
    "Perceptron",
    "Trace",
    "trace",
    "activations",
    "augment",
    "losses",
    "schedules",
    "model_selection",
    "Callback",
    "EarlyStopping",
    "History",
    "TrainingDivergedWarning",
    "UnscaledInputWarning",
    "EarlyStoppingWarning",
    "backends",
    "codes",
    "cpu",
    "get_num_threads",
    "gradient_check",
    "set_num_threads",
    "load",
    "__version__",
]
