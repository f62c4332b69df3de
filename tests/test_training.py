"""fit end to end: learning, reproducibility, options, early stopping, callbacks, divergence."""
import warnings

import numpy as np
import pytest

import fastnn
from fastnn.training import Callback, EarlyStopping

XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
XOR_Y = np.array([0, 1, 1, 0])


def _blobs(n=300, seed=0):
    rng = np.random.default_rng(seed)
    centers = np.array([[2, 0], [-2, 0], [0, 2.5]])
    y = rng.integers(0, 3, n)
    return centers[y] + rng.normal(0, 0.7, (n, 2)), y


def test_xor_is_learned(backend):
    m = fastnn.MLP([2, 8, 2], activation="tanh", seed=0, backend=backend)
    m.fit(XOR_X, XOR_Y, epochs=500, batch_size=4, lr=0.5, momentum=0.9, verbose=0)
    np.testing.assert_array_equal(m.predict(XOR_X), XOR_Y)
    assert m.evaluate(XOR_X, XOR_Y)["accuracy"] == 1.0


def test_xor_single_sigmoid_unit(backend):
    m = fastnn.MLP([2, 6, 1], activation="tanh", output="sigmoid", seed=1, backend=backend)
    m.fit(XOR_X, XOR_Y, epochs=600, batch_size=4, lr=0.5, momentum=0.9, verbose=0)
    np.testing.assert_array_equal(m.predict(XOR_X), XOR_Y)
    proba = m.predict_proba(XOR_X)
    assert proba.shape == (4, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-6)


def test_regression_line(backend):
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (200, 1))
    y = 2 * X[:, 0] + 1
    m = fastnn.MLP([1, 1], output="identity", seed=0, backend=backend, dtype="float64")
    h = m.fit(X, y, epochs=200, batch_size=20, lr=0.1, verbose=0)
    np.testing.assert_allclose(m.weights[0][0, 0], 2, atol=1e-3)
    np.testing.assert_allclose(m.biases[0][0], 1, atol=1e-3)
    assert np.isnan(h.accuracy).all() and m.predict(X).shape == (200,)


@pytest.mark.parametrize("kw", [{}, {"momentum": 0.9}, {"momentum": 0.9, "nesterov": True},
                                {"l1": 1e-4, "l2": 1e-3}, {"dropout": 0.3, "input_dropout": 0.1}])
def test_training_lowers_the_loss(backend, kw):
    X, y = _blobs()
    model_kw = {k: v for k, v in kw.items() if k in ("l1", "l2", "dropout", "input_dropout")}
    fit_kw = {k: v for k, v in kw.items() if k in ("momentum", "nesterov")}
    m = fastnn.MLP([2, 16, 16, 3], seed=0, backend=backend, **model_kw)
    before = m.loss(X, y)
    h = m.fit(X, y, epochs=15, batch_size=16, lr=0.05, verbose=0, **fit_kw)
    assert m.loss(X, y) < 0.5 * before
    assert h.loss[-1] < h.loss[0]
    assert m.evaluate(X, y)["accuracy"] > 0.9


def test_same_seed_same_weights_and_dropout_changes_them(backend):
    X, y = _blobs()
    runs = []
    for dropout in (0.3, 0.3, 0.0):
        m = fastnn.MLP([2, 8, 3], dropout=dropout, input_dropout=0.1 if dropout else 0.0, seed=7,
                       backend=backend, dtype="float64")
        m.fit(X, y, epochs=3, batch_size=32, lr=0.1, momentum=0.5, verbose=0)
        runs.append(m.weights[0].copy())
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.allclose(runs[0], runs[2])


def test_dropout_only_in_training():
    X, _ = _blobs(50)
    m = fastnn.MLP([2, 32, 3], dropout=0.5, input_dropout=0.2, seed=0)
    np.testing.assert_array_equal(m.forward(X), m.forward(X))  # no random masks at prediction time
    plain = fastnn.MLP([2, 32, 3], seed=0)
    np.testing.assert_array_equal(m.forward(X), plain.forward(X))


def test_history_and_grad_norms():
    X, y = _blobs()
    m = fastnn.MLP([2, 8, 8, 3], seed=0)
    h = m.fit(X, y, epochs=4, batch_size=50, lr=0.05, validation_split=0.2, verbose=0)
    assert h.epochs == 4 and len(h.val_loss) == 4 and len(h.val_accuracy) == 4
    assert h.grad_norms.shape == (4, 3) and (h.grad_norms > 0).all()
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(0 <= a <= 1 for a in h.accuracy + h.val_accuracy)
    assert len(h.epoch_time) == 4


