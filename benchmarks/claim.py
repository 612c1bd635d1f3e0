"""The mixture's claim: test error against the parameters one query evaluates.

For each problem, fits ``MoNORegressor(n_leaves=L, expert=NeuralOperatorRegressor(
module__width=w, max_epochs=E))`` for ``L`` in 1, 4, 16 and widths 8 and 16 (on
parametric Burgers also a single expert of width 32, a longer reference
curve), all with ``random_state=0``, the other options at their defaults:

* Darcy flow, 1000 training samples at 16x16 (``make_darcy``);
* Darcy flow, 4000 training samples (where a small expert is limited by its
  capacity; the table gives its training error beside its test error);
* heterogeneous Darcy, the high permeability drawn per sample from 3 to 300
  against a low one of 3 (``make_darcy(contrast=((3, 300), 3))``);
* parametric Burgers, the viscosity drawn per sample from 0.02 to 2 and given
  as a constant input channel (``make_burgers(viscosity=(0.02, 2))``), 2000
  training samples on 16 points;

each with 500 test samples. It reports test and training relative L2, leaves
kept, tree depth, active and total parameters and fit seconds, then the
targets as ratios of this run. Torch runs on one thread, so that the
fit times do not depend on other work on the machine's other cores.

The mixtures' experts train longer than the single expert of the same width:
a leaf at depth ``d`` has had ``E + 20 d`` epochs. ``--longer`` fits, instead
of the grid, single experts trained ``E + 80`` epochs (as long as a leaf at
depth 4, the depth of a balanced 16-leaf tree) and compares them with the
grid of a previous run.

Writes ``claim.md``, ``claim.json`` and ``claim.png`` (with ``--longer``,
``claim_longer.md``) to ``results/`` beside this script (or ``--output-dir``).
Run ``python benchmarks/claim.py`` (over an hour on one core; ``--quick`` is
a smoke run of a minute).
"""

import argparse
import json
import os
import time

import numpy as np
import torch

from sklearn_mono import MoNORegressor, NeuralOperatorRegressor, relative_l2_error
from sklearn_mono.datasets import make_burgers, make_darcy

from run import cpu_model

LEAVES = (1, 4, 16)
WIDTHS = (8, 16)
LEAF_EPOCHS = 20  # MoNORegressor's default


