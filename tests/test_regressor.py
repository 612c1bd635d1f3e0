import io

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_mono import MoNORegressor, PCAEncoder, relative_l2_error, relative_l2_scorer
from sklearn_mono.datasets import make_antiderivative, make_smoothing_2d
from sklearn_mono.experts import FNO, count_parameters
from sklearn_mono._regressor import _warm_started

from .conftest import SMALL, WrapsFNO


def test_antiderivative_accuracy_with_defaults():
    """The must-show: 1000 smooth inputs at 64 points, four leaves, defaults."""
    X, y = make_antiderivative(n_samples=1200, n_points=64, random_state=0)
    model = MoNORegressor(n_leaves=4, device="cpu", random_state=0)
    model.fit(X[:1000], y[:1000])
    error = relative_l2_error(y[1000:], model.predict(X[1000:]))
    assert error < 6e-3  # 5.3e-3 on the CI machine; 6.6e-3 with the 2-D presets
    assert (model.width_, model.root_epochs_, model.lr_) == (14, 150, 6e-3)
    assert model.n_leaves_ == 4 and model.depth_ == 2
    # one query evaluates one expert: a quarter of what is stored
    assert model.n_params_active_ * 4 < model.n_params_total_ + 1


def test_2d_operator_and_zero_shot_super_resolution():
    X16, y16 = make_smoothing_2d(n_samples=400, resolution=16, random_state=0)
    X32, y32 = make_smoothing_2d(n_samples=400, resolution=32, random_state=0)
    model = MoNORegressor(
        n_leaves=2, width=16, max_epochs=30, root_epochs=30, device="cpu", random_state=0
    ).fit(X16[:300], y16[:300])
    pred16 = model.predict(X16[300:])
    pred32 = model.predict(X32[300:])
    assert pred16.shape == (100, 16, 16)
    assert pred32.shape == (100, 32, 32)
    assert relative_l2_error(y16[300:], pred16) < 1e-2
    # the same fields on a twice finer grid, never seen in training
    assert relative_l2_error(y32[300:], pred32) < 2e-2
    # routing a finer sample of a field sends it to the same expert
    assert np.mean(model.apply(X32[300:]) == model.apply(X16[300:])) > 0.95


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
    model = MoNORegressor(n_leaves=2, **{**SMALL, "max_epochs": 2, "root_epochs": 2}, **params)
    pred = model.fit(X, y).predict(X[:5])
    assert pred.shape == (5,) + y_shape[1:]
    assert pred.dtype == np.float64
    assert model.predict(X[:5].astype(np.float32)).dtype == np.float32


def test_1d_super_resolution_query_needs_a_grid_axis(fitted_small, antiderivative_small):
    X, _ = antiderivative_small
    Xf, yf = make_antiderivative(n_samples=80, n_points=32, random_state=0)
    assert fitted_small.predict(Xf[:, None, :]).shape == (80, 32)
    # flat rows are tabular: their width is fixed at fit
    with pytest.raises(ValueError, match="X has 32 features, but MoNORegressor is expecting 16"):
        fitted_small.predict(Xf)


def test_complexity_accounting(fitted_small, antiderivative_small):
    model = fitted_small
    sizes = [count_parameters(net.module_.operator) for net in model.experts_]
    assert len(sizes) == model.n_leaves_ == 4
    assert model.n_params_active_ == max(sizes)
    assert model.n_params_routing_ == model.tree_.n_params > 0  # Fourier encoder stores nothing
    assert model.n_params_total_ == sum(sizes) + model.n_params_routing_
    assert model.depth_ == 2
    assert model.leaf_sizes_.sum() == len(antiderivative_small[0])


