"""Fourier neural operator and MLP experts."""

from math import prod
from numbers import Real

import numpy as np
import torch
from torch import nn

from ._spectral import FactorizedSpectralConv, SpectralConv, _grid_cache


_POSITIONAL = {"linear": 1, "periodic": 2, "even": 1}  # channels per axis


def _grid_coordinates(grid, like, positional="linear"):
    """Coordinate channels of a uniform grid, shape (1, channels, *grid).

    ``"linear"``: ``x_j = j / n`` per axis. ``"periodic"``: ``sin(2 pi x_j)``
    and ``cos(2 pi x_j)`` per axis. ``"even"``: ``cos(2 pi x_j)`` per axis.
    """
    axes = [torch.arange(n, device=like.device, dtype=like.dtype) / n for n in grid]
    mesh = torch.stack(torch.meshgrid(*axes, indexing="ij")).unsqueeze(0)
    if positional == "periodic":
        return torch.cat([torch.sin(2 * torch.pi * mesh), torch.cos(2 * torch.pi * mesh)], dim=1)
    if positional == "even":
        return torch.cos(2 * torch.pi * mesh)
    return mesh


def _pointwise(n_dim, in_channels, out_channels, groups=1):
    """A linear map applied at every grid point (a 1x1 convolution); with
    ``groups``, one per group of channels, as in :class:`torch.nn.Conv1d`."""
    conv = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[n_dim - 1]
    return conv(in_channels, out_channels, 1, groups=groups)


def _apply_pointwise(conv, h):
    """``conv(h)`` for a 1x1 convolution, as one batched matrix product.

    The same numbers as the convolution, several times faster on CPU for the
    small channel counts of an expert. A grouped convolution is one product
    per sample and group.
    """
    n, grid = h.shape[0], h.shape[2:]
    g = conv.groups
    if g == 1 and n == 1:  # a single query: one 2-D product
        weight = conv.weight.view(conv.out_channels, conv.in_channels)
        out = torch.addmm(conv.bias.view(-1, 1), weight, h.reshape(conv.in_channels, -1))
        return out.view((1, conv.out_channels) + tuple(grid))
    if g == 1:
        weight = conv.weight.view(conv.out_channels, conv.in_channels).expand(n, -1, -1)
        out = torch.baddbmm(conv.bias.view(-1, 1), weight, h.reshape(n, conv.in_channels, -1))
        return out.view((n, conv.out_channels) + tuple(grid))
    n_out, n_in = conv.out_channels // g, conv.in_channels // g  # per group
    weight, bias = conv.weight.view(g, n_out, n_in), conv.bias.view(g, n_out, 1)
    if n == 1:
        out = torch.baddbmm(bias, weight, h.reshape(g, n_in, -1))
    else:
        out = torch.matmul(weight, h.reshape(n, g, n_in, -1)).add_(bias)
    return out.view((n, conv.out_channels) + tuple(grid))


