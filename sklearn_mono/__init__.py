"""sklearn_mono: mixtures of neural operators as scikit-learn estimators."""

from ._regressor import MoNORegressor
from .encoders import FourierEncoder, PCAEncoder
from .experts import NeuralOperatorRegressor
from .metrics import relative_l2_error, relative_l2_scorer
from .persistence import load, save

__version__ = "0.1.0"

__all__ = [
    "FourierEncoder",
    "MoNORegressor",
    "NeuralOperatorRegressor",
    "PCAEncoder",
    "load",
    "relative_l2_error",
    "relative_l2_scorer",
    "save",
]
