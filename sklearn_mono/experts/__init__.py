"""Neural operators used as the experts of a mixture, and the regressor that trains one."""

from ._estimator import NeuralOperatorRegressor
from ._fno import FNO, MLP
from ._losses import RelativeL2Loss, Standardized, StandardizedMSELoss
from ._spectral import FactorizedSpectralConv, SpectralConv

__all__ = [
    "FNO",
    "FactorizedSpectralConv",
    "MLP",
    "NeuralOperatorRegressor",
    "RelativeL2Loss",
    "SpectralConv",
    "Standardized",
    "StandardizedMSELoss",
]
