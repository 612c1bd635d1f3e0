"""Data sets from numerical PDE solvers: Darcy flow and viscous Burgers."""

from numbers import Integral, Real

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import splu
from sklearn.utils import check_random_state


def _positive_int(name, value, minimum=1):
    if not isinstance(value, Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")


def _positive_real(name, value):
    if not isinstance(value, Real) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}.")


def _per_sample(name, value, n_samples, rng):
    """``value`` for every sample: a positive number, or a ``(low, high)`` range from
    which each sample draws its own value, uniformly in the logarithm."""
    if isinstance(value, Real):
        _positive_real(name, value)
        return np.full(n_samples, float(value))
    try:
        low, high = value
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be a positive number or a (low, high) range, got {value!r}."
        ) from None
    _positive_real(f"{name}[0]", low)
    _positive_real(f"{name}[1]", high)
    if low > high:
        raise ValueError(f"{name} must be a range (low, high) with low <= high, got {value!r}.")
    return np.exp(rng.uniform(np.log(low), np.log(high), size=n_samples))


def gaussian_random_field(n_samples, resolution, *, alpha=2.0, tau=3.0, random_state=None):
    """Periodic Gaussian random fields with covariance ``(-Δ + τ²)^(-α)``, shape
    ``(n_samples, resolution, resolution)``, at ``(i / resolution, j / resolution)``."""
    rng = check_random_state(random_state)
    k = np.fft.fftfreq(resolution, d=1.0 / resolution)
    k_sq = k[:, None] ** 2 + k[None, :] ** 2
    spectrum = (4 * np.pi**2 * k_sq + tau**2) ** (-alpha / 2)
    spectrum[0, 0] = 0.0  # zero-mean field
    shape = (n_samples, resolution, resolution)
    noise = rng.normal(size=shape) + 1j * rng.normal(size=shape)
    return np.fft.ifft2(noise * spectrum, norm="forward").real


def solve_darcy(coefficient, forcing=1.0):
    """Solve ``-∇·(a ∇u) = f`` on the unit square with ``u = 0`` on the boundary.

    Second-order finite differences on the nodes ``i / n``, ``i = 0 .. n``
    (``a`` extended periodically), with the harmonic mean of ``a`` on each
    edge, solved by SuperLU.

    Parameters
    ----------
    coefficient : ndarray of shape (n, n)
        Positive ``a`` at the nodes ``(i / n, j / n)``, ``i, j = 0 .. n - 1``.
    forcing : float or ndarray of shape (n, n), default=1.0
        ``f`` at the same nodes.

    Returns
    -------
    u : ndarray of shape (n, n)
        The solution at the same nodes, zero on the first row and column.
    """
    a = np.asarray(coefficient, dtype=np.float64)
    n = a.shape[0]
    if a.shape != (n, n) or n < 3:
        raise ValueError(f"coefficient must be a square array of side >= 3, got {a.shape}.")
    if not np.all(a > 0):
        raise ValueError("coefficient must be positive everywhere.")
    a_full = np.pad(a, ((0, 1), (0, 1)), mode="wrap")  # nodes 0 .. n
    f = np.broadcast_to(np.asarray(forcing, dtype=np.float64), (n, n))
    h2 = 1.0 / n**2
    m = n - 1  # interior nodes per axis: 1 .. n - 1
    index = np.arange(m * m).reshape(m, m)

    def edge(p, q):
        return 2 * p * q / (p + q)

    centre = a_full[1:n, 1:n]
    east = edge(centre, a_full[2 : n + 1, 1:n])
    west = edge(centre, a_full[0 : n - 1, 1:n])
    north = edge(centre, a_full[1:n, 2 : n + 1])
    south = edge(centre, a_full[1:n, 0 : n - 1])
    rows, cols = [index.ravel()], [index.ravel()]
    vals = [(east + west + north + south).ravel() / h2]
    i, j = np.meshgrid(np.arange(m), np.arange(m), indexing="ij")
    for weights, di, dj in ((east, 1, 0), (west, -1, 0), (north, 0, 1), (south, 0, -1)):
        ti, tj = i + di, j + dj
        inside = (ti >= 0) & (ti < m) & (tj >= 0) & (tj < m)
        rows.append(index[i[inside], j[inside]])
        cols.append(index[ti[inside], tj[inside]])
        vals.append(-weights[inside] / h2)
    matrix = sparse.csc_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(m * m, m * m)
    )
    u = np.zeros((n, n))
    u[1:, 1:] = splu(matrix).solve(f[1:, 1:].ravel()).reshape(m, m)
    return u


