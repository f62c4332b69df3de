"""Every public entry point validates at the boundary and says what is wrong and how to fix it."""
import numpy as np
import pytest

import fastnn

X = np.random.default_rng(0).normal(size=(10, 3))
y = np.arange(10) % 2


def model(**kw):
    return fastnn.MLP([3, 4, 2], seed=0, **kw)


@pytest.mark.parametrize("kw,exc,match", [
    ({"layers": [3]}, ValueError, "at least an input and an output"),
    ({"layers": [3, 0, 2]}, ValueError, "positive integer"),
    ({"layers": [3, 2.5, 2]}, ValueError, "positive integer"),
    ({"layers": "3,2"}, TypeError, "list of layer sizes"),
    ({"activation": "relu6"}, ValueError, "activation 'relu6' is not supported; choose one of: identity, sigmoid"),
    ({"activation": ["relu", "tanh"]}, ValueError, "1 hidden layer"),
    ({"activation": 3}, TypeError, "activation must be"),
    ({"output": "softplus"}, ValueError, "choose one of: softmax, sigmoid, identity"),
    ({"loss": "hinge"}, ValueError, "loss 'hinge' is not supported"),
    ({"loss": "binary_cross_entropy"}, ValueError, "does not fit output 'softmax'"),
    ({"output": "identity", "loss": "cross_entropy"}, ValueError, "with 'identity' use one of: mse"),
    ({"init": "glorot"}, ValueError, "init 'glorot' is not supported"),
    ({"l1": -0.1}, ValueError, "l1 must be in"),
    ({"l2": float("nan")}, ValueError, "l2 must be in"),
    ({"l2": "0.1"}, TypeError, "l2 must be a real number"),
    ({"dropout": 1.0}, ValueError, r"dropout must be in \[0.0, 1.0\)"),
    ({"input_dropout": -0.2}, ValueError, "input_dropout must be in"),
    ({"dtype": "float16"}, ValueError, "choose 'float32'"),
    ({"dtype": "int"}, ValueError, "choose 'float32'"),
    ({"backend": "tensorflow"}, ValueError, "backend 'tensorflow' is unknown; choose one of the available backends: numpy"),
    ({"seed": -1}, ValueError, "seed must be a non-negative integer"),
])
def test_bad_constructor_arguments(kw, exc, match):
    kw = {"layers": [3, 4, 2]} | kw
    with pytest.raises(exc, match=match):
        fastnn.MLP(**kw)


@pytest.mark.parametrize("kw,exc,match", [
    ({"epochs": 0}, ValueError, "epochs must be an integer >= 1, got 0"),
    ({"epochs": 2.0}, TypeError, "epochs must be an integer"),
    ({"epochs": True}, TypeError, "epochs must be an integer"),
    ({"batch_size": 0}, ValueError, "batch_size must be an integer >= 1"),
    ({"batch_size": -5}, ValueError, "batch_size"),
    ({"lr": 0}, ValueError, "lr must be in"),
    ({"lr": -0.1}, ValueError, "lr must be in"),
    ({"lr": float("inf")}, ValueError, "lr must be in"),
    ({"momentum": 1.0}, ValueError, "momentum must be in"),
    ({"momentum": -0.5}, ValueError, "momentum must be in"),
    ({"nesterov": True}, ValueError, "nesterov=True needs momentum > 0"),
    ({"validation_split": 1.0}, ValueError, "validation_split must be in"),
    ({"validation_split": 0.01}, ValueError, "both need at least one"),
    ({"validation_split": 0.2, "validation_data": (X, y)}, ValueError, "not both"),
    ({"validation_data": X}, ValueError, "validation_data must be a pair"),
    ({"validation_data": (X[:, :2], y)}, ValueError, "validation X has 2 features"),
    ({"early_stopping": -1}, ValueError, "patience must be an integer >= 0"),
    ({"callbacks": [42]}, TypeError, "callbacks must be"),
])
def test_bad_fit_arguments(kw, exc, match):
    m = model()
    before = [w.copy() for w in m.weights]
    with pytest.raises(exc, match=match):
        m.fit(X, y, verbose=0, **kw)
    for w, b in zip(m.weights, before):  # nothing lost: a rejected call leaves the model untouched
        np.testing.assert_array_equal(w, b)


