"""
Quickstart: learn the antiderivative operator
=============================================

An *operator* maps a function to a function. Here the input is a random
smooth function ``u`` sampled at 64 points of ``[0, 1)`` and the output is its
antiderivative, ``x -> ∫₀ˣ u``, sampled at the same points.
:class:`~sklearn_mono.MoNORegressor` learns it from examples with ``fit`` and
``predict``, like any scikit-learn regressor.

From a clone of the repository, ``python examples/quickstart.py`` runs this
script: it prints the test error, the parameters one query evaluates against
those the model stores, and the time taken, and writes ``quickstart.png``.
"""

# %%
# Data
# ----
# :func:`~sklearn_mono.datasets.make_antiderivative` draws the input functions
# and computes their antiderivatives. ``X`` has one row per function, one
# column per grid point; ``y`` has the same layout. Set
# ``SKLEARN_MONO_EXAMPLES_QUICK=1`` for a run of a few seconds on less data.
import os
import time

import matplotlib.pyplot as plt
import numpy as np

from sklearn_mono import MoNORegressor, NeuralOperatorRegressor
from sklearn_mono import relative_l2_error
from sklearn_mono.datasets import make_antiderivative

QUICK = os.environ.get("SKLEARN_MONO_EXAMPLES_QUICK") == "1"

n_train = 400 if QUICK else 1000
X, y = make_antiderivative(n_train + 200, n_points=64, random_state=0)
X_train, y_train = X[:n_train], y[:n_train]
X_test, y_test = X[n_train:], y[n_train:]

# %%
# Fit
# ---
# Up to four leaves. The model trains one expert, a small Fourier neural
# operator, on all inputs, then splits the inputs into groups where experts
# trained further on each group fit held-out samples better; each leaf of the
# tree keeps its own expert. The defaults choose the expert's size and
# training for a 1-D grid; quick mode trains the expert for 20 epochs instead
# and each leaf for up to 5 more.
if QUICK:
    model = MoNORegressor(
        n_leaves=4,
        expert=NeuralOperatorRegressor(max_epochs=20),
        leaf_epochs=5,
        random_state=0,
    )
else:
    model = MoNORegressor(n_leaves=4, random_state=0)

start = time.perf_counter()
model.fit(X_train, y_train)
fit_seconds = time.perf_counter() - start

start = time.perf_counter()
y_pred = model.predict(X_test)
predict_seconds = time.perf_counter() - start

# %%
# What was learned
# ----------------
# The error is the relative L2 error, averaged over the test functions. A query
# evaluates one expert: ``n_params_active_`` parameters, while the model stores
# one per leaf kept (``n_params_total_``).
error = relative_l2_error(y_test, y_pred)
print("operator              u -> integral of u from 0 to x, 64 grid points")
print(f"training samples      {len(X_train)}, test samples {len(X_test)}")
print(f"test relative L2      {error:.2e}")
print(f"leaves / tree depth   {model.n_leaves_} / {model.depth_}")
print(f"active parameters     {model.n_params_active_:,} (per query)")
print(f"total parameters      {model.n_params_total_:,} (stored)")
print(f"fit time              {fit_seconds:.1f} s on {model.device_}")
print(f"predict time          {predict_seconds * 1e3:.1f} ms, 200 queries")

# %%
# Three test functions, their antiderivatives and the predictions, with the
# expert that answered each (``model.apply``):
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
fig.suptitle(f"Antiderivative operator: test relative L2 {error:.2e}")
fig.savefig("quickstart.png", dpi=90)
