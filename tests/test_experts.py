"""The experts: spectral layers, the FNO and MLP modules, the losses, and
NeuralOperatorRegressor used on its own."""

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_mono.datasets import make_antiderivative
from sklearn_mono.experts import (
    FNO,
    MLP,
    FactorizedSpectralConv,
    NeuralOperatorRegressor,
    RelativeL2Loss,
    SpectralConv,
    Standardized,
    StandardizedMSELoss,
)
from sklearn_mono.experts._fno import Pointwise, grid_coordinates
from sklearn_mono.metrics import relative_l2_error

from .conftest import WrapsFNO, small_expert


def _n_params(module):
    """Trainable numbers of a module (complex weights are stored as real pairs)."""
    return sum(p.numel() for p in module.parameters())


def _band_limited(n_points, n_dim, seed=0):
    """One random real trigonometric polynomial with |k| <= 3, sampled at j / n."""
    g = torch.Generator().manual_seed(seed)
    x = torch.arange(n_points) / n_points
    field = torch.zeros((n_points,) * n_dim)
    for k in range(-3, 4):
        for axis in range(n_dim):
            shape = [1] * n_dim
            shape[axis] = n_points
            a, b = torch.randn(2, generator=g)
            field = field + (a * torch.cos(2 * np.pi * k * x) + b * torch.sin(2 * np.pi * k * x)).view(shape)
    return field[None, None]


# ------------------------------------------------------------ spectral layers


@pytest.mark.parametrize("n_dim", [1, 2, 3])
def test_spectral_conv_is_resolution_invariant(n_dim):
    torch.manual_seed(0)
    layer = SpectralConv(1, 2, n_dim=n_dim, n_modes=4)
    coarse, fine = _band_limited(12, n_dim), _band_limited(24, n_dim)
    out_coarse, out_fine = layer(coarse), layer(fine)
    assert out_coarse.shape == (1, 2) + (12,) * n_dim
    assert out_coarse.abs().max() > 1e-3
    subsample = (slice(None), slice(None)) + (slice(None, None, 2),) * n_dim
    torch.testing.assert_close(out_fine[subsample], out_coarse, atol=1e-5, rtol=1e-4)


