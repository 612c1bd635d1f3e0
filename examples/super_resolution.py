"""
Zero-shot super-resolution: train at 16x16, predict at 32x32
============================================================

A Fourier neural operator learns in terms of Fourier modes, not grid points,
so it can be evaluated on a finer grid than the one it was trained on. This
example fits :class:`~sklearn_mono.MoNORegressor` on Darcy flow sampled at
16x16 and asks it for predictions on the same kind of fields sampled at
32x32, a grid it never saw. The routing works across resolutions too: the
Fourier encoder normalises its coefficients by the number of grid points, so
a field sampled at 16x16 and at 32x32 goes to the same expert (nearly always).
"""

# %%
# Two resolutions of the same fields
# ----------------------------------
# :func:`~sklearn_mono.datasets.make_darcy` with ``resolutions=(16, 32)``
# solves each problem at 32x32 and returns it at both resolutions.
import os

import matplotlib.pyplot as plt
import numpy as np

from sklearn_mono import MoNORegressor, NeuralOperatorRegressor
from sklearn_mono import relative_l2_error
from sklearn_mono.datasets import make_darcy

# quick mode: less data, 6 + 3 epochs
QUICK = os.environ.get("SKLEARN_MONO_EXAMPLES_QUICK") == "1"

n_train, n_test = (200, 20) if QUICK else (800, 100)
epochs, leaf_epochs = (6, 3) if QUICK else (40, 40)
data = make_darcy(n_train + n_test, resolutions=(16, 32), random_state=1)
(X16, y16), (X32, y32) = data[16], data[32]
print("16x16:", X16.shape, " 32x32:", X32.shape)

# %%
# Fit at 16x16, predict at both
# -----------------------------
# ``predict`` accepts N-D input on another grid and answers on that grid.
expert = NeuralOperatorRegressor(
    module__width=16, module__n_members=1, max_epochs=epochs
)
model = MoNORegressor(
    n_leaves=4, expert=expert, leaf_epochs=leaf_epochs, random_state=0
)
model.fit(X16[:n_train], y16[:n_train])

pred16 = model.predict(X16[n_train:])
pred32 = model.predict(X32[n_train:])
err16 = relative_l2_error(y16[n_train:], pred16)
err32 = relative_l2_error(y32[n_train:], pred32)
same_leaf = np.mean(model.apply(X16[n_train:]) == model.apply(X32[n_train:]))
print(f"prediction shapes: {pred16.shape} and {pred32.shape}")
print(f"test relative L2 at 16x16 (training grid): {err16:.3f}")
print(f"test relative L2 at 32x32 (zero-shot):     {err32:.3f}")
print(f"routed to the same expert at both resolutions: {same_leaf:.0%}")

# %%
# One test field at 32x32
# -----------------------
# The input, the true pressure, the prediction and the absolute error, all on
# the 32x32 grid.
i = n_train
fig, axes = plt.subplots(1, 4, figsize=(16, 4), constrained_layout=True)
panels = [
    (X32[i], "input a at 32x32", "viridis"),
    (y32[i], "truth u at 32x32", "magma"),
    (pred32[0], "prediction at 32x32", "magma"),
    (np.abs(pred32[0] - y32[i]), "|error|", "inferno"),
]
for ax, (field, title, cmap) in zip(axes, panels):
    image = ax.imshow(field.T, origin="lower", extent=(0, 1, 0, 1), cmap=cmap)
    ax.set_title(title)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    fig.colorbar(image, ax=ax, shrink=0.85)
fig.suptitle(
    f"Trained at 16x16, evaluated at 32x32: test relative L2 "
    f"{err16:.3f} (16x16), {err32:.3f} (32x32)"
)
plt.show()
