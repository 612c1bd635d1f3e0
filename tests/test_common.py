"""scikit-learn's estimator checks over every public estimator."""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_mono import FourierEncoder, MoNORegressor, PCAEncoder

# Small and quick, but the full pipeline: two leaves (so routing is exercised),
# a warm-started FNO expert on the CPU.
ESTIMATORS = [
    MoNORegressor(
        n_leaves=2,
        min_samples_leaf=1,
        width=8,
        n_modes=4,
        n_layers=2,
        max_epochs=10,
        root_epochs=10,
        lr=1e-2,
        device="cpu",
        random_state=0,
    ),
    FourierEncoder(),
    PCAEncoder(),
]

EXPECTED_FAILED = {}


def _expected_failed_checks(estimator):
    return EXPECTED_FAILED.get(type(estimator).__name__, {})


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failed_checks)
def test_sklearn_compatible(estimator, check):
    check(estimator)
