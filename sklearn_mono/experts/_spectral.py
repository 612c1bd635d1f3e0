"""Spectral convolutions: learned linear maps on the lowest Fourier modes."""

from itertools import product
from math import sqrt

import numpy as np
import torch
from torch import nn


class SpectralConv(nn.Module):
    """Fourier layer ``v -> IFFT(R · FFT(v))`` on 1-D, 2-D or 3-D grids.

    ``R`` acts on the frequencies ``-n_modes <= k_i < n_modes`` (non-negative
    on the last axis, a real FFT's half spectrum) and zeroes the others, so
    the layer applies at any resolution, using on an axis of ``n`` points
    the frequencies ``|k| <= (n - 1) // 2``. Axes between the channels and
    the last ``n_dim`` axes are carried along.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input and output functions.
    n_dim : int
        Number of grid axes (1, 2 or 3).
    n_modes : int
        Modes kept along each axis.
    even : bool, default=False
        Real weights: an even kernel, so the layer commutes with reflecting
        the periodic grid.
    groups : int, default=1
        Channel groups, each mixed only within itself, as in
        :class:`torch.nn.Conv1d`.

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
            for sign, n in zip(signs + (1,), grid):  # the last axis: a half spectrum
                top = (n - 1) // 2  # the highest frequency this axis resolves
                if sign > 0:
                    k = min(m, top + 1)
                    data.append(slice(0, k))
                    held.append(slice(0, k))
                else:  # frequencies -k .. -1
                    k = min(m, top)
                    data.append(slice(n - k, n))
                    held.append(slice(m - k, m))
            part = (slice(None), slice(None)) + (Ellipsis,) + tuple(data)
            w = weight[(block, slice(None), slice(None)) + tuple(held)]
            c = coef[part].unflatten(1, (self.groups, -1))
            w = w.unflatten(0, (self.groups, -1))
            out[part] = torch.einsum("bgi...,gio...->bgo...", c, w).flatten(1, 2)
        return torch.fft.irfftn(out, s=grid, dim=dims, norm="forward")


class FactorizedSpectralConv(nn.Module):
    """Fourier layer acting on one axis at a time: ``v -> Σ_a IFFT_a(R_a · FFT_a(v))``.

    Sums one 1-D :class:`SpectralConv` per axis, applied along it (the
    factorised Fourier layer of Tran et al., 2023); on a 1-D grid it is
    :class:`SpectralConv`.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input and output functions.
    n_dim : int
        Number of grid axes (1, 2 or 3).
    n_modes : int
        Modes kept along each axis.
    even : bool, default=False
        Real weights: the layer commutes with reflecting any one axis.
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
