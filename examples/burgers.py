"""Viscous Burgers: learn an initial state -> its states at 17 later times.

``make_burgers`` gives initial states on 16 points and the solution at 17
times as 17 output channels. Writes ``burgers.png``: the space-time solution of
one test sample (truth, prediction, error) and the test error against time.

Run ``python examples/burgers.py`` (``--quick`` for a fast check).
"""

import argparse
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sklearn_mono import MoNORegressor, NeuralOperatorRegressor, relative_l2_error  # noqa: E402
from sklearn_mono.datasets import make_burgers  # noqa: E402


def main(quick=False, output_dir="."):
    n_train, n_test = (120, 20) if quick else (1000, 200)
    params = {"expert": NeuralOperatorRegressor(max_epochs=3), "leaf_epochs": 3} if quick else {}
    X, y = make_burgers(n_samples=n_train + n_test, n_points=16, random_state=0)
    model = MoNORegressor(n_leaves=4, random_state=0, **params)
    model.fit(X[:n_train], y[:n_train])
    pred = model.predict(X[n_train:])
    truth = y[n_train:]
    error = relative_l2_error(truth, pred)
    per_time = [relative_l2_error(truth[:, t], pred[:, t]) for t in range(y.shape[1])]
    print(f"Burgers, 16 points -> 17 times: test relative L2 {error:.4f}; "
          f"active {model.n_params_active_:,} of {model.n_params_total_:,} parameters")

    times = np.arange(1, y.shape[1] + 1) / y.shape[1]
    fig, axes = plt.subplots(1, 4, figsize=(17, 4), constrained_layout=True)
    extent = (0, 1, times[0], times[-1])
    limits = dict(vmin=truth[0].min(), vmax=truth[0].max())
    for ax, field, title in (
        (axes[0], truth[0], "truth u(x, t)"),
        (axes[1], pred[0], "prediction"),
    ):
        image = ax.imshow(field, origin="lower", aspect="auto", extent=extent, cmap="RdBu_r", **limits)
        ax.set_title(f"test sample 0: {title}")
        ax.set_xlabel("x")
        ax.set_ylabel("t")
        fig.colorbar(image, ax=ax)
    image = axes[2].imshow(np.abs(pred[0] - truth[0]), origin="lower", aspect="auto",
                           extent=extent, cmap="inferno")
    axes[2].set_title("|error|")
    axes[2].set_xlabel("x")
    axes[2].set_ylabel("t")
    fig.colorbar(image, ax=axes[2])
    axes[3].plot(times, per_time, marker="o")
    axes[3].set_xlabel("t")
    axes[3].set_ylabel("test relative L2 error")
    axes[3].set_title("error at each output time")
    axes[3].grid(True, alpha=0.3)
    fig.suptitle(f"MoNORegressor on viscous Burgers: test relative L2 {error:.4f}")
    fig.savefig(os.path.join(output_dir, "burgers.png"), dpi=90)
    plt.close(fig)
    return error


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny data and epochs")
    parser.add_argument("--output-dir", default=".", help="where the PNG file goes")
    args = parser.parse_args()
    main(args.quick, args.output_dir)
