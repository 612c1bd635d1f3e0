import os

# scikit-learn's array API check (numpy namespace) runs only with this set,
# and it must be set before scipy is imported.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import numpy as np
import pytest
import torch

from sklearn_mono import MoNORegressor
from sklearn_mono.datasets import make_antiderivative
from sklearn_mono.experts import FNO

# Small models for tests that check behaviour rather than accuracy.
SMALL = dict(
    width=8, n_modes=4, n_layers=2, max_epochs=5, root_epochs=5, min_samples_leaf=2,
    device="cpu", random_state=0,
)


class WrapsFNO(torch.nn.Module):
    """An expert of one's own that holds an FNO (as ``inner``)."""

    def __init__(self, in_channels, out_channels, grid_shape, pooled=False, **kwargs):
        super().__init__()
        self.inner = FNO(in_channels, out_channels, grid_shape, **kwargs)

    def forward(self, x):
        return self.inner(x)


@pytest.fixture(scope="session")
def antiderivative_small():
    X, y = make_antiderivative(n_samples=80, n_points=16, random_state=0)
    return X, y


@pytest.fixture(scope="session")
def fitted_small(antiderivative_small):
    X, y = antiderivative_small
    return MoNORegressor(n_leaves=4, **SMALL).fit(X, y)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
