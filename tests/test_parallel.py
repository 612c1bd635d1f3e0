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


def test_predict_a_dask_array_blockwise(dask_client, antiderivative_small):
    # The recipe of docs/scaling.rst: the model is scattered to every worker
    # once, and each block of the array is predicted where it lies.
    da = pytest.importorskip("dask.array")
    X, y = antiderivative_small
    model = small_mono(4).fit(X, y)
    X_big = da.from_array(np.tile(X, (5, 1)), chunks=(100, -1))
    remote_model = dask_client.scatter(model, broadcast=True)
    y_big = X_big.map_blocks(
        lambda block, model: model.predict(block), remote_model, dtype=X.dtype,
        chunks=(X_big.chunks[0], y.shape[1]),
    )
    # equal up to float32 rounding, which depends on how many rows go together
    np.testing.assert_allclose(y_big.compute(), np.tile(model.predict(X), (5, 1)),
                               rtol=1e-5, atol=1e-6)
    assert X_big.numblocks[0] == 4 and y_big.numblocks[0] == 4


def test_a_dask_fit_survives_a_worker_that_dies(dask_client, antiderivative_small, tmp_path):
    # The first leaf task that starts training ends its worker process; Dask
    # restarts the worker, and the fit trains the leaves again.
    import os

    from ._crashing import CrashesOnce

    X, y = antiderivative_small
    marker = str(tmp_path / "crashed")

    def fit():
        expert = small_expert(module=CrashesOnce, module__marker=marker, module__parent=os.getpid())
        with joblib.parallel_config(backend="dask"):
            return small_mono(4, expert=expert).fit(X, y)

    with pytest.warns(UserWarning, match="A worker process died"):
        disturbed = fit()
    assert os.path.exists(marker)  # a worker did die
    undisturbed = fit()
    np.testing.assert_array_equal(disturbed.predict(X), undisturbed.predict(X))


def test_a_process_fit_survives_a_worker_that_dies(antiderivative_small, tmp_path):
    import os

    from ._crashing import CrashesOnce

    X, y = antiderivative_small
    marker = str(tmp_path / "crashed")
    expert = small_expert(module=CrashesOnce, module__marker=marker, module__parent=os.getpid())
    with pytest.warns(UserWarning, match="A worker process died"):
        disturbed = small_mono(4, expert=expert, n_jobs=2).fit(X, y)
    undisturbed = small_mono(4, expert=expert, n_jobs=2).fit(X, y)
    np.testing.assert_array_equal(disturbed.predict(X), undisturbed.predict(X))
