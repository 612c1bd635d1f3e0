"""Fourier neural operator and MLP modules."""

from math import prod, sqrt

import numpy as np
import torch
from torch import nn

from ._spectral import FactorizedSpectralConv, SpectralConv

_POSITIONAL = {"linear": 1, "periodic": 2, "even": 1}  # coordinate channels per axis


def grid_coordinates(grid, like, positional="linear"):
    """Coordinate channels of a uniform grid, shape ``(1, channels, *grid)``
    (see ``FNO``'s ``positional``)."""
    axes = [torch.arange(n, device=like.device, dtype=like.dtype) / n for n in grid]
    mesh = torch.stack(torch.meshgrid(*axes, indexing="ij")).unsqueeze(0)
    if positional == "periodic":
        return torch.cat([torch.sin(2 * torch.pi * mesh), torch.cos(2 * torch.pi * mesh)], dim=1)
    if positional == "even":
        return torch.cos(2 * torch.pi * mesh)
    return mesh


class Pointwise(nn.Module):
    """A linear map of the channels at every grid point (a 1x1 convolution, with
    ``groups`` and initialisation as in :class:`torch.nn.Conv1d`)."""

    def __init__(self, in_channels, out_channels, groups=1):
        super().__init__()
        self.groups = groups
        n_in = in_channels // groups
        bound = 1 / sqrt(n_in)
        n_out = out_channels // groups
        self.weight = nn.Parameter(torch.empty(groups, n_out, n_in).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(groups, n_out, 1).uniform_(-bound, bound))

    def forward(self, h):
        n, grid = h.shape[0], h.shape[2:]
        out = torch.matmul(self.weight, h.reshape(n, self.groups, -1, prod(grid))) + self.bias
        return out.reshape((n, -1) + tuple(grid))


def _check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}.")
    return bool(value)


