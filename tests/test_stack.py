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


def test_stacked_pooled_outputs(antiderivative_small):
    X, y = antiderivative_small
    targets = np.stack([y.mean(axis=1), y[:, -1]], axis=1)  # two numbers per sample
    model = MoNORegressor(n_leaves=4, **SMALL).fit(X, targets)
    pred = model.predict(X)
    assert model._expert_stack.stack is not None and pred.shape == (len(X), 2)
    assert_same(pred, leaf_by_leaf(model, X))


def test_2d_grids_stack_only_a_few_queries_per_leaf():
    X, y = make_smoothing_2d(n_samples=60, resolution=12, random_state=0)
    model = MoNORegressor(n_leaves=4, **SMALL).fit(X, y)
    leaves = model.apply(X)
    assert len(set(leaves)) == 4
    # Two queries per leaf: stacked.
    few = np.concatenate([np.flatnonzero(leaves == leaf)[:2] for leaf in range(4)])
    assert_same(model.predict(X[few]), leaf_by_leaf(model, X[few]))
    assert model._expert_stack.stack is not None
    # Every sample (15 per leaf, more than 8): one pass per leaf.
    model._expert_stack.stack = None
    assert_same(model.predict(X), leaf_by_leaf(model, X))
    assert model._expert_stack.stack is None


def test_no_stack_for_one_leaf_or_lopsided_batches(antiderivative_small):
    X, y = antiderivative_small
    model = MoNORegressor(n_leaves=4, **SMALL).fit(X, y)
    leaves = model.apply(X)
    one_leaf = np.flatnonzero(leaves == leaves[0])
    model.predict(X[one_leaf])
    assert model._expert_stack.stack is None
    # Eight queries of one leaf and one of another: padding all four leaves
    # to eight would evaluate 32 queries for 9.
    other = np.flatnonzero(leaves != leaves[0])[:1]
    lopsided = np.concatenate([one_leaf[:8], other])
    assert len(one_leaf) >= 8
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
