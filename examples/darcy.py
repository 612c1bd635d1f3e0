"""
Darcy flow: which expert answers each input
===========================================

Darcy flow maps the permeability ``a(x, y)`` of a porous medium to the
pressure ``u(x, y)`` it produces. :func:`~sklearn_mono.datasets.make_darcy`
draws random permeability fields and solves for the pressure on a 16x16 grid.
This example fits :class:`~sklearn_mono.MoNORegressor`, looks at its
predictions, then at how it routes the inputs, when it keeps more than one
expert.
"""

# %%
# Data and model
# --------------
# ``X`` holds one 16x16 permeability field per sample and ``y`` the pressure
# on the same grid. The expert here is smaller than the 2-D default (one FNO
# of width 16 rather than two). It is trained first on all samples (the root
# expert); the tree then splits the inputs where copies of it, trained further
# on each side, fit held-out samples better, up to four leaves.
import os

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap
from sklearn.decomposition import PCA

from sklearn_mono import MoNORegressor, NeuralOperatorRegressor
from sklearn_mono import relative_l2_error
from sklearn_mono.datasets import make_darcy

# quick mode: less data, 6 + 3 epochs
QUICK = os.environ.get("SKLEARN_MONO_EXAMPLES_QUICK") == "1"

n_train, n_test = (200, 20) if QUICK else (800, 100)
epochs, leaf_epochs = (6, 3) if QUICK else (40, 40)
# solved at 32x32 and sampled at 16x16 (every other point)
data = make_darcy(n_train + n_test, resolutions=(16, 32), random_state=0)
X, y = data[16]
X_train, y_train = X[:n_train], y[:n_train]
X_test, y_test = X[n_train:], y[n_train:]

expert = NeuralOperatorRegressor(
    module__width=16, module__n_members=1, max_epochs=epochs
)
model = MoNORegressor(
    n_leaves=4, expert=expert, leaf_epochs=leaf_epochs, random_state=0
)
model.fit(X_train, y_train)
y_pred = model.predict(X_test)
error = relative_l2_error(y_test, y_pred)
print(f"Darcy 16x16: test relative L2 {error:.3f}")
print(f"{model.n_leaves_} leaves kept; active parameters "
      f"{model.n_params_active_:,}, stored {model.n_params_total_:,}")

# %%
# Predictions
# -----------
# Three test samples: the permeability, the true pressure, the prediction and
# the absolute error.
fig, axes = plt.subplots(3, 4, figsize=(13, 9.5), constrained_layout=True)
for row in range(3):
    panels = [
        (X_test[row], "input a", "viridis"),
        (y_test[row], "truth u", "magma"),
        (y_pred[row], "prediction", "magma"),
        (np.abs(y_pred[row] - y_test[row]), "|error|", "inferno"),
    ]
    for ax, (field, title, cmap) in zip(axes[row], panels):
        image = ax.imshow(
            field.T, origin="lower", extent=(0, 1, 0, 1), cmap=cmap
        )
        ax.set_title(f"sample {row}: {title}", fontsize=11)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        fig.colorbar(image, ax=ax, shrink=0.8)
fig.suptitle(
    f"MoNORegressor on Darcy flow (16x16): test relative L2 {error:.3f}"
)

# %%
# How the inputs are routed
# -------------------------
# The model does not route on the raw grid values: its encoder keeps a few
# low Fourier modes of each field (``model.encoder_``), and a tree of
# hyperplane splits divides those vectors into cells, one per expert.
# ``model.apply`` returns the cell of each input. On the left, the training
# inputs' encodings projected on their first two principal components and
# coloured by cell; on the right, the average input field of each cell.
#
# How many cells there are is decided by the fit: every field here follows
# the same law, and experts trained apart on groups of fields did not beat
# the root expert on held-out fields when this page was built, so the model
# may keep a single leaf and the figure a single colour. The :ref:`active
# parameters example <sphx_glr_auto_examples_active_parameters.py>` shows a
# family of operators where splits pay.
encodings = model.encoder_.transform(X_train[:, None])
coords = PCA(n_components=2).fit_transform(encodings)
leaves = model.apply(X_train)
k = model.n_leaves_
colours = plt.get_cmap("tab10").colors[:k]

fig = plt.figure(figsize=(12, 5.2), constrained_layout=True)
left, right = fig.subfigures(1, 2, width_ratios=[1.25, 1])
ax = left.subplots()
points = ax.scatter(
    coords[:, 0], coords[:, 1], c=leaves, s=14,
    cmap=ListedColormap(colours), vmin=-0.5, vmax=k - 0.5,
)
left.colorbar(points, ax=ax, ticks=range(k), label="leaf (expert)")
ax.set_xlabel("first principal component of the Fourier encoding")
ax.set_ylabel("second principal component")
ax.set_title(
    f"Training inputs routed to {k} experts (tree depth {model.depth_})"
)
axes = right.subplots(2, (k + 1) // 2, squeeze=False).ravel()
for leaf, ax in enumerate(axes):
    if leaf >= k:
        ax.set_axis_off()
        continue
    mean_input = X_train[leaves == leaf].mean(axis=0)
    ax.imshow(mean_input.T, origin="lower", cmap="viridis")
    n_inputs = np.sum(leaves == leaf)
    ax.set_title(f"leaf {leaf}: {n_inputs} inputs", color=colours[leaf])
    ax.set_xticks([])
    ax.set_yticks([])
right.suptitle("average input field of each leaf")
plt.show()

# sphinx_gallery_thumbnail_number = 1
