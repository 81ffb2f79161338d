"""gdcore: linear least squares by gradient descent, fast and checkable.

Batch, stochastic (per-sample) and mini-batch gradient descent on
``y ~ X @ w + b`` with a compiled Cython core (``gdcore._kernels``) and a
plain-Python reference path (:mod:`gdcore.reference`) that computes the same
numbers. ``docs/design.md`` in the repository describes how it is built.
"""

from typing import TYPE_CHECKING, Any

from . import optimizers, reference, schedules
from ._api import fit, max_stable_lr, predict, value_and_grad
from ._data import make_regression, make_regression_npy
from ._dispatch import KERNELS_NAME as KERNELS
from ._dispatch import OPENMP
from ._results import ConvergenceWarning, DivergenceError, FitResult, NotFittedError
from ._state import TrainState
from ._version import __version__
from .landscape import DescentPath, descent_path, ewma, loss_grid, loss_surface

if TYPE_CHECKING:
    from ._estimator import LinearRegressor

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


def __getattr__(name: str) -> Any:
    # LinearRegressor inherits from scikit-learn's base classes when scikit-learn
    # is installed; importing those takes long, so only when it is first used.
    if name == "LinearRegressor":
        from ._estimator import LinearRegressor

        globals()[name] = LinearRegressor
        return LinearRegressor
    raise AttributeError(f"module 'gdcore' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
