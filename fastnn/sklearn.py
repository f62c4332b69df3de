"""scikit-learn estimators backed by fastnn: ``MLPClassifier`` and ``MLPRegressor``.

They follow scikit-learn's estimator conventions (parameters stored untouched in ``__init__``,
validation in ``fit``, fitted attributes ending in ``_``), so they work with ``clone``,
``Pipeline``, ``GridSearchCV``, ``cross_val_score`` and the rest:

    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn.model_selection import GridSearchCV
    >>> from fastnn.sklearn import MLPClassifier
    >>> pipe = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(64,), epochs=20))
    >>> search = GridSearchCV(pipe, {"mlpclassifier__lr": [0.01, 0.1]}, cv=3).fit(X, y)   # doctest: +SKIP

Needs scikit-learn (``pip install 'fastnn[sklearn]'``).  The fitted fastnn network is
``est.model_`` (a :class:`fastnn.MLP`: ``est.model_.summary()``, ``fastnn.trace(est.model_, ...)``).

``sklearn.utils.estimator_checks.check_estimator`` passes for both estimators (see
``tests/test_sklearn.py``); the checks that cannot apply are listed in
:data:`EXPECTED_FAILED_CHECKS`.
"""
from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as exc:  # pragma: no cover - exercised only without scikit-learn
    raise ImportError("fastnn.sklearn needs scikit-learn: pip install 'fastnn[sklearn]' "
                      "(or pip install scikit-learn)") from exc

from fastnn.model import MLP

__all__ = ["MLPClassifier", "MLPRegressor", "EXPECTED_FAILED_CHECKS"]

#: check_estimator checks that are expected to fail, with the reason (none at present).
EXPECTED_FAILED_CHECKS: dict[str, str] = {}

_DTYPES = [np.float64, np.float32]

_PARAMS_DOC = '''
    Parameters
    ----------
    hidden_layer_sizes : sizes of the hidden layers, e.g. ``(256, 128)``; an int for one layer;
        ``()`` for none (then the classifier is multinomial logistic regression).
    activation : hidden activation (sigmoid, tanh, relu, leaky_relu, prelu, elu, identity).
    init : weight initialisation: uniform, normal, xavier or he.
    l1, l2 : weight penalties l1 ||W||_1 + l2/2 ||W||^2.
    dropout, input_dropout : probability of dropping a hidden unit / an input during training.
    residual : skip connections between equal-width hidden layers (see ``fastnn.MLP``).
    epochs : passes over the training data (fewer with early stopping).
    batch_size : mini-batch size of SGD.
    lr : learning rate (of the first epoch, with ``lr_schedule``).
    lr_schedule : None (constant ``lr``), "step", "exponential", "cosine", a
        ``fastnn.schedules.Schedule`` or a function epoch -> lr (epochs from 1).
    momentum : SGD momentum in [0, 1).
    nesterov : Nesterov momentum.
    validation_split : fraction of the training data held out for ``val_loss`` / early stopping.
    early_stopping : patience in epochs (None: train all ``epochs``); needs ``validation_split``
        > 0 to monitor the validation loss, else the training loss is monitored.
    shuffle : shuffle the samples every epoch.
    augment : a fastnn augmentation such as ``fastnn.augment.RandomShift(max_shift=2)``.
    backend : fastnn kernel backend (None: the fastest available CPU backend).
    dtype : "float32" (fast) or "float64".
    random_state : None, an int or a ``numpy.random.RandomState``: seeds initialisation,
        shuffling, dropout and augmentation.
    verbose : 0 silent, 1 or 2 one line per epoch.
'''


