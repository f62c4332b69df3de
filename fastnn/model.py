"""The multilayer perceptron: parameters, prediction, loss, gradients and the public API."""
from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from fastnn import backends, codes, engine
from fastnn.engine import NetSpec, Params
from fastnn.validation import check_dtype, check_float, check_X, check_y

INITS = ("uniform", "normal", "xavier", "he")


def _init_weights(init: str, m: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """W (m, n) drawn by the named rule; m = fan-in, n = fan-out."""
    if init == "uniform":  # U(-1/sqrt(m), 1/sqrt(m)), the classic rule
        r = 1.0 / np.sqrt(m)
        return rng.uniform(-r, r, size=(m, n))
    if init == "normal":  # N(0, 1/m) (LeCun)
        return rng.normal(0.0, 1.0 / np.sqrt(m), size=(m, n))
    if init == "xavier":  # U(-sqrt(6/(m+n)), sqrt(6/(m+n))) (Glorot & Bengio 2010)
        r = np.sqrt(6.0 / (m + n))
        return rng.uniform(-r, r, size=(m, n))
    if init == "he":  # N(0, 2/m) (He et al. 2015), for ReLU-family layers
        return rng.normal(0.0, np.sqrt(2.0 / m), size=(m, n))
    raise ValueError(f"init {init!r} is not supported; choose one of: {', '.join(INITS)}")


class MLP:
    """A multilayer perceptron trained by backpropagation and mini-batch SGD.

    Parameters
    ----------
    layers : sizes, input first, e.g. ``[784, 256, 128, 10]``.
    activation : hidden activation name, or one per hidden layer: sigmoid, tanh, relu,
        leaky_relu (slope ``leaky_slope``), prelu (learnable slope per unit, starts at 0.25),
        elu (``elu_alpha``), identity.
    output : output activation: softmax, sigmoid or identity.
    loss : cross_entropy (softmax), binary_cross_entropy (sigmoid) or mse; default from ``output``.
        Per sample: MSE J = 1/2 sum_j (a_j - y_j)^2; CE J = -sum_j y_j ln a_j;
        BCE J = -sum_j [y_j ln a_j + (1 - y_j) ln(1 - a_j)]; the batch loss is the mean over samples.
    init : weight init, uniform U(-1/sqrt(m), 1/sqrt(m)) (default), normal N(0, 1/m),
        xavier (Glorot uniform) or he N(0, 2/m), with m the fan-in.  Biases start at zero.
    l1, l2 : penalties l1 ||W||_1 + l2/2 ||W||^2 on weights (never biases) added to the loss.
    dropout, input_dropout : probability of dropping a hidden / input unit during training
        (inverted dropout: kept units are scaled by 1/keep); never applied when predicting.
    backend : kernel backend name (see ``fastnn.backends.available()``); None picks the
        ``FASTNN_BACKEND`` environment variable or the fastest available CPU backend.
    dtype : "float32" (fast, default) or "float64" (for gradient checks), used end to end.
    seed : seeds initialisation, shuffling, dropout masks and data augmentation; None draws one
        at random.
    leaky_slope : the LeakyReLU slope for z < 0, f(z) = leaky_slope z (default 0.01); fixed, not
        trained (use prelu for a learned slope).  Saved with the model.
    elu_alpha : ELU's alpha, f(z) = elu_alpha (e^z - 1) for z < 0 (default 1); fixed, saved with the model.
    residual : add skip connections, a_l = f(z_l) + a_{l-1}, to every hidden layer after the
        first whose width equals the previous hidden layer's (e.g. all but the first hidden layer
        of ``[784, 64, 64, 64, 10]``); needs at least one such pair.  Residual networks train
        through the step-by-step engine (``fastnn.engine.run_epoch``) on the chosen backend's
        kernels, because the fused compiled epochs have no skip connections.
    """

    def __init__(
        self,
        layers: Sequence[int],
        activation: str | Sequence[str] = "relu",
        output: str = "softmax",
        loss: str | None = None,
        init: str = "uniform",
        l1: float = 0.0,
        l2: float = 0.0,
        dropout: float = 0.0,
        input_dropout: float = 0.0,
        backend: str | None = None,
        dtype: str | np.dtype = "float32",
        seed: int | None = None,
        residual: bool = False,
        leaky_slope: float = codes.LEAKY_SLOPE,
        elu_alpha: float = codes.ELU_ALPHA,
    ) -> None:
        self.layers = self._check_layers(layers)
        n_hidden = len(self.layers) - 2
        if isinstance(activation, str):
            codes.activation_code(activation)  # checked even when there is no hidden layer
            activations = [activation] * n_hidden
        elif isinstance(activation, Sequence):
            activations = list(activation)
            if len(activations) != n_hidden:
                raise ValueError(
                    f"activation lists {len(activations)} name(s) but the network has {n_hidden} "
                    f"hidden layer(s); give one name, or one per hidden layer"
                )
        else:
            raise TypeError(f"activation must be a name or a list of names, got {activation!r}")
        hidden_codes = [codes.activation_code(a) for a in activations]
        self.activation = activations
        out_code = codes.output_code(output)
        self.output = output
        allowed = codes.OUTPUT_LOSSES[output]
        if loss is None:
            loss = allowed[0]
        codes.loss_code(loss)
        if loss not in allowed:
            raise ValueError(
                f"loss {loss!r} does not fit output {output!r}; with {output!r} use one of: "
                f"{', '.join(allowed)} (cross_entropy needs softmax, binary_cross_entropy needs sigmoid)"
            )
        self.loss_name = loss
        if init not in INITS:
            raise ValueError(f"init {init!r} is not supported; choose one of: {', '.join(INITS)}")
        self.init = init
        self.l1 = check_float("l1", l1, 0.0, np.inf, high_open=True, hint="use 0 to switch L1 off")
        self.l2 = check_float("l2", l2, 0.0, np.inf, high_open=True, hint="use 0 to switch L2 off")
        self.dropout = check_float("dropout", dropout, 0.0, 1.0, high_open=True,
                                   hint="it is the probability of dropping a unit; 0.5 is classic")
        self.input_dropout = check_float("input_dropout", input_dropout, 0.0, 1.0, high_open=True,
                                         hint="it is the probability of dropping an input; 0.2 is classic")
        self.leaky_slope = check_float("leaky_slope", leaky_slope, 0.0, 1.0, high_open=True,
                                       hint="it is the slope for z < 0; 0.01 is classic, 0.1-0.3 also common")
        self.elu_alpha = check_float("elu_alpha", elu_alpha, 0.0, np.inf, low_open=True, high_open=True,
                                     hint="it scales e^z - 1 for z < 0; 1 is classic")
        self.dtype = check_dtype(dtype)
        if seed is None:
            seed = int(np.random.SeedSequence().entropy % (1 << 63))
        elif isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
        self.seed = int(seed)
        if not isinstance(residual, (bool, np.bool_)):
            raise TypeError(f"residual must be True or False, got {residual!r}")
        self.residual = bool(residual)
        skip = self._skip_flags(self.layers) if self.residual else ()
        self._be = backends.get(backend)
        self.backend = self._be.NAME
        self._spec = NetSpec(tuple(self.layers), tuple(hidden_codes) + (out_code,),
                             codes.loss_code(loss), self.dtype, skip)
        rng = np.random.default_rng(self.seed)
        dt = self.dtype
        W = [_init_weights(init, m, n, rng).astype(dt) for m, n in zip(self.layers[:-1], self.layers[1:])]
        b = [np.zeros(n, dtype=dt) for n in self.layers[1:]]
        alpha = [np.full(n, self._alpha_start(c), dtype=dt) if c in codes.PARAMETRISED else np.zeros(0, dtype=dt)
                 for n, c in zip(self.layers[1:], self._spec.acts)]
        self._params = Params(W, b, alpha)
        self._shuffle_rng = np.random.default_rng([self.seed, 1])  # continues across fit() calls
        self._augment_rng = np.random.default_rng([self.seed, 2])  # data augmentation stream
        self._step = 0  # batches trained so far: the dropout counter

    # ------------------------------------------------------------------ pickling

    def __getstate__(self) -> dict[str, Any]:
        """Picklable state (for joblib workers, copy.deepcopy): the backend travels by name."""
        state = self.__dict__.copy()
        state["_be"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._be = backends.get(self.backend)

    # ------------------------------------------------------------------ construction helpers

    @staticmethod
    def _check_layers(layers: object) -> list[int]:
        if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence):
            raise TypeError(f"layers must be a list of layer sizes such as [784, 128, 10], got {layers!r}")
        sizes = list(layers)
        if len(sizes) < 2:
            raise ValueError(f"layers needs at least an input and an output size, got {sizes}")
        for s in sizes:
            if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1:
                raise ValueError(f"every layer size must be a positive integer, got {s!r} in {sizes}")
        return [int(s) for s in sizes]

    @staticmethod
    def _skip_flags(sizes: list[int]) -> tuple[bool, ...]:
        """The rule of ``residual=True``: hidden layer l >= 2 gets a skip iff its width equals layer l-1's."""
        n_hidden = len(sizes) - 2
        flags = tuple(1 <= l < n_hidden and sizes[l] == sizes[l + 1] for l in range(len(sizes) - 1))
        if not any(flags):
            raise ValueError(
                f"residual=True adds a skip a_l = f(z_l) + a_(l-1) to each hidden layer whose width equals "
                f"the previous hidden layer's, but layers={sizes} has no two consecutive hidden layers "
                f"of equal width; use e.g. layers=[{sizes[0]}, 64, 64, 64, {sizes[-1]}] or residual=False"
            )
        return flags

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this architecture (used by save/load)."""
        return {
            "layers": list(self.layers), "activation": list(self.activation), "output": self.output,
            "loss": self.loss_name, "init": self.init, "l1": self.l1, "l2": self.l2,
            "dropout": self.dropout, "input_dropout": self.input_dropout,
            "dtype": self.dtype.name, "seed": self.seed, "residual": self.residual,
            "leaky_slope": self.leaky_slope, "elu_alpha": self.elu_alpha,
        }

    def _alpha_start(self, act: int) -> float:
        """alpha_j of every unit of a new layer: the fixed LeakyReLU slope or ELU alpha, or PReLU's start."""
        return {codes.LEAKY_RELU: self.leaky_slope, codes.ELU: self.elu_alpha, codes.PRELU: codes.PRELU_INIT}[act]

    def __repr__(self) -> str:
        cfg = self.get_config()
        acts = cfg["activation"]
        cfg["activation"] = acts[0] if len(set(acts)) == 1 else acts
        args = ", ".join(f"{k}={v!r}" for k, v in cfg.items())
        return f"MLP({args}, backend={self.backend!r})"

    # ------------------------------------------------------------------ parameters

    @property
    def weights(self) -> list[np.ndarray]:
        """W_l of shape (n_in, n_out) per layer; edit in place or assign a list of the same shapes."""
        return self._params.W

    @weights.setter
    def weights(self, values: Sequence[np.ndarray]) -> None:
        shapes = [(m, n) for m, n in zip(self.layers[:-1], self.layers[1:])]
        self._params.W = self._checked_params("weights", values, shapes)

    @property
    def biases(self) -> list[np.ndarray]:
        """b_l of shape (n_out,) per layer; edit in place or assign a list of the same shapes."""
        return self._params.b

    @biases.setter
    def biases(self, values: Sequence[np.ndarray]) -> None:
        self._params.b = self._checked_params("biases", values, [(n,) for n in self.layers[1:]])

    @property
    def alphas(self) -> list[np.ndarray]:
        """alpha_j per layer: (n_out,) for a leaky_relu, elu or prelu layer, an empty array elsewhere.

        A prelu layer's slopes are learned; a leaky_relu layer's slope (``leaky_slope``) and an elu
        layer's alpha (``elu_alpha``) stay fixed during training.
        """
        return self._params.alpha

    @alphas.setter
    def alphas(self, values: Sequence[np.ndarray]) -> None:
        self._params.alpha = self._checked_params("alphas", values, [a.shape for a in self._params.alpha])

    def _checked_params(self, name: str, values: Sequence[np.ndarray], shapes: list[tuple]) -> list[np.ndarray]:
        values = list(values)
        if len(values) != len(shapes):
            raise ValueError(f"{name} needs {len(shapes)} arrays (one per layer), got {len(values)}")
        out = []
        for l, (v, shape) in enumerate(zip(values, shapes)):
            arr = np.array(v, dtype=self.dtype, order="C")  # a copy: the model owns its parameters
            if arr.shape != tuple(shape):
                raise ValueError(f"{name}[{l}] must have shape {tuple(shape)}, got {arr.shape}")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{name}[{l}] contains NaN or infinite values")
            out.append(arr)
        return out

    @property
    def n_params(self) -> int:
        """Number of trainable parameters (weights, biases and PReLU slopes; fixed alpha_j not counted)."""
        learned = sum(a.size for a, act in zip(self._params.alpha, self._spec.acts) if act in codes.LEARNED)
        return sum(a.size for a in (*self._params.W, *self._params.b)) + learned

    def summary(self) -> str:
        """A table of the layers with their parameter counts (also printed)."""
        rows = [("layer", "shape", "activation", "weights", "biases", "params")]
        rows.append(("input", f"{self.layers[0]}", "", "", "", ""))
        names = self.activation + [self.output]
        for l, (m, n) in enumerate(zip(self.layers[:-1], self.layers[1:])):
            extra = self._params.alpha[l].size if self._spec.acts[l] in codes.LEARNED else 0
            fixed = {codes.LEAKY_RELU: f" (slope {self.leaky_slope:g})",
                     codes.ELU: f" (alpha {self.elu_alpha:g})"}.get(self._spec.acts[l], "")
            act = (names[l] + fixed + (f" (+{extra} slopes)" if extra else "")
                   + (" + skip" if self._spec.skip[l] else ""))
            rows.append((f"dense {l + 1}", f"{m} -> {n}", act, f"{m * n:,}", f"{n:,}", f"{m * n + n + extra:,}"))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        line = "-" * (sum(widths) + 2 * (len(widths) - 1))
        def fmt(r: list[str]) -> str:
            return "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))

        n_w = sum(W.size for W in self._params.W)
        n_b = sum(b.size for b in self._params.b)
        text = "\n".join([fmt(rows[0]), line, *map(fmt, rows[1:]), line,
                          f"total: {self.n_params:,} parameters ({n_w:,} weights, {n_b:,} biases"
                          + (f", {self.n_params - n_w - n_b:,} PReLU slopes" if self.n_params - n_w - n_b else "")
                          + f"), loss {self.loss_name}{' (1/2 squared error)' if self.loss_name == 'mse' else ''}, "
                          f"{self.dtype.name}, backend {self.backend}"])
        print(text)
        return text

    # ------------------------------------------------------------------ prediction and loss

    @property
    def is_classifier(self) -> bool:
        return engine.is_classifier(self._spec)

    def _X(self, X: object, name: str = "X", extremes: list | None = None) -> np.ndarray:
        return check_X(X, self.layers[0], self.dtype, name, extremes)

    def _Y(self, y: object, n: int, name: str = "y") -> tuple[np.ndarray, np.ndarray | None]:
        single = self.output == "sigmoid" and self.layers[-1] == 1
        return check_y(y, n, self.layers[-1], self.is_classifier, single, self.dtype, name)

    def forward(self, X: object) -> np.ndarray:
        """Output activations a_L for the rows of X (no dropout), shape (n, n_outputs)."""
        return engine.predict(self._be, self._spec, self._params, self._X(X))[0]

    def predict_proba(self, X: object) -> np.ndarray:
        """Class probabilities (softmax / sigmoid outputs); for one sigmoid unit, columns P(0), P(1)."""
        if not self.is_classifier:
            raise ValueError("predict_proba needs a classifier (output 'softmax' or 'sigmoid'); use forward or predict")
        out = self.forward(X)
        if self.output == "sigmoid" and out.shape[1] == 1:
            return np.hstack([1 - out, out])
        return out

    def predict(self, X: object) -> np.ndarray:
        """Class labels for a classifier; the output values (1-D for one output) for regression."""
        out = self.forward(X)
        if self.is_classifier:
            return engine.predict_labels(self._spec, out)
        return out[:, 0] if out.shape[1] == 1 else out

    def _penalty(self) -> float:
        return engine.penalty(self._be, self._params, engine.Hyper(l1=self.l1, l2=self.l2))

    def loss(self, X: object, y: object) -> float:
        """Regularised loss J = (1/n) sum_b J_b + l2/2 ||W||^2 + l1 ||W||_1 (no dropout)."""
        X = self._X(X)
        Y, _ = self._Y(y, X.shape[0])
        _, loss_sum = engine.predict(self._be, self._spec, self._params, X, Y)
        return loss_sum / X.shape[0] + self._penalty()

    def evaluate(self, X: object, y: object) -> dict[str, float]:
        """{'loss': regularised loss, 'accuracy': fraction correct (NaN for regression)}."""
        X = self._X(X)
        Y, labels = self._Y(y, X.shape[0])
        out, loss_sum = engine.predict(self._be, self._spec, self._params, X, Y)
        acc = float("nan")
        if labels is not None:
            acc = engine.count_correct(self._spec, out, labels) / X.shape[0]
        return {"loss": loss_sum / X.shape[0] + self._penalty(), "accuracy": acc}

    def gradients(self, X: object, y: object, return_alpha: bool = False):
        """(dW list, db list) of :meth:`loss` over all rows of X, by backprop, without updating.

        With ``return_alpha=True`` also the PReLU slope gradients: (dW, db, dalpha).
        """
        X = self._X(X)
        Y, _ = self._Y(y, X.shape[0])
        be, spec = self._be, self._spec
        ws = engine.Workspace(be, spec, X.shape[0], training=True)
        hyper = engine.Hyper(l1=self.l1, l2=self.l2)
        dalpha = engine.make_grad_buffers(be, spec, self._params)
        xb, yb = be.to_device(X), be.to_device(Y)
        host = self._params
        p = Params(*[[be.to_device(a) for a in group] for group in (host.W, host.b, host.alpha)])
        engine.forward(be, spec, p, ws, xb)
        engine.backward(be, spec, p, ws, xb, yb, hyper, 0, dalpha)
        dW = [be.to_host(g).copy() for g in ws.dW]
        db = [be.to_host(g).copy() for g in ws.db]
        if return_alpha:
            return dW, db, [be.to_host(g).copy() for g in dalpha]
        return dW, db

    # ------------------------------------------------------------------ training and persistence

    def fit(self, X: object, y: object, epochs: int = 10, batch_size: int = 32, lr: float = 0.01,
            momentum: float = 0.0, nesterov: bool = False, validation_split: float = 0.0,
            validation_data: tuple[object, object] | None = None, early_stopping: Any = None,
            shuffle: bool = True, verbose: bool | int = True, callbacks: Sequence[Any] | None = None,
            augment: Any = None, lr_schedule: Any = None):
        """Train by mini-batch SGD; returns a :class:`fastnn.training.History`.

        ``y``: integer labels or one-hot / real targets.  ``early_stopping``: patience (int) or an
        :class:`fastnn.training.EarlyStopping`; it restores the best weights.  ``callbacks``:
        :class:`fastnn.training.Callback` objects or callables ``f(epoch, logs)``; returning True
        stops training.  ``verbose``: 0 silent, 1 a progress bar on a terminal (else one line per
        epoch), 2 one line per epoch.  ``augment``: e.g. ``fastnn.augment.RandomShift(max_shift=2)``;
        each epoch then trains on a freshly augmented copy of the training rows (seeded by the
        model seed; validation data is left as it is).  ``lr_schedule``: the learning rate per epoch,
        a function ``epoch -> lr`` (epochs from 1) or a schedule of :mod:`fastnn.schedules` ("step",
        "exponential", "cosine", or e.g. ``StepDecay(drop=0.1, every=10)``), starting from ``lr``;
        ``History.lr`` records the rate of each epoch.
        """
        from fastnn.training import fit

        return fit(self, X, y, epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum,
                   nesterov=nesterov, validation_split=validation_split,
                   validation_data=validation_data, early_stopping=early_stopping, shuffle=shuffle,
                   verbose=verbose, callbacks=callbacks, augment=augment, lr_schedule=lr_schedule)

    def save(self, path: str) -> str:
        """Write architecture and parameters to an .npz file (no pickle); returns the path written."""
        from fastnn.io import save

        return save(self, path)
