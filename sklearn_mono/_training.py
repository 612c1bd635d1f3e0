"""Training of a mixture's experts: the root, then the tree grown where leaves pay."""

import copy
import heapq
import warnings

import numpy as np
import torch
from joblib import Parallel, cpu_count, delayed, effective_n_jobs
from skorch.callbacks import Callback

from ._partition import Partition, best_split
from .experts._estimator import TrainingFailed, _as_tensor
from .experts._sample_gradients import sample_losses, sample_scores

def resolve_device(device):
    """``device`` checked against this machine; "auto" becomes "cuda" when available."""
    head, _, index = device.partition(":")
    if device not in ("auto", "cpu", "cuda") and not (head == "cuda" and index.isdigit()):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}.")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} was requested but CUDA is not available on this "
                f"machine; use device='auto' or device='cpu'."
            )
        if int(index or 0) >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} was requested but only {torch.cuda.device_count()} "
                f"CUDA device(s) are visible."
            )
    return device


def leaf_devices(device, n_leaves):
    """Device of each leaf: plain "cuda" spreads them over the visible GPUs."""
    if device == "cuda" and torch.cuda.device_count() > 1:
        return [f"cuda:{i % torch.cuda.device_count()}" for i in range(n_leaves)]
    return [device] * n_leaves


class KeepBest(Callback):
    """Keep the weights, the starting ones included, whose mean loss on held-out
    samples ``(X, y)`` (canonical tensors) is lowest; restore them when training ends.

    Attributes
    ----------
    losses_ : ndarray of shape (n_held_out,)
        Per-sample held-out losses of the weights kept.
    """

    def __init__(self, X, y):
        self.X, self.y = X, y

    def on_train_begin(self, net, **kwargs):
        self.losses_ = sample_losses(net, self.X, self.y)
        self.state_ = copy.deepcopy(net.module_.state_dict())

    def on_epoch_end(self, net, **kwargs):
        losses = sample_losses(net, self.X, self.y)
        if losses.mean() < self.losses_.mean():
            self.losses_, self.state_ = losses, copy.deepcopy(net.module_.state_dict())

    def on_train_end(self, net, **kwargs):
        net.module_.load_state_dict(self.state_)


def fine_tune(parent, X, y, X_held, y_held, *, max_epochs, random_state, device, n_threads=None):
    """A copy of the fitted ``parent`` trained further on ``(X, y)`` by
    ``partial_fit`` for up to ``max_epochs`` with the parent's learning rate and
    a new cosine schedule, with ``n_threads`` torch threads when given. The weights
    kept are those of the epoch, the parent's own included, with the lowest
    loss on the held-out ``(X_held, y_held)``: a leaf is pulled back to its
    parent as far as its cell's held-out samples ask.

    Returns the copy (None when training failed at every learning rate), its
    per-sample held-out losses, and the messages of the warnings raised
    meanwhile, which would not reach the user from a joblib worker.
    """
    threads = torch.get_num_threads()
    if n_threads is not None:
        torch.set_num_threads(n_threads)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            leaf = copy.deepcopy(parent)
            if device != parent.device:
                leaf.module_.to(device)
                leaf.criterion_.to(device)
            keep = KeepBest(_as_tensor(X_held), _as_tensor(y_held))
            callbacks = leaf.callbacks  # the copy's own
            leaf.set_params(
                lr=parent.lr_, max_epochs=max_epochs, random_state=random_state, device=device,
                callbacks=list(callbacks or []) + [("keep_best", keep)],
            )
            leaf.initialize_callbacks()
            try:
                leaf.partial_fit(X, y)
            except TrainingFailed as error:
                return None, None, [str(w.message) for w in caught] + [str(error)]
            finally:
                leaf.set_params(callbacks=callbacks)  # no held-out data in the model
                leaf.initialize_callbacks()
        return leaf, keep.losses_, [str(w.message) for w in caught]
    finally:
        torch.set_num_threads(threads)


# How joblib's process backend (loky) and Dask report a worker process that died
# with its tasks; named, since Dask need not be installed.
_LOST_WORKER = {"TerminatedWorkerError", "KilledWorker", "FutureCancelledError", "CancelledError"}


def _in_parallel(jobs, n_jobs):
    """``jobs`` run by joblib, run again once when a worker process died with some of
    them (the jobs are seeded, so a rerun gives what an undisturbed run gives)."""
    for attempt in range(2):
        try:
            return Parallel(n_jobs=n_jobs)(jobs)
        except BaseException as error:
            if type(error).__name__ not in _LOST_WORKER:
                raise
            if attempt:
                raise RuntimeError(
                    f"A worker process training the leaves' experts died twice "
                    f"({type(error).__name__}); the fit was stopped. Check the workers' "
                    f"memory and logs, or fit with fewer parallel jobs."
                ) from error
            warnings.warn(
                f"A worker process died while training the leaves' experts "
                f"({type(error).__name__}); training them again.",
                UserWarning,
            )


