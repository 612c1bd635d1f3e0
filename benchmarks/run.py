"""Accuracy and speed of MoNORegressor against neural-operator and scikit-learn peers.

Runs, in one process and on the same data:

* Darcy flow (``make_darcy``): 1000 training samples at 16x16, 100 test samples
  at 16x16 and the same fields at 32x32 (zero-shot super-resolution);
* viscous Burgers (``make_burgers``): 1000 training samples on 16 points to 17
  time steps, 200 test samples;

with ``MoNORegressor()`` (defaults), the best configuration found for the
problem, on Darcy flow one residual expert of width 24 per leaf, the same
expert as the best configuration's with a single leaf, neuraloperator's ``FNO`` trained
for as many epochs as the default MoNO and as the best one, and the scikit-learn baselines Ridge, KNeighborsRegressor,
MLPRegressor and a Gaussian process on PCA features. For each model it
reports test relative L2 (and at 32x32 for Darcy), fit seconds (for the
models the fit-time targets compare, the mean of ``--fit-rounds`` fits, 4 by
default, in alternating order), predict latency for one query and for 1000
queries (measured once every model is fitted, all models in turns), and
active and total parameters;
then the targets as ratios measured in this run, and how cost grows with
``n_samples``, ``n_leaves`` and tree depth.

Writes ``results/benchmark.md`` and ``results/benchmark.png`` beside this
script (or in ``--output-dir``). ``pip install -e ".[benchmarks]"`` brings
neuraloperator; ``python benchmarks/run.py`` (``--quick`` for a smoke run).
"""

import argparse
import os
import platform
import time

import numpy as np
import torch
from sklearn.compose import TransformedTargetRegressor
from sklearn.decomposition import PCA
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, WhiteKernel
from sklearn.linear_model import RidgeCV
from sklearn.neighbors import KNeighborsRegressor
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_mono import MoNORegressor, NeuralOperatorRegressor, relative_l2_error
from sklearn_mono.datasets import make_burgers, make_darcy
from sklearn_mono.experts import RelativeL2Loss


def count_parameters(module):
    """Real numbers in a module's parameters (a complex weight counts twice)."""
    return sum(p.numel() * (2 if p.is_complex() else 1) for p in module.parameters())

# The configuration found best for each problem (see the docs' benchmarks
# page), with at most a quarter of a standard FNO's parameters per query, as
# keyword arguments of the expert; an empty one means the defaults.
BEST = {
    "Darcy": dict(module__symmetric=True, module__n_members=1, module__width=24, lr=6e-3),
    "Burgers": {},
}
# Further MoNO configurations shown in the table and the plot, outside the targets.
MORE = {
    "Darcy": {"MoNORegressor, 1 member of width 24": dict(module__n_members=1, module__width=24, lr=6e-3)},
    "Burgers": {},
}
DEFAULTS = "MoNORegressor() defaults"
BEST_NAME = "MoNORegressor, best"


class NeuralopFNO:
    """neuraloperator's FNO with a plain training loop, behind fit/predict.

    Width 32 and 8 modes per axis, Adam at 1e-3 with a cosine schedule, the
    relative L2 loss, batches of 32, inputs and outputs standardised per
    channel like MoNORegressor's experts: the budget of a default MoNO fit.
    """

    resolution_invariant = True

    def __init__(self, n_dim, out_channels, epochs=100, width=32, modes=8, seed=0):
        from neuralop.models import FNO

        torch.manual_seed(seed)
        self.model = FNO(
            n_modes=(modes,) * n_dim, hidden_channels=width, in_channels=1,
            out_channels=out_channels, n_layers=4,
        )
        self.epochs = epochs
        self.seed = seed

    def fit(self, X, y):
        X = torch.tensor(X, dtype=torch.float32)
        X = X[:, None]
        y = torch.tensor(y, dtype=torch.float32)
        self.squeeze = y.ndim == X.ndim - 1
        y = y[:, None] if self.squeeze else y
        self.x_mean, self.x_std = X.mean(), X.std()
        axes = (0,) + tuple(range(2, y.ndim))
        self.y_mean, self.y_std = y.mean(axes, keepdim=True), y.std(axes, keepdim=True)
        Xn = (X - self.x_mean) / self.x_std
        optimiser = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, self.epochs)
        loss = RelativeL2Loss()
        generator = torch.Generator().manual_seed(self.seed)
        self.model.train()
        for _ in range(self.epochs):
            order = torch.randperm(len(X), generator=generator)
            for start in range(0, len(X), 32):
                batch = order[start : start + 32]
                optimiser.zero_grad()
                pred = self.model(Xn[batch]) * self.y_std + self.y_mean
                loss(pred, y[batch]).backward()
                optimiser.step()
            schedule.step()
        return self

    def predict(self, X):
        self.model.eval()
        X = torch.tensor(X, dtype=torch.float32)[:, None]
        with torch.inference_mode():
            out = self.model((X - self.x_mean) / self.x_std) * self.y_std + self.y_mean
        out = out.numpy()
        return out[:, 0] if self.squeeze else out

    @property
    def n_params(self):
        return count_parameters(self.model)


