import io
import warnings

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_mono import (
    FourierEncoder,
    MoNORegressor,
    NeuralOperatorRegressor,
    PCAEncoder,
    relative_l2_error,
    relative_l2_scorer,
)
from sklearn_mono import _training
from sklearn_mono.datasets import make_antiderivative, make_smoothing_2d
from sklearn_mono.experts import MLP

from .conftest import WrapsFNO, small_expert, small_mono


def test_antiderivative_accuracy_with_defaults():
    """The must-show: 1000 smooth inputs at 64 points, four leaves, defaults."""
    X, y = make_antiderivative(n_samples=1200, n_points=64, random_state=0)
    model = MoNORegressor(n_leaves=4, device="cpu", random_state=0)
    model.fit(X[:1000], y[:1000])
    error = relative_l2_error(y[1000:], model.predict(X[1000:]))
    assert error < 6e-3
    # the default expert resolves its 1-D FNO presets: 170 epochs for the
    # root, then leaf_epochs=20 for each split above a leaf
    assert all(net.module_params_["width"] == 14 for net in model.experts_)
    depths = model.tree_.node_depth[model.tree_.leaf_nodes]
    assert [len(net.history) for net in model.experts_] == list(170 + 20 * depths)
    assert [net.lr_ for net in model.experts_] == pytest.approx([6e-3] * model.n_leaves_)
    # one query evaluates one expert, of those stored
    assert model.n_params_active_ * model.n_leaves_ < model.n_params_total_ + 1


def test_2d_operator_and_zero_shot_super_resolution():
    X16, y16 = make_smoothing_2d(n_samples=240, resolution=16, random_state=0)
    X32, y32 = make_smoothing_2d(n_samples=240, resolution=32, random_state=0)
    expert = small_expert(module__width=8, module__n_modes=6, max_epochs=25)
    model = small_mono(2, expert=expert, leaf_epochs=5, min_samples_leaf=20)
    model.fit(X16[:200], y16[:200])
    pred16 = model.predict(X16[200:])
    pred32 = model.predict(X32[200:])
    assert pred16.shape == (40, 16, 16)
    assert pred32.shape == (40, 32, 32)
    assert relative_l2_error(y16[200:], pred16) < 2e-2  # 1.1e-2 when written
    # the same fields on a twice finer grid, never seen in training
    assert relative_l2_error(y32[200:], pred32) < 2.5e-2  # 1.3e-2
    # routing a finer sample of a field sends it to the same expert
    assert np.mean(model.apply(X32[200:]) == model.apply(X16[200:])) > 0.95


@pytest.mark.parametrize(
    "x_shape, y_shape, params",
    [
        ((40, 16), (40, 17, 16), {}),  # 17 output channels on a 16-point grid
        ((40, 16), (40, 16), {}),
        ((40, 16), (40,), {}),  # a functional: one number per input
        ((40, 16), (40, 3), {}),  # several numbers per input
        ((40, 2, 16), (40, 16), {"grid_ndim": 1}),  # two input channels
        ((40, 8, 8), (40, 3, 8, 8), {}),
        ((40, 2, 8, 8), (40, 8, 8), {"grid_ndim": 2}),
        ((40, 128), (40, 64), {"grid_shape": (8, 8)}),  # flat rows, two channels
        ((40, 4, 4, 4), (40, 4, 4, 4), {}),  # 3-D grid
    ],
)
def test_layouts_round_trip(x_shape, y_shape, params, rng):
    X = rng.normal(size=x_shape)
    y = rng.normal(size=y_shape)
    model = small_mono(2, expert=small_expert(max_epochs=2), leaf_epochs=2, **params)
    pred = model.fit(X, y).predict(X[:5])
    assert pred.shape == (5,) + y_shape[1:]
    assert pred.dtype == np.float64
    assert model.predict(X[:5].astype(np.float32)).dtype == np.float32