def test_validation_data_matches_evaluate():
    X, y = _blobs()
    Xv, yv = _blobs(100, seed=1)
    m = fastnn.MLP([2, 8, 3], seed=0, l2=1e-3)
    h = m.fit(X, y, epochs=2, lr=0.05, validation_data=(Xv, yv), verbose=0)
    ev = m.evaluate(Xv, yv)
    assert h.val_loss[-1] == pytest.approx(ev["loss"], rel=1e-6)
    assert h.val_accuracy[-1] == ev["accuracy"]


def test_early_stopping_restores_best_weights():
    X, y = _blobs()
    Xv, yv = _blobs(60, seed=2)
    m = fastnn.MLP([2, 32, 3], seed=0)
    snapshots = []

    class Keep(Callback):
        def on_epoch_end(self, epoch, logs):
            snapshots.append([w.copy() for w in self.model.weights])

    # A learning rate so high that validation loss gets worse after a while.
    h = m.fit(X, y, epochs=40, batch_size=8, lr=0.8, momentum=0.9, validation_data=(Xv, yv),
              early_stopping=EarlyStopping(patience=2), callbacks=[Keep()], verbose=0)
    best = int(np.argmin(h.val_loss))
    assert h.best_epoch == best + 1  # counted from 1, as the log counts epochs
    if h.stopped_early:
        assert h.epochs == best + 3
    for w, s in zip(m.weights, snapshots[best]):
        np.testing.assert_array_equal(w, s)
    assert m.evaluate(Xv, yv)["loss"] == pytest.approx(h.val_loss[best], rel=1e-5)


def test_early_stopping_int_and_monitor_errors():
    X, y = _blobs(60)
    with pytest.warns(fastnn.EarlyStoppingWarning, match="monitors the training loss.*validation_split"):
        h = fastnn.MLP([2, 4, 3], seed=0).fit(X, y, epochs=3, early_stopping=1, verbose=0)
    assert h.best_epoch is not None  # monitors the training loss without validation data
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # asked for on purpose: no warning
        fastnn.MLP([2, 4, 3], seed=0).fit(X, y, epochs=2, early_stopping=EarlyStopping(1, monitor="loss"),
                                          verbose=0)
    with pytest.raises(ValueError, match="no validation data"):
        fastnn.MLP([2, 4, 3]).fit(X, y, early_stopping=EarlyStopping(monitor="val_loss"), verbose=0)


def test_callbacks_can_stop_and_see_logs():
    X, y = _blobs(60)
    seen = []
    h = fastnn.MLP([2, 4, 3], seed=0).fit(
        X, y, epochs=10, verbose=0, callbacks=[lambda epoch, logs: seen.append(dict(logs)) or epoch == 2])
    assert h.epochs == 3 and len(seen) == 3 and {"loss", "accuracy", "time"} <= set(seen[0])


def test_divergence_stops_warns_and_keeps_finite_weights():
    rng = np.random.default_rng(0)
    X = rng.normal(0, 100, (64, 3))
    y = rng.normal(0, 100, (64, 1))
    m = fastnn.MLP([3, 16, 1], output="identity", activation="relu", seed=0)
    with pytest.warns(fastnn.TrainingDivergedWarning, match="Lower the learning rate"):
        h = m.fit(X, y, epochs=50, batch_size=8, lr=5.0, verbose=0)
    assert h.diverged and h.epochs < 50
    for p in m.weights + m.biases:
        assert np.isfinite(p).all()


def test_odd_but_valid_input():
    X, y = _blobs(37)
    m = fastnn.MLP([2, 5, 3], seed=0)
    m.fit(np.asfortranarray(X), y, epochs=2, batch_size=1000, verbose=0)  # batch larger than the data
    m.fit(X[::1, ::-1].copy()[:, ::-1], y.astype(np.uint8), epochs=1, verbose=0)
    Xi = (X * 10).astype(np.int32)
    assert m.predict(Xi).shape == (37,)
    wide = np.zeros((37, 4))
    wide[:, ::2] = X
    np.testing.assert_array_equal(m.predict(wide[:, ::2]), m.predict(X))  # non-contiguous input
    assert m.predict(X[0]).shape == (1,)  # one sample as a 1-D row
    assert m.forward(X[:1]).shape == (1, 3)
    m.fit(X[:1], y[:1], epochs=1, verbose=0)  # a single training sample
    onehot = np.eye(3)[y]
    m.fit(X, onehot, epochs=1, verbose=0)
    assert fastnn.MLP([2, 3], seed=0).fit(X.astype(np.uint8), y, epochs=1, verbose=0).epochs == 1


