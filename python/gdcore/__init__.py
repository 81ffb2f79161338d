"""gdcore: linear least squares by gradient descent, fast and checkable.

Batch, stochastic (per-sample) and mini-batch gradient descent on
``y ~ X @ w + b`` with a compiled Cython core (``gdcore._kernels``) and a
plain-Python reference path (:mod:`gdcore.reference`) that computes the same
numbers. See DESIGN.md in the repository for the contract.
"""

from . import reference, schedules
from ._api import fit, max_stable_lr, predict, value_and_grad
from ._data import make_regression, make_regression_npy
from ._estimator import LinearRegressor
from ._dispatch import KERNELS_NAME as KERNELS
from ._kernels import OPENMP
from .landscape import DescentPath, descent_path, ewma, loss_grid, loss_surface
from ._results import DivergenceError, FitResult, NotFittedError, TrainState

__version__ = "0.1.0"

__all__ = [
    "DescentPath",
    "DivergenceError",
    "FitResult",
    "KERNELS",
    "LinearRegressor",
    "NotFittedError",
    "OPENMP",
    "TrainState",
    "descent_path",
    "ewma",
    "fit",
    "loss_grid",
    "loss_surface",
    "make_regression",
    "make_regression_npy",
    "max_stable_lr",
    "predict",
    "reference",
    "schedules",
    "value_and_grad",
]