def test_expert_is_built_for_the_fitted_grid(rng):
    # grid_shape and grid_ndim are the mixture's: the expert sees the fitted
    # grid, and its "auto" presets follow it (2-D: two residual members, lr
    # 9e-3, which the leaves keep).
    X = rng.normal(size=(20, 36))
    expert = NeuralOperatorRegressor(module__width=4, module__n_modes=2, module__n_layers=1,
                                     max_epochs=1)
    model = small_mono(2, expert=expert, leaf_epochs=1, grid_shape=(6, 6)).fit(X, X)
    for net in model.experts_:
        assert net.grid_ == (6, 6) and net.grid_shape is None and net.device == "cpu"
        assert net.module_params_["n_members"] == 2 and net.module_params_["residual"]
    assert [net.lr_ for net in model.experts_] == pytest.approx([9e-3] * model.n_leaves_)
    # the user's expert is left as it was
    assert expert.grid_ndim is None and expert.random_state is None
    assert not hasattr(expert, "module_")
    X1 = rng.normal(size=(20, 2, 16))
    model = small_mono(1, expert=expert, grid_ndim=1).fit(X1, X1)
    assert model.experts_[0].grid_ == (16,) and model.experts_[0].lr_ == 6e-3


def test_1d_super_resolution_query_needs_a_grid_axis(fitted_small):
    Xf, _ = make_antiderivative(n_samples=80, n_points=32, random_state=0)
    assert fitted_small.predict(Xf[:, None, :]).shape == (80, 32)
    # flat rows are tabular: their width is fixed at fit
    with pytest.raises(ValueError, match="X has 32 features, but MoNORegressor is expecting 16"):
        fitted_small.predict(Xf)


def test_complexity_accounting(fitted_small, antiderivative_small):
    model = fitted_small
    sizes = [net.n_params_ for net in model.experts_]
    counted = [
        sum(p.numel() * (2 if p.is_complex() else 1) for p in net.module_.operator.parameters())
        for net in model.experts_
    ]
    assert sizes == counted
    assert len(sizes) == model.n_leaves_ == 4
    assert model.n_params_active_ == max(sizes)
    assert model.n_params_routing_ == model.tree_.n_params > 0  # Fourier encoder stores nothing
    assert model.n_params_total_ == sum(sizes) + model.n_params_routing_
    assert model.depth_ == 2
    assert model.leaf_sizes_.sum() == len(antiderivative_small[0])
    assert len(model.leaf_sizes_) == 4 and model.leaf_sizes_.min() >= 2


def test_predict_uses_the_routed_expert(fitted_small, antiderivative_small):
    X, _ = antiderivative_small
    leaves = fitted_small.apply(X)
    assert set(leaves) <= set(range(fitted_small.n_leaves_))
    assert len(set(leaves)) > 1
    pred = fitted_small.predict(X)
    for leaf in np.unique(leaves):
        rows = leaves == leaf
        # the experts were fitted on (n_samples, n_channels, *grid) arrays
        own = fitted_small.experts_[leaf].predict(X[rows])[:, 0]
        np.testing.assert_array_equal(pred[rows], own)
        other = fitted_small.experts_[(leaf + 1) % 4].predict(X[rows])[:, 0]
        assert not np.allclose(pred[rows], other)
    # one query at a time is routed and predicted as in a batch
    one_by_one = np.concatenate([fitted_small.predict(X[i : i + 1]) for i in range(10)])
    np.testing.assert_allclose(one_by_one, pred[:10], rtol=1e-5, atol=1e-6)


def test_one_leaf_is_the_expert_alone(antiderivative_small):
    # With one leaf the root expert is the whole model.
    X, y = antiderivative_small
    expert = small_expert(random_state=3)
    model = MoNORegressor(n_leaves=1, expert=expert, device="cpu", random_state=0).fit(X, y)
    alone = clone(expert).fit(X, y)
    np.testing.assert_array_equal(model.predict(X), alone.predict(X))
    assert model.n_leaves_ == 1 and model.depth_ == 0 and len(model.experts_) == 1
    assert model.n_params_active_ == alone.n_params_
    assert len(model.experts_[0].history) == 5
    # and the mixture's own random_state does not matter then
    other = MoNORegressor(n_leaves=1, expert=expert, device="cpu", random_state=1).fit(X, y)
    np.testing.assert_array_equal(other.predict(X), alone.predict(X))


