import numpy as np
import pytest
import skorch
import torch

from sklearn_mono.experts import (
    FNO,
    MLP,
    FactorizedSpectralConv,
    RelativeL2Loss,
    SpectralConv,
    Standardized,
    StandardizedMSELoss,
    count_parameters,
)
from sklearn_mono.experts._fno import _apply_pointwise, _pointwise, _shared_dropout
from sklearn_mono.experts._net import make_net

from .conftest import WrapsFNO


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


@pytest.mark.parametrize("n_dim", [1, 2, 3])
def test_spectral_conv_is_resolution_invariant(n_dim):
    torch.manual_seed(0)
    layer = SpectralConv(1, 2, n_dim=n_dim, n_modes=4)
    coarse, fine = _band_limited(12, n_dim), _band_limited(24, n_dim)
    out_coarse, out_fine = layer(coarse), layer(fine)
    assert out_coarse.shape == (1, 2) + (12,) * n_dim
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


@pytest.mark.parametrize(
    "n_dim, grids",
    [(1, [(16,), (17,), (5,)]), (2, [(16, 16), (9, 12), (7, 6)]), (3, [(8, 8, 8), (5, 6, 7)])],
)
def test_spectral_conv_bases_and_fft_paths_agree(n_dim, grids):
    # The truncated-basis products and the FFTs are two evaluations of one
    # layer: same values and same gradients, also on grids too coarse for
    # every mode.
    torch.manual_seed(0)
    layer = SpectralConv(3, 4, n_dim=n_dim, n_modes=4).double()
    for grid in grids:
        x = torch.randn((2, 3) + grid, dtype=torch.float64, requires_grad=True)
        by_bases, by_fft = layer._forward_bases(x), layer._forward_fft(x)
        torch.testing.assert_close(by_bases, by_fft, atol=1e-12, rtol=1e-10)
        g_bases = torch.autograd.grad(by_bases.square().sum(), [x, layer.weight])
        g_fft = torch.autograd.grad(by_fft.square().sum(), [x, layer.weight])
        for a, b in zip(g_bases, g_fft):
            torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)


def test_spectral_conv_trains_on_a_grid_first_seen_in_inference():
    # The bases cached during an inference-mode call must not be inference
    # tensors, or a later training step on that grid would fail; and they are
    # not pickled.
    import pickle

    layer = SpectralConv(2, 2, n_dim=2, n_modes=3)
    x = torch.randn(1, 2, 10, 10)
    with torch.inference_mode():
        expected = layer(x)
    layer(x).sum().backward()
    assert layer.weight.grad is not None
    clone = pickle.loads(pickle.dumps(layer))
    assert not clone.__dict__.get("_basis_cache")
    torch.testing.assert_close(clone(x).detach(), expected)


