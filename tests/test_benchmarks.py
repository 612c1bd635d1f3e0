"""The benchmark's bookkeeping: which FNO each MoNO is held against, and how
much its ratios move with the test samples and the machine."""

import importlib.util
import pathlib

import numpy as np
import pytest

from sklearn_mono import relative_l2_error

RUN = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"


def _run_module():
    spec = importlib.util.spec_from_file_location("benchmark_run", RUN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(problem, model, errors, fit, one, active, fno=None):
    return dict(problem=problem, model=model, errors=errors, fit=fit, one=one, thousand=1.0,
                active=active, total=active, fno=fno)


# The scikit-learn baselines' Darcy errors (ten times these on Burgers).
SKLEARN = [("Ridge", 0.09), ("KNeighbors (k=5)", 0.1), ("MLPRegressor (256, 256)", 4.0),
           ("GP on 16 PCA features", 0.066)]


def _sklearn_rows(problem, scale=1):
    return [_row(problem, name, [scale * e, None], fit=1, one=0.1, active=10) for name, e in SKLEARN]


def _burgers(run, fno):
    """Burgers rows: the defaults against ``fno``, and the baselines."""
    return [
        _row("Burgers", run.DEFAULTS, [0.0033, None], fit=40, one=1.0, active=12, fno=fno),
        _row("Burgers", fno, [0.0036, None], fit=100, one=3.0, active=55),
    ] + _sklearn_rows("Burgers", scale=10)


def _target_line(run, darcy, burgers, start):
    return next(line for line in run.targets(darcy, burgers).splitlines() if line.startswith(start))


def test_targets_hold_each_mono_against_the_fno_of_its_budget():
    run = _run_module()
    fno100, fno150, fno170 = (run.fno_name(n) for n in (100, 150, 170))
    darcy = [
        _row("Darcy", run.DEFAULTS, [0.033, 0.08], fit=100, one=1.0, active=60, fno=fno100),
        _row("Darcy", run.BEST_NAME, [0.030, 0.05], fit=150, one=2.0, active=40, fno=fno150),
        _row("Darcy", fno100, [0.036, 0.09], fit=200, one=4.0, active=400),
        _row("Darcy", fno150, [0.034, 0.085], fit=300, one=5.0, active=400),
    ] + _sklearn_rows("Darcy")
    burgers = _burgers(run, fno170)
    lines = {line.split(" | ")[0].lstrip("| "): line.split(" | ")[1:] for line in
             run.targets(darcy, burgers).splitlines()[2:]}
    cells = {key: " | ".join(value).rstrip(" |") for key, value in lines.items()}
    # errors against the most accurate FNO (150 epochs), for both models
    assert cells["Darcy 16x16: MoNO error / best FNO error <= 0.9"] == "0.88 | yes | 0.97 | no"
    assert cells["Darcy 32x32 zero-shot: MoNO error / best FNO error <= 1.0"] == "0.59 | yes | 0.94 | yes"
    # time against the FNO trained for as many epochs: 150 for the best, 100 for the defaults
    assert cells["Darcy: fit time / FNO fit time (same epochs) <= 1"] == "0.50 | yes | 0.50 | yes"
    assert cells["Darcy: 1-query latency / FNO's (same epochs) <= 0.5"] == "0.40 | yes | 0.25 | yes"
    assert cells["Darcy: active params / FNO params <= 0.25"] == "0.10 | yes | 0.15 | yes"
    assert cells["Darcy: best scikit-learn error / MoNO error >= 2"] == "2.20 | yes | 2.00 | yes"
    # without a best configuration, the defaults fill both columns
    assert cells["Burgers: MoNO error / best FNO error <= 1.0"] == "0.92 | yes | 0.92 | yes"
    assert cells["Burgers: fit time / FNO fit time (same epochs) <= 1"] == "0.40 | yes | 0.40 | yes"


def test_latency_target_shows_the_spread_of_the_ratio_over_rounds():
    run = _run_module()
    fno100 = run.fno_name(100)
    mono = _row("Darcy", run.DEFAULTS, [0.033, 0.08], fit=100, one=1.0, active=60, fno=fno100)
    fno = _row("Darcy", fno100, [0.036, 0.09], fit=200, one=2.0, active=400)
    # round by round: 0.4, 0.5, 0.5, 0.6 and 0.8 of the FNO's time
    mono["one_rounds"] = [0.8, 1.0, 1.0, 1.2, 1.6]
    fno["one_rounds"] = [2.0, 2.0, 2.0, 2.0, 2.0]
    darcy = [mono, fno] + _sklearn_rows("Darcy")
    burgers = _burgers(run, fno100)
    line = _target_line(run, darcy, burgers, "| Darcy: 1-query latency")
    # the median of the round-by-round ratios decides (0.50 meets <= 0.5),
    # their quartiles come beside it
    assert line.endswith("| 0.50 (0.50-0.60) | yes | 0.50 (0.50-0.60) | yes |")
    # with the rounds' times, the median ratio decides, not the ratio of
    # the medians: 0.8, 0.9 and 1.2 against 2.0, 1.0 and 2.0 are 0.40,
    # 0.90 and 0.60 round by round (median 0.60), while the medians give 0.45
    mono["one"], fno["one"] = 0.9, 2.0
    mono["one_rounds"], fno["one_rounds"] = [0.8, 0.9, 1.2], [2.0, 1.0, 2.0]
    line = _target_line(run, darcy, burgers, "| Darcy: 1-query latency")
    assert line.endswith("| 0.60 (0.50-0.75) | no | 0.60 (0.50-0.75) | no |")


def test_fit_time_target_decides_on_mean_times_and_shows_each_round():
    run = _run_module()
    fno100 = run.fno_name(100)
    mono = _row("Darcy", run.DEFAULTS, [0.033, 0.08], fit=105, one=1.0, active=60, fno=fno100)
    fno = _row("Darcy", fno100, [0.036, 0.09], fit=100, one=2.0, active=400)
    # 90 s against 100 s, then 120 s against 100 s: 0.90 and 1.20 round by
    # round, and 105 s against 100 s on average, which misses the target
    mono["fit_rounds"], fno["fit_rounds"] = [90.0, 120.0], [100.0, 100.0]
    darcy = [mono, fno] + _sklearn_rows("Darcy")
    burgers = _burgers(run, fno100)
    line = _target_line(run, darcy, burgers, "| Darcy: fit time")
    assert line.endswith("| 1.05 (0.90, 1.20) | no | 1.05 (0.90, 1.20) | no |")
    # a single round shows the ratio alone
    mono["fit"], mono["fit_rounds"], fno["fit_rounds"] = 90.0, [90.0], [100.0]
    line = _target_line(run, darcy, burgers, "| Darcy: fit time")
    assert line.endswith("| 0.90 | yes | 0.90 | yes |")


def test_refits_alternate_their_order_and_average_the_times(monkeypatch):
    run = _run_module()
    fitted = []
    # the six refits take 1, 2, ..., 6 s: readings 0, 1 | 10, 12 | 20, 23 | ...
    readings = iter([t for k in range(6) for t in (10 * k, 10 * k + k + 1)])
    monkeypatch.setattr(run.time, "perf_counter", lambda: next(readings))

    class Model:
        def __init__(self, name):
            self.name = name

        def fit(self, X, y):
            fitted.append(self.name)

    rows = [dict(problem="Darcy", model=name, fit=10.0, fit_rounds=[10.0]) for name in "abc"]
    makers = {name: (lambda name=name: Model(name)) for name in "abc"}
    run.refit_times(rows, makers, (None, None), fit_rounds=3)
    assert fitted == ["c", "b", "a", "a", "b", "c"]
    assert [row["fit_rounds"] for row in rows] == [[10.0, 3, 4], [10.0, 2, 5], [10.0, 1, 6]]
    assert [row["fit"] for row in rows] == pytest.approx([17 / 3, 17 / 3, 17 / 3])
    fitted.clear()
    run.refit_times(rows, makers, (None, None), fit_rounds=1)  # nothing more to fit
    assert fitted == []


def test_fit_time_models_are_fitted_first_and_rows_keep_the_table_order(monkeypatch):
    # The defaults, the best configuration and the FNOs of their budgets are
    # fitted first, one after the other; the other MoNO rows, an FNO for a
    # budget not seen yet and the baselines follow; the refits reverse the
    # first order; the rows come back as the table lists them.
    run = _run_module()
    fits = []

    class Model:
        resolution_invariant = True
        n_params = n_params_active_ = n_params_total_ = 1

        def __init__(self, name, epochs=None):
            self.name = name
            if epochs is not None:
                self.root_epochs_, self.max_epochs = epochs - 20, 20

        def fit(self, X, y):
            fits.append(self.name)
            return self

        def predict(self, X):
            return np.zeros_like(X)

    class Mono(Model):
        pass

    class FNO(Model):
        def __init__(self, n_dim, out_channels, epochs):
            super().__init__(f"fno {epochs}")
            self.epochs = epochs

    mono = {run.DEFAULTS: lambda: Mono("defaults", 100), run.BEST_NAME: lambda: Mono("best", 120),
            "more": lambda: Mono("more", 90), "1 leaf": lambda: Mono("leaf", 100)}
    baselines = {"Ridge": lambda: Model("ridge")}
    monkeypatch.setattr(run, "MoNORegressor", Mono)
    monkeypatch.setattr(run, "NeuralopFNO", FNO)
    monkeypatch.setattr(run, "models", lambda problem, quick: (mono, baselines))
    monkeypatch.setattr(run, "interleaved_latency",
                        lambda models, X, rounds: [(1.0, 1.0, [1.0])] * len(models))
    X = np.ones((4, 3))
    rows = run.evaluate("Darcy", (X, X), [(X, X)], 1, 1, quick=True, fit_rounds=2)
    assert fits == ["defaults", "best", "fno 100", "fno 120", "more", "leaf", "fno 90", "ridge",
                    "fno 120", "fno 100", "best", "defaults"]
    fno = run.fno_name
    assert [r["model"] for r in rows] == [run.DEFAULTS, run.BEST_NAME, "more", "1 leaf",
                                          fno(90), fno(100), fno(120), "Ridge"]
    assert [r["fno"] for r in rows[:4]] == [fno(100), fno(120), fno(90), fno(100)]
    assert [len(r["fit_rounds"]) for r in rows] == [2, 2, 1, 1, 1, 2, 2, 1]


def test_sample_errors_average_to_the_test_error():
    run = _run_module()
    rng = np.random.default_rng(0)
    y = rng.normal(size=(30, 8, 8))
    pred = y + 0.1 * rng.normal(size=y.shape) * np.arange(1, 31)[:, None, None]
    errors = run.sample_errors(y, pred)
    assert errors.shape == (30,)
    assert errors.mean() == pytest.approx(relative_l2_error(y, pred))
    assert errors[-1] > 10 * errors[0]  # the noisier samples have the larger errors


def test_paired_bootstrap_interval_of_an_error_ratio():
    run = _run_module()
    rng = np.random.default_rng(1)
    fno = rng.gamma(4.0, 0.01, size=100)
    # a model exactly 0.8 times as wrong on every sample: no test set changes that
    assert run.paired_bootstrap(0.8 * fno, fno) == pytest.approx((0.8, 0.8))
    # per-sample noise around 0.9: the interval holds the ratio and narrows
    # as the test set grows
    mono = 0.9 * fno * rng.lognormal(0.0, 0.2, size=100)
    low, high = run.paired_bootstrap(mono, fno)
    ratio = mono.mean() / fno.mean()
    assert low < ratio < high
    # a 95% interval: about 1.96 standard errors of the ratio either side,
    # the standard error taken from the delta method (a 90% or 99% interval
    # would be 16% narrower or 31% wider)
    standard_error = np.std(mono - ratio * fno) / np.sqrt(len(fno)) / fno.mean()
    assert (high - low) / (2 * 1.96 * standard_error) == pytest.approx(1.0, abs=0.07)
    big = rng.gamma(4.0, 0.01, size=1600)
    low_big, high_big = run.paired_bootstrap(0.9 * big * rng.lognormal(0.0, 0.2, size=1600), big)
    assert high_big - low_big < (high - low) / 2
    # the same draws every time
    assert run.paired_bootstrap(mono, fno) == (low, high)


def test_error_targets_show_the_bootstrap_interval_and_decide_on_the_ratio():
    run = _run_module()
    fno100 = run.fno_name(100)
    rng = np.random.default_rng(2)
    fno_samples = rng.gamma(4.0, 0.009, size=100)
    mono_samples = fno_samples * rng.lognormal(0.0, 0.15, size=100)
    mono_samples *= 0.91 * fno_samples.mean() / mono_samples.mean()  # 0.91 of the FNO's error
    mono = _row("Darcy", run.DEFAULTS, [mono_samples.mean(), 0.08], fit=100, one=1.0, active=60,
                fno=fno100)
    mono["samples"] = [mono_samples, None]
    fno = _row("Darcy", fno100, [fno_samples.mean(), 0.09], fit=200, one=2.0, active=400)
    fno["samples"] = [fno_samples, None]
    darcy = [mono, fno] + _sklearn_rows("Darcy")
    # the best baseline (the GP here) with errors of its own per sample
    gp = darcy[-1]
    gp_samples = 2.2 * mono_samples * rng.lognormal(0.0, 0.3, size=100)
    gp["errors"][0], gp["samples"] = gp_samples.mean(), [gp_samples, None]
    burgers = _burgers(run, fno100)

    def line_of(start):
        return _target_line(run, darcy, burgers, start)

    ratio = mono_samples.mean() / fno_samples.mean()
    low, high = run.paired_bootstrap(mono_samples, fno_samples)
    assert low < 0.9 < ratio < high  # an interval that straddles the target
    cell = f"{ratio:.2f} ({low:.2f}-{high:.2f})"
    # the measured ratio decides, the interval only comes beside it
    assert line_of("| Darcy 16x16").endswith(f"| {cell} | no | {cell} | no |")
    # and a ratio under the target passes though its interval reaches above it
    mono["errors"][0] = 0.89 * fno_samples.mean()
    mono["samples"][0] = mono_samples * 0.89 / 0.91
    low, high = run.paired_bootstrap(mono["samples"][0], fno_samples)
    assert low < 0.89 < 0.9 < high
    cell = f"0.89 ({low:.2f}-{high:.2f})"
    assert line_of("| Darcy 16x16").endswith(f"| {cell} | yes | {cell} | yes |")
    # scikit-learn's ratio is the baseline's error over MoNO's, interval too
    low, high = run.paired_bootstrap(gp_samples, mono["samples"][0])
    cell = f"{gp_samples.mean() / mono['errors'][0]:.2f} ({low:.2f}-{high:.2f})"
    assert low > 1.5 and cell.startswith("2.")
    assert line_of("| Darcy: best scikit-learn error").endswith(f"| {cell} | yes | {cell} | yes |")
    # without per-sample errors (zero-shot here), the plain ratio
    assert line_of("| Darcy 32x32").endswith("| 0.89 | yes | 0.89 | yes |")
