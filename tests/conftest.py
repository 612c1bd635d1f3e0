import os

# scikit-learn's array API check (numpy namespace) runs only with this set,
# and it must be set before scipy is imported.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import numpy as np
import pytest
import torch

from sklearn_mono import MoNORegressor, NeuralOperatorRegressor
from sklearn_mono.datasets import make_antiderivative
from sklearn_mono.experts import FNO


def small_expert(**params):
    """A small, quick FNO expert for tests that check behaviour rather than accuracy."""
    defaults = dict(module__width=8, module__n_modes=4, module__n_layers=2, max_epochs=5)
    return NeuralOperatorRegressor(**{**defaults, **params})


# Small mixtures: pass as MoNORegressor(**SMALL) (a fresh expert each time).
def small_mono(n_leaves=4, expert=None, **params):
    defaults = dict(leaf_epochs=5, min_samples_leaf=2, device="cpu", random_state=0)
    return MoNORegressor(n_leaves, expert=expert or small_expert(), **{**defaults, **params})


class WrapsFNO(torch.nn.Module):
    """An operator of one's own that holds an FNO (as ``inner``)."""

    def __init__(self, in_channels, out_channels, grid_shape, pooled=False, **kwargs):
        super().__init__()
        self.inner = FNO(in_channels, out_channels, grid_shape, pooled=pooled, **kwargs)

    def forward(self, x):
        return self.inner(x)


@pytest.fixture(scope="session")
def antiderivative_small():
    X, y = make_antiderivative(n_samples=80, n_points=16, random_state=0)
    return X, y


@pytest.fixture(scope="session")
def fitted_small(antiderivative_small):
    X, y = antiderivative_small
    return small_mono(4).fit(X, y)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
