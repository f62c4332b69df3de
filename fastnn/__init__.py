"""fastnn: backpropagation as named, readable, tested kernels, and fast MLP training.

    >>> import fastnn
    >>> model = fastnn.MLP([784, 128, 10], activation="relu", seed=0)
    >>> history = model.fit(X, y, epochs=5, batch_size=64, lr=0.05)   # doctest: +SKIP
"""
from fastnn import backends, codes, cpu
from fastnn._version import __version__
from fastnn.cpu import get_num_threads, set_num_threads
from fastnn.gradcheck import gradient_check
from fastnn.io import load
from fastnn.model import MLP
from fastnn.training import Callback, EarlyStopping, History, TrainingDivergedWarning

__all__ = [
    "MLP",
    "Callback",
    "EarlyStopping",
    "History",
    "TrainingDivergedWarning",
    "backends",
    "codes",
    "cpu",
    "get_num_threads",
    "gradient_check",
    "set_num_threads",
    "load",
    "__version__",
]
