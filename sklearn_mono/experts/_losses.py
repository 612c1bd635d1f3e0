"""Training losses and the standardising wrapper of an operator."""

import torch
from torch import nn


class Standardized(nn.Module):
    """Wrap an operator so that it reads and writes data in physical units.

    The operator sees inputs standardised per channel and its outputs are
    scaled back. In training mode, an operator with several members (an
    :class:`~sklearn_mono.experts.FNO` with ``n_members > 1``) gives each
    member's prediction, ``(n, n_members, ...)``, so the losses train each
    member on its own error; in evaluation mode, their mean.

    Parameters
    ----------
    operator : torch.nn.Module
        Maps standardised inputs to standardised outputs.
    x_shift, x_scale, y_shift, y_scale : torch.Tensor
        Per-channel statistics of inputs and outputs, broadcastable to them.
    """

    def __init__(self, operator, x_shift, x_scale, y_shift, y_scale):
        super().__init__()
        self.operator = operator
        self.register_buffer("x_shift", x_shift)
        self.register_buffer("x_scale", x_scale)
        self.register_buffer("y_shift", y_shift)
        self.register_buffer("y_scale", y_scale)

    def forward(self, x):
        x = (x - self.x_shift) / self.x_scale
        if self.training and getattr(self.operator, "n_members", 1) > 1:
            z = self.operator.members(x)  # the statistics broadcast over members
        else:
            z = self.operator(x)
        return z * self.y_scale + self.y_shift


def _member_axis(pred, target):
    """``target`` with a member axis when ``pred`` has one more axis."""
    return target.unsqueeze(1) if pred.ndim == target.ndim + 1 else target


class RelativeL2Loss(nn.Module):
    """Mean over samples of ``||pred - target|| / ||target||``, norms over all
    channels and grid points; with a member axis in ``pred``, each member's
    error counts on its own.

    Parameters
    ----------
    floor : float, default=1e-3
        Smallest denominator, as a fraction of the batch's mean target norm,
        so that targets equal to zero do not divide by zero.
    """

    def __init__(self, floor=1e-3):
        super().__init__()
        self.floor = floor

    def forward(self, pred, target):
        start = 2 if pred.ndim == target.ndim + 1 else 1
        target = _member_axis(pred, target)
        error = (pred - target).flatten(start).norm(dim=-1)
        size = target.flatten(start).norm(dim=-1)
        floor = self.floor * size.mean()
        size = torch.where(floor > 0, torch.maximum(size, floor), torch.ones_like(size))
        return (error / size).mean()


class StandardizedMSELoss(nn.Module):
    """Mean squared error in units of each output's standard deviation.

    Parameters
    ----------
    scale : torch.Tensor
        Per-output standard deviations, broadcastable to the targets.
    """

    def __init__(self, scale):
        super().__init__()
        self.register_buffer("scale", torch.as_tensor(scale))

    def forward(self, pred, target):
        return (((pred - _member_axis(pred, target)) / self.scale) ** 2).mean()