def test_verbose_lines(capsys):
    X, y = _blobs(40)
    fastnn.MLP([2, 4, 3], seed=0).fit(X, y, epochs=2, verbose=2, validation_split=0.25)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[1].startswith("epoch 2/2") and "val_accuracy" in out[1]
    fastnn.MLP([2, 4, 3], seed=0).fit(X, y, epochs=2, verbose=0)
    assert capsys.readouterr().out == ""


def test_float64_end_to_end(backend):
    X, y = _blobs(40)
    m = fastnn.MLP([2, 4, 3], dtype="float64", seed=0, backend=backend)
    m.fit(X, y, epochs=1, verbose=0)
    assert all(w.dtype == np.float64 for w in m.weights + m.biases)
    assert m.forward(X).dtype == np.float64


def test_weights_are_writable_in_place_and_assignable():
    m = fastnn.MLP([2, 3, 2], output="identity", seed=0)
    m.weights[0][:] = 0
    m.biases[1][:] = [1, 2]
    np.testing.assert_array_equal(m.forward(np.ones((1, 2))), [[1, 2]])
    m.weights = [np.ones((2, 3)), np.ones((3, 2))]
    assert m.weights[0].dtype == np.float32
    with pytest.raises(ValueError, match=r"weights\[1\] must have shape \(3, 2\)"):
        m.weights = [np.ones((2, 3)), np.ones((2, 2))]


def test_n_params_and_summary(capsys):
    m = fastnn.MLP([784, 10, 14, 10])
    assert m.n_params == 8154
    text = m.summary()
    assert "8,154 parameters (8,120 weights, 34 biases)" in text
    assert "7,850" in text and "154" in text
    assert fastnn.MLP([3, 4, 2], activation="prelu").n_params == 3 * 4 + 4 + 4 * 2 + 2 + 4


@pytest.mark.parametrize("init", ["uniform", "normal", "xavier", "he"])
def test_inits(init):
    m = fastnn.MLP([400, 300, 10], init=init, seed=0)
    W = m.weights[0]
    expected_std = {"uniform": 1 / np.sqrt(400) / np.sqrt(3), "normal": 1 / np.sqrt(400),
                    "xavier": np.sqrt(6 / 700) / np.sqrt(3), "he": np.sqrt(2 / 400)}[init]
    assert W.std() == pytest.approx(expected_std, rel=0.02)
    assert (m.biases[0] == 0).all()


def test_early_stopping_says_what_it_did(capsys):
    X, y = _blobs(60)
    Xv, yv = _blobs(60, seed=2)
    m = fastnn.MLP([2, 32, 3], seed=0)
    h = m.fit(X, y, epochs=40, batch_size=8, lr=0.8, momentum=0.9, validation_data=(Xv, yv),
              early_stopping=EarlyStopping(patience=2), verbose=2)
    out = capsys.readouterr().out
    assert h.stopped_early  # this learning rate makes the validation loss worse within 40 epochs
    assert (f"early stopping: val_loss did not improve for 2 epochs, so training stopped after epoch "
            f"{h.epochs}. Restored the weights of epoch {h.best_epoch} (best val_loss "
            f"{min(h.val_loss):.4f}).") in out
    assert f"epoch {h.best_epoch:>2}/40" in out  # the restored epoch is the one the log printed
    m.fit(X, y, epochs=2, validation_data=(Xv, yv), early_stopping=5, verbose=0)
    assert capsys.readouterr().out == ""  # verbose=0 prints nothing