class Flat:
    """A scikit-learn regressor on flattened inputs and outputs."""

    resolution_invariant = False

    def __init__(self, estimator):
        self.estimator = estimator

    def fit(self, X, y):
        self.shape = y.shape[1:]
        self.estimator.fit(X.reshape(len(X), -1), y.reshape(len(y), -1))
        return self

    def predict(self, X):
        return self.estimator.predict(X.reshape(len(X), -1)).reshape((len(X),) + self.shape)

    @property
    def n_params(self):
        """Numbers the fitted model stores and uses to predict."""
        total = 0
        estimator = getattr(self.estimator, "regressor_", self.estimator)
        for step in getattr(estimator, "steps", [(None, estimator)]):
            est = step[1]
            for name, value in vars(est).items():
                # fitted attributes, and the training set a nearest-neighbour model keeps
                if (name.endswith("_") and not name.startswith("_")) or name in ("_fit_X", "_y"):
                    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
                        total += value.size
                    elif isinstance(value, list) and value and isinstance(value[0], np.ndarray):
                        total += sum(v.size for v in value)
        return int(total)


def gp_on_pca(n_components=16):
    # One length scale: an anisotropic kernel's optimisation over 1000
    # samples and hundreds of outputs takes many minutes on 2 cores.
    kernel = RBF(length_scale=3.0) + WhiteKernel(1e-4)
    return make_pipeline(
        StandardScaler(), PCA(n_components=n_components, random_state=0),
        GaussianProcessRegressor(kernel=kernel, normalize_y=True, random_state=0),
    )


