import numpy as np
import pytest

from sklearn_mono import FourierEncoder, PCAEncoder
from sklearn_mono.datasets import make_smoothing_2d


def test_fourier_known_coefficients():
    x = np.arange(32) / 32
    u = 2.0 + 3.0 * np.cos(2 * np.pi * x) - 4.0 * np.sin(2 * np.pi * 2 * x)
    enc = FourierEncoder(n_modes=3).fit(u[None])
    assert enc.modes_.ravel().tolist() == [0, 1, 2, 3]
    z = enc.transform(u[None])[0]
    # real parts of k=0..3, then imaginary parts of k=1..3
    np.testing.assert_allclose(z, [2.0, 1.5, 0, 0, 0, 2.0, 0], atol=1e-12)
    assert len(enc.get_feature_names_out()) == 7


def test_fourier_is_resolution_invariant():
    X16, _ = make_smoothing_2d(n_samples=10, resolution=16, random_state=0)
    X32, _ = make_smoothing_2d(n_samples=10, resolution=32, random_state=0)
    enc = FourierEncoder(n_modes=3).fit(X16)
    z16, z32 = enc.transform(X16), enc.transform(X32)
    assert z16.shape == (10, (7 * 7 - 1) // 2 * 2 + 1)
    np.testing.assert_allclose(z16, z32, atol=1e-10)  # band-limited fields


def test_fourier_near_invariant_for_non_bandlimited_inputs(rng):
    # a smooth but not band-limited field: exp(sin + cos)
    def field(n):
        x = np.arange(n) / n
        return np.exp(np.sin(2 * np.pi * x)[:, None] + np.cos(2 * np.pi * x)[None, :])

    enc = FourierEncoder(n_modes=4).fit(field(16)[None])
    z16, z32 = enc.transform(field(16)[None]), enc.transform(field(32)[None])
    assert np.abs(z16 - z32).max() < 1e-3 * np.abs(z32).max()


def test_fourier_channels_and_layouts(rng):
    X = rng.normal(size=(5, 2, 16, 16))
    enc = FourierEncoder(n_modes=2, grid_ndim=2).fit(X)
    assert enc.n_channels_ == 2 and enc.grid_ == (16, 16)
    z = enc.transform(X)
    assert z.shape == (5, 2 * (2 * 13 - 1))
    # the same data as flat rows folded by grid_shape
    flat = FourierEncoder(n_modes=2, grid_shape=(16, 16)).fit(X.reshape(5, -1))
    np.testing.assert_allclose(flat.transform(X.reshape(5, -1)), z)


def test_fourier_errors(rng):
    enc = FourierEncoder(n_modes=4).fit(rng.normal(size=(3, 16, 16)))
    with pytest.raises(ValueError, match="too coarse"):
        enc.transform(rng.normal(size=(3, 6, 6)))
    with pytest.raises(ValueError, match="channel"):
        enc.transform(rng.normal(size=(3, 2, 16, 16)))
    with pytest.raises(ValueError, match="grid_shape"):
        FourierEncoder(grid_shape=(5, 5)).fit(rng.normal(size=(3, 24)))


def test_pca_resamples_finer_grids():
    X16, _ = make_smoothing_2d(n_samples=40, resolution=16, random_state=0)
    X32, _ = make_smoothing_2d(n_samples=40, resolution=32, random_state=0)
    enc = PCAEncoder(n_components=5, random_state=0).fit(X16)
    assert enc.n_components_ == 5
    np.testing.assert_allclose(enc.transform(X32), enc.transform(X16), atol=1e-8)


def test_pca_caps_components(rng):
    enc = PCAEncoder(n_components=50).fit(rng.normal(size=(10, 4)))
    assert enc.n_components_ == 4
    assert enc.transform(rng.normal(size=(3, 4))).shape == (3, 4)