class FNO(nn.Module):
    """Fourier neural operator on 1-D, 2-D or 3-D grids.

    Lifts the input channels and grid coordinates to ``width`` channels,
    applies ``n_layers`` Fourier layers and projects to ``out_channels`` with
    a two-layer pointwise network. Every weight acts on fixed Fourier modes
    or pointwise, so the operator evaluates on any grid.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input and output functions.
    grid_shape : tuple of int
        Training grid; caps ``n_modes`` at ``(n - 1) // 2`` on an axis of
        ``n`` points.
    width : int, default=32
        Hidden channels (per member).
    n_modes : int, default=12
        Fourier modes per axis in each spectral convolution.
    n_layers : int, default=4
        Number of Fourier layers.
    factorized : bool, default=False
        On 2-D and 3-D grids, use :class:`FactorizedSpectralConv` layers.
    positional : {"linear", "periodic", "even"} or None, default=None
        Coordinates read with the input, per axis: ``x = j / n`` ("linear"),
        ``sin(2 pi x)`` and ``cos(2 pi x)`` ("periodic") or ``cos(2 pi x)``
        ("even"). None means "even" when ``symmetric``, else "linear".
    symmetric : bool, default=False
        Commute with reflecting any axis, ``j -> (n - j) mod n``, by real
        spectral weights and "even" coordinates; needs ``factorized`` on
        2-D and 3-D grids and no ``padding``.
    residual : bool, default=False
        Layers ``h + W2 GELU(W1 K(h))`` through ``2 * width`` channels, with
        ``K`` the spectral convolution, instead of ``GELU(K(h) + W h)``.
    padding : float, default=0.0
        Fraction of each axis appended as zeros for the Fourier layers, for
        non-periodic problems.
    n_members : int, default=1
        Independent FNOs evaluated together by grouped layers; ``forward``
        returns their mean, :meth:`members` each one's prediction.
    pooled : bool, default=False
        Average the output over the grid, shape ``(n, out_channels)``.

    Examples
    --------
    >>> import torch
    >>> from sklearn_mono.experts import FNO
    >>> model = FNO(1, 3, grid_shape=(32,), width=8, n_modes=4)
    >>> model(torch.zeros(2, 1, 32)).shape
    torch.Size([2, 3, 32])
    >>> model(torch.zeros(2, 1, 64)).shape  # a finer grid
    torch.Size([2, 3, 64])
    """

    resolution_invariant = True

    def __init__(
        self, in_channels, out_channels, grid_shape, *, width=32, n_modes=12, n_layers=4,
        factorized=False, positional=None, symmetric=False, residual=False, padding=0.0,
        n_members=1, pooled=False,
    ):
        super().__init__()
        if isinstance(n_members, (bool, np.bool_)) or not isinstance(n_members, (int, np.integer)):
            raise TypeError(f"n_members must be a positive int, got {n_members!r}.")
        if n_members < 1:
            raise ValueError(f"n_members must be at least 1, got {n_members}.")
        symmetric = _check_bool("symmetric", symmetric)
        self.residual = _check_bool("residual", residual)
        if positional is None:
            positional = "even" if symmetric else "linear"
        if not isinstance(positional, str) or positional not in _POSITIONAL:
            raise ValueError(
                f"positional must be one of {sorted(_POSITIONAL)} or None, got {positional!r}."
            )
        n_dim = len(grid_shape)
        if symmetric and positional != "even":
            raise ValueError(
                f"symmetric=True needs coordinates that reflections leave unchanged, "
                f"positional='even' (or None), got positional={positional!r}."
            )
        if symmetric and padding:
            raise ValueError(
                f"symmetric=True needs padding=0, got padding={padding!r}: zeros "
                f"appended at the end of each axis break the reflection symmetry."
            )
        if symmetric and n_dim > 1 and not factorized:
            raise ValueError(
                f"symmetric=True on a {n_dim}-D grid needs factorized=True: the real "
                f"weights of a full Fourier layer commute only with reflecting every "
                f"axis at once."
            )
        self.n_members = g = int(n_members)
        self.positional = positional
        self.padding = padding
        self.pooled = pooled
        # The top, most aliased frequency of the training grid is left out.
        self.n_modes = max(1, min(n_modes, *((n - 1) // 2 for n in grid_shape)))
        layer = FactorizedSpectralConv if factorized and n_dim > 1 else SpectralConv
        hidden = g * width
        self.lift = Pointwise(in_channels + _POSITIONAL[positional] * n_dim, hidden)
        self.spectral = nn.ModuleList(
            layer(hidden, hidden, n_dim, self.n_modes, even=symmetric, groups=g)
            for _ in range(n_layers)
        )
        if self.residual:
            self.expand = nn.ModuleList(Pointwise(hidden, 2 * hidden, g) for _ in range(n_layers))
            self.contract = nn.ModuleList(Pointwise(2 * hidden, hidden, g) for _ in range(n_layers))
        else:
            self.mix = nn.ModuleList(Pointwise(hidden, hidden, g) for _ in range(n_layers))
        self.project = nn.Sequential(
            Pointwise(hidden, 2 * hidden, g), nn.GELU(), Pointwise(2 * hidden, g * out_channels, g)
        )

    def forward(self, x):
        return self.members(x).mean(dim=1)

    def members(self, x):
        """Every member's prediction, shape ``(n, n_members, out_channels, *grid)``
        (``(n, n_members, out_channels)`` when pooled)."""
        grid = x.shape[2:]
        coords = grid_coordinates(grid, x, self.positional).expand(x.shape[0], -1, *grid)
        h = self.lift(torch.cat([x, coords], dim=1))
        pads = [round(self.padding * n) for n in grid]
        if any(pads):
            h = nn.functional.pad(h, [p for n in reversed(pads) for p in (0, n)])
        for i, spectral in enumerate(self.spectral):
            if self.residual:
                h = h + self.contract[i](nn.functional.gelu(self.expand[i](spectral(h))))
            else:
                h = spectral(h) + self.mix[i](h)
                if i < len(self.spectral) - 1:
                    h = nn.functional.gelu(h)
        if any(pads):
            h = h[(slice(None), slice(None)) + tuple(slice(0, n) for n in grid)]
        out = self.project(h)
        if self.pooled:
            out = out.mean(dim=tuple(range(2, out.ndim)))
        return out.unflatten(1, (self.n_members, -1))


class MLP(nn.Module):
    """Multilayer perceptron on the flattened sampled function (fixed resolution).

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input and output functions.
    grid_shape : tuple of int
        Training grid.
    width : int, default=32
        Hidden units per layer.
    n_layers : int, default=4
        Number of hidden layers.
    pooled : bool, default=False
        Output ``(n, out_channels)`` instead of ``(n, out_channels, *grid)``.

    Examples
    --------
    >>> import torch
    >>> from sklearn_mono.experts import MLP
    >>> MLP(1, 2, grid_shape=(8,))(torch.zeros(3, 1, 8)).shape
    torch.Size([3, 2, 8])
    """

    resolution_invariant = False

    def __init__(
        self, in_channels, out_channels, grid_shape, *, width=32, n_layers=4, pooled=False
    ):
        super().__init__()
        self.out_shape = (out_channels,) if pooled else (out_channels,) + tuple(grid_shape)
        layers, size = [], in_channels * prod(grid_shape)
        for _ in range(n_layers):
            layers += [nn.Linear(size, width), nn.GELU()]
            size = width
        layers.append(nn.Linear(size, prod(self.out_shape)))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x.flatten(1)).view(x.shape[0], *self.out_shape)
