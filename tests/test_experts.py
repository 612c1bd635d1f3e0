import numpy as np
import pytest
import torch

from sklearn_mono.experts import FNO, MLP, RelativeL2Loss, SpectralConv, count_parameters


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


def test_fno_shapes_and_super_resolution():
    model = FNO(2, 3, grid_shape=(16, 16), width=8, n_modes=4, n_layers=2)
    assert model(torch.zeros(4, 2, 16, 16)).shape == (4, 3, 16, 16)
    assert model(torch.zeros(4, 2, 32, 32)).shape == (4, 3, 32, 32)
    pooled = FNO(1, 5, grid_shape=(10,), width=8, n_modes=4, pooled=True)
    assert pooled(torch.zeros(4, 1, 10)).shape == (4, 5)


def test_fno_caps_modes_at_the_training_grid():
    assert FNO(1, 1, grid_shape=(16,), n_modes=12).n_modes == 7
    assert FNO(1, 1, grid_shape=(64, 16), n_modes=12).n_modes == 7
    assert FNO(1, 1, grid_shape=(64,), n_modes=12).n_modes == 12


def test_parameter_count_formula():
    width, modes, layers = 8, 4, 2
    model = FNO(1, 1, grid_shape=(32,), width=width, n_modes=modes, n_layers=layers)
    lift = (1 + 1) * width + width
    spectral = layers * (width * width * modes * 2)
    mix = layers * (width * width + width)
    project = width * 2 * width + 2 * width + 2 * width * 1 + 1
    assert count_parameters(model) == lift + spectral + mix + project


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