def test_leaves_are_warm_started_from_their_parents(antiderivative_small):
    X, y = antiderivative_small
    expert = small_expert(random_state=3)
    root = MoNORegressor(n_leaves=1, expert=expert, device="cpu").fit(X, y).experts_[0]
    model = small_mono(4, expert=expert, leaf_epochs=1).fit(X, y)
    assert model.n_leaves_ > 1
    # an expert of another seed, trained one epoch: where a leaf would be
    # without the root's weights
    F, Y = X[:, None], y[:, None]  # experts see (n_samples, n_channels, *grid)
    fresh = clone(expert).set_params(random_state=4, max_epochs=1, grid_ndim=1).fit(F, Y)
    root_weights = root.module_.state_dict()
    leaves = model.apply(X)
    depths = model.tree_.node_depth[model.tree_.leaf_nodes]
    moved = []
    for leaf, net in enumerate(model.experts_):
        weights = net.module_.state_dict()
        moved.append(any(not torch.equal(weights[k], root_weights[k]) for k in root_weights))
        distance = sum((weights[k] - root_weights[k]).abs().square().sum() for k in root_weights)
        from_fresh = sum(
            (fresh.module_.state_dict()[k] - root_weights[k]).abs().square().sum()
            for k in root_weights
        )
        assert distance < 0.01 * from_fresh
        # the standardisation is the root's, from all samples
        for name in ("x_shift", "x_scale", "y_shift", "y_scale"):
            torch.testing.assert_close(getattr(net.module_, name), getattr(root.module_, name))
        # its history goes on from the root's: 5 epochs, then 1 per split
        # above it, at the root's learning rate
        assert len(net.history) == 5 + depths[leaf] and net.lr_ == pytest.approx(root.lr_)
    # a split is kept only when training on its sides helped: some leaves moved
    assert any(moved)
    # the user's expert is not trained
    assert not hasattr(expert, "module_")


def test_a_split_whose_expert_fails_is_dropped(antiderivative_small, monkeypatch):
    X, y = antiderivative_small
    monkeypatch.setattr(_training, "fine_tune", lambda *args, **kwargs: (None, None, ["it diverged"]))
    with pytest.warns(UserWarning) as record:
        model = small_mono(2).fit(X, y)
    messages = [str(w.message) for w in record]
    assert messages.count("Node 0: it diverged") == 2
    assert any("A split of node 0 was dropped" in m for m in messages)
    assert model.n_leaves_ == 1
    np.testing.assert_array_equal(model.predict(X), small_mono(1).fit(X, y).predict(X))


def test_a_split_that_does_not_pay_is_refused(rng):
    # Targets that are noise, unrelated to the inputs: no expert of any cell
    # can lower the held-out error, so the expert alone is kept.
    X = rng.normal(size=(200, 16)).cumsum(axis=1) / 4
    y = rng.normal(size=(200, 16))
    expert = small_expert(max_epochs=30)
    model = small_mono(4, expert=expert, leaf_epochs=10).fit(X, y)
    assert model.n_leaves_ == 1 and model.depth_ == 0
    np.testing.assert_array_equal(model.predict(X), small_mono(1, expert=expert).fit(X, y).predict(X))


def _two_regimes(n_samples, seed, n_points=32):
    """Inputs with a mean in [-1, 1]; a narrow smoothing of those with a positive
    mean, minus a wide smoothing of the others."""
    rng = np.random.default_rng(seed)
    k = np.fft.rfftfreq(n_points, 1 / n_points)
    coef = (rng.normal(size=(n_samples, len(k))) + 1j * rng.normal(size=(n_samples, len(k))))
    coef = coef / (1 + k) ** 1.5
    coef[:, 0] = 0
    mean = rng.uniform(-1, 1, size=n_samples)
    X = np.fft.irfft(coef, n=n_points) * n_points / 4 + mean[:, None]
    narrow = np.fft.irfft(np.fft.rfft(X) * np.exp(-((k / 3) ** 2)), n=n_points)
    wide = np.fft.irfft(np.fft.rfft(X) * np.exp(-(k**2)), n=n_points)
    return X, np.where(mean[:, None] > 0, narrow, -wide), mean > 0


def test_a_two_regime_operator_is_split_by_regime_and_learned_better():
    X, y, _ = _two_regimes(600, 0)
    X_test, y_test, regime = _two_regimes(300, 1)
    expert = small_expert(max_epochs=40, random_state=0)
    single = small_mono(1, expert=expert).fit(X, y)
    mixture = small_mono(4, expert=expert, leaf_epochs=20, min_samples_leaf=10).fit(X, y)
    error = relative_l2_error(y_test, mixture.predict(X_test))
    single_error = relative_l2_error(y_test, single.predict(X_test))
    assert mixture.n_leaves_ >= 2
    assert error < 0.6 * single_error  # 0.020 against 0.055 when written
    # the tree's leaves hold one regime each, apart from a few near the switch
    leaves = mixture.apply(X_test)
    purity = sum(max(regime[leaves == leaf].sum(), (~regime[leaves == leaf]).sum())
                 for leaf in np.unique(leaves)) / len(leaves)
    assert purity > 0.9


