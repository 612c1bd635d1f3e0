"""Per-sample losses and loss gradients of a fitted expert: what growing the
mixture's tree reads."""

import math

import numpy as np
import torch


def sample_losses(net, X, Y):
    """The loss of each sample under the fitted ``net``, in evaluation mode.

    Parameters
    ----------
    net : NeuralOperatorRegressor
        A fitted expert.
    X, Y : torch.Tensor
        Canonical inputs and targets.

    Returns
    -------
    losses : ndarray of shape (n_samples,)
    """
    net.module_.eval()
    with torch.inference_mode():
        out, Y = net._forward(X, 1024).to(net.device), Y.to(net.device)
        losses = [float(net.criterion_(out[i : i + 1], Y[i : i + 1])) for i in range(len(X))]
    return np.array(losses)


def sample_scores(net, X, Y, n_components=32, random_state=0):
    """Per-sample gradients of the loss with respect to the weights of ``net``.

    Taken in evaluation mode, each projected on the same ``n_components``
    random directions, which keep the norms of their sums
    (Johnson-Lindenstrauss). The module must run under
    :func:`torch.func.vmap`.

    Parameters
    ----------
    net : NeuralOperatorRegressor
        A fitted expert.
    X, Y : torch.Tensor
        Canonical inputs and targets.
    n_components : int, default=32
        Length of the projected gradients.
    random_state : int, default=0
        Seeds the projection.

    Returns
    -------
    scores : ndarray of shape (n_samples, n_components)
    """
    module = net.module_.eval()
    names, weights = zip(*[(k, p.detach()) for k, p in module.named_parameters()])
    generator = torch.Generator().manual_seed(random_state)
    projections = [
        torch.randn(2 * w.numel() if w.is_complex() else w.numel(), n_components,
                    generator=generator).to(net.device) / math.sqrt(n_components)
        for w in weights
    ]

    def loss(params, x, y):
        out = torch.func.functional_call(module, dict(zip(names, params)), (x[None],))
        return net.criterion_(out, y[None])

    per_sample = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0, 0))
    scores = []
    for i in range(0, len(X), 64):
        grads = per_sample(weights, X[i : i + 64].to(net.device), Y[i : i + 64].to(net.device))
        flat = [(torch.view_as_real(g) if g.is_complex() else g).flatten(1) for g in grads]
        scores.append(sum(g @ p for g, p in zip(flat, projections)).cpu())
    return torch.cat(scores).numpy()