def grow(root, F, Y, Z, *, max_leaves, min_samples_leaf, held_out, max_epochs, rng, device,
         n_jobs, bar):
    """Grow the routing tree from the fitted ``root`` where splitting pays.

    Best-first, from the leaf whose held-out samples have the largest summed
    loss: the leaf's
    samples are split where its expert's scores change most
    (:func:`~sklearn_mono._partition.best_split`), each side gets a copy of
    the leaf's expert fine-tuned on its training samples (:func:`fine_tune`),
    and the split is kept only when the children lower the held-out loss of
    the leaf's samples by more than one standard error of the paired
    differences. A leaf whose split is refused is not tried again.

    Parameters
    ----------
    root : NeuralOperatorRegressor
        Expert fitted on all samples.
    F, Y : ndarray
        Canonical inputs and targets.
    Z : ndarray of shape (n_samples, n_features)
        Routing encodings of ``F``.
    max_leaves, min_samples_leaf : int
        Most leaves; fewest training samples (held-out ones not counted) a
        split may leave on either side.
    held_out : ndarray of bool of shape (n_samples,)
        Samples that judge splits and stop fine-tuning; leaves do not train on them.
    max_epochs : int
        Most fine-tuning epochs of a leaf.
    rng : RandomState
        Seeds the scores' projections and the leaves' training.
    device : str
    n_jobs : int or None
        Both sides of a split are fine-tuned concurrently through joblib.
    bar : tqdm
        Progress bar, updated per expert trained.

    Returns
    -------
    tree : Partition
    experts : list of NeuralOperatorRegressor
        The expert of each leaf of ``tree``.
    """
    tree = Partition(Z.shape[1])
    if max_leaves == 1 or held_out.sum() < 2:
        return tree, [root]  # nothing to split, or too few samples to judge a split
    experts, samples = {0: root}, {0: np.arange(len(F))}
    losses = np.zeros(len(F))  # of each held-out sample, by its leaf's expert
    losses[held_out] = sample_losses(root, _as_tensor(F[held_out]), _as_tensor(Y[held_out]))
    heap = [(-losses.sum(), 0)]
    n_workers = min(effective_n_jobs(n_jobs), 2)
    devices = leaf_devices(device, 2)
    threads = None if n_workers == 1 else max(1, cpu_count() // n_workers)
    while heap and tree.n_leaves < max_leaves:
        _, node = heapq.heappop(heap)
        idx, parent = samples[node], experts[node]
        train = idx[~held_out[idx]]
        scores = sample_scores(
            parent, _as_tensor(F[train]), _as_tensor(Y[train]),
            random_state=int(rng.randint(2**31)),
        )
        found = best_split(Z[train], scores, min_samples_leaf)
        if found is None:
            continue
        direction, threshold, _ = found
        goes_left = Z[idx] @ direction <= threshold
        sides = [idx[goes_left], idx[~goes_left]]
        parts = [(side[~held_out[side]], side[held_out[side]]) for side in sides]
        if not all(len(held) for _, held in parts):
            continue  # a side without held-out samples cannot be judged
        jobs = [
            delayed(fine_tune)(
                parent, F[train], Y[train], F[held], Y[held], max_epochs=max_epochs,
                random_state=int(rng.randint(2**31)), device=on, n_threads=threads,
            )
            for (train, held), on in zip(parts, devices)
        ]
        results = _run(jobs, n_jobs, n_workers)
        for _, _, notes in results:
            bar.update(1)
            for note in notes:
                warnings.warn(f"Node {node}: {note}", UserWarning)
        if any(net is None for net, _, _ in results):
            warnings.warn(
                f"A split of node {node} was dropped: an expert could not be trained at "
                f"any learning rate tried.", UserWarning,
            )
            continue
        before = np.concatenate([losses[held] for _, held in parts])
        after = np.concatenate([side_losses for _, side_losses, _ in results])
        if not _pays(before, after):
            continue
        children = tree.split(node, direction, threshold)
        for child, side, (_, held), (net, side_losses, _) in zip(children, sides, parts, results):
            experts[child], samples[child] = net, side
            losses[held] = side_losses
            heapq.heappush(heap, (-side_losses.sum(), child))
    return tree, [experts[node] for node in tree.leaf_nodes]


def _pays(before, after):
    """Whether held-out losses ``after`` a split are lower than ``before`` it by more
    than one standard error of their paired differences."""
    gain = before - after
    if len(gain) < 2:
        return False
    return gain.mean() > gain.std(ddof=1) / np.sqrt(len(gain))


def _run(jobs, n_jobs, n_workers):
    if n_workers == 1:
        return [function(*args, **kwargs) for function, args, kwargs in jobs]
    return _in_parallel(jobs, n_jobs)
