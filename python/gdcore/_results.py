"""What training returns, and the error it raises when it diverges."""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass, field

import numpy as np

from ._state import TrainState


@dataclass(frozen=True)
class FitResult:
    """Parameters and record of a :func:`gdcore.fit` run.

    Attributes
    ----------
    w : ndarray of shape (n_features,), or (n_features, k) for k outputs
        Learned weights (a new array; ``w0`` is never modified). With
        ``average``, the averaged weights; with ``restore_best``, those of
        ``best_epoch``.
    b : float, or ndarray of shape (k,) for k outputs
        Learned intercept (``b0`` when ``fit_intercept=False``).
    history : ndarray of shape (epochs_run,)
        ``history[k]`` is the mean over epoch ``k``'s batches of each batch's
        loss, computed with the parameters before that batch's update. For
        ``method="batch"`` it is the full-data loss before the epoch's update.
    epochs_run : int
        Number of complete epochs run by this call.
    n_steps : int
        Number of parameter updates applied by this call.
    steps_per_epoch : int
        Updates in a complete epoch: ``ceil(n_train / batch_size)``.
    batch_size : int
        Batch size actually used: ``n_samples`` for ``"batch"``, 1 for ``"sgd"``,
        ``min(batch_size, n_samples)`` for ``"minibatch"``.
    method, backend : str
    grad_norm : ndarray of shape (epochs_run,)
        Norm of the mean over the epoch's steps of the gradient each step used
        (penalties included). For ``"batch"`` it is the full-data gradient
        norm before the epoch's update. With ``standardize=True``, the
        gradient of the standardized problem (the one the steps follow).
    lr_history : ndarray of shape (epochs_run,)
        Learning rate of each epoch (before any per-step decay).
    val_loss : ndarray of shape (epochs_run,) or None
        Loss on the held-out validation rows after each epoch.
    stop_reason : str
        ``"max_epochs"``, ``"tol (loss)"``, ``"tol (grad_norm)"``,
        ``"tol (validation)"``, ``"callback"`` or ``"diverged"`` (with
        ``on_divergence="stop"``).
    state : TrainState
        What ``warm_start`` needs to continue this run.
    copied : tuple of str
        Which of ``"X"`` and ``"y"`` had to be converted (copied) to float64
        C-contiguous arrays; empty when both were used as given.
    lr : float or None
        The base learning rate the run used (the one ``lr="auto"`` chose, or
        the ``lr`` given).
    best_epoch : int or None
        With ``restore_best=True``: the epoch (0-based, counted since the run
        began, warm starts included) whose monitored loss (``stop_on``: the
        training loss or the held-out loss) was the lowest; ``w`` and ``b``
        are the parameters at the end of that epoch. None otherwise.
    best_loss : float or None
        With ``restore_best=True``: the training loss of that epoch (its
        entry of ``history``).
    best_val_loss : float or None
        With ``restore_best=True`` and a held-out split: the held-out loss of
        that epoch (its entry of ``val_loss``).
    """

    w: np.ndarray
    b: float | np.ndarray
    history: np.ndarray
    epochs_run: int
    n_steps: int
    batch_size: int
    steps_per_epoch: int = 1
    method: str = "minibatch"
    backend: str = "cython"
    grad_norm: np.ndarray | None = None
    lr_history: np.ndarray | None = None
    val_loss: np.ndarray | None = None
    stop_reason: str = "max_epochs"
    state: TrainState | None = field(default=None, repr=False)
    copied: tuple[str, ...] = ()
    lr: float | None = None
    best_epoch: int | None = None
    best_loss: float | None = None
    best_val_loss: float | None = None


