"""The data sets against answers known in closed form."""

import time

import numpy as np
import pytest
from scipy.integrate import cumulative_trapezoid

from sklearn_mono.datasets import (
    make_antiderivative,
    make_burgers,
    make_darcy,
    make_smoothing_2d,
    solve_burgers,
    solve_darcy,
)


def _manufactured(n):
    x = np.arange(n) / n
    X, Y = np.meshgrid(x, x, indexing="ij")
    return np.sin(np.pi * X) * np.sin(np.pi * Y)


def test_darcy_solver_manufactured_solution_converges_at_second_order():
    errors = []
    for n in (16, 32, 64):
        exact = _manufactured(n)
        u = solve_darcy(np.ones((n, n)), 2 * np.pi**2 * exact)
        errors.append(np.abs(u - exact).max())
    assert errors[-1] < 3e-4
    rates = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    np.testing.assert_allclose(rates, 2.0, atol=0.1)


def test_darcy_solver_with_variable_coefficient():
    # a(x, y) = 1 + x: -d/dx((1 + x) du/dx) - (1 + x) d2u/dy2 for u = sin(pi x) sin(pi y)
    n = 64
    x = np.arange(n) / n
    X, Y = np.meshgrid(x, x, indexing="ij")
    a = 1 + X
    exact = np.sin(np.pi * X) * np.sin(np.pi * Y)
    f = -np.pi * np.cos(np.pi * X) * np.sin(np.pi * Y) + 2 * np.pi**2 * a * exact
    # the coefficient wraps periodically at x = 1: keep the test away from that edge
    u = solve_darcy(a, f)
    assert np.abs(u - exact)[: n // 2].max() < 2e-2


def test_make_darcy_layout_determinism_and_resolutions():
    X, y = make_darcy(n_samples=6, resolution=16, random_state=0)
    assert X.shape == y.shape == (6, 16, 16)
    assert set(np.unique(X)) <= {3.0, 12.0} and len(np.unique(X)) == 2
    np.testing.assert_array_equal(make_darcy(n_samples=6, resolution=16, random_state=0)[1], y)
    assert not np.allclose(make_darcy(n_samples=6, resolution=16, random_state=1)[1], y)
    assert np.all(y[:, 0, :] == 0) and np.all(y[:, :, 0] == 0) and np.all(y[:, 1:, 1:] > 0)
    data = make_darcy(n_samples=3, resolutions=(16, 32), random_state=0)
    np.testing.assert_array_equal(data[16][0], data[32][0][:, ::2, ::2])
    np.testing.assert_array_equal(data[16][1], data[32][1][:, ::2, ::2])
    with pytest.raises(ValueError, match="divide"):
        make_darcy(n_samples=2, resolutions=(12, 32))


def test_heterogeneous_darcy_draws_a_contrast_per_sample():
    X, y = make_darcy(n_samples=40, resolution=16, contrast=((3.0, 300.0), 3.0), random_state=0)
    plain, _ = make_darcy(n_samples=40, resolution=16, random_state=0)
    # the same random fields, with each sample's own high value in the range
    np.testing.assert_array_equal(X > 3.0, plain == 12.0)
    high = X.max(axis=(1, 2))
    assert np.all((high >= 3.0) & (high <= 300.0)) and np.unique(high).size == 40
    assert np.all(X.min(axis=(1, 2)) == 3.0)
    assert high.min() < 10 < 100 < high.max()  # spread over the two decades
    for i in (0, 7):
        np.testing.assert_allclose(y[i], solve_darcy(X[i]), rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(
        make_darcy(n_samples=40, resolution=16, contrast=((3.0, 300.0), 3.0), random_state=0)[1], y
    )
    # a homogeneous medium a = c scales the solution by 1 / c
    X, y = make_darcy(n_samples=6, resolution=16, contrast=((1.0, 10.0), (1.0, 10.0)),
                      random_state=1)
    c = X.reshape(6, -1)
    uniform = np.flatnonzero(c.min(axis=1) == c.max(axis=1))
    _, unit = make_darcy(n_samples=1, resolution=16, contrast=(1.0, 1.0))
    for i in uniform:
        np.testing.assert_allclose(y[i] * c[i, 0], unit[0], rtol=1e-10)


def test_parametric_burgers_gives_the_viscosity_as_a_channel():
    times = np.arange(1, 18) / 17
    X, y = make_burgers(n_samples=12, n_points=16, viscosity=(0.02, 2.0), random_state=0)
    assert X.shape == (12, 2, 16) and y.shape == (12, 17, 16)
    nu = X[:, 1, 0]
    assert np.all(X[:, 1] == nu[:, None]) and np.all((nu >= 0.02) & (nu <= 2.0))
    # the same initial states as with one viscosity, each solved with its own
    plain, _ = make_burgers(n_samples=12, n_points=16, random_state=0)
    np.testing.assert_array_equal(X[:, 0], plain)
    for i in (0, 5):
        alone = solve_burgers(X[i, :1, :], times, nu[i])  # its own time step
        np.testing.assert_allclose(y[i], alone[0], rtol=1e-5, atol=1e-6)
    # more viscosity dissipates more energy
    u = solve_burgers(np.repeat(X[:1, 0], 3, axis=0), times, np.array([0.02, 0.2, 2.0]))
    energy = np.linalg.norm(u[:, -1], axis=1)
    assert energy[0] > energy[1] > energy[2]


def test_make_darcy_is_fast():
    start = time.perf_counter()
    X, y = make_darcy(n_samples=200, resolution=32, random_state=0)
    # 1000 samples must take well under a minute; 200 here, with a wide margin
    assert time.perf_counter() - start < 20
    assert np.isfinite(y).all()


def test_burgers_conserves_the_mean_and_dissipates_energy():
    X, y = make_burgers(n_samples=20, n_points=16, random_state=0)
    assert X.shape == (20, 16) and y.shape == (20, 17, 16)
    # the mean is the k = 0 Fourier mode: solve on a grid that holds the whole
    # spectrum and compare means exactly
    fine = np.fft.irfft(np.fft.rfft(X, axis=1), n=128, axis=1) * 8
    u = solve_burgers(fine, [0.5, 1.0], 0.05, refine=1)
    np.testing.assert_allclose(u.mean(axis=2), np.repeat(fine.mean(axis=1, keepdims=True), 2, 1), atol=1e-12)
    energy = np.linalg.norm(u, axis=2)
    assert np.all(energy[:, 1] <= energy[:, 0] + 1e-12)
    assert np.all(energy[:, 0] <= np.linalg.norm(fine, axis=1) + 1e-12)


def test_burgers_converges_in_space_and_time():
    X, y = make_burgers(n_samples=5, n_points=16, random_state=0)
    reference = solve_burgers(X, np.arange(1, 18) / 17, 0.05, refine=16, cfl=0.05)
    assert np.abs(y - reference).max() < 1e-5 * np.abs(reference).max() + 1e-12


def test_burgers_inviscid_limit_steepens():
    # a sine steepens towards a shock: the gradient grows while viscosity is small
    x = np.arange(64) / 64
    u0 = np.sin(2 * np.pi * x)[None]
    u = solve_burgers(u0, [0.1], viscosity=0.005)
    assert np.abs(np.diff(u[0, 0])).max() > 1.5 * np.abs(np.diff(u0[0])).max()


def test_antiderivative_is_exact():
    X, y = make_antiderivative(n_samples=4, n_points=4096, random_state=0)
    np.testing.assert_allclose(cumulative_trapezoid(X, dx=1 / 4096, initial=0), y, atol=1e-6)


def test_smoothing_2d_is_exact_at_every_resolution():
    X16, y16 = make_smoothing_2d(n_samples=3, resolution=16, random_state=0)
    X32, y32 = make_smoothing_2d(n_samples=3, resolution=32, random_state=0)
    np.testing.assert_allclose(X32[:, ::2, ::2], X16, atol=1e-12)
    np.testing.assert_allclose(y32[:, ::2, ::2], y16, atol=1e-12)
    # (I - alpha * Laplacian) y = X, checked spectrally on the 32-point grid
    k = np.fft.fftfreq(32, d=1 / 32)
    symbol = 1 + 4 * np.pi**2 * 0.01 * (k[:, None] ** 2 + k[None, :] ** 2)
    np.testing.assert_allclose(np.fft.ifft2(np.fft.fft2(y32) * symbol).real, X32, atol=1e-10)


@pytest.mark.parametrize(
    "make, kwargs, match",
    [
        (make_darcy, {"n_samples": 0}, "n_samples"),
        (make_darcy, {"resolution": 2}, "resolution"),
        (make_burgers, {"n_points": 8, "n_terms": 4}, "n_terms"),
        (make_burgers, {"viscosity": -1.0}, "viscosity"),
        (make_burgers, {"viscosity": (1.0, 0.1)}, "low <= high"),
        (make_burgers, {"viscosity": (0.0, 1.0)}, "viscosity"),
        (make_burgers, {"viscosity": "low"}, "viscosity"),
        (make_darcy, {"contrast": ((3.0, -1.0), 1.0)}, "contrast"),
        (make_darcy, {"contrast": 3.0}, "contrast"),
        (make_antiderivative, {"n_points": 0}, "n_points"),
        (make_smoothing_2d, {"resolution": 8}, "resolution"),
    ],
)
def test_bad_arguments(make, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make(**kwargs)


def test_burgers_on_odd_grids():
    x = np.arange(15) / 15
    u0 = (np.sin(2 * np.pi * x) + 0.5 * np.cos(4 * np.pi * x))[None]
    odd = solve_burgers(u0, [0.3], 0.05, refine=3)  # 45 points
    even = solve_burgers(u0, [0.3], 0.05, refine=16)  # 240 points
    np.testing.assert_allclose(odd, even, atol=1e-4)