class _FastnnEstimator(BaseEstimator):
    """Shared parameters and fitting of the fastnn estimators (see _PARAMS_DOC)."""

    def __init__(self, hidden_layer_sizes: int | Sequence[int] = (100,), activation: str = "relu",
                 init: str = "uniform", l1: float = 0.0, l2: float = 0.0, dropout: float = 0.0,
                 input_dropout: float = 0.0, residual: bool = False, epochs: int = 200,
                 batch_size: int = 32, lr: float = 0.01, momentum: float = 0.9, nesterov: bool = False,
                 validation_split: float = 0.0, early_stopping: int | None = None, shuffle: bool = True,
                 augment: Any = None, backend: str | None = None, dtype: str = "float32",
                 random_state: int | np.random.RandomState | None = None, verbose: int = 0,
                 lr_schedule: Any = None) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.init = init
        self.l1 = l1
        self.l2 = l2
        self.dropout = dropout
        self.input_dropout = input_dropout
        self.residual = residual
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.momentum = momentum
        self.nesterov = nesterov
        self.validation_split = validation_split
        self.early_stopping = early_stopping
        self.shuffle = shuffle
        self.augment = augment
        self.backend = backend
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose
        self.lr_schedule = lr_schedule

    # The network's output layer; set by the subclasses.
    _output = "softmax"

    def _hidden(self) -> list[int]:
        h = self.hidden_layer_sizes
        if isinstance(h, numbers.Integral) and not isinstance(h, bool):
            h = (h,)
        if isinstance(h, (str, bytes)) or not isinstance(h, Sequence):
            raise TypeError(f"hidden_layer_sizes must be an int or a tuple of ints such as (100,), got {h!r}")
        for s in h:
            if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1:
                raise ValueError(f"hidden_layer_sizes must hold positive integers, got {h!r}")
        return [int(s) for s in h]

    def _seed(self) -> int:
        rs = self.random_state
        if isinstance(rs, numbers.Integral) and not isinstance(rs, bool) and rs >= 0:
            return int(rs)
        return int(check_random_state(rs).randint(np.iinfo(np.int32).max))

    def _fit_network(self, X: np.ndarray, Y: np.ndarray, n_outputs: int) -> None:
        if isinstance(self.verbose, bool) or not isinstance(self.verbose, numbers.Integral) or self.verbose < 0:
            raise ValueError(f"verbose must be 0, 1 or 2, got {self.verbose!r}")
        self.model_ = MLP([X.shape[1], *self._hidden(), n_outputs], activation=self.activation,
                          output=self._output, init=self.init, l1=self.l1, l2=self.l2,
                          dropout=self.dropout, input_dropout=self.input_dropout, backend=self.backend,
                          dtype=self.dtype, seed=self._seed(), residual=self.residual)
        history = self.model_.fit(X, Y, epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                                  momentum=self.momentum, nesterov=self.nesterov,
                                  validation_split=self.validation_split,
                                  early_stopping=self.early_stopping, shuffle=self.shuffle,
                                  verbose=2 if self.verbose else 0, augment=self.augment,
                                  lr_schedule=self.lr_schedule)
        self.history_ = history
        self.loss_curve_ = list(history.loss)
        self.n_iter_ = history.epochs

    def _output_of(self, X: object) -> np.ndarray:
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False, dtype=_DTYPES)
        return self.model_.forward(X).astype(np.float64, copy=False)


class MLPClassifier(ClassifierMixin, _FastnnEstimator):
    """A multilayer perceptron classifier trained by fastnn (softmax output, cross-entropy loss).

    Labels may be anything ``numpy.unique`` can sort (ints, strings, ...): ``classes_`` holds
    them and the network sees 0..k-1.  Fitted attributes: ``classes_``, ``n_features_in_``
    (``feature_names_in_`` for DataFrames), ``model_`` (the :class:`fastnn.MLP`), ``history_``,
    ``loss_curve_``, ``n_iter_``.
    """

    _output = "softmax"

    def fit(self, X: object, y: object) -> MLPClassifier:
        """Train on (X, y); returns self."""
        X, y = validate_data(self, X, y, dtype=_DTYPES)
        check_classification_targets(y)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"MLPClassifier needs samples of at least 2 classes in y, but y has only one "
                             f"class: {self.classes_[0]!r}")
        self._fit_network(X, y_idx.reshape(-1), len(self.classes_))
        return self

    def predict_proba(self, X: object) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes), columns in the order of ``classes_``."""
        return self._output_of(X)

    def predict_log_proba(self, X: object) -> np.ndarray:
        """Natural log of :meth:`predict_proba`."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X: object) -> np.ndarray:
        """The most probable class label of each row (a value of ``classes_``)."""
        proba = self.predict_proba(X)  # first: it raises NotFittedError before fit
        return self.classes_[np.argmax(proba, axis=1)]


class MLPRegressor(RegressorMixin, _FastnnEstimator):
    """A multilayer perceptron regressor trained by fastnn (identity output, MSE loss J = 1/2 (a - y)^2).

    ``y`` of shape (n,) or (n, n_outputs); ``predict`` answers in the same shape.  Targets are
    fitted as given: standardise them (e.g. ``TransformedTargetRegressor``) when they are large.
    Fitted attributes: ``n_features_in_``, ``n_outputs_``, ``model_``, ``history_``,
    ``loss_curve_``, ``n_iter_``.
    """

    _output = "identity"

    def fit(self, X: object, y: object) -> MLPRegressor:
        """Train on (X, y); returns self."""
        X, y = validate_data(self, X, y, dtype=_DTYPES, multi_output=True, y_numeric=True)
        y = np.asarray(y, dtype=np.float64)
        self._y_1d = y.ndim == 1
        Y = y.reshape(-1, 1) if self._y_1d else y
        self.n_outputs_ = Y.shape[1]
        self._fit_network(X, Y, self.n_outputs_)
        return self

    def predict(self, X: object) -> np.ndarray:
        """Predicted targets, shape (n,) or (n, n_outputs) as ``y`` was in ``fit``."""
        out = self._output_of(X)
        return out[:, 0] if self._y_1d else out

    def __sklearn_tags__(self):  # scikit-learn's estimator tags
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags


MLPClassifier.__doc__ = f"{MLPClassifier.__doc__}\n{_PARAMS_DOC}"
MLPRegressor.__doc__ = f"{MLPRegressor.__doc__}\n{_PARAMS_DOC}"
