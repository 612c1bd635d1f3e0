"""Spectral convolutions: learned linear maps on the lowest Fourier modes."""

from itertools import product
from math import sqrt

import numpy as np
import torch
from torch import nn


class SpectralConv(nn.Module):
    """Fourier layer ``v -> IFFT(R · FFT(v))`` on 1-D, 2-D or 3-D grids.

    The weights ``R`` act on the frequencies with ``-n_modes <= k_i < n_modes``
    (and ``0 <= k_last < n_modes`` on the last axis, the half spectrum of a
    real FFT); the other frequencies are set to zero. The weights do not
    depend on the grid, so the layer applies at any resolution; a grid with
    ``n`` points along an axis uses only the frequencies it resolves there,
    ``|k| <= (n - 1) // 2``.

    Axes between the channels and the grid's last ``n_dim`` axes are carried
    along: the layer acts on each of their points alike.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input and output functions.
    n_dim : int
        Number of grid axes (1, 2 or 3).
    n_modes : int
        Modes kept along each axis.
    even : bool, default=False
        Real weights instead of complex ones (half as many numbers): the
        layer's convolution kernel is then even, ``k(-x) = k(x)``, and the
        layer commutes with reflecting the periodic grid.
    groups : int, default=1
        Split the channels into this many groups, each mixed only within
        itself, as in :class:`torch.nn.Conv1d`.

    Examples
    --------
    >>> import torch
    >>> from sklearn_mono.experts import SpectralConv
    >>> layer = SpectralConv(2, 3, n_dim=2, n_modes=4)
    >>> layer(torch.zeros(5, 2, 16, 16)).shape
    torch.Size([5, 3, 16, 16])
    """

    def __init__(self, in_channels, out_channels, n_dim, n_modes, *, even=False, groups=1):
        super().__init__()
        _check_n_dim(type(self), n_dim)
        _check_groups(type(self), in_channels, out_channels, groups)
        if not isinstance(even, (bool, np.bool_)):
            raise TypeError(f"even must be True or False, got {even!r}.")
        self.n_dim = n_dim
        self.n_modes = n_modes
        self.even = bool(even)
        self.groups = int(groups)
        # One block of weights per sign pattern of the non-last axes; complex
        # weights are stored as real pairs (the last axis).
        out_group = out_channels // groups
        shape = (2 ** (n_dim - 1), in_channels, out_group) + (n_modes,) * n_dim
        shape += () if self.even else (2,)
        scale = sqrt(2.0) / (in_channels // groups * out_group)
        self.weight = nn.Parameter(scale * torch.rand(shape))

    def complex_weight(self):
        """The weights as complex numbers, ``(blocks, in, out / groups, *modes)``."""
        if self.even:
            return torch.complex(self.weight, torch.zeros_like(self.weight))
        return torch.view_as_complex(self.weight)

    def forward(self, x):
        dims = tuple(range(-self.n_dim, 0))
        grid = x.shape[-self.n_dim :]
        coef = torch.fft.rfftn(x, dim=dims, norm="forward")
        out = coef.new_zeros((x.shape[0], self.weight.shape[2] * self.groups) + coef.shape[2:])
        weight = self.complex_weight()
        m = self.n_modes
        for block, signs in enumerate(product((1, -1), repeat=self.n_dim - 1)):
            data, held = [], []
            for sign, n in zip(signs, grid):
                top = (n - 1) // 2  # the highest frequency this axis resolves
                if sign > 0:
                    k = min(m, top + 1)
                    data.append(slice(0, k))
                    held.append(slice(0, k))
                else:  # frequencies -k .. -1
                    k = min(m, top)
                    data.append(slice(n - k, n))
                    held.append(slice(m - k, m))
            k = min(m, (grid[-1] - 1) // 2 + 1)
            data.append(slice(0, k))
            held.append(slice(0, k))
            part = (slice(None), slice(None)) + (Ellipsis,) + tuple(data)
            w = weight[(block, slice(None), slice(None)) + tuple(held)]
            c = coef[part].unflatten(1, (self.groups, -1))
            w = w.unflatten(0, (self.groups, -1))
            out[part] = torch.einsum("bgi...,gio...->bgo...", c, w).flatten(1, 2)
        return torch.fft.irfftn(out, s=grid, dim=dims, norm="forward")


class FactorizedSpectralConv(nn.Module):
    """Fourier layer acting on one axis at a time: ``v -> Σ_a IFFT_a(R_a · FFT_a(v))``.

    Each grid axis ``a`` has its own one-dimensional :class:`SpectralConv`,
    applied along that axis at every point of the others, and the results are
    summed (the factorised Fourier layer of Tran et al., 2023). Weights grow
    with the number of axes instead of with its power. On a 1-D grid it is
    the same layer as :class:`SpectralConv`.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input and output functions.
    n_dim : int
        Number of grid axes (1, 2 or 3).
    n_modes : int
        Modes kept along each axis.
    even : bool, default=False
        Real weights on every axis: the layer then commutes with reflecting
        any one axis of the periodic grid.
    groups : int, default=1
        Independent groups of channels, as in :class:`SpectralConv`.

    Examples
    --------
    >>> import torch
    >>> from sklearn_mono.experts import FactorizedSpectralConv
    >>> layer = FactorizedSpectralConv(2, 3, n_dim=2, n_modes=4)
    >>> layer(torch.zeros(5, 2, 16, 12)).shape
    torch.Size([5, 3, 16, 12])
    """

    def __init__(self, in_channels, out_channels, n_dim, n_modes, *, even=False, groups=1):
        super().__init__()
        _check_n_dim(type(self), n_dim)
        _check_groups(type(self), in_channels, out_channels, groups)
        self.n_dim = n_dim
        self.axes = nn.ModuleList(
            SpectralConv(in_channels, out_channels, 1, n_modes, even=even, groups=groups)
            for _ in range(n_dim)
        )

    def forward(self, x):
        out = 0
        for axis, layer in enumerate(self.axes):
            dim = x.ndim - self.n_dim + axis
            out = out + layer(x.movedim(dim, -1)).movedim(-1, dim)
        return out


def _check_n_dim(cls, n_dim):
    if n_dim not in (1, 2, 3):
        raise ValueError(f"{cls.__name__} supports 1, 2 or 3 grid axes, got {n_dim}.")


def _check_groups(cls, in_channels, out_channels, groups):
    if isinstance(groups, (bool, np.bool_)) or not isinstance(groups, (int, np.integer)):
        raise TypeError(f"{cls.__name__}: groups must be a positive int, got {groups!r}.")
    if groups < 1 or in_channels % groups or out_channels % groups:
        raise ValueError(
            f"{cls.__name__}: groups must be a positive divisor of both in_channels "
            f"({in_channels}) and out_channels ({out_channels}), got {groups}."
        )