def test_spectral_conv_is_a_fourier_multiplier():
    layer = SpectralConv(1, 1, n_dim=1, n_modes=3)
    with torch.no_grad():
        layer.weight.zero_()
        layer.weight[0, 0, 0, 2, 0] = 2.0  # multiply mode k=2 by 2
    x = torch.arange(16) / 16
    u = (torch.cos(2 * np.pi * x) + torch.cos(2 * np.pi * 2 * x))[None, None]
    expected = 2 * torch.cos(2 * np.pi * 2 * x)
    torch.testing.assert_close(layer(u)[0, 0], expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("n", [12, 6])
@pytest.mark.parametrize("sign", [1, -1])
def test_2d_spectral_conv_multiplies_the_mode_of_its_sign_block(sign, n):
    # Block 0 holds the frequencies k1 >= 0, block 1 those with k1 < 0 (the
    # weight at index m - j is frequency -j, also on a grid of 6 points, which
    # resolves only |k| <= 2); the last axis is a half spectrum.
    m = 3
    layer = SpectralConv(1, 1, n_dim=2, n_modes=m).double()
    with torch.no_grad():
        layer.weight.zero_()
        if sign > 0:
            layer.weight[0, 0, 0, 1, 2] = torch.tensor([0.0, 2.0], dtype=torch.float64)  # 2i at (1, 2)
        else:
            layer.weight[1, 0, 0, m - 1, 2] = torch.tensor([0.0, 2.0], dtype=torch.float64)  # 2i at (-1, 2)
    x1, x2 = torch.meshgrid(*(torch.arange(n, dtype=torch.float64) / n,) * 2, indexing="ij")
    kept = 2 * np.pi * (sign * x1 + 2 * x2)
    dropped = 2 * np.pi * (-sign * x1 + 2 * x2)
    u = (torch.cos(kept) + torch.cos(dropped))[None, None]
    # i * 2 on the mode and its conjugate: cos -> -2 sin
    torch.testing.assert_close(layer(u)[0, 0], -2 * torch.sin(kept), atol=1e-12, rtol=0)


def _axis_multiplier_reference(layer, x):
    """A factorised layer (or a 1-D SpectralConv) written out with FFTs: along
    each axis, keep the resolved frequencies 0 <= k < n_modes, map channels,
    transform back."""
    axes = layer.axes if isinstance(layer, FactorizedSpectralConv) else [layer]
    n_dim = len(axes)
    out = 0
    for axis, conv in enumerate(axes):
        dim = x.ndim - n_dim + axis
        n = x.shape[dim]
        m = min(conv.n_modes, (n - 1) // 2 + 1)
        coef = torch.fft.rfft(x, dim=dim, norm="forward").movedim(dim, -1)[..., :m]
        weight = conv.full_weight()[..., :m]  # (in, out, m)
        mapped = torch.einsum("bi...k,iok->bo...k", coef, weight)
        full = torch.zeros(mapped.shape[:-1] + (n // 2 + 1,), dtype=mapped.dtype)
        full[..., :m] = mapped
        out = out + torch.fft.irfft(full.movedim(-1, dim), n=n, dim=dim, norm="forward")
    return out


@pytest.mark.parametrize(
    "layer, n_dim, grids",
    [
        (SpectralConv, 1, [(16,), (17,), (5,), (4,)]),
        (FactorizedSpectralConv, 2, [(16, 16), (9, 12), (5, 6)]),
        (FactorizedSpectralConv, 3, [(8, 6, 7)]),
    ],
)
def test_spectral_layers_match_per_axis_ffts(layer, n_dim, grids):
    # Values and gradients, also on grids too coarse for every mode.
    torch.manual_seed(0)
    layer = layer(3, 4, n_dim=n_dim, n_modes=4).double()
    assert _n_params(layer) == n_dim * 3 * 4 * 4 * 2
    for grid in grids:
        x = torch.randn((2, 3) + grid, dtype=torch.float64, requires_grad=True)
        out, expected = layer(x), _axis_multiplier_reference(layer, x)
        assert out.shape == (2, 4) + grid
        torch.testing.assert_close(out, expected, atol=1e-12, rtol=1e-10)
        grads = torch.autograd.grad(out.square().sum(), [x, *layer.parameters()])
        reference = torch.autograd.grad(expected.square().sum(), [x, *layer.parameters()])
        for a, b in zip(grads, reference):
            torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)


def test_spectral_conv_carries_axes_between_channels_and_grid():
    torch.manual_seed(0)
    layer = SpectralConv(3, 4, n_dim=1, n_modes=4).double()
    x = torch.randn(2, 3, 5, 12, dtype=torch.float64)
    expected = torch.stack([layer(x[:, :, i]) for i in range(5)], 2)
    torch.testing.assert_close(layer(x), expected, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("n_dim", [2, 3])
def test_factorized_spectral_conv_is_resolution_invariant(n_dim):
    torch.manual_seed(0)
    layer = FactorizedSpectralConv(1, 2, n_dim=n_dim, n_modes=4)
    coarse, fine = _band_limited(12, n_dim), _band_limited(24, n_dim)
    out_coarse, out_fine = layer(coarse), layer(fine)
    subsample = (slice(None), slice(None)) + (slice(None, None, 2),) * n_dim
    torch.testing.assert_close(out_fine[subsample], out_coarse, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("grid", [(12,), (10, 9), (6, 5, 7)])
@pytest.mark.parametrize("factorized", [False, True])
def test_even_layers_compute_the_complex_layer_with_zero_imaginary_parts(grid, factorized):
    cls = FactorizedSpectralConv if factorized else SpectralConv
    torch.manual_seed(0)
    even = cls(3, 2, n_dim=len(grid), n_modes=3, even=True).double()
    complex_ = cls(3, 2, n_dim=len(grid), n_modes=3).double()
    with torch.no_grad():
        for a, b in zip(even.parameters(), complex_.parameters()):
            assert b.shape == a.shape + (2,)
            b.copy_(torch.stack([a, torch.zeros_like(a)], -1))
    x = torch.randn((3, 3) + grid, dtype=torch.float64)
    got, expected = even(x), complex_(x)
    assert got.abs().max() > 1e-3  # the spectral part is not silently dropped
    torch.testing.assert_close(got, expected, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("layer", [SpectralConv, FactorizedSpectralConv])
@pytest.mark.parametrize("grid", [(12,), (10, 9), (6, 5, 7)])
@pytest.mark.parametrize("even", [False, True])
def test_grouped_spectral_layers_are_the_layers_they_hold(layer, grid, even):
    # groups=2 on 4 -> 6 channels: two layers of 2 -> 3 channels, side by side.
    torch.manual_seed(0)
    n_dim = len(grid)
    parts = [layer(2, 3, n_dim, 3, even=even) for _ in range(2)]
    grouped = layer(4, 6, n_dim, 3, even=even, groups=2)
    grouped.load_state_dict({
        name: torch.cat([part.state_dict()[name] for part in parts], 1) for name in grouped.state_dict()
    })
    x = torch.randn((3, 4) + grid)
    expected = torch.cat([part(x[:, 2 * g : 2 * g + 2]) for g, part in enumerate(parts)], 1)
    torch.testing.assert_close(grouped(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layer", [SpectralConv, FactorizedSpectralConv])
def test_spectral_layers_refuse_other_grid_dimensions(layer):
    with pytest.raises(ValueError, match=f"{layer.__name__} supports 1, 2 or 3 grid axes, got 4"):
        layer(1, 1, n_dim=4, n_modes=2)


@pytest.mark.parametrize("layer", [SpectralConv, FactorizedSpectralConv])
def test_spectral_layers_refuse_groups_that_do_not_divide_the_channels(layer):
    message = (
        rf"^{layer.__name__}: groups must be a positive divisor of both in_channels \(4\) "
        rf"and out_channels \(6\), got 4"
    )
    with pytest.raises(ValueError, match=message):
        layer(4, 6, 2, 3, groups=4)
    with pytest.raises(TypeError, match=f"^{layer.__name__}: groups must be a positive int, got 2.0"):
        layer(4, 6, 2, 3, groups=2.0)


# ------------------------------------------------------------------ the FNO


def test_factorized_fno_has_fewer_weights_and_is_unchanged_in_1d():
    full = FNO(1, 1, grid_shape=(16, 16), width=8, n_modes=6, n_layers=2)
    factorized = FNO(1, 1, grid_shape=(16, 16), width=8, n_modes=6, n_layers=2, factorized=True)
    assert _n_params(full) - _n_params(factorized) == 2 * 8 * 8 * 2 * (2 * 36 - 2 * 6)
    assert factorized(torch.zeros(3, 1, 32, 32)).shape == (3, 1, 32, 32)
    # On a 1-D grid the two are one layer: same weights, same outputs.
    torch.manual_seed(0)
    plain = FNO(1, 2, grid_shape=(16,), width=8, n_modes=6)
    torch.manual_seed(0)
    same = FNO(1, 2, grid_shape=(16,), width=8, n_modes=6, factorized=True)
    x = torch.randn(4, 1, 16)
    torch.testing.assert_close(plain(x), same(x))
    assert plain.state_dict().keys() == same.state_dict().keys()


@pytest.mark.parametrize("residual", [False, True])
def test_fno_shapes_and_super_resolution(residual):
    model = FNO(2, 3, grid_shape=(16, 16), width=8, n_modes=4, n_layers=2, residual=residual)
    assert model(torch.zeros(4, 2, 16, 16)).shape == (4, 3, 16, 16)
    assert model(torch.zeros(4, 2, 32, 32)).shape == (4, 3, 32, 32)
    pooled = FNO(1, 5, grid_shape=(10,), width=8, n_modes=4, pooled=True, residual=residual)
    assert pooled(torch.zeros(4, 1, 10)).shape == (4, 5)
    assert pooled(torch.zeros(4, 1, 20)).shape == (4, 5)


def _reflect(t, dim):
    """``j -> (n - j) mod n`` along ``dim``: the reflection of a periodic grid."""
    n = t.shape[dim]
    return t.index_select(dim, (-torch.arange(n)) % n)


@pytest.mark.parametrize("grid", [(16,), (12, 10), (6, 5, 7)])
@pytest.mark.parametrize("residual", [False, True])
def test_symmetric_fno_commutes_with_reflecting_each_axis(grid, residual):
    torch.manual_seed(0)
    kwargs = dict(width=6, n_modes=4, n_layers=2, factorized=True, residual=residual)
    symmetric = FNO(1, 2, grid_shape=grid, symmetric=True, **kwargs).double()
    plain = FNO(1, 2, grid_shape=grid, **kwargs).double()
    assert symmetric.positional == "even" and plain.positional == "linear"
    x = torch.randn((3, 1) + grid, dtype=torch.float64)
    with torch.no_grad():
        for dim in range(2, x.ndim):
            gap = (symmetric(_reflect(x, dim)) - _reflect(symmetric(x), dim)).abs().max()
            assert gap < 1e-12
            # the check can fail: a plain FNO has no such symmetry
            gap = (plain(_reflect(x, dim)) - _reflect(plain(x), dim)).abs().max()
            assert gap > 1e-4


def test_symmetric_fno_has_real_spectral_weights():
    plain = FNO(1, 1, grid_shape=(16, 16), width=8, n_modes=6, n_layers=2, factorized=True)
    symmetric = FNO(
        1, 1, grid_shape=(16, 16), width=8, n_modes=6, n_layers=2, factorized=True, symmetric=True
    )
    # Half the spectral weights (2 layers, 2 axes, 8 x 8 channels, 6 modes);
    # the coordinates, cos(2 pi x) per axis, are as many as the linear ones.
    assert _n_params(plain) - _n_params(symmetric) == 2 * 2 * 8 * 8 * 6
    layer = symmetric.spectral[0].axes[0]
    assert layer.weight.shape == (1, 8, 8, 6) and not layer.weight.is_complex()
    assert not layer.full_weight().imag.any()


def test_symmetric_fno_rejects_what_breaks_the_symmetry():
    with pytest.raises(ValueError, match="symmetric=True needs padding=0, got padding=0.25"):
        FNO(1, 1, grid_shape=(16,), symmetric=True, padding=0.25)
    with pytest.raises(ValueError, match="symmetric=True needs coordinates .* got positional='linear'"):
        FNO(1, 1, grid_shape=(16,), symmetric=True, positional="linear")
    with pytest.raises(ValueError, match="symmetric=True on a 2-D grid needs factorized=True"):
        FNO(1, 1, grid_shape=(16, 16), symmetric=True)
    with pytest.raises(TypeError, match="symmetric must be True or False, got 'yes'"):
        FNO(1, 1, grid_shape=(16,), symmetric="yes")
    with pytest.raises(TypeError, match="even must be True or False, got 1"):
        SpectralConv(1, 1, n_dim=1, n_modes=4, even=1)


def test_fno_caps_modes_at_the_training_grid():
    # (n - 1) // 2 modes on n points, whatever the kind of layer
    assert FNO(1, 1, grid_shape=(16,), n_modes=12).n_modes == 7
    assert FNO(1, 1, grid_shape=(15,), n_modes=12).n_modes == 7
    assert FNO(1, 1, grid_shape=(64, 16), n_modes=12).n_modes == 7
    assert FNO(1, 1, grid_shape=(64, 16), n_modes=12, factorized=True).n_modes == 7
    assert FNO(1, 1, grid_shape=(64,), n_modes=12).n_modes == 12
    assert FNO(1, 1, grid_shape=(2,), n_modes=12).n_modes == 1


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize(
    "grid, factorized", [((16,), False), ((15,), False), ((16, 12), True), ((16, 12), False)]
)
def test_every_spectral_weight_is_trained_on_the_training_grid(grid, factorized, residual):
    # Capped modes are exactly those the training grid reaches: each complex
    # weight gets a gradient there, so none is left at its random start to
    # act only on finer grids.
    torch.manual_seed(0)
    model = FNO(1, 1, grid_shape=grid, width=4, n_modes=12, n_layers=1, factorized=factorized,
                residual=residual)
    model(torch.randn(8, 1, *grid)).square().sum().backward()
    for name, weight in model.spectral.named_parameters():
        assert (weight.grad.abs().sum(dim=-1) > 0).all(), name  # real and imaginary


@pytest.mark.parametrize("grid", [(16,), (12, 10)])
def test_fno_coordinate_channels(grid):
    like = torch.zeros(1)
    linear = grid_coordinates(grid, like)
    periodic = grid_coordinates(grid, like, "periodic")
    even = grid_coordinates(grid, like, "even")
    assert linear.shape == even.shape == (1, len(grid)) + grid
    assert periodic.shape == (1, 2 * len(grid)) + grid
    for axis, n in enumerate(grid):  # x = j / n along its own axis, constant along the others
        shape = [1] * len(grid)
        shape[axis] = n
        torch.testing.assert_close(linear[0, axis], (torch.arange(n) / n).view(shape).expand(grid))
    torch.testing.assert_close(periodic[:, : len(grid)], torch.sin(2 * torch.pi * linear))
    torch.testing.assert_close(periodic[:, len(grid) :], torch.cos(2 * torch.pi * linear))
    torch.testing.assert_close(even, torch.cos(2 * torch.pi * linear))
    for positional, per_axis in (("linear", 1), ("periodic", 2), ("even", 1)):
        model = FNO(1, 1, grid_shape=grid, width=4, n_modes=3, positional=positional)
        assert model.lift.weight.shape[-1] == 1 + per_axis * len(grid)
        assert model(torch.zeros(2, 1, *grid)).shape == (2, 1) + grid


def test_periodic_coordinates_look_the_same_on_every_grid():
    # What a spectral layer reads of a coordinate channel is its low Fourier
    # modes. Periodic coordinates have the same ones on a grid twice as fine;
    # linear ones do not: their jump at the wrap aliases differently.
    def low_modes(n, positional):
        coords = grid_coordinates((n,), torch.zeros(1, dtype=torch.float64), positional)
        return torch.fft.rfft(coords[0], norm="forward")[..., :6]

    torch.testing.assert_close(low_modes(16, "periodic"), low_modes(32, "periodic"))
    gap = (low_modes(16, "linear") - low_modes(32, "linear")).abs().max()
    assert gap > 0.01


def test_fno_refuses_unknown_coordinates():
    with pytest.raises(ValueError, match=r"positional must be one of \['even', 'linear', 'periodic'\] or None, got 'polar'"):
        FNO(1, 1, grid_shape=(8,), positional="polar")


def test_parameter_count_formula():
    width, modes, layers = 8, 4, 2
    model = FNO(1, 1, grid_shape=(32,), width=width, n_modes=modes, n_layers=layers)
    lift = (1 + 1) * width + width
    spectral = layers * (width * width * modes * 2)
    mix = layers * (width * width + width)
    project = width * 2 * width + 2 * width + 2 * width * 1 + 1
    assert _n_params(model) == lift + spectral + mix + project


def test_residual_parameter_count_formula():
    width, modes, layers = 8, 4, 2
    plain = FNO(1, 1, grid_shape=(32,), width=width, n_modes=modes, n_layers=layers)
    residual = FNO(1, 1, grid_shape=(32,), width=width, n_modes=modes, n_layers=layers, residual=True)
    mix = layers * (width * width + width)
    feedforward = layers * ((width * 2 * width + 2 * width) + (2 * width * width + width))
    assert _n_params(residual) == _n_params(plain) - mix + feedforward


@pytest.mark.parametrize("grid, padding", [((16,), 0.0), ((12, 10), 0.0), ((12, 10), 0.25)])
def test_residual_blocks_compute_their_formula(grid, padding):
    # Each block is h + W2 GELU(W1 K(h)), with no activation between blocks.
    torch.manual_seed(0)
    model = FNO(1, 2, grid_shape=grid, width=6, n_modes=3, n_layers=2, residual=True,
                factorized=len(grid) > 1, padding=padding).double()
    x = torch.randn((4, 1) + grid, dtype=torch.float64)
    gelu = torch.nn.GELU()
    h = model.lift(torch.cat([x, grid_coordinates(grid, x).expand(4, -1, *grid)], dim=1))
    pads = [round(padding * n) for n in grid]
    h = torch.nn.functional.pad(h, [p for n in reversed(pads) for p in (0, n)])
    for spectral, expand, contract in zip(model.spectral, model.expand, model.contract):
        h = h + contract(gelu(expand(spectral(h))))
    h = h[(slice(None), slice(None)) + tuple(slice(0, n) for n in grid)]
    torch.testing.assert_close(model(x), model.project(h), atol=1e-10, rtol=1e-8)


def test_plain_blocks_compute_their_formula():
    # GELU(K(h) + W h) between layers, none after the last.
    torch.manual_seed(0)
    model = FNO(1, 2, grid_shape=(12,), width=6, n_modes=3, n_layers=3).double()
    x = torch.randn(4, 1, 12, dtype=torch.float64)
    h = model.lift(torch.cat([x, grid_coordinates((12,), x).expand(4, -1, 12)], dim=1))
    for i, (spectral, mix) in enumerate(zip(model.spectral, model.mix)):
        h = spectral(h) + mix(h)
        h = torch.nn.functional.gelu(h) if i < 2 else h
    torch.testing.assert_close(model(x), model.project(h), atol=1e-10, rtol=1e-8)


def test_fno_refuses_a_residual_flag_that_is_not_a_bool():
    with pytest.raises(TypeError, match="residual must be True or False, got 'False'"):
        FNO(1, 1, grid_shape=(8,), residual="False")


def test_residual_fno_evaluates_on_finer_grids():
    torch.manual_seed(0)
    model = FNO(1, 1, grid_shape=(12, 12), width=6, n_modes=4, residual=True, factorized=True).double()
    coarse, fine = _band_limited(12, 2), _band_limited(24, 2)
    # GELU makes frequencies the coarse grid aliases, so the outputs at the
    # shared points agree only closely, not exactly.
    with torch.no_grad():
        out_coarse, out_fine = model(coarse.double()), model(fine.double())
    assert out_fine.shape == (1, 1, 24, 24)
    gap = (out_fine[..., ::2, ::2] - out_coarse).norm() / out_coarse.norm()
    assert gap < 1e-3


# ------------------------------------------------------------------ members


def _grouped_from(members, grouped):
    """Load the weights of separate FNOs into one FNO with those members.

    The lifting (one group) stacks the members' output rows, and the spectral
    weights, stored ``(blocks, in, out / groups, *modes)``, stack along
    ``in``: both along axis 1. Every other map is grouped, ``(groups, out,
    in)``, and stacks along its groups.
    """
    state = {}
    for name in grouped.state_dict():
        parts = [member.state_dict()[name] for member in members]
        state[name] = torch.cat(parts, _member_axis(name))
    grouped.load_state_dict(state)
    return grouped


def _member_axis(name):
    return 1 if name.startswith(("spectral", "lift")) else 0


@pytest.mark.parametrize("grid", [(12,), (10, 9), (6, 5, 7)])
@pytest.mark.parametrize(
    "options",
    [
        dict(factorized=True, residual=True),
        dict(factorized=False, residual=False),
        dict(factorized=False, residual=True),
        dict(factorized=True, residual=False, padding=0.25),
        dict(factorized=True, residual=True, symmetric=True),
        dict(factorized=True, residual=True, pooled=True),
    ],
)
def test_fno_members_are_the_fnos_they_hold(grid, options):
    torch.manual_seed(0)
    kwargs = dict(width=5, n_modes=3, n_layers=2, **options)
    members = [FNO(2, 3, grid, **kwargs) for _ in range(3)]
    grouped = _grouped_from(members, FNO(2, 3, grid, n_members=3, **kwargs))
    x = torch.randn((2, 2) + grid)
    with torch.no_grad():
        expected = torch.stack([member(x) for member in members], 1)
        got = grouped.members(x)
        assert got.shape == (2, 3, 3) + (() if options.get("pooled") else grid)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(grouped(x), expected.mean(1), rtol=1e-5, atol=1e-5)


def test_fno_members_have_their_own_weights_and_gradients():
    torch.manual_seed(0)
    grouped = FNO(1, 1, (8, 8), width=4, n_modes=3, factorized=True, residual=True, n_members=2)
    single = FNO(1, 1, (8, 8), width=4, n_modes=3, factorized=True, residual=True)
    assert _n_params(grouped) == 2 * _n_params(single)
    # The loss of member 0 alone moves none of member 1's weights.
    grouped.members(torch.randn(4, 1, 8, 8))[:, 0].square().sum().backward()
    for name, param in grouped.named_parameters():
        first, second = param.grad.chunk(2, dim=_member_axis(name))
        assert torch.count_nonzero(first) > 0, name
        assert torch.count_nonzero(second) == 0, name


def test_pooled_fno_members():
    torch.manual_seed(0)
    grouped = FNO(1, 2, (8,), width=4, n_modes=3, n_members=3, pooled=True)
    x = torch.randn(5, 1, 8)
    assert grouped.members(x).shape == (5, 3, 2)
    torch.testing.assert_close(grouped(x), grouped.members(x).mean(1))
    assert FNO(1, 2, (8,), width=4, n_modes=3, pooled=True).members(x).shape == (5, 1, 2)


@pytest.mark.parametrize(
    "n_members, error, message",
    [(0, ValueError, "n_members must be at least 1, got 0"),
     (1.5, TypeError, "n_members must be a positive int, got 1.5"),
     (True, TypeError, "n_members must be a positive int, got True")],
)
def test_fno_refuses_a_bad_number_of_members(n_members, error, message):
    with pytest.raises(error, match=message):
        FNO(1, 1, (8,), n_members=n_members)


def test_members_train_on_their_own_losses():
    # In training, the wrapped expert returns each member's prediction and the
    # losses average the members' own errors; in evaluation, their mean.
    torch.manual_seed(0)
    operator = FNO(1, 1, (8,), width=4, n_modes=3, n_members=2)
    stats = (torch.zeros(1, 1, 1), torch.ones(1, 1, 1), torch.full((1, 1, 1), 2.0), torch.full((1, 1, 1), 3.0))
    module = Standardized(operator, *stats)
    x, y = torch.randn(6, 1, 8), torch.randn(6, 1, 8) + 2.0
    module.train()
    per_member = module(x)
    assert per_member.shape == (6, 2, 1, 8)
    torch.testing.assert_close(per_member, operator.members(x) * 3.0 + 2.0)
    loss = RelativeL2Loss()(per_member, y)
    expected = torch.stack([RelativeL2Loss()(per_member[:, m], y) for m in range(2)]).mean()
    torch.testing.assert_close(loss, expected)
    assert not torch.allclose(loss, RelativeL2Loss()(per_member.mean(1), y))
    mse = StandardizedMSELoss(torch.full((1, 1, 1), 2.0))
    expected = torch.stack([mse(per_member[:, m], y) for m in range(2)]).mean()
    torch.testing.assert_close(mse(per_member, y), expected)
    module.eval()
    torch.testing.assert_close(module(x), per_member.mean(1), rtol=1e-5, atol=1e-5)


def test_standardized_reads_and_writes_physical_units():
    torch.manual_seed(0)
    operator = FNO(2, 1, (8,), width=4, n_modes=3)
    x_shift, x_scale = torch.tensor([1.0, -2.0]).view(1, 2, 1), torch.tensor([2.0, 0.5]).view(1, 2, 1)
    y_shift, y_scale = torch.full((1, 1, 1), 5.0), torch.full((1, 1, 1), 10.0)
    module = Standardized(operator, x_shift, x_scale, y_shift, y_scale).eval()
    x = torch.randn(3, 2, 8)
    with torch.no_grad():
        torch.testing.assert_close(module(x), operator((x - x_shift) / x_scale) * 10.0 + 5.0)
    assert set(dict(module.named_buffers())) == {"x_shift", "x_scale", "y_shift", "y_scale"}


# ------------------------------------------------------- pointwise, MLP, losses


@pytest.mark.parametrize("grid", [(10,), (6, 5), (4, 3, 5)])
@pytest.mark.parametrize("groups", [1, 2])
def test_pointwise_is_a_1x1_convolution(grid, groups):
    torch.manual_seed(0)
    layer = Pointwise(4, 6, groups).double()
    assert layer.weight.shape == (groups, 6 // groups, 4 // groups)
    conv = getattr(torch.nn.functional, f"conv{len(grid)}d")
    weight = layer.weight.reshape(6, 4 // groups, *(1,) * len(grid))
    bias = layer.bias.reshape(6)
    h = torch.randn((3, 4) + grid, dtype=torch.float64)
    every_other = torch.randn((3, 4) + grid[:-1] + (2 * grid[-1],), dtype=torch.float64)
    strided = every_other[..., ::2]
    assert not strided.is_contiguous()
    with torch.no_grad():
        for x in (h, strided, h[:1]):
            torch.testing.assert_close(layer(x), conv(x, weight, bias, groups=groups), atol=1e-12, rtol=1e-12)


def test_mlp_shapes():
    assert MLP(2, 3, grid_shape=(4, 4))(torch.zeros(5, 2, 4, 4)).shape == (5, 3, 4, 4)
    assert MLP(1, 2, grid_shape=(8,), pooled=True)(torch.zeros(5, 1, 8)).shape == (5, 2)
    mlp = MLP(1, 1, grid_shape=(8,), width=5, n_layers=2)
    assert _n_params(mlp) == (8 * 5 + 5) + (5 * 5 + 5) + (5 * 8 + 8)
    assert not MLP.resolution_invariant and FNO.resolution_invariant


def test_relative_l2_loss():
    loss = RelativeL2Loss()
    target = torch.tensor([[3.0, 4.0], [0.0, 2.0]])
    pred = torch.tensor([[3.0, 4.0], [0.0, 3.0]])
    assert loss(pred, target).item() == pytest.approx(0.25)
    # a zero target is divided by the floor: 1e-3 of the batch's mean norm (2.5)
    target = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    pred = torch.tensor([[3.0, 4.0], [0.0, 1.0]], requires_grad=True)
    value = loss(pred, target)
    assert value.item() == pytest.approx(0.5 / 2.5e-3)
    value.backward()
    assert torch.isfinite(pred.grad).all()
    # a batch of zero targets gives the mean error norm (5 and 1), not a division by zero
    assert loss(pred, torch.zeros(2, 2)).item() == pytest.approx(3.0)
    assert RelativeL2Loss(floor=0.5)(pred, target).item() == pytest.approx(0.5 / 1.25)


def test_standardized_mse_loss():
    scale = torch.tensor([[1.0, 2.0]])
    loss = StandardizedMSELoss(scale)
    pred, target = torch.tensor([[1.0, 4.0], [0.0, 0.0]]), torch.zeros(2, 2)
    assert loss(pred, target).item() == pytest.approx((1 + 4) / 4)


# ---------------------------------------- NeuralOperatorRegressor used alone


def _fit_small(X, y, **params):
    """A small expert trained for two epochs (unless told otherwise) with seed 0."""
    return small_expert(**{"max_epochs": 2, "random_state": 0, **params}).fit(X, y)


@pytest.mark.parametrize(
    "x_shape, y_shape, params",
    [
        ((16,), (16,), {}),
        ((16,), (3, 16), {}),
        ((16,), (), {}),
        ((16,), (3,), {}),
        ((2, 16), (16,), dict(grid_ndim=1)),
        ((2, 16), (2, 16), dict(grid_ndim=1)),
        ((8, 8), (8, 8), {}),
        ((8, 8), (2,), {}),
        ((64,), (64,), dict(grid_shape=(8, 8))),
        ((128,), (64,), dict(grid_shape=(8, 8))),
    ],
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_regressor_fits_and_predicts_each_layout(rng, x_shape, y_shape, params, dtype):
    X = rng.normal(size=(20,) + x_shape).astype(dtype)
    y = rng.normal(size=(20,) + y_shape).astype(dtype)
    net = _fit_small(X, y, **params)
    pred = net.predict(X[:5])
    assert pred.shape == (5,) + y_shape
    assert pred.dtype == dtype
    assert np.isfinite(pred).all()
    assert np.std(pred) > 0  # not a constant
    assert net.n_features_in_ == int(np.prod(x_shape))
    assert len(net.history) == 2


def test_regressor_folds_flat_rows_onto_grid_shape(rng):
    # Flat rows of two channels on an 8 x 8 grid, channels first: the
    # operator sees (n, 2, 8, 8), and its flat output unfolds the same way.
    X = rng.normal(size=(20, 2, 8, 8))
    y = X[:, :1] * X[:, 1:]
    net = _fit_small(X.reshape(20, -1), y.reshape(20, -1), grid_shape=(8, 8))
    assert net.grid_ == (8, 8) and net.n_channels_in_ == 2 and net.n_channels_out_ == 1
    flat = net.predict(X.reshape(20, -1))
    assert flat.shape == (20, 64)
    # the same model read on the grid
    twin = _fit_small(X, y, grid_ndim=2)
    np.testing.assert_allclose(flat, twin.predict(X).reshape(20, -1), rtol=1e-5, atol=1e-6)


def test_regressor_learns_the_antiderivative():
    X, y = make_antiderivative(n_samples=300, n_points=32, random_state=0)
    X_test, y_test = make_antiderivative(n_samples=100, n_points=32, random_state=1)
    net = NeuralOperatorRegressor(
        module__width=12, module__n_modes=8, module__n_layers=3, max_epochs=40, random_state=0
    ).fit(X, y)
    # measured 0.045 to 0.056 over seeds 0-2; predicting the mean gives 1.0
    assert relative_l2_error(y_test, net.predict(X_test)) < 0.1
    assert net.score(X_test, y_test) > 0.98


def test_regressor_defaults_depend_on_operator_and_grid(rng, monkeypatch):
    # Training itself is skipped: what is checked is the resolution of "auto".
    monkeypatch.setattr(NeuralOperatorRegressor, "_train", lambda self, X, y, lr: None)
    X1, X2, X3 = rng.normal(size=(4, 16)), rng.normal(size=(4, 8, 8)), rng.normal(size=(4, 6, 6, 6))
    base = {"n_modes": 16, "n_layers": 4, "factorized": True}
    net = NeuralOperatorRegressor().fit(X1, X1)
    assert net.module_params_ == {**base, "width": 14}
    assert (net.max_epochs_, net.lr_) == (170, 6e-3)
    assert net.module_.operator.n_modes == 7  # capped at the 16-point grid
    for X in (X2, X3):
        net = NeuralOperatorRegressor().fit(X, X)
        assert net.module_params_ == {**base, "width": 16, "residual": True, "n_members": 2}
        assert (net.max_epochs_, net.lr_) == (100, 9e-3)
        assert net.module_.operator.n_members == 2
    net = NeuralOperatorRegressor(module=MLP).fit(X1, X1)
    assert net.module_params_ == {} and (net.max_epochs_, net.lr_) == (100, 3e-3)
    net = NeuralOperatorRegressor(module=WrapsFNO).fit(X1, X1)  # not an FNO subclass
    assert net.module_params_ == {} and (net.max_epochs_, net.lr_) == (100, 3e-3)
    # explicit settings win over the table, the rest of the row stays
    net = NeuralOperatorRegressor(module__width=5, module__residual=True, lr=1e-2, max_epochs=7).fit(X1, X1)
    assert net.module_params_ == {**base, "width": 5, "residual": True}
    assert (net.max_epochs_, net.lr_) == (7, 1e-2)
    assert net.lr == 1e-2 and net.max_epochs == 7 and net.get_params()["module__width"] == 5
    net = NeuralOperatorRegressor().fit(X1, X1)
    assert net.lr == "auto" and net.max_epochs == "auto"  # parameters are not overwritten


def test_regressor_trains_max_epochs_with_a_cosine_schedule(antiderivative_small):
    X, y = antiderivative_small
    net = _fit_small(X, y, max_epochs=4, lr=1e-2)
    assert len(net.history) == 4 and net.max_epochs_ == 4
    last = net.optimizer_.param_groups[0]["lr"]
    assert last == pytest.approx(0.5 * 1e-2 * (1 + np.cos(np.pi * 3 / 4)))
    assert net.history[-1, "train_loss"] < net.history[0, "train_loss"]
    assert net.n_params_ == _n_params(net.module_.operator)
    assert not net.module_.training  # left in evaluation mode


def test_regressor_clone_and_grid_search(antiderivative_small):
    X, y = antiderivative_small
    net = small_expert(max_epochs=2, random_state=0)
    fitted = clone(net).fit(X, y)
    twin = clone(fitted)
    assert twin.get_params()["module__width"] == 8 and not hasattr(twin, "module_")
    np.testing.assert_array_equal(twin.fit(X, y).predict(X), fitted.predict(X))
    search = GridSearchCV(net, {"module__width": [4, 8]}, cv=2).fit(X, y)
    assert search.best_params_["module__width"] in (4, 8)
    assert len(search.cv_results_["mean_test_score"]) == 2
    assert search.best_estimator_.module_params_["width"] == search.best_params_["module__width"]
    assert search.predict(X).shape == y.shape


def test_regressor_warm_start_continues_training(antiderivative_small):
    X, y = antiderivative_small
    net = _fit_small(X, y, max_epochs=8, lr=2e-2)
    operator, stats = net.module_.operator, net.stats_
    before = {k: v.clone() for k, v in net.module_.state_dict().items()}
    first = list(net.history[:, "train_loss"])
    start_loss = relative_l2_error(y, net.predict(X))
    assert start_loss < 0.7 * first[0]  # it has learned something
    net.set_params(warm_start=True).fit(X, y)
    assert net.module_.operator is operator and net.stats_ is stats
    assert any(not torch.equal(before[k], v) for k, v in net.module_.state_dict().items())
    losses = list(net.history[:, "train_loss"])
    assert len(losses) == 16 and losses[:8] == first
    # It starts near where it stopped, not from a fresh start, and goes lower.
    # (measured: first run 1.07 -> 0.62, continued 0.72 -> 0.52)
    assert losses[8] < first[2] and losses[-1] < first[-1]
    assert relative_l2_error(y, net.predict(X)) < start_loss
    with pytest.raises(ValueError, match="differs from the targets this warm-started"):
        net.fit(X, np.stack([y, y], 1))
    # without warm_start, fit starts anew: the same seed retraces the first run
    net.set_params(warm_start=False).fit(X, y)
    assert net.module_.operator is not operator
    assert list(net.history[:, "train_loss"]) == first


def test_regressor_takes_a_module_of_ones_own_and_an_mlp(antiderivative_small):
    X, y = antiderivative_small
    wrapped = _fit_small(X, y, module=WrapsFNO)
    assert isinstance(wrapped.module_.operator.inner, FNO)
    assert wrapped.module_.operator.inner.spectral[0].weight.shape[1] == 8  # module__width reached it
    assert wrapped.predict(X).shape == y.shape and not wrapped.resolution_invariant
    mlp = NeuralOperatorRegressor(module=MLP, module__width=16, max_epochs=3, random_state=0).fit(X, y)
    assert isinstance(mlp.module_.operator, MLP)
    assert mlp.predict(X).shape == y.shape
    assert mlp.n_params_ == _n_params(mlp.module_.operator)
    pooled = NeuralOperatorRegressor(module=MLP, module__width=16, max_epochs=3, random_state=0).fit(X, y[:, -1])
    assert pooled.module_.operator.out_shape == (1,) and pooled.predict(X).shape == (len(X),)


class _DropsAPoint(torch.nn.Module):
    def __init__(self, in_channels, out_channels, grid_shape, pooled=False):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(1))

    def forward(self, x):
        return self.scale * x[..., :-1]


def test_regressor_refuses_a_module_with_the_wrong_output_shape(antiderivative_small):
    X, y = antiderivative_small
    with pytest.raises(ValueError, match=r"_DropsAPoint returned an output of shape \(80, 1, 15\) for targets of shape \(80, 1, 16\)"):
        NeuralOperatorRegressor(module=_DropsAPoint, max_epochs=1).fit(X, y)


def test_regressor_refuses_bad_parameters(antiderivative_small):
    X, y = antiderivative_small
    for params in (dict(lr=-1.0), dict(max_epochs=0), dict(lr="fast"), dict(module=FNO(1, 1, (16,)))):
        with pytest.raises(InvalidParameterError):
            NeuralOperatorRegressor(**params).fit(X, y)
    with pytest.raises(TypeError, match="module must be a subclass of torch.nn.Module, got <class 'int'>"):
        NeuralOperatorRegressor(module=int, max_epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="requires y to be passed"):
        NeuralOperatorRegressor().fit(X, None)


def test_regressor_predicts_on_a_finer_grid_only_when_resolution_invariant():
    X, y = make_antiderivative(n_samples=80, n_points=16, n_terms=4, random_state=0)
    X_fine, _ = make_antiderivative(n_samples=80, n_points=32, n_terms=4, random_state=0)
    net = _fit_small(X[:, None], y, max_epochs=5, grid_ndim=1)
    coarse, fine = net.predict(X[:, None]), net.predict(X_fine[:, None])
    assert fine.shape == (80, 32)
    # the same functions, on the shared points: close, not equal (GELU aliases)
    gap = np.linalg.norm(fine[:, ::2] - coarse) / np.linalg.norm(coarse)
    assert 0 < gap < 0.03  # measured 0.008
    with pytest.raises(ValueError, match="X has 32 features, but NeuralOperatorRegressor is expecting 16"):
        net.predict(X_fine)  # flat rows fix the number of points
    mlp = NeuralOperatorRegressor(module=MLP, module__width=8, max_epochs=2, grid_ndim=1).fit(X[:, None], y)
    with pytest.raises(ValueError, match=r"fitted on \(16,\) and its operator works at one resolution only"):
        mlp.predict(X_fine[:, None])


def test_regressor_random_state_reproduces_and_leaves_torch_alone(antiderivative_small):
    X, y = antiderivative_small
    torch.manual_seed(123)
    state = torch.get_rng_state()
    net = _fit_small(X, y, random_state=7)
    assert torch.equal(torch.get_rng_state(), state)  # fit leaves the global generator alone
    a = net.predict(X)
    b = _fit_small(X, y, random_state=7).predict(X)
    c = _fit_small(X, y, random_state=8).predict(X)
    assert a.tobytes() == b.tobytes()
    assert not np.allclose(a, c)
    # without random_state, the global generator draws the weights
    torch.manual_seed(5)
    d = small_expert(max_epochs=2).fit(X, y).predict(X)
    assert not torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(5)
    e = small_expert(max_epochs=2).fit(X, y).predict(X)
    assert d.tobytes() == e.tobytes()