bad_X = X.copy()
bad_X[3, 1] = np.nan
inf_X = X.copy()
inf_X[0, 0] = np.inf


@pytest.mark.parametrize("Xb,yb,exc,match", [
    (bad_X, y, ValueError, r"X contains 1 NaN or infinite value\(s\), the first at index \(3, 1\)"),
    (inf_X, y, ValueError, "NaN or infinite"),
    (X, np.where(y == 1, np.nan, 0), ValueError, "y contains"),
    (X[:, :2], y, ValueError, "X has 2 features per sample but the network's input layer has 3"),
    (X, y[:9], ValueError, "X has 10 samples but y has 9"),
    (X[:0], y[:0], ValueError, "X is empty"),
    (X, y + 5, ValueError, "label 6 in y is out of range: the output layer has 2 unit"),
    (X, y - 1, ValueError, "label -1 in y is out of range"),
    (X, y + 0.5, ValueError, "non-integer values but the network classifies"),
    (X, np.ones((10, 3)), ValueError, r"y has shape \(10, 3\) but the network has 2 outputs"),
    (X.astype(str), y, TypeError, "X must hold real numbers, got dtype <U"),
    (X, y.astype(object).astype(str), TypeError, "y holds strings such as .0., but fastnn.s MLP takes integer class labels"),
    (X + 1j, y, TypeError, "X must hold real numbers"),
    (X[None], y, ValueError, "X must be 2-D"),
    ([[1, 2], [3]], y, TypeError, "could not be read"),
])
def test_bad_data(Xb, yb, exc, match):
    m = model()
    with pytest.raises(exc, match=match):
        m.fit(Xb, yb, verbose=0)
    with pytest.raises((ValueError, TypeError)):
        m.evaluate(Xb, yb)


def test_bad_data_in_prediction_and_gradients():
    m = model()
    for call in (m.forward, m.predict, m.predict_proba):
        with pytest.raises(ValueError, match="NaN"):
            call(bad_X)
        with pytest.raises(ValueError, match="features"):
            call(X[:, :2])
    with pytest.raises(ValueError, match="out of range"):
        m.gradients(X, y + 2)
    with pytest.raises(ValueError, match="out of range"):
        m.loss(X, y + 2)
    reg = fastnn.MLP([3, 1], output="identity")
    with pytest.raises(ValueError, match="needs a classifier"):
        reg.predict_proba(X)
    with pytest.raises(ValueError, match="1-D but the network has 2 outputs"):
        fastnn.MLP([3, 2], output="identity").fit(X, np.ones(10), verbose=0)


def test_bad_parameter_assignment():
    m = model()
    with pytest.raises(ValueError, match="needs 2 arrays"):
        m.weights = [np.zeros((3, 4))]
    with pytest.raises(ValueError, match=r"biases\[0\] contains NaN"):
        m.biases = [np.full(4, np.nan), np.zeros(2)]


def test_early_stopping_arguments():
    with pytest.raises(ValueError, match="monitor 'f1'"):
        fastnn.EarlyStopping(monitor="f1")
    with pytest.raises(ValueError, match="cannot monitor 'accuracy' for a regression"):
        fastnn.MLP([3, 1], output="identity").fit(X, np.ones(10), verbose=0,
                                                   early_stopping=fastnn.EarlyStopping(monitor="accuracy"))


def test_string_labels_name_the_fix():
    X = np.zeros((4, 2))
    with pytest.raises(TypeError, match=r"'cat'.*integer class labels.*np\.unique\(y, return_inverse=True\)"
                                        r".*fastnn\.sklearn\.MLPClassifier"):
        fastnn.MLP([2, 2]).fit(X, ["cat", "dog", "cat", "dog"], epochs=1, verbose=0)
    with pytest.raises(TypeError, match="integer class labels"):
        fastnn.MLP([2, 2]).fit(X, np.array(["a", "b", "a", "b"], dtype=object), epochs=1, verbose=0)


def test_one_sample_of_the_wrong_length_names_the_input_count():
    m = fastnn.MLP([2, 3, 2], seed=0)
    with pytest.raises(ValueError, match="one sample of 3 values but the network takes 2 inputs"):
        m.predict([0.5, -1, 3])
