"""Neural operators used as the experts of a mixture, and their training."""

from ._fno import FNO, MLP
from ._net import RelativeL2Loss, Standardized, StandardizedMSELoss, count_parameters
from ._spectral import FactorizedSpectralConv, SpectralConv

__all__ = [
    "FNO",
    "FactorizedSpectralConv",
    "MLP",
    "RelativeL2Loss",
    "SpectralConv",
    "Standardized",
    "StandardizedMSELoss",
    "count_parameters",
]