def _axis_multiplier_reference(layer, x):
    """The factorised layer written out with FFTs: along each axis, keep the
    resolved frequencies 0 <= k < n_modes, map channels, transform back."""
    out = 0
    for axis, conv in enumerate(layer.axes):
        dim = x.ndim - layer.n_dim + axis
        n = x.shape[dim]
        m = min(layer.n_modes, (n - 1) // 2 + 1)
        coef = torch.fft.rfft(x, dim=dim, norm="forward").movedim(dim, -1)[..., :m]
        weight = conv.full_weight()[..., :m]  # (in, out, m)
        mapped = torch.einsum("bi...k,iok->bo...k", coef, weight)
        full = torch.zeros(mapped.shape[:-1] + (n // 2 + 1,), dtype=mapped.dtype)
        full[..., :m] = mapped
        out = out + torch.fft.irfft(full.movedim(-1, dim), n=n, dim=dim, norm="forward")
    return out


@pytest.mark.parametrize("n_dim, grids", [(2, [(16, 16), (9, 12), (5, 6)]), (3, [(8, 6, 7)])])
def test_factorized_spectral_conv_matches_per_axis_ffts(n_dim, grids):
    torch.manual_seed(0)
    layer = FactorizedSpectralConv(3, 4, n_dim=n_dim, n_modes=4).double()
    assert count_parameters(layer) == n_dim * 3 * 4 * 4 * 2
    for grid in grids:
        x = torch.randn((2, 3) + grid, dtype=torch.float64, requires_grad=True)
        out, expected = layer(x), _axis_multiplier_reference(layer, x)
        assert out.shape == (2, 4) + grid
        torch.testing.assert_close(out, expected, atol=1e-12, rtol=1e-10)
        grads = torch.autograd.grad(out.square().sum(), [x, *layer.parameters()])
        reference = torch.autograd.grad(expected.square().sum(), [x, *layer.parameters()])
        for a, b in zip(grads, reference):
            torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("n_dim", [2, 3])
def test_factorized_spectral_conv_is_resolution_invariant(n_dim):
    torch.manual_seed(0)
    layer = FactorizedSpectralConv(1, 2, n_dim=n_dim, n_modes=4)
    coarse, fine = _band_limited(12, n_dim), _band_limited(24, n_dim)
    out_coarse, out_fine = layer(coarse), layer(fine)
    subsample = (slice(None), slice(None)) + (slice(None, None, 2),) * n_dim
    torch.testing.assert_close(out_fine[subsample], out_coarse, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("grid", [(16, 16), (9, 12), (5, 6), (5, 6, 7)])
@pytest.mark.parametrize("versioned", [False, True])
def test_factorized_inference_path_matches_the_training_path(grid, versioned, monkeypatch):
    # A few queries in inference apply each axis through its real factors;
    # they must give the training path's numbers, follow weight changes
    # (checked by value, or within _versioned_weights by version, without
    # comparing values), and give way to the training path for larger batches.
    import contextlib

    from sklearn_mono.experts import _spectral

    equal, compared = torch.equal, []
    monkeypatch.setattr(torch, "equal", lambda a, b: compared.append(1) or equal(a, b))
    context = _spectral._versioned_weights if versioned else contextlib.nullcontext
    torch.manual_seed(0)
    layer = FactorizedSpectralConv(3, 4, n_dim=len(grid), n_modes=4).double()
    x = torch.randn((2, 3) + grid, dtype=torch.float64)
    # On 2-D grids both axes go through one fused pass.
    fused = FactorizedSpectralConv._forward_factors_2d
    fused_calls = []
    monkeypatch.setattr(
        FactorizedSpectralConv,
        "_forward_factors_2d",
        lambda self, x: fused_calls.append(x.shape) or fused(self, x),
    )

    def inference(batch=x):
        with torch.inference_mode(), context():
            return layer(batch)

    def entries():
        # Each axis' cached factors for the one grid it has seen.
        return [next(iter(axis.__dict__["_inference_cache"].table.values())) for axis in layer.axes]

    def check():
        seen = len(compared)
        torch.testing.assert_close(inference(), _axis_multiplier_reference(layer, x), atol=1e-12, rtol=1e-10)
        one = inference(x[1:])  # a single query takes its own, copy-free pass
        torch.testing.assert_close(one, _axis_multiplier_reference(layer, x[1:]), atol=1e-12, rtol=1e-10)
        # By value, every axis compares its weights once it has factors (at
        # least for the second query); by version, none does.
        if versioned:
            assert len(compared) == seen
        else:
            assert len(compared) >= seen + len(layer.axes)

    layer.eval()
    check()
    first = entries()
    check()  # reused while the weights are unchanged, and through eval()
    layer.eval()
    check()
    assert all(a is b for a, b in zip(entries(), first))
    assert len(fused_calls) == (6 if len(grid) == 2 else 0)
    # A full small batch and a single query, read through non-contiguous views.
    swapped = grid[:-2] + (grid[-1], grid[-2])
    wide = torch.randn((8, 3) + swapped, dtype=torch.float64).transpose(-1, -2)
    for batch in (wide, wide[3:4]):
        torch.testing.assert_close(inference(batch), _axis_multiplier_reference(layer, batch), atol=1e-12, rtol=1e-10)
    with torch.no_grad():  # edits in evaluation mode, without train()
        layer.axes[0].weight.mul_(-2.0)
    check()
    assert entries()[0] is not first[0] and all(a is b for a, b in zip(entries()[1:], first[1:]))
    before = entries()
    layer.load_state_dict({k: v * 0.5 for k, v in layer.state_dict().items()})
    check()
    assert all(a is not b for a, b in zip(entries(), before))
    before = entries()
    layer.axes[-1].weight.data = layer.axes[-1].weight.detach() * 3.0  # a new storage
    check()
    assert entries()[-1] is not before[-1] and entries()[0] is before[0]
    # The same storage, address and version, other strides: a view assigned
    # through .data (modes and output channels swapped, both 4).
    before = entries()
    weight = layer.axes[0].weight
    version = weight._version
    weight.data = weight.data.transpose(2, 3)
    assert weight._version == version
    check()
    assert entries()[0] is not before[0]
    # In-place edits through ``.data`` leave no version behind (autograd
    # misses them too): the values show them; by version, train() drops the
    # factors.
    before = entries()
    layer.axes[-1].weight.data.mul_(0.5)
    if not versioned:
        check()
        assert entries()[-1] is not before[-1]
    layer.train()  # training drops them
    assert not any(axis.__dict__.get("_inference_cache") for axis in layer.axes)
    layer(x).square().sum().backward()
    torch.optim.SGD(layer.parameters(), lr=0.1).step()
    layer.eval()
    check()
    # Larger batches than _SMALL_BATCH take the training path in inference too.
    monkeypatch.setattr(_spectral, "_SMALL_BATCH", 1)
    layer.train()
    layer.eval()
    torch.testing.assert_close(inference(), _axis_multiplier_reference(layer, x), atol=1e-12, rtol=1e-10)
    assert not any(axis.__dict__.get("_inference_cache") for axis in layer.axes)


@pytest.mark.parametrize("versioned", [False, True])
def test_inference_factors_of_weights_made_in_inference_mode(versioned):
    # Inference tensors keep no version counter: their factors are checked
    # by value in any context, and follow edits.
    import contextlib

    from sklearn_mono.experts import _spectral

    torch.manual_seed(0)
    with torch.inference_mode():
        layer = FactorizedSpectralConv(3, 4, n_dim=2, n_modes=4).double().eval()
    assert layer.axes[0].weight.is_inference()
    x = torch.randn(1, 3, 9, 12, dtype=torch.float64)
    context = _spectral._versioned_weights if versioned else contextlib.nullcontext
    for scale in (1.0, 1.0, -2.0):
        with torch.inference_mode(), context():
            layer.axes[0].weight.mul_(scale)
            got = layer(x)
        torch.testing.assert_close(got, _axis_multiplier_reference(layer, x), atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("n_points, carried", [(16, ()), (9, ()), (5, ()), (12, (3,)), (7, (2, 3))])
@pytest.mark.parametrize("n_samples", [1, 2])
def test_1d_inference_path_matches_the_training_path(n_points, carried, n_samples):
    # A few 1-D queries in inference go through real factors (a single one
    # without copies); other axes between the channels and the grid's are
    # carried along (as the axes of a factorised layer are), and grids too
    # coarse for every mode drop them.
    torch.manual_seed(0)
    layer = SpectralConv(3, 4, n_dim=1, n_modes=4).double()
    x = torch.randn((n_samples, 3) + carried + (n_points,), dtype=torch.float64)
    layer.train()
    expected = layer(x)  # the training path: truncated bases, complex weights
    layer.eval()
    with torch.inference_mode():
        got = layer(x)
    assert layer.__dict__["_inference_cache"]
    torch.testing.assert_close(got, expected.detach(), atol=1e-12, rtol=1e-10)
    # With gradients on, or for a larger batch, the training path is taken.
    assert layer(x).requires_grad
    with torch.inference_mode():
        big = torch.randn((9, 3) + carried + (n_points,), dtype=torch.float64)
        layer.__dict__.pop("_inference_cache")
        layer(big)
        assert not layer.__dict__.get("_inference_cache")


def test_factorized_inference_factors_are_not_kept_across_copies_or_precisions():
    import copy
    import pickle

    from sklearn_mono.experts import _spectral

    torch.manual_seed(0)
    layer = FactorizedSpectralConv(2, 3, n_dim=2, n_modes=3).eval()
    x = torch.randn(1, 2, 8, 8)
    with torch.inference_mode():
        expected = layer(x)
        # Factors are built at full precision even under autocast, so a
        # later plain call is not handed bfloat16 ones.
        with torch.autocast("cpu", dtype=torch.bfloat16):
            layer(x)
        torch.testing.assert_close(layer(x), expected)
        # Only the last few grids are kept.
        for n in range(8, 8 + 2 * _spectral._INFERENCE_GRIDS):
            layer(torch.randn(1, 2, n, n))
        for axis in layer.axes:
            assert 0 < len(axis.__dict__["_inference_cache"].table) <= _spectral._INFERENCE_GRIDS
    for clone in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
        assert not any(axis.__dict__.get("_inference_cache") for axis in clone.axes)
        with torch.inference_mode():
            torch.testing.assert_close(clone(x), expected)


def test_factorized_fno_has_fewer_weights_and_is_unchanged_in_1d():
    full = FNO(1, 1, grid_shape=(16, 16), width=8, n_modes=6, n_layers=2)
    factorized = FNO(1, 1, grid_shape=(16, 16), width=8, n_modes=6, n_layers=2, factorized=True)
    assert count_parameters(full) - count_parameters(factorized) == 2 * 8 * 8 * 2 * (2 * 36 - 2 * 6)
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
    for n in (1, 3, 9):  # in inference, real factors (fused on 2-D) up to 8, else the bases
        x = torch.randn((n, 1) + grid, dtype=torch.float64)
        for dim in range(2, x.ndim):
            for model, train in ((symmetric, True), (symmetric, False), (plain, False)):
                model.train(train)
                with torch.set_grad_enabled(train):
                    gap = (model(_reflect(x, dim)) - _reflect(model(x), dim)).abs().max()
                if model is symmetric:
                    assert gap < 1e-12
                else:  # the check can fail: a plain FNO has no such symmetry
                    assert gap > 1e-4


@pytest.mark.parametrize("grid", [(12,), (10, 9), (6, 5, 7)])
@pytest.mark.parametrize("factorized", [False, True])
def test_even_layers_compute_the_complex_layer_with_zero_imaginary_parts(grid, factorized):
    # Every path of an even layer gives what a complex layer gives with the
    # same real parts and zero imaginary ones.
    cls = FactorizedSpectralConv if factorized else SpectralConv
    torch.manual_seed(0)
    even = cls(3, 2, n_dim=len(grid), n_modes=3, even=True).double()
    complex_ = cls(3, 2, n_dim=len(grid), n_modes=3).double()
    with torch.no_grad():
        for a, b in zip(even.parameters(), complex_.parameters()):
            assert b.shape == a.shape + (2,)
            b.copy_(torch.stack([a, torch.zeros_like(a)], -1))
    for n in (2, 9):  # up to _SMALL_BATCH: bases or real factors; above: FFTs or bases
        x = torch.randn((n, 3) + grid, dtype=torch.float64)
        for train in (True, False):
            even.train(train), complex_.train(train)
            with torch.set_grad_enabled(train):
                got, expected = even(x), complex_(x)
            assert got.abs().max() > 1e-3  # the spectral part is not silently dropped
            torch.testing.assert_close(got, expected, atol=1e-12, rtol=1e-10)


def test_symmetric_fno_refuses_padding():
    with pytest.raises(ValueError, match="symmetric=True needs padding=0, got padding=0.25"):
        FNO(1, 1, grid_shape=(16,), symmetric=True, padding=0.25)


def test_symmetric_fno_has_real_spectral_weights():
    plain = FNO(1, 1, grid_shape=(16, 16), width=8, n_modes=6, n_layers=2, factorized=True)
    symmetric = FNO(
        1, 1, grid_shape=(16, 16), width=8, n_modes=6, n_layers=2, factorized=True, symmetric=True
    )
    # Half the spectral weights (2 layers, 2 axes, 8 x 8 channels, 6 modes);
    # the coordinates, cos(2 pi x) per axis, are as many as the linear ones.
    assert count_parameters(plain) - count_parameters(symmetric) == 2 * 2 * 8 * 8 * 6
    layer = symmetric.spectral[0].axes[0]
    assert layer.weight.shape == (1, 8, 8, 6) and not layer.weight.is_complex()
    assert not layer.full_weight().imag.any()


def test_symmetric_fno_rejects_what_breaks_the_symmetry():
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
    from sklearn_mono.experts._fno import _grid_coordinates

    like = torch.zeros(1)
    linear = _grid_coordinates(grid, like)
    periodic = _grid_coordinates(grid, like, "periodic")
    assert linear.shape == (1, len(grid)) + grid
    assert periodic.shape == (1, 2 * len(grid)) + grid
    torch.testing.assert_close(periodic[:, : len(grid)], torch.sin(2 * torch.pi * linear))
    torch.testing.assert_close(periodic[:, len(grid) :], torch.cos(2 * torch.pi * linear))
    model = FNO(1, 1, grid_shape=grid, width=4, n_modes=3, positional="periodic")
    assert model.lift.in_channels == 1 + 2 * len(grid)
    assert model(torch.zeros(2, 1, *grid)).shape == (2, 1) + grid


def test_periodic_coordinates_look_the_same_on_every_grid():
    # What a spectral layer reads of a coordinate channel is its low Fourier
    # modes. Periodic coordinates have the same ones on a grid twice as fine;
    # linear ones do not: their jump at the wrap aliases differently.
    from sklearn_mono.experts._fno import _grid_coordinates

    def low_modes(n, positional):
        coords = _grid_coordinates((n,), torch.zeros(1, dtype=torch.float64), positional)
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
    assert count_parameters(model) == lift + spectral + mix + project


def test_residual_parameter_count_formula():
    width, modes, layers = 8, 4, 2
    plain = FNO(1, 1, grid_shape=(32,), width=width, n_modes=modes, n_layers=layers)
    residual = FNO(1, 1, grid_shape=(32,), width=width, n_modes=modes, n_layers=layers, residual=True)
    mix = layers * (width * width + width)
    feedforward = layers * ((width * 2 * width + 2 * width) + (2 * width * width + width))
    assert count_parameters(residual) == count_parameters(plain) - mix + feedforward


@pytest.mark.parametrize("grid, padding", [((16,), 0.0), ((12, 10), 0.0), ((12, 10), 0.25)])
def test_residual_blocks_compute_their_formula(grid, padding):
    # Each block is h + W2 GELU(W1 K(h)), with no activation between blocks;
    # GELU in its tanh approximation on 1-D grids and exact on the others.
    from sklearn_mono.experts._fno import _grid_coordinates

    torch.manual_seed(0)
    model = FNO(1, 2, grid_shape=grid, width=6, n_modes=3, n_layers=2, residual=True,
                factorized=len(grid) > 1, padding=padding).double()
    x = torch.randn((4, 1) + grid, dtype=torch.float64)
    gelu = torch.nn.GELU(approximate="tanh" if len(grid) == 1 else "none")
    h = model.lift(torch.cat([x, _grid_coordinates(grid, x).expand(4, -1, *grid)], dim=1))
    pads = [round(padding * n) for n in grid]
    h = torch.nn.functional.pad(h, [p for n in reversed(pads) for p in (0, n)])
    for spectral, expand, contract in zip(model.spectral, model.expand, model.contract):
        h = h + contract(gelu(expand(spectral(h))))
    h = h[(slice(None), slice(None)) + tuple(slice(0, n) for n in grid)]
    torch.testing.assert_close(model(x), model.project(h), atol=1e-10, rtol=1e-8)
    # the single-query inference path gives the same numbers
    model.eval()
    with torch.inference_mode():
        torch.testing.assert_close(model(x[:1]), model.project(h)[:1], atol=1e-10, rtol=1e-8)


def test_fno_refuses_a_residual_flag_that_is_not_a_bool():
    with pytest.raises(TypeError, match="residual must be True or False, got 'False'"):
        FNO(1, 1, grid_shape=(8,), residual="False")


def test_residual_fno_evaluates_on_finer_grids():
    torch.manual_seed(0)
    model = FNO(1, 1, grid_shape=(12, 12), width=6, n_modes=4, residual=True, factorized=True).double()
    coarse, fine = _band_limited(12, 2), _band_limited(24, 2)
    # GELU makes frequencies the coarse grid aliases, so the outputs at the
    # shared points agree only closely, not exactly (about 1e-4 here).
    with torch.no_grad():
        out_coarse, out_fine = model(coarse.double()), model(fine.double())
    assert out_fine.shape == (1, 1, 24, 24)
    gap = (out_fine[..., ::2, ::2] - out_coarse).norm() / out_coarse.norm()
    assert gap < 1e-3


def test_mlp_shapes():
    assert MLP(2, 3, grid_shape=(4, 4))(torch.zeros(5, 2, 4, 4)).shape == (5, 3, 4, 4)
    assert MLP(1, 2, grid_shape=(8,), pooled=True)(torch.zeros(5, 1, 8)).shape == (5, 2)
    assert not MLP.resolution_invariant and FNO.resolution_invariant


def test_relative_l2_loss():
    loss = RelativeL2Loss()
    target = torch.tensor([[3.0, 4.0], [0.0, 2.0]])
    pred = torch.tensor([[3.0, 4.0], [0.0, 3.0]])
    assert loss(pred, target).item() == pytest.approx(0.25)
    assert torch.isfinite(loss(pred, torch.zeros(2, 2)))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # raised inside torch's compiler import
def test_compiled_spectral_conv_still_pickles():
    import copy
    import pickle

    layer = SpectralConv(2, 2, n_dim=1, n_modes=3)
    layer.compile()
    assert isinstance(pickle.loads(pickle.dumps(layer)), SpectralConv)
    copy.deepcopy(layer)


@pytest.mark.parametrize("layer", [SpectralConv, FactorizedSpectralConv])
def test_spectral_layers_refuse_other_grid_dimensions(layer):
    with pytest.raises(ValueError, match=f"{layer.__name__} supports 1, 2 or 3 grid axes, got 4"):
        layer(1, 1, n_dim=4, n_modes=2)


@pytest.mark.parametrize("residual", [False, True])
def test_dropout_acts_in_training_only_and_changes_no_weights(residual):
    torch.manual_seed(0)
    kwargs = dict(width=8, n_modes=4, n_layers=3, residual=residual, factorized=True)
    model = FNO(1, 2, grid_shape=(12, 10), dropout=0.3, **kwargs)
    twin = FNO(1, 2, grid_shape=(12, 10), **kwargs)
    assert count_parameters(model) == count_parameters(twin)
    twin.load_state_dict(model.state_dict())
    x = torch.randn(4, 1, 12, 10)
    with torch.no_grad():
        model.train()
        first, second = model(x), model(x)
        assert not torch.allclose(first, second)  # a fresh mask on every call
        torch.manual_seed(1)
        again = model(x)
        torch.manual_seed(1)
        torch.testing.assert_close(model(x), again)  # the global generator draws the masks
        model.eval()
        twin.eval()
        torch.testing.assert_close(model(x), twin(x), rtol=0, atol=0)
    # models pickled before dropout existed lack the attribute and drop nothing
    del model.dropout
    model.train()
    twin.train()
    with torch.no_grad():
        torch.testing.assert_close(model(x), twin(x), rtol=0, atol=0)


@pytest.mark.parametrize(
    "dropout, error, message",
    [
        (True, TypeError, "dropout must be a float in \\[0, 1\\), got True"),
        ("0.1", TypeError, "dropout must be a float in \\[0, 1\\), got '0.1'"),
        (1.0, ValueError, "dropout must be in \\[0, 1\\), got 1.0"),
        (-0.1, ValueError, "dropout must be in \\[0, 1\\), got -0.1"),
        (float("nan"), ValueError, "dropout must be in \\[0, 1\\), got nan"),
    ],
)
def test_fno_refuses_a_dropout_outside_0_1(dropout, error, message):
    with pytest.raises(error, match=message):
        FNO(1, 1, grid_shape=(8,), dropout=dropout)


@pytest.mark.parametrize("residual", [False, True])
def test_dropout_draws_one_mask_per_batch(residual):
    # The samples of a batch share the mask: copies of one input come out
    # the same in training, a sample gets the same mask wherever it sits in
    # the batch, and the kept activations are scaled by 1 / (1 - p).
    torch.manual_seed(0)
    model = FNO(1, 1, grid_shape=(10, 8), width=6, n_modes=3, n_layers=2, residual=residual,
                factorized=True, dropout=0.4).train()
    x = torch.randn(1, 1, 10, 8)
    with torch.no_grad():
        out = model(x.expand(5, -1, -1, -1))
        torch.testing.assert_close(out, out[:1].expand_as(out), rtol=0, atol=1e-6)
        batch = torch.cat([torch.randn(2, 1, 10, 8), x])
        torch.manual_seed(3)
        alone = model(x)
        torch.manual_seed(3)
        last = model(batch)[2:]
        torch.testing.assert_close(last, alone)
    h = torch.ones(2, 3, 40, 50)
    dropped = _shared_dropout(h, 0.25)
    torch.testing.assert_close(dropped[0], dropped[1], rtol=0, atol=0)
    torch.testing.assert_close(dropped.unique(), torch.tensor([0.0, 4 / 3]))
    assert abs((dropped[0] == 0).float().mean().item() - 0.25) < 0.03


def test_residual_dropout_acts_inside_the_branch_only():
    # With the branch's output map zeroed, each block is the identity, so
    # dropout inside the branch cannot touch the result even in training.
    torch.manual_seed(0)
    model = FNO(1, 2, grid_shape=(12, 10), width=8, n_modes=4, n_layers=2, residual=True,
                factorized=True, dropout=0.5)
    with torch.no_grad():
        for contract in model.contract:
            contract.weight.zero_()
            contract.bias.zero_()
    model.train()
    x = torch.randn(3, 1, 12, 10)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)
        model.eval()
        torch.testing.assert_close(model.train()(x), model.eval()(x), rtol=0, atol=0)


def _drops(fno):
    """Whether ``fno`` drops activations in training mode now."""
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        return not torch.equal(fno(x), fno(x))


def _train(operator, fno, max_epochs, fail_at=None):
    """Train ``operator`` in a net of ``make_net``; return, per epoch, whether
    ``fno`` dropped activations, and the net. With ``fail_at``, that epoch
    raises."""
    seen = []

    class Record(skorch.callbacks.Callback):
        def on_epoch_begin(self, net, **kwargs):
            if len(seen) == fail_at:
                raise RuntimeError("stop")

        def on_epoch_end(self, net, **kwargs):
            seen.append(_drops(fno))

    stats = [torch.zeros(1, 1, 1, 1), torch.ones(1, 1, 1, 1)] * 2
    net = make_net(Standardized(operator, *stats), criterion=RelativeL2Loss, lr=1e-3,
                   max_epochs=max_epochs, batch_size=8, device="cpu")
    net.callbacks.append(("record", Record()))
    x = torch.randn(16, 1, 8, 8)
    if fail_at is None:
        net.fit(x, x)
    else:
        with pytest.raises(RuntimeError, match="stop"):
            net.fit(x, x)
    return seen, net


def _fno():
    torch.manual_seed(0)
    return FNO(1, 1, grid_shape=(8, 8), width=4, n_modes=2, n_layers=1, residual=True,
               factorized=True, dropout=0.3)


@pytest.mark.parametrize("max_epochs, on", [(4, 2), (5, 3), (1, 1)])
def test_training_drops_in_the_first_half_of_the_epochs(max_epochs, on):
    # The FNO drops activations for ceil(max_epochs / 2) epochs and not for
    # the rest; its dropout is what it was, and it drops again once trained.
    fno = _fno()
    seen, net = _train(fno, fno, max_epochs)
    assert seen == [True] * on + [False] * (max_epochs - on)
    assert fno.dropout == 0.3 and fno.train() and _drops(fno)
    assert dict(net.callbacks_)["early_dropout"].operator_ is None  # holds no module


def test_a_run_that_fails_late_leaves_the_next_run_its_dropout():
    fno = _fno()
    seen, net = _train(fno, fno, 4, fail_at=3)
    assert seen == [True, True, False]
    assert fno.dropout == 0.3
    seen, _ = _train(fno, fno, 4)
    assert seen == [True, True, False, False]


def test_training_leaves_the_dropout_of_an_fno_inside_an_expert_of_ones_own():
    # the same schedule for the FNO itself pauses in the second half (see
    # above); wrapped in an expert of one's own, it drops in every epoch
    expert = WrapsFNO(1, 1, (8, 8), width=4, n_modes=2, n_layers=1, residual=True,
                      factorized=True, dropout=0.3)
    seen, _ = _train(expert, expert.inner, 4)
    assert seen == [True] * 4


def _grouped_from(members, grouped):
    """Load the weights of separate FNOs into one FNO with those members.

    The lifting stacks the members' output rows; the spectral weights,
    stored ``(blocks, in, out / groups, *modes)``, stack along ``in``; every
    other map is a grouped convolution and stacks along its outputs.
    """
    state = {}
    for name in grouped.state_dict():
        parts = [member.state_dict()[name] for member in members]
        state[name] = torch.cat(parts, 1 if name.startswith("spectral") else 0)
    grouped.load_state_dict(state)
    return grouped


@pytest.mark.parametrize("layer", [SpectralConv, FactorizedSpectralConv])
@pytest.mark.parametrize("grid", [(12,), (10, 9), (6, 5, 7)])
@pytest.mark.parametrize("even", [False, True])
@pytest.mark.parametrize("n_samples", [1, 3, 11])
def test_grouped_spectral_layers_are_the_layers_they_hold(layer, grid, even, n_samples):
    # groups=2 on 4 -> 6 channels: two layers of 2 -> 3 channels, side by
    # side, on every path (inference factors, bases, FFTs).
    torch.manual_seed(0)
    n_dim = len(grid)
    parts = [layer(2, 3, n_dim, 3, even=even) for _ in range(2)]
    grouped = layer(4, 6, n_dim, 3, even=even, groups=2)
    assert grouped.groups == 2
    grouped.load_state_dict({
        name: torch.cat([part.state_dict()[name] for part in parts], 1) for name in grouped.state_dict()
    })
    x = torch.randn((n_samples, 4) + grid)
    for training in (False, True):
        for module in parts + [grouped]:
            module.train(training)
        with torch.enable_grad() if training else torch.no_grad():
            expected = torch.cat([part(x[:, 2 * g : 2 * g + 2]) for g, part in enumerate(parts)], 1)
            torch.testing.assert_close(grouped(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("grid", [(12,), (10, 9), (6, 5, 7)])
@pytest.mark.parametrize(
    "options",
    [
        dict(factorized=True, residual=True),
        dict(factorized=False, residual=False),
        dict(factorized=False, residual=True),
        dict(factorized=True, residual=False),
        dict(factorized=True, residual=True, symmetric=True),
        dict(factorized=True, residual=True, pooled=True),
    ],
)
@pytest.mark.parametrize("n_samples", [1, 3, 11])
def test_fno_members_are_the_fnos_they_hold(grid, options, n_samples):
    # Every path (inference factors, bases, FFTs; training and inference)
    # gives each member exactly what a separate FNO with its weights gives.
    torch.manual_seed(0)
    kwargs = dict(width=5, n_modes=3, **options)
    members = [FNO(2, 3, grid, **kwargs) for _ in range(3)]
    grouped = _grouped_from(members, FNO(2, 3, grid, n_members=3, **kwargs))
    x = torch.randn((n_samples, 2) + grid)
    for training in (False, True):
        for model in members + [grouped]:
            model.train(training)
        context = torch.enable_grad() if training else torch.no_grad()
        with context:
            expected = torch.stack([member(x) for member in members], 1)
            got = grouped.members(x)
            assert got.shape == (n_samples, 3, 3) + (() if options.get("pooled") else grid)
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(grouped(x), expected.mean(1), rtol=1e-5, atol=1e-5)


def test_fno_members_have_their_own_weights_and_gradients():
    torch.manual_seed(0)
    grouped = FNO(1, 1, (8, 8), width=4, n_modes=3, factorized=True, residual=True, n_members=2)
    single = FNO(1, 1, (8, 8), width=4, n_modes=3, factorized=True, residual=True)
    assert count_parameters(grouped) == 2 * count_parameters(single)
    # The loss of member 0 alone moves none of member 1's weights.
    grouped.members(torch.randn(4, 1, 8, 8))[:, 0].square().sum().backward()
    for name, param in grouped.named_parameters():
        axis = 1 if name.startswith("spectral") else 0  # where the members are stacked
        first, second = param.grad.chunk(2, dim=axis)
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
    [(0, ValueError, "at least 1"), (1.5, TypeError, "positive int"), (True, TypeError, "positive int")],
)
def test_fno_refuses_a_bad_number_of_members(n_members, error, message):
    with pytest.raises(error, match=message):
        FNO(1, 1, (8,), n_members=n_members)


@pytest.mark.parametrize("layer", [SpectralConv, FactorizedSpectralConv])
def test_spectral_layers_refuse_groups_that_do_not_divide_the_channels(layer):
    message = rf"{layer.__name__}: groups must be a positive divisor of both in_channels \(4\) and out_channels \(6\), got 4"
    with pytest.raises(ValueError, match=message):
        layer(4, 6, 2, 3, groups=4)
    with pytest.raises(TypeError, match=f"{layer.__name__}: groups must be a positive int"):
        layer(4, 6, 2, 3, groups=2.0)


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


@pytest.mark.parametrize("grid", [(10,), (6, 5), (4, 3, 5)])
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("n_samples", [1, 3])
def test_pointwise_maps_as_products_are_the_convolutions(grid, groups, n_samples):
    # A single query takes one 2-D product, batches a batched one, grouped
    # maps one per group; all are torch's 1x1 convolution, also on a
    # non-contiguous input.
    torch.manual_seed(0)
    conv = _pointwise(len(grid), 4, 6, groups).double()
    h = torch.randn((n_samples, 4) + grid, dtype=torch.float64)
    every_other = torch.randn((n_samples, 4) + grid[:-1] + (2 * grid[-1],), dtype=torch.float64)
    strided = every_other[..., ::2]
    assert not strided.is_contiguous()
    for x in (h, strided):
        with torch.no_grad():
            torch.testing.assert_close(_apply_pointwise(conv, x), conv(x), atol=1e-12, rtol=1e-12)
