"""Spectral convolution: a learned linear map on the lowest Fourier modes."""

from itertools import product
from math import sqrt

import torch
from torch import nn


class SpectralConv(nn.Module):
    """Fourier layer ``v -> IFFT(R · FFT(v))`` on 1-D, 2-D or 3-D grids.

    The weights ``R`` act on the frequencies with ``-n_modes <= k_i < n_modes``
    (and ``0 <= k_last < n_modes`` on the last axis, the half spectrum of a
    real FFT); the other frequencies are set to zero. The layer does not
    depend on the grid size, so the same weights apply at any resolution fine
    enough to hold the modes; on a coarser grid only the modes it resolves
    (``|k| <= (n - 1) // 2``) are used.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input and output functions.
    n_dim : int
        Number of grid axes (1, 2 or 3).
    n_modes : int
        Modes kept along each axis.

    Examples
    --------
    >>> import torch
    >>> from sklearn_mono.experts import SpectralConv
    >>> layer = SpectralConv(2, 3, n_dim=2, n_modes=4)
    >>> layer(torch.zeros(5, 2, 16, 16)).shape
    torch.Size([5, 3, 16, 16])
    """

    def __init__(self, in_channels, out_channels, n_dim, n_modes):
        super().__init__()
        if n_dim not in (1, 2, 3):
            raise ValueError(f"SpectralConv supports 1, 2 or 3 grid axes, got {n_dim}.")
        self.n_dim = n_dim
        self.n_modes = n_modes
        # One block of weights per sign pattern of the non-last axes.
        n_blocks = 2 ** (n_dim - 1)
        scale = 1.0 / (in_channels * out_channels)
        shape = (n_blocks, in_channels, out_channels) + (n_modes,) * n_dim + (2,)
        # Stored as real pairs so that optimisers, devices and state dicts
        # see ordinary real tensors.
        self.weight = nn.Parameter(scale * torch.rand(shape) * sqrt(2.0))

    def forward(self, x):
        dims = tuple(range(-self.n_dim, 0))
        grid = tuple(x.shape[-self.n_dim :])
        coef = torch.fft.rfftn(x, dim=dims, norm="forward")
        out = torch.zeros(
            (x.shape[0], self.weight.shape[2]) + tuple(coef.shape[2:]),
            dtype=coef.dtype,
            device=x.device,
        )
        weight = torch.view_as_complex(self.weight)
        # Frequencies this grid resolves: |k| <= (n - 1) // 2 (no Nyquist mode,
        # which aliases and would mean something else on a finer grid).
        top = [(n - 1) // 2 for n in grid]
        m_pos = [min(self.n_modes, k + 1) for k in top[:-1]]
        m_neg = [min(self.n_modes, k) for k in top[:-1]]
        m_last = min(self.n_modes, top[-1] + 1)
        for b, signs in enumerate(product((1, -1), repeat=self.n_dim - 1)):
            data, held = [], []
            for s, mp, mn, n in zip(signs, m_pos, m_neg, grid):
                if s > 0:
                    data.append(slice(0, mp))
                    held.append(slice(0, mp))
                else:  # frequencies -mi .. -1
                    mi = mn
                    data.append(slice(n - mi, n))
                    held.append(slice(self.n_modes - mi, self.n_modes))
            data.append(slice(0, m_last))
            held.append(slice(0, m_last))
            block = (slice(None), slice(None)) + tuple(data)
            w = weight[(b, slice(None), slice(None)) + tuple(held)]
            out[block] = torch.einsum("bi...,io...->bo...", coef[block], w)
        return torch.fft.irfftn(out, s=grid, dim=dims, norm="forward")
