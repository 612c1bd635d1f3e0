"""Encoders: sampled functions to short vectors, used to route inputs.

Scikit-learn transformers that read functions in the layout of
``docs/data_layout.rst`` and return a 2-D array of features.
"""

from itertools import product
from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.base import _fit_context
from sklearn.decomposition import PCA
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from ._layout import resample, validate_functions, validate_query

__all__ = ["FourierEncoder", "PCAEncoder"]


class _FunctionEncoder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Shared validation of the function layout for the encoders."""

    _parameter_constraints: dict = {
        "grid_shape": ["array-like", None],
        "grid_ndim": [Interval(Integral, 1, None, closed="left"), None],
    }

    def _validate_fit(self, X):
        F, layout = validate_functions(
            self, X, reset=True, grid_shape=self.grid_shape, grid_ndim=self.grid_ndim
        )
        self.grid_ = layout.grid
        self.n_channels_ = layout.n_channels
        return F

    def _validate_transform(self, X):
        """``X`` as ``(n, n_channels, *grid)``, on the fit grid or another."""
        check_is_fitted(self)
        return validate_query(self, X, self.grid_shape, True, n_channels=self.n_channels_)[0]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


class FourierEncoder(_FunctionEncoder):
    """Encode functions by their lowest Fourier coefficients.

    Each channel is transformed by a DFT normalised by ``1 / N``, whose
    coefficients approximate ``∫ u(x) exp(-2πi k·x) dx`` at any resolution.
    The frequencies with ``|k_i| <= n_modes`` on every axis are kept, one of
    each conjugate pair, as real and imaginary parts, so distances between
    encodings approximate L2 distances between low-pass parts.

    Parameters
    ----------
    n_modes : int, default=4
        Highest frequency kept per grid axis; lowered at fit on coarse grids.
    grid_shape : tuple of int, default=None
        Grid onto which each row of 2-D input is folded.
    grid_ndim : int, default=None
        Number of grid axes of N-D input; None means every axis after the first.

    Attributes
    ----------
    grid_ : tuple of int
        Grid seen at fit.
    n_channels_ : int
        Number of input channels.
    modes_ : ndarray of shape (n_frequencies, grid_ndim)
        Integer frequencies that are encoded, zero first.
    n_features_in_ : int
        Number of values per sample seen at fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen at fit, when ``X`` had string column names.

    See Also
    --------
    PCAEncoder : Encode by principal components of the sampled values.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mono.encoders import FourierEncoder
    >>> x = np.arange(16) / 16
    >>> X = np.stack([np.sin(2 * np.pi * x), np.cos(2 * np.pi * x)])
    >>> Z = FourierEncoder(n_modes=2).fit_transform(X)  # Re k=0,1,2, then Im k=1,2
    >>> Z.round(3) + 0.0
    array([[ 0. ,  0. ,  0. , -0.5,  0. ],
           [ 0. ,  0.5,  0. ,  0. ,  0. ]])
    """

    _parameter_constraints: dict = {
        **_FunctionEncoder._parameter_constraints,
        "n_modes": [Interval(Integral, 0, None, closed="left")],
    }

    def __init__(self, n_modes=4, *, grid_shape=None, grid_ndim=None):
        self.n_modes = n_modes
        self.grid_shape = grid_shape
        self.grid_ndim = grid_ndim

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Choose the encoded frequencies for the grid of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, [n_channels,] \\*grid)
            Sampled functions.
        y : None
            Ignored.

        Returns
        -------
        self : FourierEncoder
            The fitted encoder.
        """
        self._validate_fit(X)
        limits = [min(self.n_modes, (n - 1) // 2) for n in self.grid_]
        modes = [k for k in product(*(range(-m, m + 1) for m in limits)) if _is_half_space(k)]
        modes.sort(key=lambda k: (sum(map(abs, k)), k))
        self.modes_ = np.array(modes, dtype=int).reshape(-1, len(self.grid_))
        return self

    @property
    def _n_features_out(self):
        return self.n_channels_ * (2 * len(self.modes_) - 1)

    def transform(self, X):
        """Return the low Fourier coefficients of each channel.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, [n_channels,] \\*grid)
            Sampled functions, on any grid fine enough for the encoded modes.

        Returns
        -------
        Z : ndarray of shape (n_samples, n_channels * (2 * n_frequencies - 1))
            Real parts of all frequencies, then imaginary parts of the
            non-zero ones, channel after channel.
        """
        F = self._validate_transform(X)
        grid = F.shape[2:]
        need = 2 * np.abs(self.modes_).max(axis=0, initial=0) + 1
        if any(n < m for n, m in zip(grid, need)):
            raise ValueError(
                f"X is sampled on a grid {grid}, too coarse for the "
                f"{self.modes_.max(initial=0)} Fourier mode(s) fitted; expected at "
                f"least {tuple(int(m) for m in need)} points."
            )
        coef = np.fft.rfftn(F, axes=tuple(range(2, F.ndim)), norm="forward")
        index = tuple(np.mod(self.modes_[:, i], n) for i, n in enumerate(grid))
        picked = coef[(slice(None), slice(None)) + index]  # (n, C, n_freq)
        Z = np.concatenate([picked.real, picked.imag[:, :, 1:]], axis=2)
        return Z.reshape(len(F), -1).astype(F.dtype, copy=False)


def _is_half_space(k):
    """True for zero and for one of each pair ``k, -k``: the one whose last
    non-zero component is positive (the last axis is a real FFT's)."""
    for component in reversed(k):
        if component:
            return component > 0
    return True


class PCAEncoder(_FunctionEncoder):
    """Encode functions by the principal components of their sampled values.

    Functions are flattened on the fit grid and projected on their first
    principal components; input on another grid is first resampled onto the
    fit grid by Fourier interpolation.

    Parameters
    ----------
    n_components : int, default=8
        Number of components; at most ``min(n_samples, n_features)``.
    whiten : bool, default=False
        Scale the components to unit variance.
    grid_shape : tuple of int, default=None
        Grid onto which each row of 2-D input is folded.
    grid_ndim : int, default=None
        Number of grid axes of N-D input; None means every axis after the first.
    random_state : int, RandomState instance or None, default=None
        Passed to :class:`~sklearn.decomposition.PCA`.

    Attributes
    ----------
    pca_ : sklearn.decomposition.PCA
        The fitted PCA on flattened functions.
    n_components_ : int
        Number of components kept.
    grid_ : tuple of int
        Grid seen at fit.
    n_channels_ : int
        Number of input channels.
    n_features_in_ : int
        Number of values per sample seen at fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen at fit, when ``X`` had string column names.

    See Also
    --------
    FourierEncoder : Resolution-independent encoding by low Fourier modes.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mono.encoders import PCAEncoder
    >>> X = np.random.default_rng(0).normal(size=(50, 16))
    >>> PCAEncoder(n_components=3).fit_transform(X).shape
    (50, 3)
    """

    _parameter_constraints: dict = {
        **_FunctionEncoder._parameter_constraints,
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "whiten": ["boolean"],
        "random_state": ["random_state"],
    }

    def __init__(
        self, n_components=8, *, whiten=False, grid_shape=None, grid_ndim=None, random_state=None
    ):
        self.n_components = n_components
        self.whiten = whiten
        self.grid_shape = grid_shape
        self.grid_ndim = grid_ndim
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the principal components of the flattened functions.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, [n_channels,] \\*grid)
            Sampled functions.
        y : None
            Ignored.

        Returns
        -------
        self : PCAEncoder
            The fitted encoder.
        """
        F = self._validate_fit(X)
        flat = F.reshape(len(F), -1)
        self.n_components_ = int(min(self.n_components, *flat.shape))
        self.pca_ = PCA(
            n_components=self.n_components_, whiten=self.whiten, random_state=self.random_state
        ).fit(flat)
        return self

    @property
    def _n_features_out(self):
        return self.n_components_

    def transform(self, X):
        """Project functions on the principal components.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, [n_channels,] \\*grid)
            Sampled functions; N-D input on another grid is resampled first.

        Returns
        -------
        Z : ndarray of shape (n_samples, `n_components_`)
            The principal components.
        """
        F = self._validate_transform(X)
        if F.shape[2:] != self.grid_:
            F = resample(F, self.grid_)
        return self.pca_.transform(F.reshape(len(F), -1))
