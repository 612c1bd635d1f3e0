import numpy as np
import pytest

from sklearn_mono._partition import KDPartition


def _walk(tree, z):
    node = 0
    while tree.children_left[node] >= 0:
        go_left = z @ tree.direction[node] <= tree.threshold[node]
        node = tree.children_left[node] if go_left else tree.children_right[node]
    return tree.leaf_id[node]


@pytest.mark.parametrize("split", ["pca", "widest"])
@pytest.mark.parametrize("n_leaves", [1, 2, 4, 5, 8])
def test_balanced_leaves_and_routing(split, n_leaves, rng):
    Z = rng.normal(size=(400, 6)) * [5, 3, 1, 1, 1, 1]
    tree = KDPartition(n_leaves, min_samples_leaf=5, split=split).fit(Z)
    assert tree.n_leaves_fitted == n_leaves
    sizes = np.array([len(s) for s in tree.leaf_samples])
    assert sizes.sum() == 400
    # best-first median splits: no leaf is more than twice another
    assert sizes.max() <= 2 * sizes.min() + 1
    assert tree.depth == int(np.ceil(np.log2(n_leaves)))
    leaves = tree.apply(Z)
    for leaf, samples in enumerate(tree.leaf_samples):
        assert np.all(leaves[samples] == leaf)
    # vectorised routing equals a walk down the tree, on unseen points too
    W = rng.normal(size=(50, 6)) * 4
    assert np.array_equal(tree.apply(W), [_walk(tree, w) for w in W])
    # One row at a time (its own path) routes as in a batch, the training
    # points on the median splits included.
    for batch, routed in ((Z, leaves), (W, tree.apply(W))):
        alone = np.concatenate([tree.apply(row[None]) for row in batch])
        assert alone.dtype == routed.dtype and np.array_equal(alone, routed)


def test_widest_splits_on_the_widest_coordinate(rng):
    Z = rng.normal(size=(100, 3)) * [1, 10, 1]
    tree = KDPartition(2, split="widest").fit(Z)
    assert np.array_equal(tree.direction[0], [0, 1, 0])
    assert tree.n_params == 2


def test_pca_splits_on_principal_direction(rng):
    t = rng.normal(size=200)
    Z = np.c_[t, t] + 0.01 * rng.normal(size=(200, 2))
    tree = KDPartition(2, split="pca").fit(Z)
    assert abs(abs(tree.direction[0] @ [1, 1]) / np.sqrt(2) - 1) < 1e-3
    assert tree.n_params == 3  # a 2-D direction and a threshold


def test_min_samples_leaf_and_duplicates(rng):
    Z = np.zeros((20, 2))
    tree = KDPartition(4).fit(Z)  # identical points cannot be separated
    assert tree.n_leaves_fitted == 1
    Z = rng.normal(size=(30, 2))
    tree = KDPartition(8, min_samples_leaf=10).fit(Z)
    assert min(len(s) for s in tree.leaf_samples) >= 10
    assert tree.n_leaves_fitted < 8


def test_overlapping_training_samples(rng):
    Z = rng.normal(size=(200, 4))
    tree = KDPartition(4).fit(Z)
    plain = tree.training_samples(Z, 0.0)
    wide = tree.training_samples(Z, 0.2)
    for a, b in zip(plain, wide):
        assert set(a) <= set(b)
        assert len(b) > len(a)
    assert sum(map(len, wide)) < 2 * 200
