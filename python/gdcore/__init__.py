"""gdcore: linear least squares by gradient descent, fast and checkable.

Batch, stochastic (per-sample) and mini-batch gradient descent on
``y ~ X @ w + b`` with a compiled Cython core (``gdcore._kernels``) and a
plain-Python reference path (:mod:`gdcore.reference`) that computes the same
numbers. ``docs/design.md`` in the repository describes how it is built.
"""

from . import optimizers, reference, schedules
from ._api import fit, max_stable_lr, predict, value_and_grad
from ._data import make_regression, make_regression_npy
from ._dispatch import KERNELS_NAME as KERNELS
from ._dispatch import OPENMP
from ._estimator import LinearRegressor
from ._results import ConvergenceWarning, DivergenceError, FitResult, NotFittedError
from ._state import TrainState
from ._version import __version__
from .landscape import DescentPath, descent_path, ewma, loss_grid, loss_surface

__all__ = [
    "ConvergenceWarning",
    "DescentPath",
    "DivergenceError",
    "FitResult",
    "KERNELS",
    "LinearRegressor",
    "NotFittedError",
    "OPENMP",
    "TrainState",
    "__version__",
    "descent_path",
    "ewma",
    "fit",
    "loss_grid",
    "loss_surface",
    "make_regression",
    "make_regression_npy",
    "max_stable_lr",
    "optimizers",
    "predict",
    "reference",
    "schedules",
    "value_and_grad",
]
