"""Sampled functions: how arrays map to grids and channels.

Estimators work internally on *canonical* arrays of shape
``(n_samples, n_channels, *grid)``. This module turns the layouts of
``docs/data_layout.rst`` into that form, turns predictions back into the
layout of ``y`` at fit, and resamples functions between grids.
"""

from dataclasses import dataclass
from math import prod

import numpy as np
from scipy import signal
from sklearn.utils.validation import check_array, validate_data

FLOAT_DTYPES = (np.float64, np.float32)


@dataclass(frozen=True)
class InputLayout:
    """How one ``X`` array maps onto ``(n_samples, n_channels, *grid)``."""

    grid: tuple
    n_channels: int
    flat: bool


@dataclass(frozen=True)
class TargetLayout:
    """How ``y`` was laid out at fit, so that predictions can match it."""

    kind: str  # "function", "vector" or "scalar"
    n_channels: int  # output channels (function) or outputs (vector/scalar)
    channel_axis: bool
    flat: bool


def _check_grid_shape(grid_shape):
    if grid_shape is None:
        return None
    try:
        grid = tuple(int(g) for g in grid_shape)
    except (TypeError, ValueError):
        raise TypeError(
            f"grid_shape must be a tuple of positive integers, got {grid_shape!r}."
        ) from None
    if len(grid) == 0 or any(g < 1 for g in grid) or any(
        float(g) != float(h) for g, h in zip(grid, grid_shape)
    ):
        raise ValueError(
            f"grid_shape must be a non-empty tuple of positive integers, got {grid_shape!r}."
        )
    return grid


def validate_functions(
    estimator, X, *, reset, grid_shape=None, grid_ndim=None, fitted_grid_ndim=None
):
    """Validate ``X`` and return it as ``(n_samples, n_channels, *grid)`` with its layout.

    ``reset`` is True at fit, where ``estimator`` receives ``n_features_in_``
    and ``grid_ndim`` applies; at predict, ``fitted_grid_ndim`` is the number
    of grid axes seen at fit.
    """
    ndim = X.ndim if hasattr(X, "ndim") else np.asarray(X).ndim
    if ndim <= 2:
        X = validate_data(estimator, X, reset=reset, dtype=FLOAT_DTYPES)
    else:
        X = check_array(X, allow_nd=True, dtype=FLOAT_DTYPES, input_name="X")
        if reset:
            estimator.n_features_in_ = int(prod(X.shape[1:]))
            if hasattr(estimator, "feature_names_in_"):
                del estimator.feature_names_in_
    grid_shape = _check_grid_shape(grid_shape)
    n = X.shape[0]
    if X.ndim == 2:
        if grid_shape is None:
            if fitted_grid_ndim is not None and fitted_grid_ndim != 1:
                raise ValueError(
                    f"X is 2-D, which means a 1-D function, but the estimator was "
                    f"fitted on a {fitted_grid_ndim}-D grid. Pass X with its grid "
                    f"axes, shape (n_samples, [n_channels,] *grid), or set "
                    f"grid_shape to fold flat rows."
                )
            return X[:, None, :], InputLayout((X.shape[1],), 1, True)
        size = prod(grid_shape)
        if X.shape[1] % size:
            raise ValueError(
                f"X has {X.shape[1]} features, which cannot be folded into "
                f"grid_shape={grid_shape} ({size} points per channel); expected a "
                f"multiple of {size}."
            )
        channels = X.shape[1] // size
        return X.reshape(n, channels, *grid_shape), InputLayout(grid_shape, channels, True)
    if fitted_grid_ndim is not None:
        d = fitted_grid_ndim
    elif grid_ndim is not None:
        d = int(grid_ndim)
    elif grid_shape is not None:
        d = len(grid_shape)
    else:
        d = X.ndim - 1
    if X.ndim - 1 - d not in (0, 1):
        raise ValueError(
            f"X has shape {X.shape} but the grid has {d} dimension(s); expected "
            f"(n_samples, *grid) or (n_samples, n_channels, *grid), i.e. an array "
            f"with {d + 1} or {d + 2} dimensions."
        )
    F = X if X.ndim == d + 2 else X[:, None]
    return F, InputLayout(tuple(F.shape[2:]), F.shape[1], False)


def validate_targets(y, layout, grid_shape=None):
    """Validate ``y`` against the input layout; return ``Y`` and its ``TargetLayout``.

    ``Y`` is ``(n_samples, n_channels, *grid)`` for function targets and
    ``(n_samples, n_outputs)`` otherwise.
    """
    y = check_array(y, ensure_2d=False, allow_nd=True, dtype=FLOAT_DTYPES, input_name="y")
    grid = layout.grid
    if y.ndim == 1:
        return y[:, None], TargetLayout("scalar", 1, False, False)
    if tuple(y.shape[1:]) == grid:
        return y[:, None], TargetLayout("function", 1, False, False)
    if y.ndim == len(grid) + 2 and tuple(y.shape[2:]) == grid:
        return y, TargetLayout("function", y.shape[1], True, False)
    size = prod(grid)
    if y.ndim == 2 and grid_shape is not None and layout.flat and y.shape[1] % size == 0:
        channels = y.shape[1] // size
        return y.reshape(len(y), channels, *grid), TargetLayout("function", channels, True, True)
    if y.ndim == 2:
        return y, TargetLayout("vector", y.shape[1], False, False)
    raise ValueError(
        f"y has shape {y.shape}, which does not fit the grid {grid} of X. Expected "
        f"(n_samples,), (n_samples, n_outputs), (n_samples, *{grid}) or "
        f"(n_samples, n_channels, *{grid})."
    )


def restore_targets(P, target_layout):
    """Return predictions ``P`` in the layout ``y`` had at fit."""
    if target_layout.kind == "vector":
        return P
    if target_layout.flat:
        return P.reshape(P.shape[0], -1)
    return P if target_layout.channel_axis else P[:, 0]  # scalar: no channel axis


def resample(F, grid):
    """Resample canonical functions ``F`` onto ``grid`` by Fourier interpolation
    (periodic samples at ``x_j = j / N``; exact for band-limited functions)."""
    grid = tuple(grid)
    for axis, (old, new) in enumerate(zip(F.shape[2:], grid), start=2):
        if old != new:
            F = signal.resample(F, new, axis=axis)
    return F


def validate_query(estimator, X, grid_shape, resolution_invariant, n_channels=None):
    """Validate ``X`` at predict against the ``grid_`` and channels (by default
    ``n_channels_in_``) of ``estimator``, like ``validate_functions``; another
    grid than at fit is accepted when ``resolution_invariant``."""
    F, layout = validate_functions(
        estimator, X, reset=False, grid_shape=grid_shape, fitted_grid_ndim=len(estimator.grid_)
    )
    name = type(estimator).__name__
    if n_channels is None:
        n_channels = estimator.n_channels_in_
    if layout.n_channels != n_channels:
        raise ValueError(
            f"X has {layout.n_channels} input channel(s), but {name} was fitted with "
            f"{n_channels}."
        )
    if layout.grid != estimator.grid_ and not resolution_invariant:
        raise ValueError(
            f"X is sampled on the grid {layout.grid}, but {name} was fitted on "
            f"{estimator.grid_} and its operator works at one resolution only. "
            f"Resample X to {estimator.grid_}, or use a resolution-invariant operator "
            f"such as the FNO."
        )
    return F, layout
