"""Spectral convolution: a learned linear map on the lowest Fourier modes."""

import contextlib
import contextvars
import weakref
from itertools import product
from math import sqrt
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

# Up to this many samples, 2-D and 3-D layers use the truncated bases instead
# of FFTs, and 1-D layers in inference their real factors (which factorised
# 2-D layers apply to both axes in one fused pass).
_SMALL_BATCH = 8


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
    even : bool, default=False
        Real weights instead of complex ones (half as many numbers): the
        layer's convolution kernel is then even, ``k(-x) = k(x)``, and the
        layer commutes with the reflection ``x -> -x`` of the periodic grid
        (``j -> (n - j) mod n`` on every axis at once).
    groups : int, default=1
        Split the channels into this many groups, in order, each mixed only
        within itself: ``groups`` independent layers of
        ``in_channels / groups`` to ``out_channels / groups`` channels,
        evaluated together (the grouped convolution of :class:`torch.nn.Conv1d`).
        Both channel counts must be multiples of it. The weights are stored
        as ``(blocks, in_channels, out_channels / groups, *modes)``, with a
        last axis of 2 (real and imaginary parts) unless ``even``: each
        input channel holds its weights to the outputs of its group.

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
        if not isinstance(even, (bool, np.bool_)):
            raise TypeError(f"even must be True or False, got {even!r}.")
        _check_groups(type(self), in_channels, out_channels, groups)
        self.n_dim = n_dim
        self.n_modes = n_modes
        self.even = bool(even)
        self.groups = int(groups)
        # One block of weights per sign pattern of the non-last axes.
        n_blocks = 2 ** (n_dim - 1)
        out_group = out_channels // groups
        scale = 1.0 / (in_channels // groups * out_group)
        shape = (n_blocks, in_channels, out_group) + (n_modes,) * n_dim
        # Complex weights are stored as real pairs so that optimisers, devices
        # and state dicts see ordinary real tensors; even ones are the real
        # parts alone.
        shape += () if self.even else (2,)
        self.weight = nn.Parameter(scale * torch.rand(shape) * sqrt(2.0))

    def _complex_weight(self):
        """The stored weights as complex numbers, ``(blocks, in, out / groups, *modes)``."""
        if getattr(self, "even", False):
            return torch.complex(self.weight, torch.zeros_like(self.weight))
        return torch.view_as_complex(self.weight)

    def full_weight(self):
        """Complex weights over every kept frequency, shape ``(in, out / groups, *K)``.

        Non-last axes hold ``2 * n_modes`` frequencies, ordered
        ``0 .. n_modes - 1, -n_modes .. -1``; the last axis holds
        ``0 .. n_modes - 1``.
        """
        d, m = self.n_dim, self.n_modes
        n_in, n_out = self.weight.shape[1:3]
        w = self._complex_weight()  # (blocks, in, out, m, ..., m)
        if d == 1:
            return w[0]
        # Block index -> one sign per non-last axis; interleave sign and mode.
        w = w.reshape((2,) * (d - 1) + (n_in, n_out) + (m,) * d)
        order = [d - 1, d]  # in, out
        for axis in range(d - 1):
            order += [axis, d + 1 + axis]  # sign, then mode, of this axis
        order.append(2 * d)  # the last axis' modes
        return w.permute(order).reshape((n_in, n_out) + (2 * m,) * (d - 1) + (m,))

    def _bases(self, grid, dtype, device):
        """Truncated Fourier bases of a grid: one (forward, inverse) pair per axis.

        The forward basis of an axis with ``n`` points maps samples to the
        kept frequencies, ``exp(-2πi k j / n) / n``, with the frequencies
        this grid does not resolve (``|k| > (n - 1) // 2``) set to zero; the
        inverse maps them back, ``exp(2πi k j / n)``. On a non-last axis both
        are complex matrices, ``(n, K)`` and ``(K, n)``, applied from the
        right. On the last axis they are real, with real and imaginary parts
        interleaved: ``(n, 2m)`` takes real samples to the half spectrum, and
        ``(2m, n)`` takes it back to the real function (conjugate
        frequencies counted twice). Built once per grid and kept.
        """
        return _grid_cache(self, "_basis_cache").get(
            (grid, dtype, str(device)), lambda: self._build_bases(grid, dtype, device)
        )

    def _build_bases(self, grid, dtype, device):
        m = self.n_modes
        cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        bases = []
        for axis, n in enumerate(grid):
            last = axis == len(grid) - 1
            k = torch.arange(m) if last else torch.cat([torch.arange(m), torch.arange(-m, 0)])
            angle = 2 * torch.pi * torch.outer(torch.arange(n), k).double() / n  # (n, K)
            keep = (k.abs() <= (n - 1) // 2).double()
            if last:
                cos_sin = torch.stack([angle.cos(), -angle.sin()], -1)  # (n, m, 2)
                forward = cos_sin * (keep / n)[:, None]
                inverse = cos_sin * (keep * torch.where(k == 0, 1.0, 2.0))[:, None]
                pair = (forward.reshape(n, 2 * m), inverse.permute(1, 2, 0).reshape(2 * m, n))
                bases.append(tuple(b.to(device, dtype) for b in pair))
            else:
                forward = torch.polar(keep / n, -angle)  # (n, K)
                inverse = torch.polar(keep.expand_as(angle), angle).T  # (K, n)
                bases.append((forward.to(device, cdtype), inverse.to(device, cdtype)))
        return bases

    def forward(self, x):
        # Three exact evaluations of the same layer. Products with truncated
        # Fourier bases cost less than FFTs of the whole grid on 1-D grids and
        # on a few 2-D or 3-D samples (single queries); on larger 2-D and 3-D
        # batches the FFTs win, since complex batched products are slow on CPU.
        # In inference, a few 1-D samples take the bases' real-only form.
        if self.n_dim == 1 and _few_queries_in_inference(self, x):
            # A few 1-D queries in inference (the axes of 3-D factorised
            # layers included): real products only, with weights laid out per mode.
            return _apply_factors(x, self._inference_factors(x))
        if self.n_dim == 1 or x.shape[0] <= _SMALL_BATCH:
            return self._forward_bases(x)
        return self._forward_fft(x)

    def _inference_factors(self, x):
        """The 1-D layer on the grid of ``x`` as real :class:`_Factors` ``(F, W, G)``.

        ``F`` (points, 2 modes) takes samples to the real and imaginary parts
        of the kept modes, ``W`` (groups, modes, 2 in, 2 out), with the
        channels of one group, mixes channels mode by mode, and ``G``
        (2 modes, points) goes back to samples. Built at full
        precision and kept for the last few grids while the weights equal
        those they were built from, compared value by value; within
        :func:`_versioned_weights`, while they are the same tensor at the
        same storage and version (see there). Training drops them.
        """
        n = x.shape[-1]

        def build():
            with torch.autocast(x.device.type, enabled=False):
                forward, inverse = self._bases((n,), x.dtype, x.device)[0]
                mix = self._mix(x.dtype, x.device)
            return _WeightState.of(self.weight), _Factors.of(forward, mix, inverse)

        def fresh(entry):
            return _built_from(entry[0], self.weight)

        key = (n, x.dtype, str(x.device))
        cache = _grid_cache(self, "_inference_cache")
        return cache.get(key, build, fresh, limit=_INFERENCE_GRIDS)[1]

    def _mix(self, dtype, device):
        """The channel mixing of a 1-D layer as real matrices, one per group and
        mode: ``(groups, modes, 2 in, 2 out)``, channels of one group."""
        w = self.full_weight().detach().to(device)  # (in, out / groups, modes)
        w = w.unflatten(0, (getattr(self, "groups", 1), -1))  # (groups, in / groups, ..)
        re, im = w.real.to(dtype), w.imag.to(dtype)
        # [re_in, im_in] @ [[re, im], [-im, re]] = [re_out, im_out]
        mix = torch.cat([torch.cat([re, im], 2), torch.cat([-im, re], 2)], 1)
        return mix.permute(0, 3, 1, 2).contiguous()

    def train(self, mode=True):
        # Training changes the weights: drop the inference factors (a stale
        # entry would be rebuilt anyway; this frees it). ``eval()`` keeps
        # them, since callers such as skorch's ``predict`` switch to
        # evaluation mode on every call.
        if mode:
            self.__dict__.pop("_inference_cache", None)
        return super().train(mode)

    def _forward_bases(self, x):
        """The layer through products with the truncated Fourier bases."""
        d = self.n_dim
        bases = self._bases(tuple(x.shape[-d:]), x.dtype, x.device)
        # Samples to kept frequencies: the last axis (real samples), then each
        # other axis in turn, moved last so that every step is one matrix
        # product; the frequency axes end up ordered (last, first, second, ..).
        coef = torch.view_as_complex(torch.matmul(x, bases[-1][0]).unflatten(-1, (-1, 2)))
        for axis in range(d - 1):
            coef = _matmul_2d(coef.movedim(2, -1), bases[axis][0])
        weight = self.full_weight().movedim(-1, 2)
        g = getattr(self, "groups", 1)
        if g > 1:
            # Channels split as (group, channel of the group), mixed within a group.
            # Ungrouped layers keep their own products: the grouped ones with a
            # single group made a training step 2-7% slower.
            coef, weight = coef.unflatten(1, (g, -1)), weight.unflatten(0, (g, -1))
        if d == 1:
            # Any axes between the channels and the grid's are carried along
            # (FactorizedSpectralConv applies 1-D layers that way).
            if g > 1:
                coef = torch.einsum("bgi...k,giok->bgo...k", coef, weight).flatten(1, 2)
            else:
                coef = torch.einsum("bi...k,iok->bo...k", coef, weight)
        elif g > 1:
            coef = (coef.unsqueeze(3) * weight).sum(2).flatten(1, 2)
        else:
            # Few samples, many frequencies: a broadcast product beats a
            # complex batched product over the frequencies.
            coef = (coef.unsqueeze(2) * weight).sum(1)
        # And back, restoring the grid's axis order, to a real function.
        for axis in reversed(range(d - 1)):
            coef = _matmul_2d(coef, bases[axis][1]).movedim(-1, 2)
        real = torch.view_as_real(coef)
        return torch.matmul(real.reshape(real.shape[:-2] + (-1,)), bases[-1][1])

    def _forward_fft(self, x):
        """The layer through FFTs of the whole grid."""
        dims = tuple(range(-self.n_dim, 0))
        grid = tuple(x.shape[-self.n_dim :])
        coef = torch.fft.rfftn(x, dim=dims, norm="forward")
        g = getattr(self, "groups", 1)
        out = torch.zeros(
            (x.shape[0], self.weight.shape[2] * g) + tuple(coef.shape[2:]),
            dtype=coef.dtype,
            device=x.device,
        )
        weight = self._complex_weight()
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
            if g > 1:
                grouped = coef[block].unflatten(1, (g, -1)), w.unflatten(0, (g, -1))
                out[block] = torch.einsum("bgi...,gio...->bgo...", *grouped).flatten(1, 2)
            else:
                out[block] = torch.einsum("bi...,io...->bo...", coef[block], w)
        return torch.fft.irfftn(out, s=grid, dim=dims, norm="forward")


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


def _matmul_2d(t, matrix):
    """``t @ matrix`` as one 2-D product (complex batched products are slow on CPU)."""
    return torch.mm(t.reshape(-1, t.shape[-1]), matrix).view(t.shape[:-1] + matrix.shape[-1:])


class _GridCache:
    """Constants a module derives from the grid it is evaluated on, per key.

    Each value is built once, outside inference mode and without gradients,
    so that a grid first seen in ``predict`` can later be trained on. The
    cache is not part of the model: it pickles and deep-copies as empty.
    """

    def __init__(self):
        self.table = {}

    def get(self, key, build, fresh=None, limit=None):
        """The value for ``key``, built when missing or when ``fresh(value)``
        is false; with ``limit``, the cache is emptied before it would hold
        more values."""
        value = self.table.get(key)
        if value is None or (fresh is not None and not fresh(value)):
            if limit is not None and key not in self.table and len(self.table) >= limit:
                self.table.clear()
            with torch.inference_mode(False), torch.no_grad():
                value = self.table[key] = build()
        return value

    def __bool__(self):
        return bool(self.table)

    def __reduce_ex__(self, protocol):
        return (_GridCache, ())


def _grid_cache(module, name):
    """The :class:`_GridCache` stored as ``name`` on ``module``, created when
    absent (also on a module pickled before it had one)."""
    cache = module.__dict__.get(name)
    if cache is None:
        cache = module.__dict__[name] = _GridCache()
    return cache


class FactorizedSpectralConv(nn.Module):
    """Fourier layer acting on one axis at a time: ``v -> Σ_a IFFT_a(R_a · FFT_a(v))``.

    Each axis ``a`` has its own one-dimensional spectral convolution, applied
    along that axis at every point of the others, and the results are summed
    (the factorised Fourier layer of Tran et al., 2023). Weights grow with
    the number of axes instead of with its power: ``n_dim * n_modes`` modes
    per channel pair instead of ``2^(n_dim - 1) * n_modes^n_dim``, which on
    small training sets also means less overfitting. On a 1-D grid it is the
    same layer as :class:`SpectralConv`.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input and output functions.
    n_dim : int
        Number of grid axes (1, 2 or 3).
    n_modes : int
        Modes kept along each axis, ``0 <= k < n_modes``; on a grid too coarse
        for some of them only those it resolves are used.
    even : bool, default=False
        Real weights on every axis (see :class:`SpectralConv`): the layer
        then commutes with reflecting any one axis of the periodic grid,
        ``j -> (n - j) mod n`` along it.
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
        self.n_modes = n_modes
        self.groups = int(groups)
        self.axes = nn.ModuleList(
            SpectralConv(in_channels, out_channels, 1, n_modes, even=even, groups=groups)
            for _ in range(n_dim)
        )

    def forward(self, x):
        if self.n_dim == 2 and _few_queries_in_inference(self, x):
            return self._forward_factors_2d(x)
        out = None
        for axis, layer in enumerate(self.axes):
            dim = x.ndim - self.n_dim + axis
            # A 1-D SpectralConv acts along the last axis, at every point of
            # the axes between the channels and the last.
            part = layer(x.movedim(dim, -1)).movedim(-1, dim)
            out = part if out is None else out + part
        return out

    def _forward_factors_2d(self, x):
        """A few 2-D queries in inference: both axes' real factors, fused.

        The same numbers, to rounding, as applying each axis' 1-D layer in
        turn (without running hooks registered on the axes), in fewer
        operations: each axis' transform reads ``x`` where it lies, without
        a copy that moves the axis last. A single query (the latency that
        matters most) takes the columns without any copy and the rows with
        one (see :func:`_along_last_axis`): a Fourier layer of a Darcy
        expert (width 24, 16x16) took 54 µs instead of 87 µs with the
        batched layout below.
        """
        n, _, rows, cols = x.shape
        along_rows, along_cols = self.axes
        along_rows = along_rows._inference_factors(x.transpose(-1, -2))
        along_cols = along_cols._inference_factors(x)
        f_rows, mix_rows, g_rows = along_rows[:3]
        f_cols, mix_cols, g_cols = along_cols[:3]
        groups, n_modes = mix_cols.shape[:2]
        n_in, n_out = mix_cols.shape[2] // 2, mix_cols.shape[3] // 2  # per group
        if n == 1:
            by_cols = _along_last_axis(x, along_cols)
            # Along the rows: (groups, in, modes * [re, im], cols), one copy
            # to (groups * modes, [re, im] * in, cols), mixed, and back to
            # samples as (groups, rows, out * cols).
            by_rows = torch.matmul(along_rows.forward_t, x).view(groups, n_in, n_modes, 2, cols)
            by_rows = by_rows.permute(0, 2, 3, 1, 4).reshape(groups * n_modes, 2 * n_in, cols)
            by_rows = torch.bmm(along_rows.mix_t, by_rows)
            if groups == 1:
                by_rows = torch.mm(along_rows.inverse_t, by_rows.view(2 * n_modes, n_out * cols))
            else:
                inverse = along_rows.inverse_t.expand(groups, -1, -1)
                by_rows = torch.bmm(inverse, by_rows.view(groups, 2 * n_modes, n_out * cols))
            by_rows = by_rows.view(groups, rows, n_out, cols).transpose(1, 2)
            out = by_cols.view(groups, n_out, rows, cols) + by_rows
            return out.reshape(1, groups * n_out, rows, cols)
        batches = (groups * n_modes, -1, 2 * n_in)
        # To the kept modes, per axis: (n, in, rows, modes * [re, im]) and
        # (n, in, modes * [re, im], cols), then laid out per group and mode as
        # (groups, modes, n, points of the other axis, [re, im], in).
        by_cols = torch.matmul(x, f_cols).view(n, groups, n_in, rows, n_modes, 2)
        by_rows = torch.matmul(f_rows.T, x).view(n, groups, n_in, n_modes, 2, cols)
        by_cols = by_cols.permute(1, 4, 0, 3, 5, 2).reshape(batches)
        by_rows = by_rows.permute(1, 3, 0, 5, 4, 2).reshape(batches)
        by_cols = torch.bmm(by_cols, mix_cols.view(groups * n_modes, 2 * n_in, 2 * n_out))
        by_rows = torch.bmm(by_rows, mix_rows.view(groups * n_modes, 2 * n_in, 2 * n_out))
        # And back to samples along each axis, then summed.
        by_cols = by_cols.view(groups, n_modes, n, rows, 2, n_out).permute(2, 0, 5, 3, 1, 4)
        by_rows = by_rows.view(groups, n_modes, n, cols, 2, n_out).permute(2, 0, 5, 1, 4, 3)
        width = groups * n_out
        out = torch.matmul(by_cols.reshape(n, width, rows, 2 * n_modes), g_cols)
        return out + torch.matmul(g_rows.T, by_rows.reshape(n, width, 2 * n_modes, cols))


# A 1-D SpectralConv keeps the inference factors of at most this many grids.
_INFERENCE_GRIDS = 4


def _few_queries_in_inference(module, x):
    """True for at most ``_SMALL_BATCH`` samples, without gradients or training:
    when the layers take their real-factor inference paths."""
    return x.shape[0] <= _SMALL_BATCH and not (module.training or torch.is_grad_enabled())


_VERSIONED = contextvars.ContextVar("sklearn_mono_versioned_weights", default=False)


@contextlib.contextmanager
def _versioned_weights():
    """Check the inference factors of spectral layers by version, not by value.

    Outside this context, a layer that answers a few queries from its cached
    real factors first compares its weights with a copy of those the
    factors were built from, value by value: exact whatever edited them,
    but it reads the weights and the copy on every query, as much memory
    as the factors. With three models queried in turn, as in the
    benchmark, that cost a Darcy query about 0.1 ms of its 0.8-1.0 ms.
    Inside it, the factors stand while each weight is the same tensor, at
    the same storage address and version counter. Every change torch
    records moves one of them: optimiser steps, ``load_state_dict``,
    in-place edits under ``torch.no_grad()``, assigning ``.data``. In-place
    edits through ``.data`` are not recorded (autograd misses them too);
    after one, ``train()`` drops the factors. ``MoNORegressor`` evaluates
    its experts within it.
    """
    token = _VERSIONED.set(True)
    try:
        yield
    finally:
        _VERSIONED.reset(token)


class _WeightState(NamedTuple):
    """What values derived from a weight (inference factors, stacked copies)
    record of the weight they were built from."""

    tensor: weakref.ref
    storage: object  # held so that its address cannot be reused
    layout: tuple  # address, shape and strides
    version: object  # None for inference tensors, which keep no version
    values: object  # a copy of the weight, or None when it is checked by version only

    @classmethod
    def of(cls, weight, keep_values=True):
        version = None if weight.is_inference() else weight._version
        values = weight.detach().clone() if keep_values else None
        return cls(weakref.ref(weight), weight.untyped_storage(), _layout(weight), version, values)


def _layout(weight):
    """Where and how a tensor lies: its address, shape and strides."""
    return weight.data_ptr(), tuple(weight.shape), weight.stride()


def _built_from(state, weight):
    """True when what was built from the weight recorded in ``state`` holds
    for ``weight``: within :func:`_versioned_weights`, the same tensor at the
    same address, shape, strides and version; otherwise the same values (and
    never, for a state that kept no values)."""
    if state.version is not None and _VERSIONED.get() and state.tensor() is weight:
        return weight._version == state.version and _layout(weight) == state.layout
    return state.values is not None and torch.equal(state.values, weight)


class _Factors(NamedTuple):
    """A 1-D layer's real inference factors (see ``SpectralConv._inference_factors``),
    with the transposed views a single query's pass reads."""

    forward: torch.Tensor  # (points, modes * [re, im])
    mix: torch.Tensor  # (groups, modes, [re, im] * in, [re, im] * out)
    inverse: torch.Tensor  # (modes * [re, im], points)
    forward_t: torch.Tensor
    mix_t: torch.Tensor  # (groups * modes, [re, im] * out, [re, im] * in)
    inverse_t: torch.Tensor

    @classmethod
    def of(cls, forward, mix, inverse):
        mix_t = mix.view((-1,) + mix.shape[2:]).transpose(1, 2)
        return cls(forward, mix, inverse, forward.T, mix_t, inverse.T)


def _apply_factors(x, factors):
    """A 1-D spectral convolution along the last axis of ``x`` from its real
    :class:`_Factors`.

    ``x`` is ``(n, in, *others, points)``; the axes between the channels and
    the last are carried along.
    """
    if x.shape[0] == 1:
        return _along_last_axis(x, factors)
    forward, mix, inverse = factors[:3]
    n, points = x.shape[0], x.shape[-1]
    others = x.shape[2:-1]
    groups, n_modes = mix.shape[:2]
    n_in, n_out = mix.shape[2] // 2, mix.shape[3] // 2  # per group
    coef = torch.matmul(x, forward)  # (n, in, *others, modes * [re, im])
    # -> (groups * modes, n * others, [re_in, im_in]): one real product per
    # group and mode.
    coef = coef.reshape(n, groups, n_in, -1, n_modes, 2).permute(1, 4, 0, 3, 5, 2)
    mix = mix.view(groups * n_modes, 2 * n_in, 2 * n_out)
    coef = torch.bmm(coef.reshape(groups * n_modes, -1, 2 * n_in), mix)
    # -> (n, out, others, modes * [re, im]), and back to samples.
    coef = coef.view(groups, n_modes, n, -1, 2, n_out).permute(2, 0, 5, 3, 1, 4)
    coef = coef.reshape(n, groups * n_out, -1, 2 * n_modes)
    return torch.matmul(coef, inverse).view((n, groups * n_out) + others + (points,))


def _along_last_axis(x, factors):
    """:func:`_apply_factors` for one sample, without copying it.

    Three products on views: the sample as (groups, in * others, points),
    transformed to (groups, modes * [re, im], in * others) — each mode's
    ``[re, im] * in`` block is then one matrix, mixed by the transposed
    channel mixing — and back from (groups, out * others, modes * [re, im])
    to samples. The batched layout of :func:`_apply_factors` moves the
    coefficients twice instead.
    """
    groups, n_modes = factors.mix.shape[:2]
    n_in, n_out = factors.mix.shape[2] // 2, factors.mix.shape[3] // 2  # per group
    points = x.shape[-1]
    if groups == 1:
        coef = torch.mm(factors.forward_t, x.reshape(-1, points).T)
        coef = torch.bmm(factors.mix_t, coef.view(n_modes, 2 * n_in, -1))
        out = torch.mm(coef.view(2 * n_modes, -1).T, factors.inverse)
    else:
        rows = x.reshape(groups, -1, points).transpose(1, 2)
        coef = torch.bmm(factors.forward_t.expand(groups, -1, -1), rows)
        coef = torch.bmm(factors.mix_t, coef.view(groups * n_modes, 2 * n_in, -1))
        coef = coef.view(groups, 2 * n_modes, -1).transpose(1, 2)
        out = torch.bmm(coef, factors.inverse.expand(groups, -1, -1))
    return out.view((1, groups * n_out) + x.shape[2:-1] + (points,))
