import os

# scikit-learn's array API check (numpy namespace) runs only with this set,
# and it must be set before scipy is imported.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import numpy as np
import pytest

from sklearn_mono import MoNORegressor
from sklearn_mono.datasets import make_antiderivative

# Small models for tests that check behaviour rather than accuracy.
SMALL = dict(
    width=8, n_modes=4, n_layers=2, max_epochs=5, root_epochs=5, min_samples_leaf=2,
    device="cpu", random_state=0,
)


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
