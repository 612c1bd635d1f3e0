"""
Error against active parameters for 1, 4 and 16 leaves
======================================================

A mixture of ``n_leaves`` experts stores up to ``n_leaves`` experts, but a
query evaluates only the one its input is routed to: the model's *active*
parameters, ``n_params_active_``, are those of one expert whatever the
number of leaves. A mixture pays off when its experts, each trained on part
of the inputs, are more accurate than one expert of the same size trained on
all of them.

This example measures that on a family of operators: viscous Burgers whose
viscosity is drawn per sample over two decades
(:func:`~sklearn_mono.datasets.make_burgers` with a viscosity range), given to
the model as a second input channel. A small expert has to be a compromise
between nearly inviscid and strongly damped flows; leaves can each serve a
range of viscosities. The example fits ``n_leaves`` in (1, 4, 16) at two
expert widths and plots test error against active and against stored
parameters.
"""

# %%
# The models
# ----------
# Every mixture trains a root expert for ``epochs`` on all samples, then
# grows its tree where a split lowers the error on held-out samples, each
# child training up to ``leaf_epochs`` more on its side (see the user guide's
# model page). With ``n_leaves=1`` the root expert is the whole model.
import os

import matplotlib.pyplot as plt

from sklearn_mono import MoNORegressor, NeuralOperatorRegressor
from sklearn_mono import relative_l2_error
from sklearn_mono.datasets import make_burgers

# quick mode: less data, fewer epochs
QUICK = os.environ.get("SKLEARN_MONO_EXAMPLES_QUICK") == "1"

n_train, n_test = (300, 100) if QUICK else (2000, 500)
epochs, leaf_epochs = (6, 4) if QUICK else (60, 20)
X, y = make_burgers(n_train + n_test, viscosity=(0.02, 2.0), random_state=0)
print("inputs", X.shape, "(initial state and viscosity), outputs", y.shape)
X_train, y_train = X[:n_train], y[:n_train]
X_test, y_test = X[n_train:], y[n_train:]

widths, all_leaves = (8, 16), (1, 4, 16)
results = []
for n_leaves in all_leaves:
    for width in widths:
        expert = NeuralOperatorRegressor(module__width=width, max_epochs=epochs)
        model = MoNORegressor(
            n_leaves,
            expert=expert,
            leaf_epochs=leaf_epochs,
            grid_ndim=1,  # axis 1 holds channels, axis 2 the grid
            random_state=0,
        )
        model.fit(X_train, y_train)
        result = dict(
            n_leaves=n_leaves,
            kept=model.n_leaves_,
            width=width,
            active=model.n_params_active_,
            stored=model.n_params_total_,
            error=relative_l2_error(y_test, model.predict(X_test)),
        )
        results.append(result)
        print(
            "n_leaves={n_leaves:2d} width={width:2d}: {kept:2d} leaves kept, "
            "test relative L2 {error:.4f}, active {active:,}, stored {stored:,}"
            .format(**result)
        )

# %%
# Which ``n_leaves`` is most accurate at each width, in this run:
for width in widths:
    same_width = [r for r in results if r["width"] == width]
    best = min(same_width, key=lambda r: r["error"])
    print(f"width {width}: lowest test error with n_leaves={best['n_leaves']}")

# %%
# The plot
# --------
# Left, error against the parameters a query evaluates; right, against the
# parameters the model stores. Each line joins the two widths at one
# ``n_leaves``.
fig, axes = plt.subplots(
    1, 2, figsize=(12, 4.8), sharey=True, constrained_layout=True
)
for ax, size in ((axes[0], "active"), (axes[1], "stored")):
    for n_leaves, marker in zip(all_leaves, "osD"):
        rows = [r for r in results if r["n_leaves"] == n_leaves]
        ax.plot(
            [r[size] for r in rows],
            [r["error"] for r in rows],
            marker=marker,
            label=f"n_leaves={n_leaves}",
        )
    ax.set_xscale("log")
    ax.grid(True, alpha=0.3)
active = sorted({r["active"] for r in results})
labels = [f"{a:,}\n(width {w})" for a, w in zip(active, widths)]
axes[0].set_xticks(active, labels)
axes[0].minorticks_off()
axes[0].set_xlabel("active parameters per query (n_params_active_)")
axes[1].set_xlabel("stored parameters (n_params_total_)")
axes[0].set_ylabel("test relative L2 error")
axes[0].legend()
fig.suptitle("Burgers with a viscosity per sample: error against model size")
plt.show()

# %%
# What the plot shows
# -------------------
# In a full run (``python examples/active_parameters.py``, a few minutes on a
# laptop's CPU), the curves of 4 and 16 leaves lie below the single
# expert's at both widths, and the tree splits mostly on the viscosity. Part
# of that gain is training rather than routing: each split trains its
# children up to ``leaf_epochs`` more, and a single expert trained as long
# closes much of the gap, most of it at the larger width. The right panel
# shows the price: each leaf kept stores another expert. The
# :doc:`benchmarks page </benchmarks>` measures both on this family and on
# Darcy flow, where no split pays.
#
# The figure on this page comes from the quick mode used to build the
# documentation: a few epochs on 300 samples, with errors far above those of
# a full run. Its order of the curves need not match.
#
# Searching ``n_leaves`` and the expert's options
# -----------------------------------------------
# To choose a configuration by cross-validation rather than on a test set,
# use ``GridSearchCV`` with the relative L2 scorer; the expert's parameters
# are reached as ``expert__*``:
#
# .. code-block:: python
#
#     from sklearn.model_selection import GridSearchCV
#     from sklearn_mono import relative_l2_scorer
#
#     search = GridSearchCV(
#         MoNORegressor(grid_ndim=1),
#         {"n_leaves": [1, 16], "expert__module__width": [8, 16]},
#         scoring=relative_l2_scorer,
#         cv=3,
#     ).fit(X_train, y_train)
#     print(search.best_params_, -search.best_score_)
