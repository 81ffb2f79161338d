"""What training returns, and the error it raises when it diverges."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class FitResult:
    """Parameters and record of a :func:`gdcore.fit` run.

    Attributes
    ----------
    w : ndarray of shape (n_features,)
        Learned weights (a new array; ``w0`` is never modified).
    b : float
        Learned intercept (``b0`` when ``fit_intercept=False``).
    history : ndarray of shape (epochs_run,)
        ``history[k]`` is the mean over epoch ``k``'s batches of each batch's
        loss, computed with the parameters before that batch's update. For
        ``method="batch"`` it is the full-data loss before the epoch's update.
    epochs_run : int
        Number of complete epochs.
    n_steps : int
        Number of parameter updates applied.
    batch_size : int
        Batch size actually used: ``n_samples`` for ``"batch"``, 1 for ``"sgd"``,
        ``min(batch_size, n_samples)`` for ``"minibatch"``.
    """

    w: np.ndarray
    b: float
    history: np.ndarray
    epochs_run: int
    n_steps: int
    batch_size: int
    method: str = field(default="minibatch")
    backend: str = field(default="cython")


class DivergenceError(FloatingPointError):
    """The loss or the parameters stopped being finite during training.

    Raised by :func:`gdcore.fit` (and ``LinearRegressor.fit``), typically when the
    learning rate is too large. Nothing is lost: the error carries the last
    finite parameters and the history of the epochs completed before.

    Attributes
    ----------
    w : ndarray of shape (n_features,)
        The last finite weights: those in force before step ``step`` of epoch
        ``epoch``.
    b : float
        The matching intercept.
    epoch : int
        0-based epoch in which training broke down.
    step : int
        0-based step (batch) within that epoch whose loss was not finite, or
        whose update made the parameters non-finite; its update is not in ``w``.
    history : ndarray
        Loss history of the ``epoch`` complete epochs before the failure.
    """

    def __init__(self, message: str, *, w: np.ndarray, b: float, epoch: int,
                 step: int, history: np.ndarray) -> None:
        super().__init__(message)
        self.w = w
        self.b = b
        self.epoch = epoch
        self.step = step
        self.history = history

    def __reduce__(self):
        # Exceptions pickle through ``args``; keep the keyword attributes too.
        return (_rebuild_divergence_error,
                (self.args[0], self.w, self.b, self.epoch, self.step, self.history))


def _rebuild_divergence_error(message, w, b, epoch, step, history):
    return DivergenceError(message, w=w, b=b, epoch=epoch, step=step, history=history)
