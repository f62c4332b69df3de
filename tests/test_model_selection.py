"""Model selection: splits, k-fold and leave-one-out cross-validation, bagging, joblib parallelism."""
import numpy as np
import pytest

import fastnn
from fastnn.model_selection import Bagging, CVResult, KFold, cross_validate, train_test_split


def _blobs(n=150, seed=0):
    rng = np.random.default_rng(seed)
    centers = np.array([[2, 0], [-2, 0], [0, 2.5]])
    y = rng.integers(0, 3, n)
    return centers[y] + rng.normal(0, 0.7, (n, 2)), y


def make_model():
    return fastnn.MLP([2, 8, 3], seed=0, backend="numpy")


FIT = {"epochs": 15, "batch_size": 16, "lr": 0.1}


# --------------------------------------------------------------------------- train_test_split


def test_train_test_split_partitions_the_rows():
    X = np.arange(20).reshape(10, 2)
    y = np.arange(10)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, seed=0)
    assert len(X_te) == 3 and len(X_tr) == 7
    assert sorted(np.concatenate([y_tr, y_te]).tolist()) == list(range(10))
    np.testing.assert_array_equal(X_tr[:, 0] // 2, y_tr)  # rows stay paired with their targets
    again = train_test_split(X, y, test_size=0.3, seed=0)
    np.testing.assert_array_equal(again[3], y_te)
    assert len(train_test_split(X, y, test_size=4)[1]) == 4
    _, X_te, _, y_te = train_test_split(X, y, test_size=2, shuffle=False)
    np.testing.assert_array_equal(y_te, [8, 9])


def test_train_test_split_stratified_keeps_class_proportions():
    y = np.array([0] * 80 + [1] * 20)
    X = np.arange(100)[:, None]
    _, _, y_tr, y_te = train_test_split(X, y, test_size=0.25, stratify=y, seed=1)
    assert np.bincount(y_te).tolist() == [19, 6] or np.bincount(y_te).tolist() == [20, 5]
    assert np.bincount(y_te)[1] == 5 and np.bincount(y_tr)[1] == 15


def test_train_test_split_bad_input():
    X, y = np.ones((10, 2)), np.zeros(10)
    with pytest.raises(ValueError, match="X has 10 samples but y has 9"):
        train_test_split(X, y[:9])
    with pytest.raises(ValueError, match="test_size=1.5"):
        train_test_split(X, y, test_size=1.5)
    with pytest.raises(ValueError, match="leaves 0 training"):
        train_test_split(X, y, test_size=10)
    with pytest.raises(TypeError, match="test_size"):
        train_test_split(X, y, test_size="half")
    with pytest.raises(ValueError, match="seed"):
        train_test_split(X, y, seed=-1)


# --------------------------------------------------------------------------- KFold


@pytest.mark.parametrize("n,k", [(10, 3), (7, 7), (12, 4)])
def test_kfold_partitions_every_sample_once(n, k):
    folds = list(KFold(k, shuffle=True, seed=0).split(np.zeros((n, 1))))
    assert len(folds) == k
    tests = np.concatenate([te for _, te in folds])
    assert sorted(tests.tolist()) == list(range(n))
    sizes = [len(te) for _, te in folds]
    assert max(sizes) - min(sizes) <= 1
    for tr, te in folds:
        assert len(np.intersect1d(tr, te)) == 0 and len(tr) + len(te) == n


def test_kfold_bad_input():
    with pytest.raises(ValueError, match="n_splits must be an integer >= 2"):
        KFold(1)
    with pytest.raises(ValueError, match="at most n_splits=3 \\(leave-one-out\\)"):
        list(KFold(5).split(np.zeros((3, 1))))


# --------------------------------------------------------------------------- cross_validate


def test_cross_validate_per_fold_results():
    X, y = _blobs()
    cv = cross_validate(make_model, X, y, k=3, fit_kwargs=FIT, seed=0)
    assert isinstance(cv, CVResult) and cv.k == 3
    for key in ("train_loss", "test_loss", "train_accuracy", "test_accuracy", "fit_time"):
        assert cv[key].shape == (3,) and np.all(np.isfinite(cv[key]))
    assert np.all(cv.test_accuracy > 0.85) and np.all(cv.train_accuracy > 0.85)
    assert np.all(cv.epochs == 15)
    assert "3-fold cross-validation" in str(cv) and "test_accuracy" in str(cv)
    again = cross_validate(make_model, X, y, k=3, fit_kwargs=FIT, seed=0)
    np.testing.assert_array_equal(again.test_loss, cv.test_loss)
    with pytest.raises(KeyError, match="CVResult has"):
        cv["accuracy"]


def test_cross_validate_matches_manual_folds():
    X, y = _blobs(60)
    cv = cross_validate(make_model, X, y, cv=KFold(3), fit_kwargs=FIT, return_models=True)
    for (tr, te), model, loss in zip(KFold(3).split(X), cv.models, cv.test_loss):
        manual = make_model()
        manual.fit(X[tr], y[tr], verbose=0, **FIT)
        assert manual.evaluate(X[te], y[te])["loss"] == pytest.approx(loss, rel=1e-12)
        np.testing.assert_array_equal(manual.weights[0], model.weights[0])


def test_leave_one_out_is_k_equals_n():
    X, y = _blobs(12)
    cv = cross_validate(make_model, X, y, k=len(X), fit_kwargs={"epochs": 5, "lr": 0.1})
    assert cv.k == 12
    assert set(cv.test_accuracy.tolist()) <= {0.0, 1.0}


def test_cross_validate_with_early_stopping_on_a_validation_split():
    X, y = _blobs()
    cv = cross_validate(make_model, X, y, k=3,
                        fit_kwargs={"epochs": 200, "lr": 0.1, "validation_split": 0.2,
                                    "early_stopping": fastnn.EarlyStopping(patience=2, min_delta=1e-3)})
    assert np.all(cv.epochs < 200)
    assert np.all(cv.test_accuracy > 0.85)


def test_cross_validate_regression():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (60, 1))
    y = 2 * X[:, 0] + 1
    cv = cross_validate(lambda: fastnn.MLP([1, 1], output="identity", seed=0, backend="numpy"), X, y, k=3,
                        fit_kwargs={"epochs": 50, "lr": 0.1})
    assert np.all(np.isnan(cv.test_accuracy)) and np.all(cv.test_loss < 1e-3)
    assert "accuracy" not in str(cv)


