"""Sampled functions: how arrays map to grids and channels.

Every estimator in the package works internally on *canonical* arrays of
shape ``(n_samples, n_channels, *grid)``. This module turns the layouts users
pass into that form, turns predictions back into the layout ``y`` had at fit,
and resamples functions between grids.

The rules (also in ``docs/data_layout.rst``):

* 2-D ``X`` of shape ``(n_samples, n_features)`` is a 1-D function sampled at
  ``n_features`` points, unless ``grid_shape`` is given: then each row is
  unfolded (C order, channels first) into ``(n_channels, *grid_shape)``.
* N-D ``X`` has its grid in the trailing ``grid_ndim`` axes; between the
  sample axis and the grid there is either nothing (one channel) or one
  channel axis. Without ``grid_ndim`` every axis after the first is a grid
  axis.
* ``y`` is a function on the grid of ``X`` when its trailing axes equal that
  grid, with or without a channel axis in front of them. A 1-D ``y`` is one
  scalar per sample and a 2-D ``y`` that does not match the grid is a vector
  of scalars per sample (a *functional* of the input).
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
            f"grid_shape must be a non-empty tuple of positive integers, got "
            f"{grid_shape!r}."
        )
    return grid


def validate_functions(
    estimator, X, *, reset, grid_shape=None, grid_ndim=None, fitted_grid_ndim=None
):
    """Validate ``X`` and return it as ``(n_samples, n_channels, *grid)``.

    Parameters
    ----------
    estimator : estimator instance
        Receives ``n_features_in_`` (and ``feature_names_in_``) when ``reset``.
    X : array-like
        The user's input.
    reset : bool
        True at fit, False at predict/transform.
    grid_shape : tuple of int or None
        How to fold 2-D input.
    grid_ndim : int or None
        Number of grid axes of N-D input (fit only).
    fitted_grid_ndim : int or None
        Number of grid axes seen at fit (predict only).

    Returns
    -------
    F : ndarray of shape (n_samples, n_channels, *grid)
        Float32 or float64 array.
    layout : InputLayout
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
    extra = X.ndim - 1 - d
    if extra == 0:
        F = X[:, None]
    elif extra == 1:
        F = X
    else:
        raise ValueError(
            f"X has shape {X.shape} but the grid has {d} dimension(s); expected "
            f"(n_samples, *grid) or (n_samples, n_channels, *grid), i.e. an array "
            f"with {d + 1} or {d + 2} dimensions."
        )
    return F, InputLayout(tuple(F.shape[2:]), F.shape[1], False)


def validate_targets(y, layout, grid_shape=None):
    """Validate ``y`` against the input layout; return 2-D or canonical ``Y``.

    Returns
    -------
    Y : ndarray
        ``(n_samples, n_channels, *grid)`` for function targets, otherwise
        ``(n_samples, n_outputs)``.
    target_layout : TargetLayout
    """
    y = check_array(
        y, ensure_2d=False, allow_nd=True, dtype=FLOAT_DTYPES, input_name="y"
    )
    grid = layout.grid
    d = len(grid)
    n = y.shape[0]
    if y.ndim == 1:
        return y[:, None], TargetLayout("scalar", 1, False, False)
    if tuple(y.shape[1:]) == grid:
        return y[:, None], TargetLayout("function", 1, False, False)
    if y.ndim == d + 2 and tuple(y.shape[2:]) == grid:
        return y, TargetLayout("function", y.shape[1], True, False)
    size = prod(grid)
    if y.ndim == 2 and grid_shape is not None and layout.flat and y.shape[1] % size == 0:
        channels = y.shape[1] // size
        return y.reshape(n, channels, *grid), TargetLayout("function", channels, True, True)
    if y.ndim == 2:
        return y, TargetLayout("vector", y.shape[1], False, False)
    raise ValueError(
        f"y has shape {y.shape}, which does not fit the grid {grid} of X. Expected "
        f"(n_samples,), (n_samples, n_outputs), (n_samples, *{grid}) or "
        f"(n_samples, n_channels, *{grid})."
    )


def restore_targets(P, target_layout):
    """Return predictions ``P`` in the layout ``y`` had at fit."""
    kind = target_layout.kind
    if kind == "scalar":
        return P[:, 0]
    if kind == "vector":
        return P
    if target_layout.flat:
        return P.reshape(P.shape[0], -1)
    if target_layout.channel_axis:
        return P
    return P[:, 0]


def resample(F, grid):
    """Resample canonical functions ``F`` onto ``grid`` by Fourier interpolation.

    Functions are treated as periodic samples ``x_j = j / N`` on each axis, the
    convention of the spectral layers; a band-limited function is resampled
    exactly.
    """
    grid = tuple(grid)
    for axis, (old, new) in enumerate(zip(F.shape[2:], grid), start=2):
        if old != new:
            F = signal.resample(F, new, axis=axis)
    return F


def validate_query(estimator, X, grid_shape, resolution_invariant):
    """Validate ``X`` at predict against what ``estimator`` was fitted on.

    ``estimator`` has ``grid_`` and ``n_channels_in_``. Another grid than at
    fit is accepted when ``resolution_invariant``.

    Returns
    -------
    F : ndarray of shape (n_samples, n_channels, *grid)
    layout : InputLayout
    """
    F, layout = validate_functions(
        estimator, X, reset=False, grid_shape=grid_shape, fitted_grid_ndim=len(estimator.grid_)
    )
    name = type(estimator).__name__
    if layout.n_channels != estimator.n_channels_in_:
        raise ValueError(
            f"X has {layout.n_channels} input channel(s), but {name} was fitted with "
            f"{estimator.n_channels_in_}."
        )
    if layout.grid != estimator.grid_ and not resolution_invariant:
        raise ValueError(
            f"X is sampled on the grid {layout.grid}, but {name} was fitted on "
            f"{estimator.grid_} and its operator works at one resolution only. "
            f"Resample X to {estimator.grid_}, or use a resolution-invariant operator "
            f"such as the FNO."
        )
    return F, layout
