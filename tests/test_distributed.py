"""Scale-out through joblib's dask backend: cross-validation folds and bagging members on a
dask.distributed cluster give the same results as in this process (the ``distributed`` extra)."""
import logging

import numpy as np
import pytest

import fastnn
from fastnn.model_selection import Bagging, cross_validate

distributed = pytest.importorskip("distributed", reason="the distributed extra: pip install 'fastnn[distributed]'")
joblib = pytest.importorskip("joblib")

FIT = {"epochs": 3, "batch_size": 16, "lr": 0.1, "verbose": 0}


def _blobs(n=90, seed=0):
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    y = np.arange(n) % 3
    return (centers[y] + rng.normal(0, 0.15, (n, 2))).astype(np.float32), y


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes with one thread each, on this machine."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=logging.ERROR) as lc, distributed.Client(lc) as client:
        yield client


@pytest.mark.slow
def test_cross_validate_and_bagging_on_a_dask_cluster(cluster):
    X, y = _blobs()
    # A lambda travels by value (cloudpickle); the workers import fastnn itself.
    make_model = lambda: fastnn.MLP([2, 8, 3], seed=0, backend="numpy")  # noqa: E731
    def tasks_run() -> int:
        return sum(cluster.run(lambda dask_worker: len(dask_worker.state.log)).values())

    serial = cross_validate(make_model, X, y, k=3, fit_kwargs=FIT, n_jobs=1)
    bag_serial = Bagging(make_model, 3, seed=0, n_jobs=1).fit(X, y, **FIT)
    before = tasks_run()
    with joblib.parallel_config(backend="dask"):
        on_dask = cross_validate(make_model, X, y, k=3, fit_kwargs=FIT, n_jobs=-1)
        bag_dask = Bagging(make_model, 3, seed=0, n_jobs=-1).fit(X, y, **FIT)
    for field in ("train_loss", "test_loss", "train_accuracy", "test_accuracy", "epochs"):
        np.testing.assert_array_equal(getattr(on_dask, field), getattr(serial, field), err_msg=field)
    np.testing.assert_array_equal(bag_dask.predict_proba(X), bag_serial.predict_proba(X))
    assert bag_dask.oob_score_ == bag_serial.oob_score_
    assert len(cluster.scheduler_info()["workers"]) == 2
    assert tasks_run() > before  # the fits really ran on the cluster's workers