class ConvergenceWarning(UserWarning):
    """Training ran out of epochs before early stopping's ``tol`` was met.

    Warned by :func:`gdcore.fit` (and ``LinearRegressor.fit``) when ``tol``
    is set and the run ends with ``stop_reason="max_epochs"``, like
    scikit-learn's warning of the same name: the result is the last epoch's
    (or the best one's, with ``restore_best``), which may not have
    converged. More ``epochs``, a larger ``lr`` or a larger ``tol`` help;
    ``warnings.simplefilter("ignore", gdcore.ConvergenceWarning)`` silences
    it. ``LinearRegressor.partial_fit`` runs one epoch per call by design and
    does not warn.
    """


class DivergenceError(FloatingPointError):
    """The loss or the parameters stopped being finite during training.

    Raised by :func:`gdcore.fit` (and ``LinearRegressor.fit``), typically when the
    learning rate is too large. Nothing is lost: the error carries the last
    finite parameters and the history of the epochs completed before.

    Attributes
    ----------
    w : ndarray of shape (n_features,), or (n_features, k) for k outputs
        The last finite weights: those in force before step ``step`` of epoch
        ``epoch``.
    b : float, or ndarray of shape (k,)
        The matching intercept.
    epoch : int
        0-based epoch in which training broke down.
    step : int
        0-based step (batch) within that epoch whose loss was not finite, or
        whose update made the parameters non-finite; its update is not in ``w``.
    history : ndarray
        Loss history of the ``epoch`` complete epochs before the failure.
    """

    def __init__(self, message: str, *, w: np.ndarray, b: float | np.ndarray, epoch: int,
                 step: int, history: np.ndarray) -> None:
        super().__init__(message)
        self.w = w
        self.b = b
        self.epoch = epoch
        self.step = step
        self.history = history

    def __reduce__(self):
        # Exceptions pickle through ``args``; keep the keyword attributes too,
        # and anything else set on the error (``__notes__``, ...) as its state.
        return (_rebuild_divergence,
                (type(self), self.args[0], self.w, self.b, self.epoch, self.step,
                 self.history),
                self.__dict__)


def _rebuild_divergence(kind, message, w, b, epoch, step, history):
    return kind(message, w=w, b=b, epoch=epoch, step=step, history=history)


def _rebuild_divergence_error(message, w, b, epoch, step, history):
    """What errors pickled before the class was part of the pickle unpickle through."""
    return DivergenceError(message, w=w, b=b, epoch=epoch, step=step, history=history)


class NotFittedError(ValueError, AttributeError):
    """An estimator was used before ``fit`` (like scikit-learn's, which it mirrors).

    Raised as :func:`not_fitted_error_class` ``()``: when scikit-learn is
    imported, a subclass that is also scikit-learn's ``NotFittedError``. Both
    pickle (joblib workers) and unpickle to the same kind of error, with the
    same message and attributes.
    """

    def __reduce__(self):
        also_sklearn = getattr(type(self), "_also_sklearn", False)
        if type(self) is not NotFittedError and not also_sklearn:   # a user's subclass
            return super().__reduce__()
        return (_rebuild_not_fitted_error, (self.args, also_sklearn), self.__dict__)


def not_fitted_error_class() -> type:
    """gdcore's NotFittedError; when scikit-learn is loaded, a subclass that is
    also scikit-learn's, so its tooling recognises the error."""
    sklearn_exceptions = sys.modules.get("sklearn.exceptions")
    if sklearn_exceptions is None:
        return NotFittedError
    return _also(sklearn_exceptions.NotFittedError)


@functools.cache
def _also(base: type) -> type:
    # Made at run time (scikit-learn is optional), so pickle cannot find it by
    # name: NotFittedError.__reduce__ rebuilds it through the function below.
    return type("NotFittedError", (NotFittedError, base),
                {"__module__": __name__, "_also_sklearn": True})


def _rebuild_not_fitted_error(args: tuple, also_sklearn: bool) -> NotFittedError:
    kind: type = NotFittedError
    if also_sklearn:
        try:
            from sklearn.exceptions import NotFittedError as SklearnNotFittedError
        except ImportError:             # unpickled where scikit-learn is missing
            pass
        else:
            kind = _also(SklearnNotFittedError)
    return kind(*args)
