"""Training of a mixture's experts: the root, then every leaf warm-started from it."""

import copy
import warnings

import torch
from joblib import Parallel, cpu_count, delayed, effective_n_jobs

# Leaves fine-tune from the root expert at this fraction of its learning rate:
# a full restart of the step size throws away much of what the root learned.
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
    """A copy of the fitted ``root`` expert trained further on ``(X, y)``.

    The copy keeps the root's weights and standardisation and trains for
    ``max_epochs`` at ``FINETUNE_LR_FACTOR`` times the root's learning rate,
    through the expert's ``partial_fit``. A module-level function, so that
    joblib can send it to worker processes; with ``n_threads``, torch uses
    that many threads meanwhile.

    Returns
    -------
    net : NeuralOperatorRegressor or None
        The trained copy, or None when its training failed at every
        learning rate tried.
    notes : list of str
        The warnings raised in training, for the caller to pass on (those
        raised in joblib workers would not reach the user).
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


def fine_tune_leaves(root, X, y, cells, seeds, *, max_epochs, device, n_jobs, bar):
    """Fine-tune one copy of ``root`` per cell of samples, side by side with joblib.

    A leaf whose training fails at every learning rate falls back to a copy
    of the root expert, with a warning.

    Returns
    -------
    experts : list of NeuralOperatorRegressor
        One trained expert per cell.
    """
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
        results = Parallel(n_jobs=n_jobs, return_as="generator")(jobs)
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
