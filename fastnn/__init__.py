"""fastnn: backpropagation as named, readable, tested kernels, and fast MLP training.

    >>> import fastnn
    >>> model = fastnn.MLP([784, 128, 10], activation="relu", seed=0)
    >>> history = model.fit(X, y, epochs=5, batch_size=64, lr=0.05)   # doctest: +SKIP
"""
from fastnn import backends, codes
from fastnn._version import __version__
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
    "gradient_check",
    "load",
    "__version__",
]
