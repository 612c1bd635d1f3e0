"""Quickstart: learn the antiderivative operator with a mixture of neural operators.

Fits ``MoNORegressor`` with its defaults on 1000 random smooth functions
sampled at 64 points, and prints the test relative L2 error, the parameters one
query evaluates against those stored, and the time taken.

Run ``python examples/quickstart.py``.
"""

import time

from sklearn_mono import MoNORegressor, relative_l2_error
from sklearn_mono.datasets import make_antiderivative


def main():
    X, y = make_antiderivative(n_samples=1200, n_points=64, random_state=0)
    X_train, y_train, X_test, y_test = X[:1000], y[:1000], X[1000:], y[1000:]

    model = MoNORegressor(n_leaves=4, random_state=0, verbose=1)
    start = time.perf_counter()
    model.fit(X_train, y_train)
    fit_seconds = time.perf_counter() - start

    start = time.perf_counter()
    y_pred = model.predict(X_test)
    predict_seconds = time.perf_counter() - start

    print(f"operator              u -> integral of u from 0 to x, 64 grid points")
    print(f"training samples      {len(X_train)}, test samples {len(X_test)}")
    print(f"test relative L2      {relative_l2_error(y_test, y_pred):.2e}")
    print(f"leaves / tree depth   {model.n_leaves_} / {model.depth_}")
    print(f"active parameters     {model.n_params_active_:,} (evaluated per query)")
    print(f"total parameters      {model.n_params_total_:,} (stored)")
    print(f"fit time              {fit_seconds:.1f} s on {model.device_}")
    print(f"predict time          {predict_seconds * 1e3:.1f} ms for {len(X_test)} queries")


if __name__ == "__main__":
    main()