def test_predict_uses_the_routed_expert(fitted_small, antiderivative_small):
    X, _ = antiderivative_small
    leaves = fitted_small.apply(X)
    assert set(leaves) <= set(range(fitted_small.n_leaves_))
    pred = fitted_small.predict(X)
    for leaf in np.unique(leaves):
        rows = leaves == leaf
        own = fitted_small.experts_[leaf].predict(torch.tensor(X[rows, None], dtype=torch.float32))
        # Batches reaching several leaves are evaluated by the leaves' stacked
        # experts: the same numbers up to float32 rounding.
        np.testing.assert_allclose(pred[rows], own[:, 0], rtol=1e-6, atol=1e-6 * np.abs(own).max())
        other = fitted_small.experts_[(leaf + 1) % 4].predict(torch.tensor(X[rows, None], dtype=torch.float32))
        assert not np.allclose(pred[rows], other[:, 0])


def test_reproducible_with_random_state(antiderivative_small):
    X, y = antiderivative_small
    a = MoNORegressor(n_leaves=2, **SMALL).fit(X, y).predict(X)
    b = MoNORegressor(n_leaves=2, **SMALL).fit(X, y).predict(X)
    c = MoNORegressor(n_leaves=2, **{**SMALL, "random_state": 1}).fit(X, y).predict(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    # the global torch generator is left alone
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    MoNORegressor(n_leaves=2, **SMALL).fit(X, y)
    torch.testing.assert_close(torch.rand(3), expected)


@pytest.mark.parametrize("n_jobs", [None, 2])
def test_dropout_acts_in_fit_only_and_is_reproducible(n_jobs):
    # FNO experts with dropout drop activations in training: the draws come
    # from each expert's seeded generator, never from the caller's, and
    # predictions drop nothing.
    X, y = make_smoothing_2d(n_samples=40, resolution=12, random_state=0)
    params = {**SMALL, "n_leaves": 2, "n_jobs": n_jobs}
    dropout = {"expert_kwargs": {"dropout": 0.3}}
    a = MoNORegressor(**params, **dropout).fit(X, y)
    assert a.expert_kwargs_["dropout"] == 0.3
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    b = MoNORegressor(**params, **dropout).fit(X, y)
    torch.testing.assert_close(torch.rand(3), expected)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    np.testing.assert_array_equal(a.predict(X), a.predict(X))
    # the root expert trains with dropout and the leaves, warm-started from
    # it, fine-tune without
    assert [net.module_.operator.dropout for net in a.experts_] == [0.0, 0.0]
    off = MoNORegressor(**params).fit(X, y)
    assert "dropout" not in off.expert_kwargs_
    assert not np.allclose(a.predict(X), off.predict(X), rtol=0, atol=1e-6)
    # without a root expert every leaf trains with dropout
    no_root = MoNORegressor(**{**params, "root_epochs": 0}, **dropout).fit(X, y)
    assert [net.module_.operator.dropout for net in no_root.experts_] == [0.3, 0.3]


def test_leaves_keep_the_dropout_of_an_fno_inside_an_expert_of_ones_own():
    # Only the built-in FNO expert (or a subclass) fine-tunes without
    # dropout; what an expert of one's own holds is its own business.
    X, y = make_smoothing_2d(n_samples=40, resolution=12, random_state=0)
    kwargs = {"width": 4, "n_modes": 2, "n_layers": 1, "dropout": 0.3}
    model = MoNORegressor(expert=WrapsFNO, expert_kwargs=kwargs,
                          **{**SMALL, "n_leaves": 2}).fit(X, y)
    assert [net.module_.operator.inner.dropout for net in model.experts_] == [0.3, 0.3]


@pytest.mark.parametrize("members", [1, 2])
def test_single_queries_predict_what_a_batch_predicts(members, monkeypatch):
    # One query at a time takes its own routing walk and the experts'
    # single-sample passes, their factors checked by version, not by value;
    # a batch of 40 takes the batched ones.
    from sklearn_mono.experts import _spectral

    X, y = make_smoothing_2d(n_samples=40, resolution=12, random_state=0)
    model = MoNORegressor(n_leaves=2, expert_kwargs={"n_members": members}, **SMALL).fit(X, y)
    batch = model.predict(X)
    single, compared = [], []
    along, equal = _spectral._along_last_axis, torch.equal
    monkeypatch.setattr(_spectral, "_along_last_axis", lambda x, f: single.append(1) or along(x, f))
    monkeypatch.setattr(torch, "equal", lambda a, b: compared.append(1) or equal(a, b))
    one_by_one = np.concatenate([model.predict(x[None]) for x in X])
    # Each query, through both layers of its expert, once per layer.
    assert len(single) == 40 * SMALL["n_layers"] and not compared
    assert one_by_one.shape == batch.shape == y.shape
    np.testing.assert_allclose(one_by_one, batch, rtol=1e-5, atol=1e-6)
    assert np.array_equal(np.concatenate([model.apply(x[None]) for x in X]), model.apply(X))
    assert len(set(model.apply(X))) == 2


def test_reversed_views_predict_like_copies(fitted_small, antiderivative_small):
    # Views with negative strides (X[::-1], flipped grids), one query or many,
    # are read as their copies are; torch itself refuses them.
    X, y = antiderivative_small
    for view in (X[::-1][:1], X[:1, ::-1], X[::-1], X[:, ::-1]):
        np.testing.assert_array_equal(fitted_small.predict(view), fitted_small.predict(view.copy()))
    # And fit: reversed training data give the model their copies give.
    params = {**SMALL, "max_epochs": 1, "root_epochs": 1}
    views = MoNORegressor(n_leaves=2, **params).fit(X[:, ::-1], y[::-1])
    copies = MoNORegressor(n_leaves=2, **params).fit(X[:, ::-1].copy(), y[::-1].copy())
    np.testing.assert_array_equal(views.predict(X), copies.predict(X))


def test_pipeline_after_tabular_step(rng):
    X, y = make_smoothing_2d(n_samples=60, resolution=12, random_state=0)
    flat = X.reshape(60, -1)
    pipe = make_pipeline(StandardScaler(), MoNORegressor(n_leaves=2, grid_shape=(12, 12), **SMALL))
    pred = pipe.fit(flat, y).predict(flat[:4])
    assert pred.shape == (4, 12, 12)


def test_grid_search_over_leaves_and_expert(antiderivative_small):
    X, y = antiderivative_small
    search = GridSearchCV(
        MoNORegressor(**SMALL),
        {"n_leaves": [1, 2], "width": [4, 8]},
        scoring=relative_l2_scorer,
        cv=2,
    ).fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    assert search.best_params_["n_leaves"] in (1, 2)
    assert search.best_estimator_.n_leaves_ == search.best_params_["n_leaves"]
    assert search.predict(X).shape == y.shape


def test_clone_and_params():
    model = MoNORegressor(n_leaves=3, width=8, expert_kwargs={"padding": 0.1})
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    assert not hasattr(copy, "experts_")
    copy.set_params(n_modes=5)
    assert copy.n_modes == 5 and model.n_modes == 16


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

    def forward(self, x):
        out = self.map(x)
        return out.mean(-1) if self.pooled else out


def test_custom_expert_and_encoders(antiderivative_small):
    X, y = antiderivative_small
    model = MoNORegressor(n_leaves=2, expert=_Linear, expert_kwargs={"scale": 2.0}, **SMALL)
    assert model.fit(X, 2 * X).predict(X).shape == X.shape
    assert model.n_params_active_ == 2
    with pytest.raises(ValueError, match="works at one resolution only"):
        model.predict(np.repeat(X, 2, axis=1)[:, None, :])
    for encoder in ["pca", PCAEncoder(n_components=3), PCA(n_components=3)]:
        model = MoNORegressor(n_leaves=2, encoder=encoder, **SMALL).fit(X, y)
        assert model.predict(X).shape == y.shape
        assert model.n_params_routing_ > model.tree_.n_params  # the PCA is stored


def test_mlp_expert(antiderivative_small):
    X, y = antiderivative_small
    model = MoNORegressor(n_leaves=2, expert="mlp", **SMALL).fit(X, y)
    assert model.predict(X).shape == y.shape
    with pytest.raises(ValueError, match="one resolution only"):
        model.predict(np.repeat(X, 2, axis=1)[:, None, :])


@pytest.mark.parametrize("n_jobs", [None, 2])
def test_training_budget_does_not_depend_on_the_number_of_leaves(antiderivative_small, n_jobs):
    # Leaves fine-tune for max_epochs after the root's root_epochs; a single
    # leaf is its own root and trains for both.
    X, y = antiderivative_small
    params = {**SMALL, "root_epochs": 3, "max_epochs": 2, "n_jobs": n_jobs}
    single = MoNORegressor(n_leaves=1, **params).fit(X, y)
    assert len(single.experts_[0].history) == 5
    assert single.experts_[0].lr == pytest.approx(6e-3)  # at lr ("auto": 6e-3 in 1-D), as a root
    mixture = MoNORegressor(n_leaves=2, **params).fit(X, y)
    assert [len(net.history) for net in mixture.experts_] == [2, 2]
    assert [net.lr for net in mixture.experts_] == pytest.approx([1.8e-3, 1.8e-3])  # 0.3 lr
    # a tree that cannot be split is a single leaf too
    with pytest.warns(UserWarning, match="Only 1 of n_leaves=2"):
        unsplit = MoNORegressor(n_leaves=2, **params).fit(np.repeat(X[:1], len(X), 0), y)
    assert len(unsplit.experts_[0].history) == 5


def test_auto_width_epochs_and_lr_follow_the_grid(antiderivative_small, rng):
    # "auto" means width 14, 150 root epochs and lr 6e-3 for the FNO expert
    # on 1-D grids; for the FNO expert with residual blocks, width 16 per
    # member, 80 root epochs and lr 9e-3 with several members (two, with the
    # residual blocks, are its default on 2-D and 3-D grids) and width 24,
    # 80 root epochs and lr 6e-3 with one; and width 24, 80 root epochs and
    # lr 3e-3 otherwise; the grid is the fitted one, after grid_shape and
    # grid_ndim.
    X, y = antiderivative_small
    params = dict(n_modes=2, n_layers=1, max_epochs=1, device="cpu", random_state=0)

    def fitted(X, y, **kwargs):
        model = MoNORegressor(**{"n_leaves": 1, **params, **kwargs}).fit(X, y)
        net = model.experts_[0]
        operator = net.module_.operator
        n_members = getattr(operator, "n_members", 1)
        used = (len(net.history), net.lr, operator.lift.out_channels // n_members)
        assert used == (model.root_epochs_ + 1, model.lr_, model.width_)
        return used if n_members == 1 else used + (n_members,)

    def layers(model):
        # what the experts were built with; the leaves of a mixture fine-tune
        # from the root expert without dropout
        for net in model.experts_:
            operator = net.module_.operator
            assert operator.residual == model.expert_kwargs_.get("residual", False)
            dropout = model.expert_kwargs_.get("dropout", 0.0)
            warm = _warm_started(model.n_leaves_, model.root_epochs_)
            assert operator.dropout == (0.0 if warm else dropout)
        return model.expert_kwargs_.get("residual", False), model.expert_kwargs_.get("dropout", 0.0)

    assert fitted(X[:20], y[:20]) == (151, 6e-3, 14)
    plain = MoNORegressor(n_leaves=1, **params).fit(X[:20], y[:20])
    assert layers(plain) == (False, 0.0)
    assert plain.expert_kwargs_ == dict(width=14, n_modes=2, n_layers=1, factorized=True)
    X2 = rng.normal(size=(20, 6, 6))
    assert fitted(X2, X2) == (81, 9e-3, 16, 2)
    defaults = MoNORegressor(n_leaves=1, **params).fit(X2, X2)
    assert layers(defaults) == (True, 0.0)
    assert defaults.expert_kwargs_["n_members"] == 2
    # residual experts with several members are 16 wide per member and train
    # at 9e-3; with one member, 24 wide at 6e-3
    assert fitted(X2, X2, expert_kwargs={"n_members": 1}) == (81, 6e-3, 24)
    assert fitted(X2, X2, expert_kwargs={"n_members": 3}) == (81, 9e-3, 16, 3)
    assert fitted(X2, X2, width=10) == (81, 9e-3, 10, 2)
    assert fitted(X2, X2, lr=1e-3, expert_kwargs={"n_members": 1}) == (81, 1e-3, 24)
    # the members come with the residual blocks, whichever way they are
    # given, and with other keywords; a width in expert_kwargs is each
    # member's too
    assert fitted(X2, X2, expert_kwargs={"residual": True}) == (81, 9e-3, 16, 2)
    assert fitted(X2, X2, expert_kwargs={"symmetric": True}) == (81, 9e-3, 16, 2)
    assert fitted(X2, X2, expert_kwargs={"width": 5}) == (81, 9e-3, 5, 2)
    assert fitted(X2, X2, expert_kwargs={"n_members": np.int64(2)}) == (81, 9e-3, 16, 2)
    # plain layers keep one member unless asked for more
    assert fitted(X2, X2, expert_kwargs={"residual": False}) == (81, 3e-3, 24)
    assert fitted(X2, X2, expert_kwargs={"residual": np.False_}) == (81, 3e-3, 24)
    assert fitted(X2, X2, expert_kwargs={"n_members": 2, "residual": False}) == (81, 3e-3, 24, 2)
    # flat rows folded onto a 2-D grid, and two channels on a 1-D grid
    assert fitted(X2.reshape(20, 36), X2.reshape(20, 36), grid_shape=(6, 6)) == (81, 9e-3, 16, 2)
    X1 = rng.normal(size=(20, 2, 16))
    assert fitted(X1, X1, grid_ndim=1) == (151, 6e-3, 14)
    # expert_kwargs override the 2-D layers, and plain layers train at 3e-3,
    # the earlier 2-D defaults
    for kwargs, expected in [
        ({"residual": False}, (False, 0.0, 3e-3)),
        ({"residual": False, "dropout": 0.2}, (False, 0.2, 3e-3)),
        ({"dropout": 0.1}, (True, 0.1, 9e-3)),
        ({"dropout": 0.1, "n_members": 1}, (True, 0.1, 6e-3)),
    ]:
        model = MoNORegressor(n_leaves=1, expert_kwargs=kwargs, **params).fit(X2, X2)
        assert (*layers(model), model.lr_) == expected
        assert model.experts_[0].lr == model.lr_
    # on 1-D grids residual blocks train at the 1-D presets
    model = MoNORegressor(n_leaves=1, expert_kwargs={"residual": True}, **params).fit(X[:20], y[:20])
    assert (*layers(model), model.lr_, model.root_epochs_) == (True, 0.0, 6e-3, 150)
    # the MLP expert keeps the 2-D presets on 1-D grids
    mlp = MoNORegressor(n_leaves=1, expert="mlp", **params).fit(X[:20], y[:20])
    net = mlp.experts_[0]
    assert (len(net.history), net.lr, net.module_.operator.net[0].out_features) == (81, 3e-3, 24)
    assert (mlp.width_, mlp.root_epochs_, mlp.lr_) == (24, 80, 3e-3)
    # leaves fine-tune at 0.3 * the resolved lr
    X3 = rng.normal(size=(20, 4, 4, 4))
    mixture = MoNORegressor(n_leaves=2, min_samples_leaf=2, expert_kwargs={"dropout": 0.1},
                            **params).fit(X3, X3)
    assert [net.lr for net in mixture.experts_] == pytest.approx([2.7e-3, 2.7e-3])  # 0.3 * 9e-3
    assert mixture.experts_[0].module_.operator.lift.out_channels == 32  # 2 members of 16
    assert layers(mixture) == (True, 0.1)  # leaves fine-tuned without dropout
    # explicit values win over the presets, each on its own, and so does a
    # width in expert_kwargs; the FNO class itself is the built-in expert
    assert fitted(X[:20], y[:20], width=5, root_epochs=2, lr=1e-3) == (3, 1e-3, 5)
    assert fitted(X[:20], y[:20], width=5) == (151, 6e-3, 5)
    assert fitted(X[:20], y[:20], expert=FNO, expert_kwargs={"width": 6}) == (151, 6e-3, 6)
    # the estimator's parameters keep "auto": the presets are resolved at fit
    assert {k: mlp.get_params()[k] for k in ("width", "root_epochs", "lr")} == dict.fromkeys(
        ("width", "root_epochs", "lr"), "auto"
    )


def test_verbose_progress(antiderivative_small, capsys):
    X, y = antiderivative_small
    MoNORegressor(n_leaves=2, **{**SMALL, "verbose": 1}).fit(X, y)
    err = capsys.readouterr().err
    assert "leaf 2/2" in err and "epoch" in err
    MoNORegressor(n_leaves=2, **SMALL).fit(X, y)
    assert capsys.readouterr().err == ""


def test_encoder_subclass_transform_is_used_at_predict(antiderivative_small):
    # A subclass of a package encoder that overrides transform must route
    # with its own transform at predict too, as it did at fit.
    from sklearn_mono.encoders import FourierEncoder

    class Flipped(FourierEncoder):
        calls = 0

        def transform(self, X):
            type(self).calls += 1
            return -super().transform(X)

    X, y = antiderivative_small
    model = MoNORegressor(n_leaves=2, encoder=Flipped(n_modes=2), **SMALL).fit(X, y)
    before = Flipped.calls
    leaves = model.apply(X)
    assert Flipped.calls > before
    np.testing.assert_array_equal(leaves, model.tree_.apply(model.encoder_.transform(X)))


def test_experts_with_members_train_each_member_on_the_operator():
    # Two members per expert, each trained on its own loss: each learns the
    # smoothing operator by itself, and the model predicts their mean.
    X, y = make_smoothing_2d(n_samples=160, resolution=12, random_state=0)
    params = dict(width=6, n_modes=4, n_layers=2, max_epochs=20, root_epochs=30, lr=6e-3,
                  random_state=0)
    model = MoNORegressor(n_leaves=2, min_samples_leaf=20, expert_kwargs={"n_members": 2}, **params)
    model.fit(X[:120], y[:120])
    assert model.expert_kwargs_["n_members"] == 2
    single = MoNORegressor(n_leaves=2, min_samples_leaf=20, expert_kwargs={"n_members": 1},
                           **params).fit(X[:120], y[:120])
    assert model.n_params_active_ == 2 * single.n_params_active_  # same width, twice the weights
    X_test, y_test = X[120:], y[120:]
    leaves = model.apply(X_test)
    members = np.empty((len(X_test), 2) + y_test.shape[1:])
    for leaf in np.unique(leaves):
        rows = leaves == leaf
        module = model.experts_[leaf].module_
        with torch.no_grad():
            operator = module.operator
            x = (torch.tensor(X_test[rows, None], dtype=torch.float32) - module.x_shift) / module.x_scale
            out = operator.members(x) * module.y_scale + module.y_shift
        members[rows] = out[:, :, 0].numpy()
    errors = [relative_l2_error(y_test, members[:, m]) for m in range(2)]
    alone = relative_l2_error(y_test, single.predict(X_test))
    # each member is about as accurate as one FNO trained alone (about 0.06
    # and 0.08 here; predicting zeros gives 1)
    assert alone < 0.1 and max(errors) < 1.3 * alone, (errors, alone)
    assert not np.allclose(members[:, 0], members[:, 1], atol=1e-4)  # two networks
    np.testing.assert_allclose(model.predict(X_test), members.mean(1), rtol=1e-4, atol=1e-5)
    ensemble = relative_l2_error(y_test, model.predict(X_test))
    assert ensemble < min(errors), (ensemble, errors)
