"""sklearn_mono: mixtures of neural operators as scikit-learn estimators."""

from ._persistence import load
from ._regressor import MoNORegressor
from .encoders import FourierEncoder, PCAEncoder
from .metrics import relative_l2_error, relative_l2_scorer

__version__ = "0.1.0"

__all__ = [
    "FourierEncoder",
    "MoNORegressor",
    "PCAEncoder",
    "load",
    "relative_l2_error",
    "relative_l2_scorer",
]
