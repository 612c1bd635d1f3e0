"""Batches reaching several leaves: the leaves' experts evaluated as one grouped FNO."""

import copy
import pickle

import numpy as np
import pytest
import torch

from sklearn_mono import MoNORegressor
from sklearn_mono.datasets import make_smoothing_2d
from sklearn_mono._regressor import _evaluate

from .conftest import SMALL, WrapsFNO


def leaf_by_leaf(model, X):
    """What each leaf's own expert predicts for its queries, one pass per leaf."""
    F, _ = model._validate_query(X)
    leaves = model.tree_.apply(model._encode(F))
    out = None
    for leaf in np.unique(leaves):
        rows = leaves == leaf
        part = _evaluate(model.experts_[leaf], F[rows])
        if out is None:
            out = np.empty((len(F),) + part.shape[1:], dtype=part.dtype)
        out[rows] = part
    return out.reshape((len(F),) + model.predict(X[:1]).shape[1:])


def assert_same(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6 * np.abs(b).max())


@pytest.fixture(scope="module")
def two_channels(antiderivative_small):
    """1-D data with two input and three output channels."""
    X, y = antiderivative_small
    return np.stack([X, X**2], axis=1), np.stack([y, -y, 2 * y + X], axis=1)


@pytest.mark.parametrize(
    "expert_kwargs",
    [
        None,
        {"residual": True},
        {"n_members": 2},
        {"n_members": 2, "residual": True},
        {"positional": "periodic", "padding": 0.25},
        {"symmetric": True},
    ],
)
def test_stacked_batch_predicts_what_each_leaf_predicts(two_channels, expert_kwargs):
    X, y = two_channels
    model = MoNORegressor(n_leaves=4, expert_kwargs=expert_kwargs, grid_ndim=1, **SMALL).fit(X, y)
    pred = model.predict(X)
    assert model._expert_stack.stack is not None  # the batch took the stacked pass
    assert pred.shape == y.shape
    assert_same(pred, leaf_by_leaf(model, X))
    # Built once, kept while the experts are unchanged.
    stack = model._expert_stack.stack
    assert_same(model.predict(X[::-1]), pred[::-1])
    assert model._expert_stack.stack is stack


@pytest.mark.parametrize("members", [1, 2])
def test_stacked_pooled_outputs(antiderivative_small, members):
    X, y = antiderivative_small
    targets = np.stack([y.mean(axis=1), y[:, -1]], axis=1)  # two numbers per sample
    model = MoNORegressor(n_leaves=4, expert_kwargs={"n_members": members}, **SMALL).fit(X, targets)
    pred = model.predict(X)
    assert model._expert_stack.stack is not None and pred.shape == (len(X), 2)
    assert_same(pred, leaf_by_leaf(model, X))


def test_large_groups_are_evaluated_leaf_by_leaf():
    # One member per expert, so that the lifted channels are the width.
    X, y = make_smoothing_2d(n_samples=60, resolution=12, random_state=0)
    model = MoNORegressor(n_leaves=4, expert_kwargs={"n_members": 1}, **SMALL).fit(X, y)
    leaves = model.apply(X)
    assert len(set(leaves)) == 4 and np.bincount(leaves).max() == 15
    assert model.experts_[0].module_.operator.lift.out_channels == 8
    # 15 queries per leaf x 8 lifted channels x 144 points: 17,280, stacked.
    assert_same(model.predict(X), leaf_by_leaf(model, X))
    assert model._expert_stack.stack is not None
    # Eight times as many: 138,240, over 2**17, one pass per leaf.
    model._expert_stack.stack = None
    many = np.concatenate([X] * 8)
    assert_same(model.predict(many), leaf_by_leaf(model, many))
    assert model._expert_stack.stack is None