def cpu_model():
    """The processor's model name where the system tells it (Linux), else its
    architecture. Time ratios between models move with the processor."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()} ({platform.machine()})"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def fno_name(epochs):
    return f"neuraloperator FNO (w32, 8 modes), {epochs} epochs"


def models(problem, quick):
    """The MoNO models to fit and the scikit-learn baselines, by name.

    The FNO is added by ``evaluate``, once for every training budget of the
    MoNO models.
    """
    quick_epochs = {"max_epochs": 3} if quick else {}
    leaf = {"leaf_epochs": 3} if quick else {}

    def mono_with(expert_params, **params):
        expert = NeuralOperatorRegressor(**expert_params, **quick_epochs)
        return lambda: MoNORegressor(expert=expert, random_state=0, **leaf, **params)

    mono = {DEFAULTS: mono_with({})}
    # When the defaults are the best configuration, they are fitted once.
    if BEST[problem]:
        mono[BEST_NAME] = mono_with(BEST[problem])
    for name, params in MORE[problem].items():
        mono[name] = mono_with(params)
    mono["same expert, 1 leaf"] = mono_with(BEST[problem], n_leaves=1)
    baselines = {
        "Ridge": lambda: Flat(RidgeCV(alphas=np.logspace(-6, 2, 9))),
        "KNeighbors (k=5)": lambda: Flat(make_pipeline(StandardScaler(), KNeighborsRegressor(5, weights="distance"))),
        "MLPRegressor (256, 256)": lambda: Flat(TransformedTargetRegressor(
            make_pipeline(StandardScaler(), MLPRegressor(
                hidden_layer_sizes=(256, 256), max_iter=20 if quick else 300,
                early_stopping=True, random_state=0)),
            transformer=StandardScaler())),
        "GP on 16 PCA features": lambda: Flat(gp_on_pca()),
    }
    return mono, baselines


def n_params(model):
    if isinstance(model, MoNORegressor):
        return model.n_params_active_, model.n_params_total_
    return model.n_params, model.n_params


def latency(model, X, repeats):
    """Median single-query and 1000-query times of one model."""
    return interleaved_latency([model], X, rounds=max(1, repeats // 10))[0][:2]


def thousand_queries(model, X):
    queries = np.concatenate([X] * int(np.ceil(1000 / len(X))))[:1000]
    start = time.perf_counter()
    model.predict(queries)
    return time.perf_counter() - start


def interleaved_latency(models, X, rounds, per_round=10):
    """Median single-query and 1000-query times of each model, measured in
    turns, and each round's median single-query time.

    The machine's speed drifts during a run (shared cores), so each round
    times every model in turn: all of them see the same conditions, and the
    ratios between them stay fair. A ratio taken round by round shows how
    much it moves with the machine.
    """
    for model in models:
        for i in range(min(len(X), 20)):  # warm caches
            model.predict(X[i][None])
    single = [[] for _ in models]
    thousand = [[] for _ in models]
    for r in range(rounds):
        for k, model in enumerate(models):
            for i in range(per_round):
                start = time.perf_counter()
                model.predict(X[(r * per_round + i) % len(X)][None])
                single[k].append(time.perf_counter() - start)
            if r < 3:
                thousand[k].append(thousand_queries(model, X))
    return [
        (float(np.median(s)), float(np.median(t)),
         [float(np.median(s[r * per_round : (r + 1) * per_round])) for r in range(rounds)])
        for s, t in zip(single, thousand)
    ]


def sample_errors(y_true, y_pred):
    """The relative L2 error of each test sample (their mean is the test error)."""
    return np.array([relative_l2_error(t[None], p[None]) for t, p in zip(y_true, y_pred)])


def paired_bootstrap(numerator, denominator, n_resamples=2000, seed=0):
    """2.5th and 97.5th percentiles of ``mean(numerator) / mean(denominator)``
    over test sets drawn with replacement from the same test samples.

    Both models are scored on each drawn sample, so the interval shows how
    much the ratio of their test errors depends on which 100 or 200 samples
    the test set happens to hold. It leaves out what the training adds
    (another seed moves the ratio too), and the models compared are the
    ones chosen on the whole test set (the most accurate FNO or
    scikit-learn baseline), not chosen again in every draw.
    """
    numerator, denominator = np.asarray(numerator), np.asarray(denominator)
    draws = np.random.default_rng(seed).integers(0, len(numerator), (n_resamples, len(numerator)))
    ratios = numerator[draws].mean(axis=1) / denominator[draws].mean(axis=1)
    return tuple(float(q) for q in np.percentile(ratios, [2.5, 97.5]))


def evaluate(problem, train, tests, n_dim, out_channels, quick, fit_rounds=1):
    """Fit every model of a problem, and time them.

    neuraloperator's FNO is trained once for every budget, in epochs, that
    a MoNO model trained for (those of its first leaf's expert: ``max_epochs_``
    of the root plus ``leaf_epochs`` for each split kept above that leaf, the
    root's alone when no split was kept), and each MoNO row names the FNO row with its budget
    under ``"fno"``. The models the fit-time targets compare (the defaults,
    the best configuration and their FNOs) are fitted first, one after the
    other; with ``fit_rounds`` above 1 they are fitted again, that many
    rounds in all, each round in the reverse order of the one before (see
    ``refit_times``). The rows come back in the table's order.
    """
    rows, fitted, makers = [], [], {}

    def run(name, make):
        makers[name] = make
        model = make()
        start = time.perf_counter()
        model.fit(*train)
        fit_seconds = time.perf_counter() - start
        errors, samples = [], []
        for X_test, y_test in tests:
            same_grid = X_test.shape[1:] == train[0].shape[1:]
            invariant = getattr(model, "resolution_invariant", None)
            if invariant is None:
                invariant = model.experts_[0].resolution_invariant
            if same_grid or invariant:
                y_pred = model.predict(X_test)
                errors.append(relative_l2_error(y_test, y_pred))
                samples.append(sample_errors(y_test, y_pred))
            else:
                errors.append(None)
                samples.append(None)
        active, total = n_params(model)
        rows.append(dict(problem=problem, model=name, errors=errors, samples=samples,
                         fit=fit_seconds, fit_rounds=[fit_seconds], active=active, total=total,
                         fno=None))
        fitted.append(model)
        print(f"  {problem:8s} {name:45s} error {errors[0]:.4f}  fit {fit_seconds:6.1f} s", flush=True)

    mono, baselines = models(problem, quick)

    def run_fnos():
        # An FNO for the budget of every MoNO fitted so far, unless one with
        # that budget is fitted already.
        budgets = set()
        for row, model in zip(rows, fitted):
            if isinstance(model, MoNORegressor):
                # A leaf's history holds the root's epochs and those of each
                # split above it.
                n_epochs = len(model.experts_[0].history)
                row["fno"] = fno_name(n_epochs)
                budgets.add(n_epochs)
        for n_epochs in sorted(budgets):
            if fno_name(n_epochs) not in makers:
                run(fno_name(n_epochs), lambda n_epochs=n_epochs: NeuralopFNO(
                    n_dim, out_channels, epochs=n_epochs))

    # The models the fit-time targets compare first and one after the
    # other, so that their first fits, like their refits, see the machine
    # at about the same speed; then the other rows.
    for name in (DEFAULTS, BEST_NAME):
        if name in mono:
            run(name, mono[name])
    run_fnos()
    timed = list(rows)
    for name, make in mono.items():
        if name not in makers:
            run(name, make)
    run_fnos()
    for name, make in baselines.items():
        run(name, make)
    refit_times(timed, makers, train, fit_rounds)
    # Rows in the table's order: the MoNO models, the FNOs, the baselines.
    rank = {name: i for i, name in enumerate(mono)}
    fnos = sorted((model.epochs, row["model"]) for row, model in zip(rows, fitted)
                  if isinstance(model, NeuralopFNO))
    rank.update({name: len(mono) + i for i, (_, name) in enumerate(fnos)})
    rank.update({name: 2 * len(rows) + i for i, name in enumerate(baselines)})
    order = sorted(range(len(rows)), key=lambda i: rank[rows[i]["model"]])
    rows[:], fitted[:] = [rows[i] for i in order], [fitted[i] for i in order]
    # Latencies once every model is fitted, in turns (see interleaved_latency).
    times = interleaved_latency(fitted, tests[0][0], 2 if quick else 20)
    for row, (one, thousand, rounds) in zip(rows, times):
        row["one"], row["thousand"], row["one_rounds"] = one, thousand, rounds
    return rows


def refit_times(rows, makers, train, fit_rounds):
    """Fit the models of ``rows`` ``fit_rounds - 1`` more times, timed; a
    row's ``"fit"`` becomes the mean of all its fit times.

    The machine's speed drifts during a run (shared cores), by more than the
    margins of the fit-time targets between runs. Each round fits the models
    in the reverse order of the round before, so that over an even number
    of rounds each model holds every place in the order equally often and a
    steady drift weighs on both sides of a ratio alike (with an odd number
    the first model holds the first place once more); the ratios taken
    round by round show how much the machine moved. The refits only time: errors and latencies
    come from the first fit.
    """
    order = list(rows)
    for _ in range(fit_rounds - 1):
        order.reverse()
        for row in order:
            model = makers[row["model"]]()
            start = time.perf_counter()
            model.fit(*train)
            row["fit_rounds"].append(time.perf_counter() - start)
            print(f"  {row['problem']:8s} {row['model']:45s} refit {row['fit_rounds'][-1]:6.1f} s", flush=True)
    for row in rows:
        row["fit"] = float(np.mean(row["fit_rounds"]))


def table(rows, columns):
    lines = ["| problem | model | " + " | ".join(columns) + " | fit s | 1 query ms | 1000 queries ms | active params | total params |",
             "| --- | --- | " + " | ".join("---" for _ in columns) + " | --- | --- | --- | --- | --- |"]
    for r in rows:
        errs = " | ".join("n/a" if e is None else f"{e:.4f}" for e in r["errors"])
        lines.append(
            f"| {r['problem']} | {r['model']} | {errs} | {r['fit']:.1f} | {r['one'] * 1e3:.2f} | "
            f"{r['thousand'] * 1e3:.0f} | {r['active']:,} | {r['total']:,} |"
        )
    return "\n".join(lines)


def targets(darcy, burgers):
    """The issue's targets, for the best configuration and for the defaults."""
    def get(rows, name):
        return next(r for r in rows if r["model"] == name)

    # Each MoNO is compared with the FNO trained for as many epochs for fit
    # time and latency, and with the most accurate FNO of the run for error.
    def best(rows):
        return BEST_NAME if any(r["model"] == BEST_NAME for r in rows) else DEFAULTS

    def fno(name):
        return lambda rows: get(rows, name(rows))["fno"]

    candidates = ((best, fno(best)), (lambda rows: DEFAULTS, fno(lambda rows: DEFAULTS)))
    sk = ["Ridge", "KNeighbors (k=5)", "MLPRegressor (256, 256)", "GP on 16 PCA features"]
    out = ["| target | best: measured | met | defaults: measured | met |",
           "| --- | --- | --- | --- | --- |"]

    def line(text, check):
        cells = []
        for name, fno_of in candidates:
            value, ok = check(name, fno_of)
            cells += [value if isinstance(value, str) else f"{value:.2f}", "yes" if ok else "no"]
        out.append(f"| {text} | " + " | ".join(cells) + " |")

    def with_interval(ratio, numerator, denominator, idx):
        # The ratio of two rows' test errors, with its paired bootstrap
        # interval when both rows kept their per-sample errors.
        a, b = (row.get("samples", [None] * (idx + 1))[idx] for row in (numerator, denominator))
        if a is None or b is None:
            return ratio
        low, high = paired_bootstrap(a, b)
        return f"{ratio:.2f} ({low:.2f}-{high:.2f})"

    def error_ratio(rows, idx, limit):
        def check(name, _):
            fnos = [r for r in rows if r["model"].startswith("neuraloperator FNO")]
            f = min(fnos, key=lambda r: r["errors"][idx])
            mono = get(rows, name(rows))
            ratio = mono["errors"][idx] / f["errors"][idx]
            return with_interval(ratio, mono, f, idx), ratio <= limit
        return check

    line("Darcy 16x16: MoNO error / best FNO error <= 0.9", error_ratio(darcy, 0, 0.9))
    line("Darcy 32x32 zero-shot: MoNO error / best FNO error <= 1.0", error_ratio(darcy, 1, 1.0))
    line("Burgers: MoNO error / best FNO error <= 1.0", error_ratio(burgers, 0, 1.0))
    for label, rows in (("Darcy", darcy), ("Burgers", burgers)):
        def ratio(key, limit, rows=rows):
            def check(name, fno_of):
                r = get(rows, name(rows))[key] / get(rows, fno_of(rows))[key]
                return r, r <= limit
            return check

        def versus_sklearn(name, fno, rows=rows):
            baseline = min((get(rows, s) for s in sk), key=lambda r: r["errors"][0])
            mono = get(rows, name(rows))
            r = baseline["errors"][0] / mono["errors"][0]
            return with_interval(r, baseline, mono, 0), r >= 2

        line(f"{label}: active params / FNO params <= 0.25", ratio("active", 0.25))
        def fit_ratio(name, fno_of, rows=rows):
            # The ratio of mean fit times decides; with several rounds, the
            # ratios of each round follow in brackets.
            mono, fno = get(rows, name(rows)), get(rows, fno_of(rows))
            r = mono["fit"] / fno["fit"]
            a, b = mono.get("fit_rounds", []), fno.get("fit_rounds", [])
            if len(a) < 2 or len(a) != len(b):
                return r, r <= 1
            per_round = ", ".join(f"{x / y:.2f}" for x, y in zip(a, b))
            return f"{r:.2f} ({per_round})", r <= 1

        line(f"{label}: fit time / FNO fit time (same epochs) <= 1", fit_ratio)
        line(f"{label}: best scikit-learn error / MoNO error >= 2", versus_sklearn)
    return "\n".join(out)


def growth(quick):
    X, y = make_burgers(n_samples=500 if quick else 4000, random_state=1)
    expert = NeuralOperatorRegressor(module__width=12, module__n_modes=6, max_epochs=2 if quick else 5)
    params = dict(expert=expert, leaf_epochs=2 if quick else 5, random_state=0)
    lines = ["| n_samples | fit s | fit s per 1000 samples |", "| --- | --- | --- |"]
    for n in ((125, 250, 500) if quick else (250, 500, 1000, 2000, 4000)):
        start = time.perf_counter()
        MoNORegressor(**params).fit(X[:n], y[:n])
        s = time.perf_counter() - start
        lines.append(f"| {n} | {s:.2f} | {1000 * s / n:.2f} |")
    lines += ["", "| n_leaves | kept | depth | fit s | predict us per query (1000 queries) | 1-query ms |", "| --- | --- | --- | --- | --- | --- |"]
    n = 500 if quick else 2000
    for leaves in ((1, 2, 4) if quick else (1, 2, 4, 8, 16, 32)):
        model = MoNORegressor(**{**params, "n_leaves": leaves, "min_samples_leaf": 5})
        start = time.perf_counter()
        model.fit(X[:n], y[:n])
        s = time.perf_counter() - start
        one, thousand = latency(model, X[:200], 20)
        lines.append(f"| {leaves} | {model.n_leaves_} | {model.depth_} | {s:.2f} | {thousand * 1e3:.0f} | {one * 1e3:.2f} |")
    return "\n".join(lines)


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def style(name):
        if name.startswith("MoNO"):
            return "*", 14
        if name.startswith("same expert"):
            return "D", 6  # smaller: it often shares the best mixture's point
        if name.startswith("neuraloperator"):
            return "s", 8
        return "o", 7

    problems = sorted({r["problem"] for r in rows})
    fig, axes = plt.subplots(1, len(problems), figsize=(7 * len(problems), 7), constrained_layout=True)
    for ax, problem in zip(np.atleast_1d(axes), problems):
        for r in (r for r in rows if r["problem"] == problem):
            marker, size = style(r["model"])
            ax.plot(r["active"], r["errors"][0], marker, markersize=size, label=r["model"])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("active parameters per query")
        ax.set_ylabel("test relative L2 error")
        ax.set_title(f"{problem}: error against active parameters")
        ax.grid(True, which="both", alpha=0.3)
        # Below the axes: points of equal size would hide behind labels.
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data and few epochs: a smoke run")
    parser.add_argument("--output-dir", default=os.path.join(os.path.dirname(__file__), "results"))
    parser.add_argument(
        "--fit-rounds", type=int, default=None,
        help="fits of the models the fit-time targets compare, in alternating order "
             "(default: 4, or 1 with --quick)",
    )
    args = parser.parse_args()
    fit_rounds = args.fit_rounds or (1 if args.quick else 4)
    os.makedirs(args.output_dir, exist_ok=True)
    n_train, n_darcy, n_burgers = (200, 50, 50) if args.quick else (1000, 100, 200)
    machine = (f"{cpu_model()}, {os.cpu_count()} CPU cores, "
               f"torch {torch.__version__} with {torch.get_num_threads()} threads, no GPU used")
    print(f"machine: {machine}", flush=True)
    # The first optimiser a process builds imports part of torch (about 1.5
    # s here): paid once before any timing, not by whichever model is fitted
    # first.
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])

    darcy = make_darcy(n_samples=n_train + n_darcy, resolutions=(16, 32), random_state=0)
    (X16, y16), (X32, y32) = darcy[16], darcy[32]
    darcy_rows = evaluate(
        "Darcy", (X16[:n_train], y16[:n_train]),
        [(X16[n_train:], y16[n_train:]), (X32[n_train:], y32[n_train:])], 2, 1, args.quick,
        fit_rounds,
    )
    X, y = make_burgers(n_samples=n_train + n_burgers, random_state=0)
    burgers_rows = evaluate(
        "Burgers", (X[:n_train], y[:n_train]), [(X[n_train:], y[n_train:])], 1, 17, args.quick,
        fit_rounds,
    )
    for r in burgers_rows:
        r["errors"].append(None)
        r["samples"].append(None)

    report = "\n\n".join([
        f"Machine: {machine}.",
        (f"Fit seconds of the defaults, the best configuration and the FNOs they are timed against: "
         f"the mean of {fit_rounds} fits, in alternating order." if fit_rounds > 1 else
         "Fit seconds: one fit of each model."),
        table(darcy_rows + burgers_rows, ["rel. L2 (16)", "rel. L2 (32, zero-shot)"]),
        "Targets, for the best configuration and for the defaults, against neuraloperator's FNO and the best scikit-learn baseline "
        "(error ratios: in brackets, the 95% interval of a paired bootstrap over the test samples; "
                f"fit time: the ratio of mean fit times over {fit_rounds} rounds"
        + (", in brackets that of each round" if fit_rounds > 1 else "") + "):",
        targets(darcy_rows, burgers_rows),
        "How cost grows (Burgers, width 12, 6 modes, 5 + 5 epochs):",
        growth(args.quick),
    ])
    print("\n" + report)
    with open(os.path.join(args.output_dir, "benchmark.md"), "w") as f:
        f.write(report + "\n")
    plot(darcy_rows + burgers_rows, os.path.join(args.output_dir, "benchmark.png"))


if __name__ == "__main__":
    main()
