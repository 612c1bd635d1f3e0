"""Spectral convolutions: learned linear maps on the lowest Fourier modes."""

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

    def full_weight(self):
        """Complex weights over every kept frequency, ``(in, out / groups, *K)``.

        Non-last axes hold ``2 * n_modes`` frequencies, ordered
        ``0 .. n_modes - 1, -n_modes .. -1``; the last axis holds
        ``0 .. n_modes - 1``.
        """
        w = self.weight
        w = torch.complex(w, torch.zeros_like(w)) if self.even else torch.view_as_complex(w)
        d, m = self.n_dim, self.n_modes
        if d == 1:
            return w[0]
        # The block index is one sign per non-last axis: interleave sign and mode.
        n_in, n_out = w.shape[1:3]
        w = w.reshape((2,) * (d - 1) + (n_in, n_out) + (m,) * d)
        order = [d - 1, d] + [i for a in range(d - 1) for i in (a, d + 1 + a)] + [2 * d]
        return w.permute(order).reshape((n_in, n_out) + (2 * m,) * (d - 1) + (m,))

    def forward(self, x):
        d, lead = self.n_dim, x.ndim - self.n_dim  # grid axes, and the axes before them
        bases = _bases(x.shape[lead:], self.n_modes, x.dtype, x.device)
        # To the kept frequencies: the last axis by a real product giving real
        # and imaginary parts, each other axis by a complex product.
        coef = torch.view_as_complex((x @ bases[-1][0]).unflatten(-1, (-1, 2)))
        for axis, (forward, _) in enumerate(bases[:-1]):
            coef = (coef.movedim(lead + axis, -1) @ forward).movedim(-1, lead + axis)
        # Mix the channels within each group, frequency by frequency.
        coef = coef.unflatten(1, (self.groups, -1))
        weight = self.full_weight().unflatten(0, (self.groups, -1))
        coef = torch.einsum("bgi...,gio...->bgo...", coef, weight).flatten(1, 2)
        # And back to the grid.
        for axis, (_, inverse) in enumerate(bases[:-1]):
            coef = (coef.movedim(lead + axis, -1) @ inverse).movedim(-1, lead + axis)
        return torch.view_as_real(coef).flatten(-2) @ bases[-1][1]


def _bases(grid, n_modes, dtype, device):
    """Truncated Fourier bases of a grid, one ``(forward, inverse)`` pair per axis.

    Forward maps samples to the kept frequencies, ``exp(-2 pi i k j / n) / n``,
    and inverse maps them back, ``exp(2 pi i k j / n)``, with the frequencies
    the axis does not resolve (``|k| > (n - 1) // 2``) set to zero. On a
    non-last axis both are complex, ``(n, 2 n_modes)`` and ``(2 n_modes, n)``.
    On the last axis, the half spectrum of a real function, they are real with
    real and imaginary parts interleaved, ``(n, 2 n_modes)`` and
    ``(2 n_modes, n)``, conjugate frequencies counted twice on the way back.
    """
    m, bases = n_modes, []
    complex_dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
    for axis, n in enumerate(grid):
        last = axis == len(grid) - 1
        k = torch.arange(m) if last else torch.cat([torch.arange(m), torch.arange(-m, 0)])
        angle = 2 * torch.pi * torch.outer(torch.arange(n), k).double() / n  # (n, K)
        keep = (k.abs() <= (n - 1) // 2).double()
        if last:
            cos_sin = torch.stack([angle.cos(), -angle.sin()], -1)  # (n, m, [re, im])
            forward = (cos_sin * (keep / n)[:, None]).reshape(n, 2 * m)
            inverse = cos_sin * (keep * torch.where(k == 0, 1.0, 2.0))[:, None]
            inverse = inverse.permute(1, 2, 0).reshape(2 * m, n)
            bases.append((forward.to(device, dtype), inverse.to(device, dtype)))
        else:
            forward = torch.polar(keep / n, -angle)
            inverse = torch.polar(keep.expand_as(angle), angle).T
            bases.append((forward.to(device, complex_dtype), inverse.to(device, complex_dtype)))
    return bases


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
