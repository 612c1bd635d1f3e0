"""Operator-learning data sets made by numerical solvers, in scikit-learn's make_* style.

Everything is generated offline and deterministically from ``random_state``.
"""

from ._pde import make_burgers, make_darcy, solve_burgers, solve_darcy
from ._synthetic import make_antiderivative, make_smoothing_2d

__all__ = [
    "make_antiderivative",
    "make_burgers",
    "make_darcy",
    "make_smoothing_2d",
    "solve_burgers",
    "solve_darcy",
]
