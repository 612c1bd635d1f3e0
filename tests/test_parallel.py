"""Leaves trained in parallel: joblib processes and a Dask cluster."""

import subprocess
import sys

import joblib
import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV

from sklearn_mono import MoNORegressor, relative_l2_scorer

from .conftest import SMALL


def test_n_jobs_reproducible_and_consistent(antiderivative_small):
    X, y = antiderivative_small
    one = MoNORegressor(n_leaves=4, n_jobs=1, **SMALL).fit(X, y).predict(X)
    two = MoNORegressor(n_leaves=4, n_jobs=2, **SMALL).fit(X, y)
    again = MoNORegressor(n_leaves=4, n_jobs=2, **SMALL).fit(X, y)
    np.testing.assert_array_equal(two.predict(X), again.predict(X))
    # different thread counts per expert only change float32 rounding
    np.testing.assert_allclose(two.predict(X), one, rtol=1e-4, atol=1e-5)
    assert len(two.experts_) == 4


def test_chunked_prediction_matches(fitted_small, antiderivative_small):
    X, _ = antiderivative_small
    whole = fitted_small.predict(X)
    chunked = fitted_small.set_params(predict_batch_size=7).predict(X)
    fitted_small.set_params(predict_batch_size=1024)
    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-7)
    assert np.array_equal(fitted_small.set_params(predict_batch_size=7).apply(X), fitted_small.apply(X))
    fitted_small.set_params(predict_batch_size=1024)


def test_dask_is_optional():
    code = "import sys, sklearn_mono; assert not any(m.split('.')[0] in ('dask', 'distributed') for m in sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:
        yield client


def test_fit_on_a_dask_cluster(dask_client, antiderivative_small):
    from distributed import get_task_stream

    X, y = antiderivative_small
    with get_task_stream(dask_client) as stream, joblib.parallel_config(backend="dask"):
        remote = MoNORegressor(n_leaves=4, **SMALL).fit(X, y)
    # the experts were trained by tasks on the cluster's worker processes
    workers = {task["worker"] for task in stream.data}
    assert stream.data and workers <= set(dask_client.scheduler_info()["workers"])
    local = MoNORegressor(n_leaves=4, n_jobs=2, **SMALL).fit(X, y)
    np.testing.assert_allclose(remote.predict(X), local.predict(X), rtol=1e-6, atol=1e-7)


def test_grid_search_on_a_dask_cluster(dask_client, antiderivative_small):
    X, y = antiderivative_small
    grid = {"n_leaves": [1, 2], "width": [4, 8]}
    search = GridSearchCV(MoNORegressor(**SMALL), grid, scoring=relative_l2_scorer, cv=2)
    with joblib.parallel_config(backend="dask"):
        remote = search.fit(X, y)
        remote_scores = remote.cv_results_["mean_test_score"]
    local = GridSearchCV(MoNORegressor(**SMALL), grid, scoring=relative_l2_scorer, cv=2).fit(X, y)
    assert remote.best_params_ == local.best_params_
    np.testing.assert_allclose(remote_scores, local.cv_results_["mean_test_score"], rtol=1e-4)