def make_darcy(
    n_samples=1000, resolution=32, *, resolutions=None, contrast=(12.0, 3.0), alpha=2.0,
    tau=3.0, forcing=1.0, random_state=None,
):
    """Darcy flow: a piecewise-constant permeability ``a`` and the pressure ``u``.

    Solves ``-∇·(a ∇u) = f`` on the unit square with ``u = 0`` on the
    boundary (:func:`solve_darcy`), where ``a`` is ``contrast[0]`` where a
    Gaussian random field with covariance ``(-Δ + τ²)^(-α)`` is non-negative
    and ``contrast[1]`` elsewhere. Either value may be a range, drawn per
    sample: heterogeneous media whose contrast changes from sample to sample.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of coefficient/solution pairs.
    resolution : int, default=32
        Grid points per axis, at ``x_i = i / resolution``.
    resolutions : tuple of int, default=None
        Several resolutions, each dividing the largest, at which the samples
        are solved; the others subsample the same functions. Overrides
        ``resolution``.
    contrast : tuple of two floats or (low, high) ranges, default=(12.0, 3.0)
        Values of ``a`` where the random field is non-negative, and elsewhere.
        A range gives each sample its own value, log-uniform in the range.
    alpha, tau : float, default=2.0, 3.0
        Smoothness and inverse length scale of the random field.
    forcing : float, default=1.0
        The constant source ``f``.
    random_state : int, RandomState instance or None, default=None
        Seeds the random fields.

    Returns
    -------
    X : ndarray of shape (n_samples, resolution, resolution)
        The coefficients ``a``.
    y : ndarray of shape (n_samples, resolution, resolution)
        The solutions ``u``. With ``resolutions``, a dict of ``(X, y)`` by
        resolution is returned instead.

    Examples
    --------
    >>> from sklearn_mono.datasets import make_darcy
    >>> X, y = make_darcy(n_samples=8, random_state=0)
    >>> X.shape, y.shape
    ((8, 32, 32), (8, 32, 32))
    >>> data = make_darcy(n_samples=4, resolutions=(16, 32), random_state=0)
    >>> bool((data[16][0] == data[32][0][:, ::2, ::2]).all())
    True
    >>> X, y = make_darcy(n_samples=8, resolution=16, contrast=((4.0, 40.0), 1.0), random_state=0)
    >>> bool(((X.max(axis=(1, 2)) >= 4) & (X.max(axis=(1, 2)) <= 40)).all())
    True
    """
    _positive_int("n_samples", n_samples)
    sizes = tuple(resolutions) if resolutions is not None else (resolution,)
    for r in sizes:
        _positive_int("resolution", r, minimum=3)
    fine = max(sizes)
    if any(fine % r for r in sizes):
        raise ValueError(f"every resolution must divide the largest, got {sizes}.")
    rng = check_random_state(random_state)
    field = gaussian_random_field(n_samples, fine, alpha=alpha, tau=tau, random_state=rng)
    try:
        high, low = contrast
    except (TypeError, ValueError):
        raise ValueError(f"contrast must be a pair of values, got {contrast!r}.") from None
    high = _per_sample("contrast[0]", high, n_samples, rng)[:, None, None]
    low = _per_sample("contrast[1]", low, n_samples, rng)[:, None, None]
    X = np.where(field >= 0, high, low)
    y = np.stack([solve_darcy(a, forcing) for a in X])
    if resolutions is None:
        return X, y
    return {r: (X[:, :: fine // r, :: fine // r], y[:, :: fine // r, :: fine // r]) for r in sizes}


def _burgers_step(u_hat, dt, k, viscosity, dealias, n):
    """One RK4 step with an integrating factor for the viscosity (a column per sample)."""
    half = np.exp(-viscosity * k**2 * dt / 2)

    def rhs(v_hat):
        u = np.fft.irfft(v_hat * dealias, n=n, axis=-1)
        return -0.5j * k * np.fft.rfft(u * u, axis=-1)

    k1 = rhs(u_hat)
    k2 = rhs(half * (u_hat + dt / 2 * k1))
    k3 = rhs(half * u_hat + dt / 2 * k2)
    k4 = rhs(half**2 * u_hat + dt * half * k3)
    return half**2 * u_hat + dt / 6 * (half**2 * k1 + 2 * half * (k2 + k3) + k4)


def solve_burgers(u0, times, viscosity=0.05, *, refine=8, cfl=0.5):
    """Solve ``u_t + (u²/2)_x = ν u_xx`` on the periodic unit interval.

    Pseudo-spectral in space with 2/3 dealiasing, RK4 with an integrating
    factor in time, the step set by a CFL number on ``max |u0|``.

    Parameters
    ----------
    u0 : ndarray of shape (n_samples, n_points)
        Initial states at ``x_j = j / n_points``, band-limited to the grid.
    times : array-like of increasing positive floats
        Times at which the solution is returned.
    viscosity : float or ndarray of shape (n_samples,), default=0.05
        ``ν``, for all samples or one per sample.
    refine : int, default=8
        How many times finer than ``u0``'s the solver's grid is.
    cfl : float, default=0.5
        CFL number of the time step.

    Returns
    -------
    u : ndarray of shape (n_samples, len(times), n_points)
        The states at ``times``.
    """
    u0 = np.atleast_2d(np.asarray(u0, dtype=np.float64))
    n_points = u0.shape[1]
    fine = n_points * refine
    u_hat = np.zeros((len(u0), fine // 2 + 1), dtype=complex)
    coarse_hat = np.fft.rfft(u0, axis=-1)
    u_hat[:, : coarse_hat.shape[1]] = coarse_hat * refine  # spectral interpolation
    if n_points % 2 == 0:
        u_hat[:, n_points // 2] *= 0.5  # split the coarse Nyquist mode
    k = 2 * np.pi * np.arange(fine // 2 + 1)
    dealias = (np.arange(fine // 2 + 1) < fine // 3).astype(float)
    viscosity = np.broadcast_to(np.asarray(viscosity, dtype=np.float64), (len(u0),))[:, None]
    speed = max(np.abs(u0).max(), 1e-12)
    dt_max = cfl / fine / speed
    out, t = [], 0.0
    for target in times:
        steps = max(1, int(np.ceil((target - t) / dt_max)))
        dt = (target - t) / steps
        for _ in range(steps):
            u_hat = _burgers_step(u_hat, dt, k, viscosity, dealias, fine)
        t = target
        out.append(np.fft.irfft(u_hat, n=fine, axis=-1)[:, ::refine])
    return np.stack(out, axis=1)


def make_burgers(
    n_samples=1000, n_points=16, *, n_times=17, t_final=1.0, viscosity=0.05, n_terms=4,
    random_state=None,
):
    """Viscous Burgers on the periodic interval: initial state to its later states.

    Initial states are random Fourier series with ``n_terms`` frequencies and
    normal coefficients of standard deviation ``1 / k``, solved by
    :func:`solve_burgers`; each output time is one output channel. With a
    viscosity range, each sample has its own viscosity, given to the model as
    a second, constant input channel: a family of operators.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of initial states.
    n_points : int, default=16
        Grid points on ``[0, 1)``, at ``x_j = j / n_points``.
    n_times : int, default=17
        Output times ``t_final * k / n_times`` for ``k = 1 .. n_times``.
    t_final : float, default=1.0
        Last output time.
    viscosity : float or (low, high) range, default=0.05
        ``ν``; a range gives each sample its own, log-uniform in the range.
    n_terms : int, default=4
        Highest frequency of the initial states; below ``n_points / 2``.
    random_state : int, RandomState instance or None, default=None
        Seeds the initial states.

    Returns
    -------
    X : ndarray of shape (n_samples, n_points) or (n_samples, 2, n_points)
        Initial states; with a viscosity range, channel 1 holds each sample's
        viscosity at every point.
    y : ndarray of shape (n_samples, n_times, n_points)
        The states at the output times.

    Examples
    --------
    >>> from sklearn_mono.datasets import make_burgers
    >>> X, y = make_burgers(n_samples=4, random_state=0)
    >>> X.shape, y.shape
    ((4, 16), (4, 17, 16))
    >>> X, y = make_burgers(n_samples=4, viscosity=(0.01, 1.0), random_state=0)
    >>> X.shape, bool((X[:, 1] == X[:, 1, :1]).all())
    ((4, 2, 16), True)
    """
    _positive_int("n_samples", n_samples)
    _positive_int("n_points", n_points, minimum=4)
    _positive_int("n_times", n_times)
    _positive_int("n_terms", n_terms)
    _positive_real("t_final", t_final)
    if 2 * n_terms >= n_points:
        raise ValueError(
            f"n_terms={n_terms} needs more than {2 * n_terms} points, got n_points={n_points}."
        )
    rng = check_random_state(random_state)
    k = np.arange(1, n_terms + 1)
    a = rng.normal(size=(n_samples, n_terms)) / k
    b = rng.normal(size=(n_samples, n_terms)) / k
    x = np.arange(n_points) / n_points
    phase = 2 * np.pi * np.outer(k, x)
    X = a @ np.cos(phase) + b @ np.sin(phase)
    nu = _per_sample("viscosity", viscosity, n_samples, rng)
    times = t_final * np.arange(1, n_times + 1) / n_times
    y = solve_burgers(X, times, nu)
    if isinstance(viscosity, Real):
        return X, y
    return np.stack([X, np.repeat(nu[:, None], n_points, axis=1)], axis=1), y
