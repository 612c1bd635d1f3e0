"""The routing tree: hyperplane splits of encoded inputs, chosen where an expert's fit
changes across the inputs.

A query goes down the tree with one comparison per level, ``O(depth *
n_features)``. Splits are added one at a time by :func:`best_split`, which
reads the per-sample gradients of the expert being split (its *scores*).
"""

import numpy as np

# Least fraction of a cell's samples on either side of a split.
TRIM = 0.1


class Partition:
    """Binary tree of hyperplane splits; its leaves partition the encoding space.

    A fresh tree is one leaf, the root; :meth:`split` turns a leaf into two.

    Parameters
    ----------
    n_features : int
        Length of the encodings routed.

    Attributes
    ----------
    direction : ndarray of shape (n_nodes, n_features)
        Unit direction of each internal node's split (zeros at leaves).
    threshold : ndarray of shape (n_nodes,)
        Samples whose projection is ``<= threshold`` go left.
    children_left, children_right : ndarray of shape (n_nodes,)
        Child node ids, ``-1`` at leaves.
    parent : ndarray of shape (n_nodes,)
        Parent node id, ``-1`` at the root.
    node_depth : ndarray of shape (n_nodes,)
        Depth of each node, 0 at the root.
    leaf_nodes : ndarray of shape (n_leaves,)
        Node id of each leaf, in increasing order: leaf ``i`` is node ``leaf_nodes[i]``.
    leaf_id : ndarray of shape (n_nodes,)
        Leaf index of leaf nodes, ``-1`` elsewhere.
    """

    def __init__(self, n_features):
        self.n_features = n_features
        self.direction = np.zeros((1, n_features))
        self.threshold = np.zeros(1)
        self.children_left = np.full(1, -1)
        self.children_right = np.full(1, -1)
        self.parent = np.full(1, -1)
        self.node_depth = np.zeros(1, dtype=int)
        self._index_leaves()

    def split(self, node, direction, threshold):
        """Split leaf ``node`` by ``direction`` at ``threshold``; returns the new
        (left, right) node ids."""
        if self.children_left[node] >= 0:
            raise ValueError(f"node {node} is already split.")
        left, right = len(self.threshold), len(self.threshold) + 1
        self.direction[node], self.threshold[node] = direction, threshold
        self.children_left[node], self.children_right[node] = left, right
        self.direction = np.vstack([self.direction, np.zeros((2, self.n_features))])
        self.threshold = np.append(self.threshold, [0.0, 0.0])
        self.children_left = np.append(self.children_left, [-1, -1])
        self.children_right = np.append(self.children_right, [-1, -1])
        self.parent = np.append(self.parent, [node, node])
        self.node_depth = np.append(self.node_depth, [self.node_depth[node] + 1] * 2)
        self._index_leaves()
        return left, right

    def _index_leaves(self):
        is_leaf = self.children_left < 0
        self.leaf_nodes = np.flatnonzero(is_leaf)
        self.leaf_id = np.full(len(is_leaf), -1)
        self.leaf_id[is_leaf] = np.arange(is_leaf.sum())

    @property
    def depth(self):
        """Largest depth of a leaf: the number of comparisons a query needs."""
        return int(self.node_depth.max())

    @property
    def n_leaves(self):
        return len(self.leaf_nodes)

    @property
    def n_params(self):
        """Stored numbers needed to route: a direction and a threshold per split."""
        return int((self.children_left >= 0).sum()) * (self.n_features + 1)

    def apply(self, Z):
        """Leaf index of each row of ``Z``, all rows routed together."""
        Z = np.asarray(Z, dtype=np.float64)
        node = np.zeros(len(Z), dtype=int)
        for _ in range(self.depth):
            active = np.flatnonzero(self.children_left[node] >= 0)
            if len(active) == 0:
                break
            at = node[active]
            proj = np.einsum("ij,ij->i", Z[active], self.direction[at])
            node[active] = np.where(
                proj <= self.threshold[at], self.children_left[at], self.children_right[at]
            )
        return self.leaf_id[node]


def best_split(Z, scores, min_samples_leaf):
    """The hyperplane split of a cell across which its expert's scores change most.

    ``scores`` are per-sample gradients of the expert's loss (or any fixed
    projection of them). At the expert's fit they sum to about zero; a split
    whose sides pull the weights in opposite directions, a large
    ``|S_left|² / n_left + |S_right|² / n_right`` for the centred score sums
    ``S``, is where one set of weights cannot serve both sides, as in
    model-based recursive partitioning (Zeileis, Hothorn and Hornik, 2008).
    Directions tried: each encoding axis and the cell's principal directions.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_features)
        Encodings of the cell's samples.
    scores : ndarray of shape (n_samples, n_scores)
        Their score vectors.
    min_samples_leaf : int
        Fewest samples on either side, and at least a tenth of the cell.

    Returns
    -------
    split : tuple (direction, threshold, gain) or None
        None when no split leaves ``min_samples_leaf`` samples on each side.
    """
    Z = np.asarray(Z, dtype=np.float64)
    n = len(Z)
    if n < 2 * min_samples_leaf:
        return None
    # Trimmed, as maximally selected statistics are: near the ends a few large
    # scores would win by chance.
    smallest = max(min_samples_leaf, int(np.ceil(TRIM * n)))
    centred = scores - scores.mean(axis=0)
    _, _, principal = np.linalg.svd(Z - Z.mean(axis=0), full_matrices=False)
    best = None
    for direction in np.vstack([np.eye(Z.shape[1]), principal]):
        proj = Z @ direction
        order = np.argsort(proj, kind="stable")
        values = proj[order]
        sums = np.cumsum(centred[order], axis=0)[:-1]  # left sums for left sizes 1 .. n-1
        k = np.arange(1, n)
        gain = (sums**2).sum(axis=1) * n / (k * (n - k))
        valid = (np.diff(values) > 0) & (k >= smallest) & (k <= n - smallest)
        if not valid.any():
            continue
        i = np.flatnonzero(valid)[np.argmax(gain[valid])]
        if best is None or gain[i] > best[2]:
            best = (direction, 0.5 * (values[i] + values[i + 1]), float(gain[i]))
    return best
