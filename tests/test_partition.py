import numpy as np
import pytest

from sklearn_mono._partition import Partition, best_split


def _walk(tree, z):
    node = 0
    while tree.children_left[node] >= 0:
        go_left = z @ tree.direction[node] <= tree.threshold[node]
        node = tree.children_left[node] if go_left else tree.children_right[node]
    return tree.leaf_id[node]


def test_a_fresh_tree_is_one_leaf(rng):
    tree = Partition(3)
    assert tree.n_leaves == 1 and tree.depth == 0 and tree.n_params == 0
    assert np.array_equal(tree.apply(rng.normal(size=(5, 3))), np.zeros(5))


def test_splits_route_like_a_walk_down_the_tree(rng):
    tree = Partition(2)
    left, right = tree.split(0, np.array([1.0, 0.0]), 0.0)
    tree.split(right, np.array([0.0, 1.0]), 0.5)
    with pytest.raises(ValueError, match="already split"):
        tree.split(0, np.array([1.0, 0.0]), 0.0)
    assert tree.n_leaves == 3 and tree.depth == 2 and tree.n_params == 2 * 3
    # leaves are numbered by node id: node 1, then the right child's two
    np.testing.assert_array_equal(tree.leaf_nodes, [1, 3, 4])
    np.testing.assert_array_equal(tree.apply([[-1, 9], [1, 0], [1, 1]]), [0, 1, 2])
    W = rng.normal(size=(50, 2))
    routed = tree.apply(W)
    assert np.array_equal(routed, [_walk(tree, w) for w in W])
    # one row at a time routes as in a batch
    alone = np.concatenate([tree.apply(w[None]) for w in W])
    assert alone.dtype == routed.dtype and np.array_equal(alone, routed)


def test_best_split_finds_where_the_scores_change(rng):
    # Scores pull one way where z[1] <= 0.3 and the other way above it; the
    # other coordinate carries no signal.
    Z = rng.uniform(-1, 1, size=(400, 3))
    pull = np.where(Z[:, 1] <= 0.3, 1.0, -1.0)
    scores = pull[:, None] * [1.0, -2.0] + rng.normal(size=(400, 2))
    direction, threshold, gain = best_split(Z, scores, min_samples_leaf=5)
    assert abs(direction @ [0, 1, 0]) > 0.99
    assert abs(threshold * np.sign(direction[1]) - 0.3) < 0.05
    assert gain > 0


def test_best_split_ignores_a_few_extreme_scores(rng):
    # A change of the scores at z = 0.6 wins over three large scores at one
    # end; scores so large that they dominate still cannot cut off fewer than
    # a tenth of the cell.
    Z = rng.uniform(size=(300, 1))
    scores = np.where(Z <= 0.6, 1.0, -1.5) + rng.normal(size=(300, 4))
    end = np.argsort(Z[:, 0])[-3:]
    scores[end] *= 10
    _, threshold, _ = best_split(Z, scores, min_samples_leaf=1)
    assert abs(threshold - 0.6) < 0.05
    scores[end] *= 100
    _, threshold, _ = best_split(Z, scores, min_samples_leaf=1)
    assert 30 <= (Z[:, 0] <= threshold).sum() <= 270


def test_best_split_respects_min_samples_leaf_and_duplicates(rng):
    scores = rng.normal(size=(20, 2))
    assert best_split(np.zeros((20, 2)), scores, 1) is None  # nothing separates them
    Z = rng.normal(size=(20, 2))
    assert best_split(Z, scores, 11) is None
    direction, threshold, _ = best_split(Z, scores, 8)
    left = (Z @ direction <= threshold).sum()
    assert 8 <= left <= 12
