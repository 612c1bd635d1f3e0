"""
Error against active parameters for 1, 2 and 4 leaves
=====================================================

A mixture of ``n_leaves`` experts stores ``n_leaves`` experts, but a query
evaluates only the one its input is routed to: the model's *active*
parameters, ``n_params_active_``, are those of one expert whatever
``n_leaves`` is. A mixture pays off when its experts, each trained on a group
of similar inputs, are more accurate than one expert of the same size trained
on all of them.

This example measures that on the antiderivative operator
(:func:`~sklearn_mono.datasets.make_antiderivative`): it fits every
combination of ``n_leaves`` in (1, 2, 4) and two expert widths, and plots
test error against active and against stored parameters.
"""

# %%
# The models
# ----------
# Every mixture trains a root expert for ``epochs`` on all samples, then each
# leaf's copy for ``leaf_epochs`` more on its cell. For a fair comparison the
# single expert (``n_leaves=1``, where the root is the whole model) trains
# for ``epochs + leaf_epochs``, so every expert has had as many epochs.
import os

import matplotlib.pyplot as plt

from sklearn_mono import MoNORegressor, NeuralOperatorRegressor
from sklearn_mono import relative_l2_error
from sklearn_mono.datasets import make_antiderivative

# quick mode: less data, fewer epochs
QUICK = os.environ.get("SKLEARN_MONO_EXAMPLES_QUICK") == "1"

n_train, n_test = (200, 100) if QUICK else (1000, 200)
epochs, leaf_epochs = (6, 4) if QUICK else (60, 20)
X, y = make_antiderivative(n_train + n_test, n_points=32, random_state=0)
X_train, y_train = X[:n_train], y[:n_train]
X_test, y_test = X[n_train:], y[n_train:]

widths, all_leaves = (8, 24), (1, 2, 4)
results = []
for n_leaves in all_leaves:
    for width in widths:
        expert = NeuralOperatorRegressor(
            module__width=width,
            module__n_modes=12,
            lr=3e-3,
            max_epochs=epochs + leaf_epochs if n_leaves == 1 else epochs,
        )
        model = MoNORegressor(
            n_leaves, expert=expert, leaf_epochs=leaf_epochs, random_state=0
        )
        model.fit(X_train, y_train)
        result = dict(
            n_leaves=n_leaves,
            width=width,
            active=model.n_params_active_,
            stored=model.n_params_total_,
            error=relative_l2_error(y_test, model.predict(X_test)),
        )
        results.append(result)
        print(
            "n_leaves={n_leaves} width={width:2d}: test relative L2 "
            "{error:.4f}, active {active:,}, stored {stored:,}"
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
fig.suptitle("Antiderivative operator: error against model size")
plt.show()

# %%
# What the plot shows
# -------------------
# In a full run (``python examples/active_parameters.py``, about two minutes
# on one CPU core), the single expert is the most accurate at both widths, by
# a few percent; the curves of 2 and 4 leaves lie just above it. Widening the
# expert from 8 to 24 channels lowers the error by much more than that gap.
# The right panel shows the price of the leaves: each stores another expert.
#
# A likely reason: every input of this problem follows the same rule
# (integrate), so no group of inputs is easier to learn apart, and each leaf
# fine-tunes, on a fraction of the data, what the root expert had already
# learned from all of it. Routing can pay off when the inputs fall into regimes
# that behave differently; on a problem like this one, ``n_leaves=1`` with a
# wider expert is the better use of parameters. Compare on your own data
# before choosing.
#
# The figure on this page comes from the quick mode used to build the
# documentation: a few epochs on 200 samples, with errors far above those of
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
#     expert = NeuralOperatorRegressor(module__n_modes=12, lr=3e-3)
#     search = GridSearchCV(
#         MoNORegressor(expert=expert),
#         {"n_leaves": [1, 2, 4], "expert__module__width": [8, 24]},
#         scoring=relative_l2_scorer,
#         cv=3,
#     ).fit(X_train, y_train)
#     print(search.best_params_, -search.best_score_)
