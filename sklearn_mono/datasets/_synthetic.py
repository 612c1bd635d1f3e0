"""Operators with a closed-form answer, evaluated exactly on any grid."""

import numpy as np
from sklearn.utils import check_random_state

from ._pde import _positive_int


def make_antiderivative(n_samples=1000, n_points=64, *, n_terms=16, random_state=None):
    """Random smooth functions ``u`` and their antiderivatives ``∫₀ˣ u``.

    ``u(x) = a₀ + Σₖ aₖ cos(2πkx) + bₖ sin(2πkx)``, ``k = 1 .. n_terms``, with
    normal coefficients of standard deviation ``1 / k``; ``y`` is integrated
    in closed form. Both are sampled at ``x_j = j / n_points``.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of input/output pairs.
    n_points : int, default=64
        Grid points on ``[0, 1)``.
    n_terms : int, default=16
        Highest frequency in ``u``.
    random_state : int, RandomState instance or None, default=None
        Seeds the coefficients, the same at any ``n_points``.

    Returns
    -------
    X : ndarray of shape (n_samples, n_points)
        The functions ``u``.
    y : ndarray of shape (n_samples, n_points)
        Their antiderivatives ``∫₀ˣ u(s) ds``.

    Examples
    --------
    >>> from sklearn_mono.datasets import make_antiderivative
    >>> X, y = make_antiderivative(n_samples=5, n_points=32, random_state=0)
    >>> X.shape, y.shape
    ((5, 32), (5, 32))
    """
    _positive_int("n_samples", n_samples)
    _positive_int("n_points", n_points)
    _positive_int("n_terms", n_terms)
    rng = check_random_state(random_state)
    k = np.arange(1, n_terms + 1)
    a0 = rng.normal(size=(n_samples, 1))
    a = rng.normal(size=(n_samples, n_terms)) / k
    b = rng.normal(size=(n_samples, n_terms)) / k
    x = np.arange(n_points) / n_points
    phase = 2 * np.pi * np.outer(k, x)  # (n_terms, n_points)
    X = a0 + a @ np.cos(phase) + b @ np.sin(phase)
    w = 2 * np.pi * k
    y = a0 * x + (a / w) @ np.sin(phase) + (b / w) @ (1 - np.cos(phase))
    return X, y


def make_smoothing_2d(n_samples=500, resolution=16, *, alpha=0.01, n_terms=5, random_state=None):
    """Random periodic fields ``u`` and their smoothing ``(I - αΔ)⁻¹ u`` on the unit torus.

    ``u`` is a real trigonometric polynomial with frequencies ``|k₁|, |k₂| <=
    n_terms`` and normal coefficients of standard deviation ``1 / (1 + |k|²)``;
    ``y`` divides the coefficient of ``k`` by ``1 + 4π²α|k|²``, exactly. Both
    are sampled at ``(i / resolution, j / resolution)``.

    Parameters
    ----------
    n_samples : int, default=500
        Number of input/output pairs.
    resolution : int, default=16
        Grid points per axis.
    alpha : float, default=0.01
        Smoothing strength.
    n_terms : int, default=5
        Highest frequency per axis in ``u``.
    random_state : int, RandomState instance or None, default=None
        Seeds the coefficients, the same at any resolution above ``2 * n_terms``.

    Returns
    -------
    X : ndarray of shape (n_samples, resolution, resolution)
        The fields ``u``.
    y : ndarray of shape (n_samples, resolution, resolution)
        The smoothed fields.

    Examples
    --------
    >>> from sklearn_mono.datasets import make_smoothing_2d
    >>> X, y = make_smoothing_2d(n_samples=3, resolution=16, random_state=0)
    >>> X.shape, y.shape
    ((3, 16, 16), (3, 16, 16))
    """
    _positive_int("n_samples", n_samples)
    _positive_int("resolution", resolution)
    _positive_int("n_terms", n_terms)
    if resolution <= 2 * n_terms:
        raise ValueError(
            f"resolution={resolution} cannot resolve n_terms={n_terms}; expected "
            f"resolution > {2 * n_terms}."
        )
    rng = check_random_state(random_state)
    k = np.arange(-n_terms, n_terms + 1)
    k1, k2 = np.meshgrid(k, k, indexing="ij")
    k_sq = k1**2 + k2**2
    std = 1.0 / (1.0 + k_sq)
    shape = (n_samples,) + k_sq.shape
    coef = (rng.normal(size=shape) + 1j * rng.normal(size=shape)) * std
    x = np.arange(resolution) / resolution
    e = np.exp(2j * np.pi * np.outer(k, x))  # (n_freq, resolution)
    # Real part of Σ c_k exp(2πi k·x): a real field with random phases.
    X = np.einsum("nab,ai,bj->nij", coef, e, e).real
    smoothed = coef / (1.0 + 4 * np.pi**2 * alpha * k_sq)
    y = np.einsum("nab,ai,bj->nij", smoothed, e, e).real
    return X, y