def problems(quick):
    """Name, data maker, training size, expert options, grid axes and the width of
    a reference single expert (or None) of each problem."""
    scale = 10 if quick else 1

    def darcy(n, **kwargs):
        return lambda: make_darcy(n + 500 // scale, 16, random_state=0, **kwargs)

    def burgers(n):
        return lambda: make_burgers(n + 500 // scale, 16, viscosity=(0.02, 2.0), random_state=0)

    return [
        ("Darcy, 1000 samples", darcy(1000 // scale), 1000 // scale, dict(max_epochs=60),
         None, None),
        ("Darcy, 4000 samples", darcy(4000 // scale), 4000 // scale, dict(max_epochs=20),
         None, None),
        ("heterogeneous Darcy", darcy(1000 // scale, contrast=((3.0, 300.0), 3.0)),
         1000 // scale, dict(max_epochs=60), None, None),
        ("parametric Burgers", burgers(2000 // scale), 2000 // scale, dict(max_epochs=60), 1, 32),
    ]


def fit_one(X, y, n_train, n_leaves, width, expert_params, grid_ndim, quick):
    expert = NeuralOperatorRegressor(module__width=width, **expert_params)
    if quick:
        expert.set_params(max_epochs=2)
    model = MoNORegressor(
        n_leaves, expert=expert, grid_ndim=grid_ndim, random_state=0,
        **(dict(leaf_epochs=2, min_samples_leaf=5) if quick else {}),
    )
    start = time.perf_counter()
    model.fit(X[:n_train], y[:n_train])
    seconds = time.perf_counter() - start
    return dict(
        leaves=n_leaves, width=width, epochs=expert.max_epochs, kept=model.n_leaves_, depth=model.depth_,
        test=relative_l2_error(y[n_train:], model.predict(X[n_train:])),
        train=relative_l2_error(y[:n_train], model.predict(X[:n_train])),
        active=model.n_params_active_, total=model.n_params_total_, fit=seconds,
    )


def run_problem(name, make, n_train, expert_params, grid_ndim, reference, quick, longer):
    X, y = make()
    runs = [(leaves, width) for width in WIDTHS for leaves in LEAVES]
    if reference:
        runs.append((1, reference))
    if longer:  # single experts trained as long as a leaf at depth 4
        runs = [(1, width) for width in WIDTHS]
        expert_params = {**expert_params, "max_epochs": expert_params["max_epochs"] + 4 * LEAF_EPOCHS}
    rows = []
    for leaves, width in runs:
        row = fit_one(X, y, n_train, leaves, width, expert_params, grid_ndim, quick)
        rows.append({"problem": name, **row})
        print(f"{name}: {leaves} leaves, width {width}: test {row['test']:.4f}, "
              f"{row['kept']} kept, fit {row['fit']:.0f} s", flush=True)
    return rows


def get(rows, problem, leaves, width):
    return next(r for r in rows if (r["problem"], r["leaves"], r["width"]) == (problem, leaves, width))


def table(rows):
    lines = [
        "| problem | width | n_leaves | kept | depth | test rel. L2 | train rel. L2 "
        "| test / 1 leaf | active params | total params | fit s | fit / 1 leaf |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        single = get(rows, r["problem"], 1, r["width"])
        lines.append(
            f"| {r['problem']} | {r['width']} | {r['leaves']} | {r['kept']} | {r['depth']} "
            f"| {r['test']:.4f} | {r['train']:.4f} | {r['test'] / single['test']:.2f} "
            f"| {r['active']:,} | {r['total']:,} | {r['fit']:.0f} | {r['fit'] / single['fit']:.1f} |"
        )
    return lines


def smaller_at_equal_error(rows, problem):
    """Largest ratio of the single expert's active parameters to a mixture's, at the
    mixture's error, the single expert's curve read by log-log interpolation
    between its widths (no extrapolation); None where no mixture point lies on it."""
    single = sorted((r for r in rows if r["problem"] == problem and r["leaves"] == 1),
                    key=lambda r: r["active"])
    best = None
    for r in rows:
        if r["problem"] != problem or r["leaves"] == 1:
            continue
        for a, b in zip(single[:-1], single[1:]):
            if b["test"] <= r["test"] <= a["test"] and a["test"] > b["test"]:
                t = np.log(a["test"] / r["test"]) / np.log(a["test"] / b["test"])
                params = np.exp(np.log(a["active"]) + t * np.log(b["active"] / a["active"]))
                ratio = params / r["active"]
                if best is None or ratio > best[0]:
                    best = (ratio, r["leaves"], r["width"])
    return best


def targets(rows):
    names = list(dict.fromkeys(r["problem"] for r in rows))
    lines = ["| target | measured | met |", "| --- | --- | --- |"]

    def line(text, value, met):
        lines.append(f"| {text} | {value} | {'yes' if met else 'NO'} |")

    for width in WIDTHS:
        ratio = (get(rows, "parametric Burgers", 16, width)["test"]
                 / get(rows, "parametric Burgers", 1, width)["test"])
        line(f"parametric Burgers, width {width}: 16 leaves / 1 leaf test error <= 0.7",
             f"{ratio:.2f}", ratio <= 0.7)
    found = {name: smaller_at_equal_error(rows, name) for name in names}
    best = max(((v[0], name, v) for name, v in found.items() if v), default=None)
    if best is None:
        line("active expert >= 4x smaller at equal error, on one problem", "no crossing", False)
    else:
        ratio, name, (_, leaves, width) = best
        line("active expert >= 4x smaller at equal error, on one problem",
             f"{ratio:.1f}x ({name}, {leaves} leaves of width {width})", ratio >= 4)
    for name in names:
        ratios = [get(rows, name, leaves, w)["test"] / get(rows, name, 1, w)["test"]
                  for w in WIDTHS for leaves in LEAVES[1:]]
        line(f"{name}: test error / 1 leaf's, {' and '.join(map(str, LEAVES[1:]))} leaves at "
             f"widths {' and '.join(map(str, WIDTHS))}, <= 1.02",
             " / ".join(f"{r:.2f}" for r in ratios), max(ratios) <= 1.02)
    for name in names:
        for w in WIDTHS:
            r, single = get(rows, name, 16, w), get(rows, name, 1, w)
            # Linear in the leaves kept: at most a root's fit per leaf kept, and
            # one more for the splits tried and refused.
            line(f"{name}, width {w}, 16 leaves: fit time / 1-leaf fit <= 1 + leaves kept",
                 f"{r['fit'] / single['fit']:.1f} for {r['kept']} kept",
                 r["fit"] / single["fit"] <= 1 + r["kept"])
    return lines


def figure(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter, NullFormatter

    names = list(dict.fromkeys(r["problem"] for r in rows))
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names):
        for leaves, marker in zip(LEAVES, "osD"):
            points = sorted((r["active"], r["test"]) for r in rows
                            if r["problem"] == name and r["leaves"] == leaves)
            ax.plot(*zip(*points), marker=marker, label="1 leaf" if leaves == 1 else f"{leaves} leaves")
        ax.set_xscale("log")
        ax.set_yscale("log")
        active = sorted({r["active"] for r in rows if r["problem"] == name})
        ax.set_xticks(active, [f"{a:,}" for a in active])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_formatter(FormatStrFormatter("%.3f"))
        ax.yaxis.set_minor_formatter(FormatStrFormatter("%.3f"))
        ax.set_title(name)
        ax.set_xlabel("active parameters")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("test relative L2")
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def longer_table(rows, grid):
    lines = [
        "| problem | width | epochs | test rel. L2 | train rel. L2 | test / same width, "
        "1 leaf | test / same width, 16 leaves | fit s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        single = get(grid, r["problem"], 1, r["width"]) if grid else None
        mixture = get(grid, r["problem"], 16, r["width"]) if grid else None
        lines.append(
            f"| {r['problem']} | {r['width']} | {r['epochs']} | {r['test']:.4f} | {r['train']:.4f} "
            f"| {r['test'] / single['test'] if single else float('nan'):.2f} "
            f"| {r['test'] / mixture['test'] if mixture else float('nan'):.2f} | {r['fit']:.0f} |"
        )
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny data and epochs: a smoke run")
    parser.add_argument(
        "--longer", action="store_true",
        help="instead, single experts trained 4 * leaf_epochs longer (as long as a leaf at "
             "depth 4), compared with the grid of claim.md in --output-dir when it is there",
    )
    parser.add_argument("--output-dir", default=os.path.join(os.path.dirname(__file__), "results"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    os.makedirs(args.output_dir, exist_ok=True)
    start = time.perf_counter()
    rows = []
    for problem in problems(args.quick):
        rows += run_problem(*problem, quick=args.quick, longer=args.longer)
    minutes = (time.perf_counter() - start) / 60
    header = [
        f"Machine: {cpu_model()}, torch {torch.__version__} on one thread; "
        f"{minutes:.0f} minutes in all"
        f"{' (quick mode)' if args.quick else ''}.", "",
    ]
    grid_path = os.path.join(args.output_dir, "claim.json")
    if args.longer:
        grid = json.load(open(grid_path)) if os.path.exists(grid_path) else None
        text = "\n".join(header + longer_table(rows, grid)) + "\n"
        name = "claim_longer.md"
    else:
        with open(grid_path, "w") as out:
            json.dump(rows, out)
        text = "\n".join(header + table(rows) + ["", "Targets:", ""] + targets(rows)) + "\n"
        name = "claim.md"
        figure(rows, os.path.join(args.output_dir, "claim.png"))
    print(text)
    with open(os.path.join(args.output_dir, name), "w") as out:
        out.write(text)


if __name__ == "__main__":
    main()
