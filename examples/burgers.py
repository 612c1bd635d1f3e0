"""
Viscous Burgers: one input, seventeen output times
==================================================

Viscous Burgers' equation moves and steepens a wave while viscosity smooths
it. :func:`~sklearn_mono.datasets.make_burgers` draws initial states on 16
points of a periodic interval and solves for the state at 17 later times.
The target therefore has its own channels: ``y`` has shape
``(n_samples, 17, 16)``, one channel per time, on the grid of ``X``. The
model learns the whole trajectory at once.
"""

# %%
# Data and fit
# ------------
# The model uses the default expert for a 1-D grid (a Fourier neural operator
# of width 14) and up to four leaves; quick mode trains it for 20 epochs and
# each leaf for up to 5 more.
import os

import matplotlib.pyplot as plt
import numpy as np

from sklearn_mono import MoNORegressor, NeuralOperatorRegressor
from sklearn_mono import relative_l2_error
from sklearn_mono.datasets import make_burgers

# quick mode: less data, 20 + 5 epochs
QUICK = os.environ.get("SKLEARN_MONO_EXAMPLES_QUICK") == "1"

n_train, n_test = (400, 50) if QUICK else (1000, 200)
X, y = make_burgers(n_train + n_test, n_points=16, random_state=0)
print("X:", X.shape, " y:", y.shape)

if QUICK:
    model = MoNORegressor(
        n_leaves=4,
        expert=NeuralOperatorRegressor(max_epochs=20),
        leaf_epochs=5,
        random_state=0,
    )
else:
    model = MoNORegressor(n_leaves=4, random_state=0)
model.fit(X[:n_train], y[:n_train])
pred, truth = model.predict(X[n_train:]), y[n_train:]
error = relative_l2_error(truth, pred)
print(f"test relative L2 {error:.4f}")
print(f"active parameters {model.n_params_active_:,}, "
      f"stored {model.n_params_total_:,}")

# %%
# Space-time picture and error over time
# --------------------------------------
# One test sample: truth, prediction and error over space and time, and the
# test error at each output time, over all test samples.
n_times = y.shape[1]
per_time = [relative_l2_error(truth[:, t], pred[:, t]) for t in range(n_times)]
times = np.arange(1, n_times + 1) / n_times
extent = (0, 1, times[0], times[-1])
style = dict(origin="lower", aspect="auto", extent=extent)
limits = dict(vmin=truth[0].min(), vmax=truth[0].max())

fig, axes = plt.subplots(1, 4, figsize=(17, 4), constrained_layout=True)
for ax, field, title in (
    (axes[0], truth[0], "truth u(x, t)"),
    (axes[1], pred[0], "prediction"),
):
    image = ax.imshow(field, cmap="RdBu_r", **style, **limits)
    ax.set_title(f"test sample 0: {title}")
    fig.colorbar(image, ax=ax)
image = axes[2].imshow(np.abs(pred[0] - truth[0]), cmap="inferno", **style)
axes[2].set_title("|error|")
fig.colorbar(image, ax=axes[2])
for ax in axes[:3]:
    ax.set_xlabel("x")
    ax.set_ylabel("t")
axes[3].plot(times, per_time, marker="o")
axes[3].set_xlabel("t")
axes[3].set_ylabel("test relative L2 error")
axes[3].set_title("error at each output time")
axes[3].grid(True, alpha=0.3)
fig.suptitle(f"MoNORegressor on viscous Burgers: test relative L2 {error:.4f}")
plt.show()
