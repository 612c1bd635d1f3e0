"""A balanced k-d-tree-like partition of encoded inputs.

Grown best-first: the largest cell is split at the median of its projection
on one direction, until ``n_leaves`` cells exist or none can be split without
leaving fewer than ``min_samples_leaf`` samples on a side. A query costs
``O(depth * n_features)``.
"""

import heapq

import numpy as np


class KDPartition:
    """Partition of a vector space into cells, each a leaf of a binary tree.

    Parameters
    ----------
    n_leaves : int
        Number of cells wanted.
    min_samples_leaf : int, default=1
        Fewest training samples a cell may hold.
    split : {"pca", "widest"}, default="pca"
        Direction along which a cell is halved: its principal direction, or
        its coordinate of largest spread.

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
    leaf_id : ndarray of shape (n_nodes,)
        Leaf index (0 .. n_leaves - 1) of leaf nodes, ``-1`` elsewhere.
    node_depth : ndarray of shape (n_nodes,)
        Depth of each node, 0 at the root.
    leaf_samples : list of ndarray
        Indices of the training samples of each leaf.
    """

    def __init__(self, n_leaves, min_samples_leaf=1, split="pca"):
        self.n_leaves = n_leaves
        self.min_samples_leaf = min_samples_leaf
        self.split = split

    def fit(self, Z):
        """Grow the tree on the rows of ``Z``; returns self."""
        Z = np.asarray(Z, dtype=np.float64)
        n, d = Z.shape
        directions, thresholds, left, right, parent, depth, samples = [], [], [], [], [], [], []

        def add(idx, par, dep):
            directions.append(np.zeros(d))
            thresholds.append(0.0)
            left.append(-1)
            right.append(-1)
            parent.append(par)
            depth.append(dep)
            samples.append(idx)
            return len(samples) - 1

        root = add(np.arange(n), -1, 0)
        heap = [(-n, root)]
        n_cells = 1
        while heap and n_cells < self.n_leaves:
            _, node = heapq.heappop(heap)
            idx = samples[node]
            found = self._find_split(Z[idx])
            if found is None:
                continue
            directions[node], thresholds[node], goes_left = found
            left[node] = add(idx[goes_left], node, depth[node] + 1)
            right[node] = add(idx[~goes_left], node, depth[node] + 1)
            for child in (left[node], right[node]):
                heapq.heappush(heap, (-len(samples[child]), child))
            n_cells += 1

        self.direction = np.array(directions)
        self.threshold = np.array(thresholds)
        self.children_left = np.array(left)
        self.children_right = np.array(right)
        self.parent = np.array(parent)
        self.node_depth = np.array(depth)
        is_leaf = self.children_left < 0
        self.leaf_id = np.full(len(samples), -1)
        self.leaf_id[is_leaf] = np.arange(is_leaf.sum())
        self.leaf_nodes = np.flatnonzero(is_leaf)
        self.leaf_samples = [samples[i] for i in self.leaf_nodes]
        return self

    def _find_split(self, Zc):
        """Median split of one cell, or None when it cannot be split."""
        m = len(Zc)
        lo = self.min_samples_leaf
        if m < 2 * lo:
            return None
        centred = Zc - Zc.mean(axis=0)
        if self.split == "pca":
            _, _, vt = np.linalg.svd(centred, full_matrices=False)
            candidates = list(vt)
        else:
            order = np.argsort(-centred.std(axis=0), kind="stable")
            candidates = list(np.eye(Zc.shape[1])[order])
        for direction in candidates:
            proj = Zc @ direction
            values = np.sort(proj)
            gaps = np.flatnonzero(np.diff(values) > 0) + 1  # sizes of valid left sides
            gaps = gaps[(gaps >= lo) & (gaps <= m - lo)]
            if len(gaps) == 0:
                continue
            k = gaps[np.argmin(np.abs(gaps - m / 2))]
            threshold = 0.5 * (values[k - 1] + values[k])
            return direction, threshold, proj <= threshold
        return None

    @property
    def depth(self):
        """Largest depth of a leaf: the number of comparisons a query needs."""
        return int(self.node_depth.max())

    @property
    def n_leaves_fitted(self):
        return len(self.leaf_nodes)

    @property
    def n_params(self):
        """Stored numbers needed to route: a direction and a threshold per split."""
        n_internal = int((self.children_left >= 0).sum())
        if self.split == "widest":
            return 2 * n_internal
        return n_internal * (self.direction.shape[1] + 1)

    def training_samples(self, Z, overlap):
        """Sorted training indices of each leaf, where at every split the
        fraction ``overlap`` of the node's samples (of ``Z``, the encodings of
        fit) closest to the threshold goes to both children."""
        if overlap <= 0:
            return self.leaf_samples
        Z = np.asarray(Z, dtype=np.float64)
        members = {0: np.arange(len(Z))}
        for node in range(len(self.threshold)):  # parents come before children
            left = self.children_left[node]
            if left < 0:
                continue
            idx = members.pop(node)
            proj = Z[idx] @ self.direction[node]
            offset = proj - self.threshold[node]
            margin = np.quantile(np.abs(offset), overlap)
            members[left] = idx[offset <= margin]
            members[self.children_right[node]] = idx[offset > -margin]
        return [members[node] for node in self.leaf_nodes]

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