def test_unscaled_inputs_warn_and_scaled_ones_do_not():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (40, 16)).astype(np.uint8)  # raw pixels
    y = rng.integers(0, 3, 40)
    with pytest.warns(fastnn.UnscaledInputWarning, match=r"\[0, 255\].*divide pixels by 255.*standardize"):
        fastnn.MLP([16, 3], seed=0).fit(X, y, epochs=1, verbose=0)
    from fastnn import datasets

    (Xm, ym), _ = datasets.load_mnist_subset()
    Xs = datasets.standardize(rng.normal(5, 3, (200, 4)))
    Xs = Xs[0] if isinstance(Xs, tuple) else Xs
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fastnn.MLP([784, 10], seed=0).fit(Xm[:500], ym[:500], epochs=1, verbose=0)
        fastnn.MLP([4, 2], seed=0).fit(Xs, (Xs[:, 0] > 0).astype(int), epochs=1, verbose=0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_an_exploding_loss_is_divergence_and_the_best_finite_weights_return(dtype):
    """Unscaled regression: float64 overflows only after the loss reached ~1e200; it stops at once now."""
    rng = np.random.default_rng(0)
    X = rng.normal(0, 100, (64, 3))
    y = X @ np.array([1.0, -2.0, 0.5])[:, None]
    m = fastnn.MLP([3, 16, 1], output="identity", activation="relu", seed=0, dtype=dtype, backend="numpy")
    w0 = [w.copy() for w in m.weights]
    with pytest.warns(fastnn.TrainingDivergedWarning, match="epoch 1: .*initial weights were restored"):
        h = m.fit(X, y, epochs=20, batch_size=8, lr=1e-4, verbose=0)
    assert h.diverged and h.epochs == 0
    for w, w_0 in zip(m.weights, w0):
        np.testing.assert_array_equal(w, w_0)
    assert np.isfinite(m.predict(X)).all()


def test_learning_rate_schedules_set_each_epochs_rate():
    from fastnn import schedules

    X, y = _blobs(60)
    m = fastnn.MLP([2, 4, 3], seed=0)
    assert m.fit(X, y, epochs=3, lr=0.05, verbose=0).lr == [0.05] * 3
    h = m.fit(X, y, epochs=5, lr=0.1, lr_schedule="step", verbose=0)
    assert h.lr == [0.1] * 5  # step halves every 10 epochs by default
    h = m.fit(X, y, epochs=4, lr=0.1, lr_schedule=schedules.StepDecay(drop=0.5, every=2), verbose=0)
    assert h.lr == pytest.approx([0.1, 0.1, 0.05, 0.05])
    h = m.fit(X, y, epochs=3, lr=0.2, lr_schedule=schedules.ExponentialDecay(gamma=0.5), verbose=0)
    assert h.lr == pytest.approx([0.2, 0.1, 0.05])
    h = m.fit(X, y, epochs=3, lr=0.2, lr_schedule="cosine", verbose=0)
    assert h.lr == pytest.approx([0.2, 0.15, 0.05])  # lr0 (1 + cos(pi (t-1)/3)) / 2
    h = m.fit(X, y, epochs=3, lr_schedule=lambda t: 0.1 / t, verbose=0)
    assert h.lr == pytest.approx([0.1, 0.05, 0.1 / 3])
    with pytest.raises(ValueError, match="lr_schedule gave -1 for epoch 2"):
        m.fit(X, y, epochs=3, lr_schedule=lambda t: 0.1 if t == 1 else -1, verbose=0)
    with pytest.raises(ValueError, match="'linear' is unknown; choose one of step, exponential, cosine"):
        m.fit(X, y, epochs=3, lr_schedule="linear", verbose=0)
    with pytest.raises(ValueError, match="drop must be in"):
        schedules.StepDecay(drop=2.0)


@pytest.mark.parametrize("backend", ["numpy", *[b for b in ("numba", "cython") if b in fastnn.backends.available()]])
def test_a_schedule_trains_like_epochs_run_one_by_one(backend):
    """The rate reaches every backend's epoch, the fused ones too: a scheduled fit equals fits of one
    epoch each at those rates (same model, so the shuffle and dropout streams continue)."""
    X, y = _blobs(64)
    kw = dict(activation="tanh", dropout=0.2, l2=1e-3, seed=3, backend=backend, dtype="float64")
    a, b = fastnn.MLP([2, 8, 3], **kw), fastnn.MLP([2, 8, 3], **kw)
    a.fit(X, y, epochs=3, batch_size=16, lr=0.2, momentum=0.0, lr_schedule=lambda t: 0.2 / t, verbose=0)
    for t in (1, 2, 3):
        b.fit(X, y, epochs=1, batch_size=16, lr=0.2 / t, verbose=0)
    for wa, wb in zip(a.weights, b.weights):
        np.testing.assert_allclose(wa, wb, rtol=1e-12, atol=1e-14)


def test_divergence_after_progress_restores_the_lowest_loss_epoch():
    """Good epochs, then a rate that blows the loss up: the weights of the lowest-loss epoch come back."""
    X, y = _blobs(64)
    m = fastnn.MLP([2, 16, 3], seed=0, dtype="float64", backend="numpy")
    ends = []
    with pytest.warns(fastnn.TrainingDivergedWarning, match=r"epoch (\d+) \(the lowest training loss"):
        h = m.fit(X, y, epochs=8, batch_size=8, lr=0.05, momentum=0.9, verbose=0,
                  lr_schedule=lambda t: 0.05 if t <= 2 else (3.0 if t <= 4 else 1e6),
                  callbacks=[lambda epoch, logs: ends.append([w.copy() for w in m.weights])])
    assert h.diverged and 4 <= h.epochs < 8
    best = int(np.argmin(h.loss))
    assert best == 1 < h.epochs - 1  # epochs 3 and 4 made it worse: the best is not the last
    for w, kept in zip(m.weights, ends[best]):
        np.testing.assert_array_equal(w, kept)
    assert np.isfinite(m.predict_proba(X)).all()
