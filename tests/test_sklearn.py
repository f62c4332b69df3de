"""fastnn.sklearn: scikit-learn's own estimator checks, and use inside Pipeline, GridSearchCV,
cross_val_score and clone."""
import pickle

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import fastnn
from fastnn.sklearn import EXPECTED_FAILED_CHECKS, MLPClassifier, MLPRegressor


def _blobs(n=120, seed=0):
    rng = np.random.default_rng(seed)
    centers = np.array([[2, 0], [-2, 0], [0, 2.5]])
    y = rng.integers(0, 3, n)
    return centers[y] + rng.normal(0, 0.7, (n, 2)), y


@parametrize_with_checks([MLPClassifier(hidden_layer_sizes=(16,), epochs=50),
                          MLPRegressor(hidden_layer_sizes=(16,), epochs=50)],
                         expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS)
def test_sklearn_estimator_checks(estimator, check):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastnn.TrainingDivergedWarning)  # unscaled targets in some checks
        check(estimator)


def test_string_labels_and_attributes():
    X, y = _blobs()
    names = np.array(["cat", "dog", "emu"])[y]
    clf = MLPClassifier(hidden_layer_sizes=(8,), epochs=30, lr=0.05, random_state=0).fit(X, names)
    assert clf.classes_.tolist() == ["cat", "dog", "emu"]
    assert clf.n_features_in_ == 2 and clf.n_iter_ == 30 and len(clf.loss_curve_) == 30
    assert isinstance(clf.model_, fastnn.MLP) and clf.model_.layers == [2, 8, 3]
    pred = clf.predict(X)
    assert pred.dtype == names.dtype and set(pred) <= set(names)
    assert clf.score(X, names) > 0.9
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 3) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], pred)


def test_same_random_state_same_model_and_pickle():
    X, y = _blobs()
    a = MLPClassifier(hidden_layer_sizes=(8,), epochs=5, random_state=3).fit(X, y)
    b = MLPClassifier(hidden_layer_sizes=(8,), epochs=5, random_state=3).fit(X, y)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    c = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(c.predict_proba(X), a.predict_proba(X))


def test_pipeline_grid_search_and_cross_val_score():
    X, y = _blobs(150)
    pipe = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(8,), epochs=20, random_state=0))
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and np.all(scores > 0.85)
    search = GridSearchCV(pipe, {"mlpclassifier__lr": [1e-4, 0.05]}, cv=3).fit(X, y)
    assert search.best_params_ == {"mlpclassifier__lr": 0.05}
    assert search.score(X, y) > 0.9


def test_clone_get_and_set_params():
    est = MLPRegressor(hidden_layer_sizes=(4, 4), residual=True, l2=1e-3,
                       augment=fastnn.augment.RandomShift(1))
    params = est.get_params()
    assert params["hidden_layer_sizes"] == (4, 4) and params["residual"] is True
    c = clone(est)
    assert c.get_params()["l2"] == 1e-3 and c is not est
    assert c.set_params(lr=0.5, epochs=3) is c and c.lr == 0.5 and est.lr == 0.01


def test_regressor_single_and_multi_output():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (100, 2))
    y = X @ np.array([1.5, -2.0]) + 0.5
    reg = MLPRegressor(hidden_layer_sizes=(), epochs=60, lr=0.05, random_state=0).fit(X, y)
    assert reg.predict(X).shape == (100,) and reg.score(X, y) > 0.99
    Y = np.column_stack([y, -y])
    reg2 = MLPRegressor(hidden_layer_sizes=(8,), epochs=60, lr=0.02, random_state=0).fit(X, Y)
    assert reg2.n_outputs_ == 2 and reg2.predict(X).shape == (100, 2) and reg2.score(X, Y) > 0.95


def test_validation_errors():
    X, y = _blobs(30)
    with pytest.raises(NotFittedError):
        MLPClassifier().predict(X)
    with pytest.raises(ValueError, match="at least 2 classes"):
        MLPClassifier(epochs=1).fit(X, np.zeros(30))
    with pytest.raises(ValueError, match="Unknown label type"):
        MLPClassifier(epochs=1).fit(X, np.linspace(0, 1, 30))
    with pytest.raises(ValueError, match="hidden_layer_sizes must hold positive integers"):
        MLPClassifier(hidden_layer_sizes=(0,)).fit(X, y)
    with pytest.raises(ValueError, match="activation 'relu6' is not supported"):
        MLPClassifier(activation="relu6").fit(X, y)
    with pytest.raises(ValueError, match="lr must be in"):
        MLPClassifier(lr=-1.0, epochs=1).fit(X, y)
    clf = MLPClassifier(hidden_layer_sizes=3, epochs=1).fit(X, y)  # an int is one hidden layer
    assert clf.model_.layers == [2, 3, 3]
    with pytest.raises(ValueError, match="X has 3 features, but MLPClassifier is expecting 2"):
        clf.predict(np.ones((2, 3)))