@pytest.mark.parametrize("members", [1, 2])
@pytest.mark.parametrize("factorized", [True, False])
@pytest.mark.parametrize("ndim", [2, 3])
def test_2d_and_3d_queries_one_or_two_per_leaf(factorized, ndim, members):
    # Full layers hold one weight block per sign pattern of the axes before
    # the last (two on 2-D grids, four on 3-D ones); one query per leaf takes
    # the grouped layers' single-sample passes. Two members per expert are
    # the 2-D and 3-D default.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(48,) + (6,) * ndim)
    y = X**2 + np.roll(X, 1, axis=1)
    kwargs = {"factorized": factorized, "n_members": members}
    model = MoNORegressor(n_leaves=4, expert_kwargs=kwargs, **SMALL).fit(X, y)
    assert model.experts_[0].module_.operator.n_members == members
    leaves = model.apply(X)
    assert len(set(leaves)) == 4
    for per_leaf in (1, 2):
        model._expert_stack.stack = None
        few = np.concatenate([np.flatnonzero(leaves == leaf)[:per_leaf] for leaf in range(4)])
        assert_same(model.predict(X[few]), leaf_by_leaf(model, X[few]))
        assert model._expert_stack.stack is not None


def test_no_stack_for_one_leaf_or_lopsided_batches(antiderivative_small):
    X, y = antiderivative_small
    model = MoNORegressor(n_leaves=4, **SMALL).fit(X, y)
    leaves = model.apply(X)
    one_leaf = np.flatnonzero(leaves == leaves[0])
    model.predict(X[one_leaf])
    assert model._expert_stack.stack is None
    # 200 queries of one leaf and one of another: padding all four leaves to
    # 200 would add 599 queries, more than 64 for each of the two leaves.
    other = np.flatnonzero(leaves != leaves[0])[:1]
    lopsided = np.concatenate([np.resize(one_leaf, 200), other])
    assert_same(model.predict(X[lopsided]), leaf_by_leaf(model, X[lopsided]))
    assert model._expert_stack.stack is None
    model.predict(X)
    assert model._expert_stack.stack is not None


@pytest.mark.parametrize("expert", ["mlp", WrapsFNO])
def test_other_experts_are_evaluated_leaf_by_leaf(antiderivative_small, expert):
    X, y = antiderivative_small
    model = MoNORegressor(n_leaves=4, expert=expert, **SMALL).fit(X, y)
    assert_same(model.predict(X), leaf_by_leaf(model, X))
    assert model._expert_stack.stack is None


def test_weight_edits_rebuild_the_stack(antiderivative_small):
    X, y = antiderivative_small
    model = MoNORegressor(n_leaves=4, **SMALL).fit(X, y)
    before = model.predict(X)
    stale = model._expert_stack.stack
    operator = model.experts_[0].module_.operator
    rows = model.apply(X) == 0
    # An in-place edit that torch records (its version counter moves).
    with torch.no_grad():
        operator.project[2].bias.add_(1.0)
    after = model.predict(X)
    assert model._expert_stack.stack is not stale
    assert_same(after, leaf_by_leaf(model, X))
    assert rows.any() and not np.allclose(after[rows], before[rows])
    np.testing.assert_array_equal(after[~rows], before[~rows])
    # An edit through .data is not recorded; switching the module to
    # training mode and back, as the model page says, rebuilds the stack.
    operator.project[2].bias.data.sub_(1.0)
    model.experts_[0].module_.train()
    model.experts_[0].module_.eval()
    assert_same(model.predict(X), before)
    # Weights replaced by assigning .data: the version counter stays, and
    # once the old values are freed the new ones may lie at their address.
    bias = operator.project[2].bias
    original = bias.detach().clone()
    bias.data = torch.empty(0)
    bias.data = original * 2
    assert_same(model.predict(X), leaf_by_leaf(model, X))
    assert not np.allclose(model.predict(X)[rows], before[rows])
    bias.data = torch.empty(0)
    bias.data = original.clone()
    assert_same(model.predict(X), before)
    # Same address and version, other strides: a square weight transposed.
    weight = operator.mix[0].weight  # (width, width, 1)
    weight.data = weight.data.transpose(0, 1)
    transposed = model.predict(X)
    assert_same(transposed, leaf_by_leaf(model, X))
    assert not np.allclose(transposed[rows], before[rows])
    weight.data = weight.data.transpose(0, 1)
    # A state dict loaded into an expert.
    state = copy.deepcopy(model.experts_[1].module_.state_dict())
    state["operator.lift.bias"] += 0.5
    model.experts_[1].module_.load_state_dict(state)
    assert_same(model.predict(X), leaf_by_leaf(model, X))
    assert not np.allclose(model.predict(X)[model.apply(X) == 1], before[model.apply(X) == 1])


