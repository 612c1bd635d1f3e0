"""Quickstart: learn the antiderivative operator with a mixture of neural operators.

Fits ``MoNORegressor`` with its defaults on 1000 random smooth functions
sampled at 64 points, prints the test relative L2 error, the parameters one
query evaluates against those stored, and the time taken, and writes
``quickstart.png`` (three test inputs, their antiderivatives and the
predictions).

Run ``python examples/quickstart.py`` (``--quick`` for a fast check).
"""

import argparse
import os
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sklearn_mono import MoNORegressor, NeuralOperatorRegressor, relative_l2_error  # noqa: E402
from sklearn_mono.datasets import make_antiderivative  # noqa: E402


def main(quick=False, output_dir="."):
    n_train = 100 if quick else 1000
    X, y = make_antiderivative(n_samples=n_train + 200, n_points=64, random_state=0)
    X_train, y_train, X_test, y_test = X[:n_train], y[:n_train], X[n_train:], y[n_train:]

    # --quick trains the expert for 2 epochs and each leaf for 2 more.
    params = {"expert": NeuralOperatorRegressor(max_epochs=2), "leaf_epochs": 2} if quick else {}
    model = MoNORegressor(n_leaves=4, random_state=0, verbose=1, **params)
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

    x = np.arange(64) / 64
    leaves = model.apply(X_test[:3])
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8), constrained_layout=True)
    for i, ax in enumerate(axes):
        ax.plot(x, X_test[i], color="0.6", label="input u")
        ax.plot(x, y_test[i], color="k", lw=2, label="truth: integral of u")
        ax.plot(x, y_pred[i], "--", color="tab:red", lw=2, label="prediction")
        ax.set_title(f"test sample {i} (expert {leaves[i]})")
        ax.set_xlabel("x")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("value")
    axes[0].legend()
    fig.suptitle(f"Antiderivative operator: test relative L2 {relative_l2_error(y_test, y_pred):.2e}")
    fig.savefig(os.path.join(output_dir, "quickstart.png"), dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny data and epochs")
    parser.add_argument("--output-dir", default=".", help="where the PNG file goes")
    args = parser.parse_args()
    main(args.quick, args.output_dir)