class FNO(nn.Module):
    """Fourier neural operator on 1-D, 2-D or 3-D grids.

    Lifts the input channels, together with the grid coordinates, to
    ``width`` channels; applies ``n_layers`` Fourier layers (a spectral
    convolution plus a pointwise linear map, then GELU except after the last
    layer; or, with ``residual=True``, residual blocks); and projects back to
    ``out_channels`` with a two-layer pointwise network. GELU is used in its
    exact form on 2-D and 3-D grids and in its tanh approximation on 1-D
    grids, whichever trains and evaluates faster on CPU at those sizes.
    Every weight acts either on a fixed set of Fourier modes or pointwise, so
    the operator can be evaluated on grids finer than the one it was trained
    on.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input and output functions.
    grid_shape : tuple of int
        Training grid; it fixes the number of axes and caps ``n_modes`` at
        ``(n - 1) // 2`` on an axis of ``n`` points. That axis resolves the
        frequencies ``|k| <= (n - 1) // 2``; the cap leaves out the highest,
        which on a coarse grid mostly carries aliased finer detail (on Darcy
        flow at 16x16, keeping it made zero-shot 32x32 predictions about 3%
        worse and those at 16x16 no better).
    width : int, default=32
        Channels of the hidden functions.
    n_modes : int, default=12
        Fourier modes per axis in each spectral convolution.
    n_layers : int, default=4
        Number of Fourier layers.
    factorized : bool, default=False
        On 2-D and 3-D grids, use :class:`FactorizedSpectralConv` layers, one
        1-D Fourier transform per axis, instead of full multi-dimensional
        ones: far fewer weights (``n_dim * n_modes`` per channel pair instead
        of ``2^(n_dim - 1) * n_modes^n_dim``) and, on small training sets,
        less overfitting. ``MoNORegressor`` turns it on. The same layer on
        1-D grids.
    positional : {"linear", "periodic", "even"} or None, default=None
        The grid coordinates read, next to the input channels, by the
        lifting layer; None means ``"even"`` when ``symmetric`` is true and
        ``"linear"`` otherwise. ``"linear"``: ``x = j / n`` along each axis,
        as in the original FNO. It jumps from 1 back to 0 where the periodic domain of
        the Fourier layers wraps around, and the discrete spectrum of that
        jump changes with the grid. ``"periodic"``: ``sin(2 pi x)`` and
        ``cos(2 pi x)`` along each axis, smooth across the wrap, so the model
        sees the same coordinates on every grid. Choose it when the functions
        are continuous across the wrap (periodic problems, or zero boundary
        values at ``x = 0`` as in :func:`~sklearn_mono.datasets.make_darcy`):
        on Darcy flow it cuts the zero-shot 32x32 error of experts trained at
        16x16 from about 0.08 to about 0.04. Keep ``"linear"`` when the
        output jumps there: on the antiderivative operator ``"periodic"``
        raises the error from 0.007 to 0.012. ``"even"``: ``cos(2 pi x)``
        alone, which reflections of the axis leave unchanged.
    symmetric : bool, default=False
        Make the operator commute with reflecting any axis of the periodic
        grid, ``j -> (n - j) mod n`` along it, in input and output alike:
        the spectral weights are real (so every Fourier layer's kernel is
        even along each axis, with half the weights) and the coordinates are
        ``"even"`` ones. Needs factorised Fourier layers on 2-D and 3-D
        grids, since a full layer's real weights commute only with
        reflecting every axis at once, and no ``padding``, whose zeros at the
        end of each axis break the reflection. Choose it when the operator
        has that symmetry, as Darcy flow with a constant forcing and zero
        boundary values at ``x = 0`` has
        (:func:`~sklearn_mono.datasets.make_darcy`): there, four factorised
        residual experts trained at 16x16 gave 0.0308 at 16x16, against
        0.0319 without it (with linear coordinates; one seed, ``lr=6e-3``).
        Zero-shot at 32x32 they gave 0.0555 against 0.0802, a gain that comes
        from the smooth coordinates: ``"even"`` coordinates with complex
        weights gave 0.0276 there, but 0.0338 at 16x16. Operators without the
        symmetry cannot be learned with it: Burgers' equation, for one,
        changes the sign of the solution when space is reflected.
    residual : bool, default=False
        Make each layer a residual block, ``h + W2 GELU(W1 K(h))``, where
        ``K`` is the spectral convolution and ``W1``, ``W2`` are pointwise
        maps through ``2 * width`` channels, instead of ``GELU(K(h) + W h)``.
        An identity path then runs through every layer, as in the factorised
        FNO of Tran et al. (2023), whose blocks use ReLU where these use
        GELU. It adds ``3 * width**2 + 2 * width`` weights per layer (75k
        instead of 68k parameters at width 24 on a 16x16 grid, which
        ``MoNORegressor`` used by default there before its two members of
        width 16). Measured on one expert
        with factorised layers, trained for 100 epochs, one seed each:

        * On Darcy flow trained at 16x16, with linear coordinates, the 16x16
          test error was 0.0315 at ``lr=6e-3``. Plain layers gave 0.0325 at
          their best rate, 3e-3, and 0.0337 at 6e-3. With periodic
          coordinates, at ``lr=3e-3`` for both, the zero-shot 32x32 error went
          from 0.039 to 0.029, and at 16x16 from 0.0340 to 0.0330.
        * On 1-D problems it did worse. Burgers went from 0.0034 to 0.0044,
          and the antiderivative from 0.0072 to 0.0084.

        With four leaves (``MoNORegressor``, each layer type at its best
        rate), Darcy flow solved at 16x16 went from 0.0125 to 0.0109, and a
        linear smoothing operator
        (:func:`~sklearn_mono.datasets.make_smoothing_2d`) from 0.0008 to
        0.0005.
    dropout : float, default=0.0
        Probability with which each hidden activation is zeroed in training:
        the ``2 * width`` channels inside each residual block, or, with plain
        layers, the output of each GELU between layers; the kept ones are
        scaled by ``1 / (1 - p)``. One mask is drawn per batch and shared by
        its samples (each channel and grid point is dropped for all of them
        or none), from torch's default generator for the tensor's device.
        Nothing is dropped in evaluation mode, so predictions are
        deterministic and cost the same. It regularises experts whose
        inputs do not quite determine their outputs, as when functions are
        sampled coarsely from finer fields. ``MoNORegressor`` trains with
        it in the first half of the root expert's epochs only ("early
        dropout"), and the leaves warm-started from the root fine-tune
        without (with a single leaf, or ``root_epochs=0``, it acts in the
        first half of each expert's epochs). Four factorised residual
        experts of width 24 trained at 16x16 for 80 + 20 epochs with
        ``lr=6e-3`` (``MoNORegressor``'s defaults there before two members)
        gave these test
        errors on Darcy flow sampled from 32x32 solutions
        (:func:`~sklearn_mono.datasets.make_darcy` with
        ``resolutions=(16, 32)``, ``random_state=0``; seeds 0, 1 and 2) and
        solved at 16x16 (seed 0), where the inputs determine the solutions:

        ==========================================  ======================  ============
        dropout 0.1                                 from 32x32              solved 16x16
        ==========================================  ======================  ============
        none                                        0.0319, 0.0325, 0.0317  0.0109
        root expert, first half of its epochs       0.0313, 0.0317, 0.0311  0.0111
        root expert, all its epochs                 0.0311, 0.0315, 0.0311  0.0122
        every expert, all epochs                    0.0312, 0.0314, 0.0311  0.0133
        every expert, all epochs, mask per sample   0.0313, 0.0309, 0.0307  0.0125
        ==========================================  ======================  ============

        The gain did not carry over to other draws of the same data: with
        ``random_state=1`` early dropout went from 0.0304 to 0.0308, with
        ``random_state=2`` it stayed at 0.0295, and on the 800 training
        samples of ``examples/darcy.py`` it went from 0.0314 to 0.0313
        (seed 0). Four experts of width 16 trained for 40 + 40 epochs
        on those samples went from 0.0353 to 0.0361 with it (0.0371 with
        dropout in all the root's epochs). With a mask per sample
        (:func:`torch.nn.functional.dropout`), a training step took about a
        third longer on a CPU than without dropout (batch 32, width 24,
        16x16 grid); one mask per batch added 4-10%. On Burgers' equation
        (16 points, width 14), 0.1 on plain layers raised the error from
        0.0033 to 0.0190, and 0.2 on residual blocks from 0.0039 to 0.0116
        (masks per sample, in every expert and epoch).
    padding : float, default=0.0
        Fraction of each axis appended as zeros before the Fourier layers and
        cropped after them. Around 0.25 helps non-periodic problems at the
        training resolution, at some cost in zero-shot super-resolution; the
        default treats the grid as periodic.
    n_members : int, default=1
        Independent FNOs of ``width`` channels held in one module and
        evaluated together, their predictions averaged: an ensemble that
        costs one pass. Each member has its own weights in every layer (the
        lifting reads the same input and coordinates for all); grouped
        layers (the ``groups`` of :class:`SpectralConv` and grouped pointwise
        maps) run them side by side, so that one call makes as many torch
        operations as one FNO, on ``n_members * width`` channels, with
        ``n_members`` times the weights of one member. ``forward`` returns
        the members' mean and :meth:`members` each member's prediction.
        Averaging cancels part of the error in which networks started from
        different random weights differ, provided each member is trained on
        its own loss, as ``MoNORegressor`` trains them (see
        :class:`~sklearn_mono.experts.Standardized`). One loss on the average
        trains the members as one network: on Darcy flow (four leaves, 80 +
        20 epochs), two members of width 17 trained on the loss of their
        mean gave 0.0323 and 0.0301 on two draws of the data, against 0.0314
        and 0.0298 with a loss per member.
    pooled : bool, default=False
        Return the grid average of the output channels, shape
        ``(n, out_channels)``: a functional instead of an operator.

    Examples
    --------
    >>> import torch
    >>> from sklearn_mono.experts import FNO
    >>> model = FNO(1, 3, grid_shape=(32,), width=8, n_modes=4)
    >>> model(torch.zeros(2, 1, 32)).shape
    torch.Size([2, 3, 32])
    >>> model(torch.zeros(2, 1, 64)).shape  # a finer grid
    torch.Size([2, 3, 64])
    >>> ensemble = FNO(1, 3, grid_shape=(32,), width=8, n_modes=4, n_members=2)
    >>> ensemble.members(torch.zeros(2, 1, 32)).shape  # forward gives their mean
    torch.Size([2, 2, 3, 32])
    """

    resolution_invariant = True

    def __init__(
        self,
        in_channels,
        out_channels,
        grid_shape,
        *,
        width=32,
        n_modes=12,
        n_layers=4,
        factorized=False,
        positional=None,
        symmetric=False,
        residual=False,
        dropout=0.0,
        padding=0.0,
        n_members=1,
        pooled=False,
    ):
        super().__init__()
        if isinstance(n_members, (bool, np.bool_)) or not isinstance(n_members, (int, np.integer)):
            raise TypeError(f"n_members must be a positive int, got {n_members!r}.")
        if n_members < 1:
            raise ValueError(f"n_members must be at least 1, got {n_members}.")
        self.n_members = g = int(n_members)
        if not isinstance(symmetric, (bool, np.bool_)):
            raise TypeError(f"symmetric must be True or False, got {symmetric!r}.")
        if positional is None:
            positional = "even" if symmetric else "linear"
        if not isinstance(positional, str) or positional not in _POSITIONAL:
            raise ValueError(
                f"positional must be one of {sorted(_POSITIONAL)} or None, got {positional!r}."
            )
        self.n_dim = len(grid_shape)
        self.factorized = bool(factorized)
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
        if symmetric and self.n_dim > 1 and not self.factorized:
            raise ValueError(
                f"symmetric=True on a {self.n_dim}-D grid needs factorized=True: the "
                f"real weights of a full Fourier layer commute only with reflecting "
                f"every axis at once."
            )
        self.symmetric = bool(symmetric)
        self.positional = positional
        self.padding = padding
        self.pooled = pooled
        # Every weight is one the training grid reaches (a full layer's
        # k = -n_modes included), and the top, most aliased frequency is left out.
        resolvable = min((n - 1) // 2 for n in grid_shape)
        self.n_modes = max(1, min(n_modes, resolvable))
        n_coordinates = _POSITIONAL[positional] * self.n_dim
        # Member m holds channels m * width .. (m + 1) * width - 1 of every
        # hidden layer; every map but the lifting acts within a member.
        self.lift = _pointwise(self.n_dim, in_channels + n_coordinates, g * width)
        layer = FactorizedSpectralConv if self.factorized and self.n_dim > 1 else SpectralConv
        self.spectral = nn.ModuleList(
            layer(g * width, g * width, self.n_dim, self.n_modes, even=self.symmetric, groups=g)
            for _ in range(n_layers)
        )
        if not isinstance(residual, (bool, np.bool_)):
            raise TypeError(f"residual must be True or False, got {residual!r}.")
        self.residual = bool(residual)
        if isinstance(dropout, (bool, np.bool_)) or not isinstance(dropout, (Real, np.floating)):
            raise TypeError(f"dropout must be a float in [0, 1), got {dropout!r}.")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}.")
        self.dropout = float(dropout)
        if self.residual:
            self.expand = nn.ModuleList(
                _pointwise(self.n_dim, g * width, g * 2 * width, g) for _ in range(n_layers)
            )
            self.contract = nn.ModuleList(
                _pointwise(self.n_dim, g * 2 * width, g * width, g) for _ in range(n_layers)
            )
        else:
            self.mix = nn.ModuleList(
                _pointwise(self.n_dim, g * width, g * width, g) for _ in range(n_layers)
            )
        # On the hidden functions of 2-D and 3-D grids torch's exact GELU is
        # the faster (a Darcy training step at 16x16 and width 24 took 0.95
        # times as long, a single query 0.94); on the few values of a 1-D
        # expert its tanh form is (the exact one made a Burgers query 1.19
        # times as long). Files saved before (format 7 and older) load with
        # the tanh form they were trained with, on every grid.
        approximate = "tanh" if self.n_dim == 1 else "none"
        self.project = nn.Sequential(
            _pointwise(self.n_dim, g * width, g * 2 * width, g),
            nn.GELU(approximate=approximate),
            _pointwise(self.n_dim, g * 2 * width, g * out_channels, g),
        )
        self.act = nn.GELU(approximate=approximate)

    def forward(self, x):
        out = self._forward_members(x)
        if getattr(self, "n_members", 1) > 1:
            out = out.mean(dim=1)
        return out

    def train(self, mode=True):
        # Every switch to training mode counts: copies of the weights made
        # for inference (see experts._stack) stand only within one generation,
        # so that edits the version counters miss (through ``.data``) are
        # caught once the module has been put back in training mode.
        if mode:
            self._generation = getattr(self, "_generation", 0) + 1
        return super().train(mode)

    def members(self, x):
        """Every member's prediction, shape ``(n, n_members, out_channels, *grid)``
        (``(n, n_members, out_channels)`` when pooled); ``forward`` returns
        their mean."""
        out = self._forward_members(x)
        return out.unsqueeze(1) if getattr(self, "n_members", 1) == 1 else out

    def _forward_members(self, x):
        """The members' outputs, with a member axis when there are several."""
        grid = tuple(x.shape[2:])
        coords = _grid_cache(self, "_coordinates").get(
            (grid, x.dtype, str(x.device)),
            lambda: _grid_coordinates(grid, x, getattr(self, "positional", "linear")),
        )
        coords = coords.expand(x.shape[0], -1, *grid)
        h = _apply_pointwise(self.lift, torch.cat([x, coords], dim=1))
        pads = [round(self.padding * n) for n in grid]
        if any(pads):
            # F.pad lists the last axis first.
            h = nn.functional.pad(h, [p for n in reversed(pads) for p in (0, n)])
        # Models pickled before dropout existed have no such attribute, and
        # MoNORegressor's training pauses dropout in the second half of a
        # run (see EarlyDropout) without touching ``dropout`` itself.
        active = self.training and not getattr(self, "_dropout_paused", False)
        p = getattr(self, "dropout", 0.0) if active else 0.0
        if getattr(self, "residual", False):
            for spectral, expand, contract in zip(self.spectral, self.expand, self.contract):
                inner = self.act(_apply_pointwise(expand, spectral(h)))
                if p:
                    inner = _shared_dropout(inner, p)
                h = h + _apply_pointwise(contract, inner)
        else:
            for i, (spectral, mix) in enumerate(zip(self.spectral, self.mix)):
                h = spectral(h) + _apply_pointwise(mix, h)
                if i < len(self.spectral) - 1:
                    h = self.act(h)
                    if p:
                        h = _shared_dropout(h, p)
        if any(pads):
            h = h[(slice(None), slice(None)) + tuple(slice(0, n) for n in grid)]
        first, act, last = self.project
        out = _apply_pointwise(last, act(_apply_pointwise(first, h)))
        if self.pooled:
            out = out.mean(dim=tuple(range(2, out.ndim)))
        if getattr(self, "n_members", 1) > 1:
            out = out.unflatten(1, (self.n_members, -1))
        return out


