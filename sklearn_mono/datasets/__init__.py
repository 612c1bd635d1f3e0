"""Operator-learning data sets made by numerical solvers, in scikit-learn's make_* style."""

from ._synthetic import make_antiderivative, make_smoothing_2d

__all__ = ["make_antiderivative", "make_smoothing_2d"]