def test_copies_and_pickles_start_without_a_stack(antiderivative_small):
    X, y = antiderivative_small
    model = MoNORegressor(n_leaves=4, **SMALL).fit(X, y)
    pred = model.predict(X)
    assert model._expert_stack.stack is not None
    for other in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        assert other._expert_stack.stack is None
        np.testing.assert_array_equal(other.predict(X), pred)
        assert other._expert_stack.stack is not None


def test_changes_besides_weights_rebuild_or_refuse_the_stack(antiderivative_small):
    X, y = antiderivative_small
    model = MoNORegressor(n_leaves=4, **SMALL).fit(X, y)
    model.predict(X)
    operator = model.experts_[2].module_.operator
    # A forward-pass attribute changed on one expert: the experts no longer
    # share an architecture and are evaluated leaf by leaf.
    form = "none" if operator.act.approximate == "tanh" else "tanh"
    operator.act.approximate = form
    assert_same(model.predict(X), leaf_by_leaf(model, X))
    assert model._expert_stack.stack is None
    # ... and on all of them: stacked again, with it.
    for net in model.experts_:
        net.module_.operator.act.approximate = form
    assert_same(model.predict(X), leaf_by_leaf(model, X))
    assert model._expert_stack.stack.module.act.approximate == form
    # A hook: a stacked pass would skip it, so the leaves are evaluated one by one.
    seen = []
    handle = operator.register_forward_hook(lambda *args: seen.append(1))
    expected = leaf_by_leaf(model, X)
    seen.clear()
    assert_same(model.predict(X), expected)
    assert model._expert_stack.stack is None and seen  # the hook ran in predict
    handle.remove()
    model.predict(X)
    assert model._expert_stack.stack is not None


def test_a_query_out_of_float32_range_spoils_no_other(antiderivative_small):
    X, y = antiderivative_small
    model = MoNORegressor(n_leaves=4, **SMALL).fit(X, y)
    clean = model.predict(X)
    bad = X.copy()
    bad[0, 3] = 1e300  # finite in float64, infinite in float32
    pred = model.predict(bad)
    assert np.isfinite(pred[1:]).all()
    assert_same(pred[1:], clean[1:])


def test_predict_leaves_the_random_state_alone(antiderivative_small):
    X, y = antiderivative_small
    model = MoNORegressor(n_leaves=4, **SMALL).fit(X, y)
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    model.predict(X)  # builds the stack
    assert model._expert_stack.stack is not None
    torch.testing.assert_close(torch.rand(3), expected)


def test_saved_models_and_old_pickle_protocols_stack(antiderivative_small, tmp_path):
    from sklearn_mono import load
    from sklearn_mono._regressor import _ExpertStack

    X, y = antiderivative_small
    model = MoNORegressor(n_leaves=4, **SMALL).fit(X, y)
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = load(path, device="cpu")
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert loaded._expert_stack.stack is not None
    holder = pickle.loads(pickle.dumps(model._expert_stack, protocol=0))
    assert isinstance(holder, _ExpertStack) and holder.stack is None


def test_other_activations_are_stacked_as_they_are(antiderivative_small):
    X, y = antiderivative_small
    model = MoNORegressor(n_leaves=4, **SMALL).fit(X, y)
    model.experts_[1].module_.operator.act = torch.nn.SiLU()
    # One expert differs: leaf by leaf. All of them: stacked, with SiLU.
    assert_same(model.predict(X), leaf_by_leaf(model, X))
    assert model._expert_stack.stack is None
    for net in model.experts_:
        net.module_.operator.act = torch.nn.SiLU()
    assert_same(model.predict(X), leaf_by_leaf(model, X))
    assert isinstance(model._expert_stack.stack.module.act, torch.nn.SiLU)
