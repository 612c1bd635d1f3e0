"""Leaves trained in parallel: joblib processes and a Dask cluster."""

import subprocess
import sys

import joblib
import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV

from sklearn_mono import relative_l2_scorer

from .conftest import small_expert, small_mono


def test_n_jobs_reproducible_and_consistent(antiderivative_small):
    X, y = antiderivative_small
    one = small_mono(4, n_jobs=1).fit(X, y)
    two = small_mono(4, n_jobs=2).fit(X, y)
    again = small_mono(4, n_jobs=2).fit(X, y)
    np.testing.assert_array_equal(two.predict(X), again.predict(X))
    # different thread counts per expert only change float32 rounding
    np.testing.assert_allclose(two.predict(X), one.predict(X), rtol=1e-4, atol=1e-5)
    assert len(two.experts_) == 4
    np.testing.assert_array_equal(two.apply(X), one.apply(X))
    # within a joblib context too
    with joblib.parallel_config(n_jobs=2):
        context = small_mono(4).fit(X, y)
    np.testing.assert_array_equal(context.predict(X), two.predict(X))


def test_dask_is_optional():
    code = (
        "import sys, sklearn_mono; "
        "assert not any(m.split('.')[0] in ('dask', 'distributed') for m in sys.modules)"
    )
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
        remote = small_mono(4).fit(X, y)
    # the experts were trained by tasks on the cluster's worker processes
    workers = {task["worker"] for task in stream.data}
    assert stream.data and workers <= set(dask_client.scheduler_info()["workers"])
    local = small_mono(4, n_jobs=2).fit(X, y)
    np.testing.assert_allclose(remote.predict(X), local.predict(X), rtol=1e-6, atol=1e-7)


def test_grid_search_on_a_dask_cluster(dask_client, antiderivative_small):
    X, y = antiderivative_small
    grid = {"n_leaves": [1, 2], "expert__module__width": [4, 8]}

    def search():
        estimator = small_mono(expert=small_expert(max_epochs=2), leaf_epochs=2)
        return GridSearchCV(estimator, grid, scoring=relative_l2_scorer, cv=2)

    with joblib.parallel_config(backend="dask"):
        remote = search().fit(X, y)
        remote_scores = remote.cv_results_["mean_test_score"]
    local = search().fit(X, y)
    assert remote.best_params_ == local.best_params_
    np.testing.assert_allclose(remote_scores, local.cv_results_["mean_test_score"], rtol=1e-4)
