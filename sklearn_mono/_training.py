"""Training of a mixture's experts: the root, then every leaf warm-started from it."""

import copy
import warnings

import torch
from joblib import Parallel, cpu_count, delayed, effective_n_jobs

# Leaves fine-tune from the root at this fraction of its learning rate.
FINETUNE_LR_FACTOR = 0.3


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
    """Device of each leaf: plain "cuda" spreads the leaves over all visible GPUs."""
    if device == "cuda" and torch.cuda.device_count() > 1:
        return [f"cuda:{i % torch.cuda.device_count()}" for i in range(n_leaves)]
    return [device] * n_leaves


def fine_tune(root, X, y, *, max_epochs, random_state, device, n_threads=None):
    """A copy of the fitted ``root`` trained further on ``(X, y)`` by ``partial_fit``,
    for ``max_epochs`` at ``FINETUNE_LR_FACTOR`` times the root's learning rate,
    with ``n_threads`` torch threads when given.

    Returns the copy (None when training failed at every learning rate) and
    the messages of the warnings raised meanwhile, which would not reach the
    user from a joblib worker.
    """
    threads = torch.get_num_threads()
    if n_threads is not None:
        torch.set_num_threads(n_threads)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            leaf = copy.deepcopy(root)
            if device != root.device:
                leaf.module_.to(device)
                leaf.criterion_.to(device)
            leaf.set_params(
                lr=root.lr_ * FINETUNE_LR_FACTOR, max_epochs=max_epochs,
                random_state=random_state, device=device,
            )
            try:
                leaf.partial_fit(X, y)
            except RuntimeError as error:
                return None, [str(w.message) for w in caught] + [str(error)]
        return leaf, [str(w.message) for w in caught]
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


def fine_tune_leaves(root, X, y, cells, seeds, *, max_epochs, device, n_jobs, bar):
    """One copy of ``root`` fine-tuned per cell of samples, side by side with joblib;
    a copy of the root itself, with a warning, where training fails."""
    devices = leaf_devices(device, len(cells))
    n_workers = min(effective_n_jobs(n_jobs), len(cells))
    threads = None if n_workers == 1 else max(1, cpu_count() // n_workers)
    jobs = [
        delayed(fine_tune)(
            root, X[idx], y[idx], max_epochs=max_epochs, random_state=int(seed),
            device=devices[leaf], n_threads=threads,
        )
        for leaf, (idx, seed) in enumerate(zip(cells, seeds))
    ]
    if n_workers == 1:
        results = (function(*args, **kwargs) for function, args, kwargs in jobs)
    else:
        results = _in_parallel(jobs, n_jobs)
    experts = []
    for leaf, (net, notes) in enumerate(results):
        bar.update(1)
        for note in notes:
            warnings.warn(f"Leaf {leaf}: {note}", UserWarning)
        if net is None:
            warnings.warn(
                f"Leaf {leaf} could not be trained at any learning rate tried; it falls "
                f"back to the root expert, trained on all samples.",
                UserWarning,
            )
            net = copy.deepcopy(root)
        experts.append(net)
    return experts