def test_reproducible_with_random_state(antiderivative_small):
    X, y = antiderivative_small
    a = small_mono(2).fit(X, y).predict(X)
    b = small_mono(2).fit(X, y).predict(X)
    c = small_mono(2, random_state=1).fit(X, y).predict(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    # the global torch generator is left alone
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    small_mono(2).fit(X, y)
    torch.testing.assert_close(torch.rand(3), expected)


def test_reversed_views_predict_like_copies(fitted_small, antiderivative_small):
    # Views with negative strides (X[::-1], flipped grids), one query or many,
    # are read as their copies are; torch itself refuses them.
    X, y = antiderivative_small
    for view in (X[::-1][:1], X[:1, ::-1], X[::-1], X[:, ::-1], X[:, None, ::-1]):
        np.testing.assert_array_equal(fitted_small.predict(view), fitted_small.predict(view.copy()))
    # And fit: reversed training data give the model their copies give.
    params = dict(expert=small_expert(max_epochs=1), leaf_epochs=1)
    views = small_mono(2, **params).fit(X[:, ::-1], y[::-1])
    copies = small_mono(2, **params).fit(X[:, ::-1].copy(), y[::-1].copy())
    np.testing.assert_array_equal(views.predict(X), copies.predict(X))


def test_pipeline_after_tabular_step():
    X, y = make_smoothing_2d(n_samples=60, resolution=12, random_state=0)
    flat = X.reshape(60, -1)
    pipe = make_pipeline(StandardScaler(), small_mono(2, grid_shape=(12, 12)))
    pred = pipe.fit(flat, y).predict(flat[:4])
    assert pred.shape == (4, 12, 12)
    # flat targets come back flat
    pred = pipe.fit(flat, y.reshape(60, -1)).predict(flat[:4])
    assert pred.shape == (4, 144)


def test_grid_search_over_leaves_and_a_nested_expert_parameter(antiderivative_small):
    X, y = antiderivative_small
    search = GridSearchCV(
        small_mono(expert=small_expert(max_epochs=2), leaf_epochs=2),
        {"expert__module__width": [4, 8], "n_leaves": [1, 2]},
        scoring=relative_l2_scorer,
        cv=2,
    ).fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert set(search.best_params_) == {"expert__module__width", "n_leaves"}
    best = search.best_estimator_
    assert best.n_leaves_ == search.best_params_["n_leaves"]
    width = search.best_params_["expert__module__width"]
    assert all(net.module_params_["width"] == width for net in best.experts_)
    assert search.predict(X).shape == y.shape


def test_clone_and_nested_params():
    expert = small_expert(module__padding=0.1)
    model = MoNORegressor(n_leaves=3, expert=expert)
    params = model.get_params()
    assert params["expert__module__width"] == 8 and params["expert__module__padding"] == 0.1
    assert params["expert__max_epochs"] == 5
    copy = clone(model)
    assert copy.get_params(deep=False).keys() == model.get_params(deep=False).keys()
    assert copy.expert is not expert and not hasattr(copy, "experts_")
    copy.set_params(expert__module__n_modes=5, expert__lr=1e-3, n_leaves=2)
    assert copy.expert.module__n_modes == 5 and copy.expert.lr == 1e-3 and copy.n_leaves == 2
    assert expert.module__n_modes == 4 and expert.lr == "auto" and model.n_leaves == 3
    assert sorted(MoNORegressor().get_params(deep=False)) == sorted([
        "n_leaves", "expert", "encoder", "min_samples_leaf", "validation_fraction", "leaf_epochs",
        "grid_shape", "grid_ndim", "device", "n_jobs", "random_state", "verbose",
    ])


def test_joblib_round_trip(fitted_small, antiderivative_small):
    X, _ = antiderivative_small
    buffer = io.BytesIO()
    joblib.dump(fitted_small, buffer)
    buffer.seek(0)
    loaded = joblib.load(buffer)
    np.testing.assert_array_equal(loaded.predict(X), fitted_small.predict(X))
    np.testing.assert_array_equal(loaded.apply(X), fitted_small.apply(X))


class _Linear(torch.nn.Module):
    """A user's own operator: one pointwise linear map."""

    def __init__(self, in_channels, out_channels, grid_shape, pooled=False, scale=1.0):
        super().__init__()
        self.map = torch.nn.Conv1d(in_channels, out_channels, 1)
        self.pooled = pooled
        self.scale = scale

    def forward(self, x):
        out = self.map(x)
        return out.mean(-1) if self.pooled else out


def test_custom_module_and_encoders(antiderivative_small):
    X, y = antiderivative_small
    expert = NeuralOperatorRegressor(module=_Linear, module__scale=2.0, max_epochs=5)
    model = small_mono(2, expert=expert)
    assert model.fit(X, 2 * X).predict(X).shape == X.shape
    assert model.n_params_active_ == 2
    assert all(net.module_.operator.scale == 2.0 for net in model.experts_)
    with pytest.raises(ValueError, match="works at one resolution only"):
        model.predict(np.repeat(X, 2, axis=1)[:, None, :])
    for encoder in ["pca", PCAEncoder(n_components=3), PCA(n_components=3)]:
        model = small_mono(2, encoder=encoder).fit(X, y)
        assert model.predict(X).shape == y.shape
        assert model.n_params_routing_ > model.tree_.n_params  # the PCA is stored


def test_mlp_expert(antiderivative_small):
    X, y = antiderivative_small
    expert = NeuralOperatorRegressor(module=MLP, module__width=16, module__n_layers=2,
                                     max_epochs=5)
    model = small_mono(2, expert=expert).fit(X, y)
    assert model.predict(X).shape == y.shape
    assert all(isinstance(net.module_.operator, MLP) for net in model.experts_)
    assert all(net.lr_ == pytest.approx(3e-3) for net in model.experts_)
    with pytest.raises(ValueError, match="one resolution only"):
        model.predict(np.repeat(X, 2, axis=1)[:, None, :])


def test_expert_of_ones_own(antiderivative_small):
    X, y = antiderivative_small
    model = small_mono(2, expert=small_expert(module=WrapsFNO)).fit(X, y)
    assert all(isinstance(net.module_.operator, WrapsFNO) for net in model.experts_)
    assert model.experts_[0].module_.operator.inner.spectral[0].n_modes == 4
    assert model.predict(X).shape == y.shape
    assert relative_l2_error(y, model.predict(X)) < 1.0


@pytest.mark.parametrize("n_jobs", [None, 2])
def test_leaves_train_leaf_epochs_per_split_above_them(antiderivative_small, n_jobs):
    X, y = antiderivative_small
    params = dict(expert=small_expert(max_epochs=3), leaf_epochs=2, n_jobs=n_jobs)
    single = small_mono(1, **params).fit(X, y)
    assert len(single.experts_[0].history) == 3
    assert single.experts_[0].lr_ == pytest.approx(6e-3)  # "auto": 6e-3 in 1-D
    mixture = small_mono(2, **params).fit(X, y)
    assert mixture.n_leaves_ == 2
    assert [len(net.history) for net in mixture.experts_] == [5, 5]
    assert [net.lr_ for net in mixture.experts_] == pytest.approx([6e-3, 6e-3])
    # inputs that cannot be told apart are not split, and that is no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        unsplit = small_mono(2, **params).fit(np.repeat(X[:1], len(X), 0), y)
    assert unsplit.n_leaves_ == 1 and len(unsplit.experts_) == 1
    assert len(unsplit.experts_[0].history) == 3


def test_verbose_progress(antiderivative_small, capsys):
    X, y = antiderivative_small
    model = small_mono(2, verbose=1).fit(X, y)
    err = capsys.readouterr().err
    # the root, then the two experts of the split
    assert model.n_leaves_ == 2 and "MoNO fit: 3expert" in err
    small_mono(2).fit(X, y)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_encoder_subclass_transform_is_used_at_predict(antiderivative_small):
    # A subclass of a package encoder that overrides transform must route
    # with its own transform at predict too, as it did at fit.
    class Flipped(FourierEncoder):
        def transform(self, X):
            return -super().transform(X)

    X, y = antiderivative_small
    model = small_mono(2, encoder=Flipped(n_modes=2)).fit(X, y)
    assert isinstance(model.encoder_, Flipped)
    F = X[:, None, :]
    leaves = model.apply(X)
    np.testing.assert_array_equal(leaves, model.tree_.apply(model.encoder_.transform(F)))
    unflipped = FourierEncoder.transform(model.encoder_, F)
    assert not np.array_equal(leaves, model.tree_.apply(unflipped))


def test_no_warnings_in_a_plain_fit(antiderivative_small):
    X, y = antiderivative_small
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        small_mono(2).fit(X, y).predict(X)