def _shared_dropout(h, p):
    """Zero each activation with probability ``p``, one mask for the whole batch.

    Every sample of the batch loses the same channels at the same grid
    points, and the kept ones are scaled by ``1 / (1 - p)``. The mask is a
    batch's worth smaller than independent masks, which on a CPU cost about
    a third more training time per step (measured at batch 32, width 24,
    16x16 grid), for about the same test errors (see ``FNO``'s ``dropout``).
    """
    mask = torch.empty((1,) + tuple(h.shape[1:]), dtype=h.dtype, device=h.device)
    return h * mask.bernoulli_(1.0 - p).div_(1.0 - p)


class MLP(nn.Module):
    """Multilayer perceptron on the flattened sampled function.

    A fixed-resolution baseline: it sees the function only through its values
    on the training grid.

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

    def __init__(self, in_channels, out_channels, grid_shape, *, width=32, n_layers=4, pooled=False):
        super().__init__()
        self.grid_shape = tuple(grid_shape)
        self.out_shape = (out_channels,) if pooled else (out_channels,) + self.grid_shape
        layers, size = [], in_channels * prod(self.grid_shape)
        for _ in range(n_layers):
            layers += [nn.Linear(size, width), nn.GELU()]
            size = width
        layers.append(nn.Linear(size, prod(self.out_shape)))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x.flatten(1)).view(x.shape[0], *self.out_shape)