def test_cross_validate_bad_input():
    X, y = _blobs(30)
    with pytest.raises(TypeError, match="make_model must be a function"):
        cross_validate(fastnn.MLP([2, 3]), X, y)
    with pytest.raises(TypeError, match="must return a new fastnn.MLP"):
        cross_validate(lambda: "model", X, y, k=2)
    with pytest.raises(ValueError, match="X has 30 samples but y has 29"):
        cross_validate(make_model, X, y[:29])
    with pytest.raises(TypeError, match="fit_kwargs must be a dict"):
        cross_validate(make_model, X, y, fit_kwargs=[("epochs", 1)])
    with pytest.raises(ValueError, match="n_jobs must be"):
        cross_validate(make_model, X, y, n_jobs=0)
    with pytest.raises(TypeError, match="cv must be"):
        cross_validate(make_model, X, y, cv=3)


def test_cross_validate_in_parallel_with_joblib():
    pytest.importorskip("joblib")
    X, y = _blobs(90)
    serial = cross_validate(make_model, X, y, k=3, fit_kwargs=FIT)
    parallel = cross_validate(make_model, X, y, k=3, fit_kwargs=FIT, n_jobs=2)
    np.testing.assert_array_equal(parallel.test_loss, serial.test_loss)
    import joblib

    with joblib.parallel_config(backend="threading"):  # any joblib backend (dask, ray, ...) the same way
        threaded = cross_validate(make_model, X, y, k=3, fit_kwargs=FIT, n_jobs=2)
    np.testing.assert_array_equal(threaded.test_loss, serial.test_loss)


# --------------------------------------------------------------------------- Bagging


def test_bagging_averages_bootstrap_members():
    X, y = _blobs()
    bag = Bagging(lambda: fastnn.MLP([2, 8, 3], seed=None, backend="numpy"), n_estimators=4, seed=0)
    assert bag.fit(X, y, **FIT) is bag
    assert len(bag.estimators_) == 4 and len(bag.samples_) == 4
    assert all(len(s) == len(X) for s in bag.samples_)
    assert any(len(np.unique(s)) < len(X) for s in bag.samples_)  # drawn with replacement
    proba = bag.predict_proba(X[:10])
    np.testing.assert_allclose(proba, np.mean([m.predict_proba(X[:10]) for m in bag.estimators_], axis=0))
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_array_equal(bag.predict(X[:10]), np.argmax(proba, axis=1))
    assert bag.score(X, y) > 0.9
    assert 0.8 < bag.oob_score_ <= 1.0


def test_bagging_regression_and_max_samples():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (80, 1))
    y = 2 * X[:, 0] + 1
    bag = Bagging(lambda: fastnn.MLP([1, 1], output="identity", seed=0, backend="numpy"), 3,
                  max_samples=0.5, seed=1).fit(X, y, epochs=60, lr=0.1)
    assert all(len(s) == 40 for s in bag.samples_)
    assert bag.predict(X).shape == (80,)
    assert bag.score(X, y) > 0.99 and bag.oob_score_ > 0.99  # R^2


def test_bagging_in_parallel_matches_serial():
    pytest.importorskip("joblib")
    X, y = _blobs(90)
    serial = Bagging(make_model, 2, seed=0).fit(X, y, **FIT)
    parallel = Bagging(make_model, 2, seed=0, n_jobs=2).fit(X, y, **FIT)
    np.testing.assert_array_equal(parallel.predict_proba(X), serial.predict_proba(X))


def test_bagging_bad_input():
    with pytest.raises(TypeError, match="make_model must be a function"):
        Bagging(None)
    with pytest.raises(TypeError, match="n_estimators must be an integer"):
        Bagging(make_model, 2.0)
    with pytest.raises(ValueError, match="max_samples must be a fraction"):
        Bagging(make_model, max_samples=0)
    with pytest.raises(ValueError, match="not fitted"):
        Bagging(make_model).predict(np.ones((2, 2)))
