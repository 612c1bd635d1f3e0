"""Darcy flow: learn permeability -> pressure, and see which expert answers each input.

Fits ``MoNORegressor`` on ``make_darcy`` at 16x16 and writes two figures:

* ``darcy_predictions.png``: input, truth, prediction and error for three test
  samples;
* ``darcy_leaves.png``: the training inputs' encodings (first two principal
  components of their Fourier features), coloured by the leaf that routes them.

Run ``python examples/darcy.py`` (``--quick`` for a fast check, ``--output-dir``
for where the figures go).
"""

import argparse
import os
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402

from sklearn_mono import MoNORegressor, NeuralOperatorRegressor, relative_l2_error  # noqa: E402
from sklearn_mono.datasets import make_darcy  # noqa: E402


def main(quick=False, output_dir="."):
    n_train, n_test = (120, 20) if quick else (800, 100)
    epochs = 3 if quick else 40
    data = make_darcy(n_samples=n_train + n_test, resolutions=(16, 32), random_state=0)
    X, y = data[16]
    # A small, quick model: one FNO of width 16 per leaf (the 2-D default
    # is two members of width 16 each), trained for `epochs` on all samples
    # and `epochs` more on each leaf's cell.
    expert = NeuralOperatorRegressor(module__width=16, module__n_members=1, max_epochs=epochs)
    model = MoNORegressor(n_leaves=4, expert=expert, leaf_epochs=epochs, random_state=0)
    start = time.perf_counter()
    model.fit(X[:n_train], y[:n_train])
    seconds = time.perf_counter() - start
    pred = model.predict(X[n_train:])
    error = relative_l2_error(y[n_train:], pred)
    print(f"Darcy 16x16: test relative L2 {error:.3f}, fit {seconds:.1f} s, "
          f"active {model.n_params_active_:,} / total {model.n_params_total_:,} parameters")

    fig, axes = plt.subplots(3, 4, figsize=(13, 9.5), constrained_layout=True)
    for row, i in enumerate((0, 1, 2)):
        sample = n_train + i
        panels = [
            (X[sample], "input a", "viridis"),
            (y[sample], "truth u", "magma"),
            (pred[i], "prediction", "magma"),
            (np.abs(pred[i] - y[sample]), "|error|", "inferno"),
        ]
        for ax, (field, title, cmap) in zip(axes[row], panels):
            image = ax.imshow(field.T, origin="lower", extent=(0, 1, 0, 1), cmap=cmap)
            ax.set_title(f"sample {i}: {title}", fontsize=11)
            ax.set_xlabel("x")
            ax.set_ylabel("y")
            fig.colorbar(image, ax=ax, shrink=0.8)
    fig.suptitle(f"MoNORegressor on Darcy flow (16x16): test relative L2 {error:.3f}")
    fig.savefig(os.path.join(output_dir, "darcy_predictions.png"), dpi=90)
    plt.close(fig)

    encodings = model.encoder_.transform(X[:n_train, None])
    coords = PCA(n_components=2).fit_transform(encodings)
    leaves = model.apply(X[:n_train])
    fig, ax = plt.subplots(figsize=(6.5, 5.5), constrained_layout=True)
    colours = ListedColormap(plt.get_cmap("tab10").colors[: model.n_leaves_])
    points = ax.scatter(coords[:, 0], coords[:, 1], c=leaves, cmap=colours, s=14,
                        vmin=-0.5, vmax=model.n_leaves_ - 0.5)
    bar = fig.colorbar(points, ax=ax, ticks=range(model.n_leaves_))
    bar.set_label("leaf (expert)")
    ax.set_xlabel("first principal component of the Fourier encoding")
    ax.set_ylabel("second principal component")
    ax.set_title(f"Training inputs routed to {model.n_leaves_} experts (depth {model.depth_})")
    fig.savefig(os.path.join(output_dir, "darcy_leaves.png"), dpi=90)
    plt.close(fig)
    return error


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny data and epochs")
    parser.add_argument("--output-dir", default=".", help="where the PNG files go")
    args = parser.parse_args()
    main(args.quick, args.output_dir)
