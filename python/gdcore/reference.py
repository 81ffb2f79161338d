"""The reference path: gradient descent for least squares in plain Python.

Everything here is written the way a textbook would write it: lists of floats,
``for`` loops, one formula per line, no NumPy in the arithmetic. It is slow and
meant to be: it is the independent statement of what the compiled kernels in
``gdcore/kernels.pyx`` compute, and the tests hold the two to ``rtol=1e-9``.

The public functions (:func:`value_and_grad`, :func:`predict`, :func:`fit`)
take the same arguments as ``gdcore.value_and_grad``, ``gdcore.predict`` and
``gdcore.fit``, go through the same input checks, and return the same types.

The model is ``y_hat = w . x + b`` and the loss over a batch of ``m`` samples is

    mse:       L = (1/m) * sum_i r_i**2           with r_i = w . x_i + b - y_i
    half_mse:  L = (1/(2m)) * sum_i r_i**2

so that ``dL/dw = (2a/m) * sum_i r_i * x_i`` and ``dL/db = (2a/m) * sum_i r_i``
with ``a = 1`` for mse and ``a = 1/2`` for half_mse.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from . import _training, _validation
from ._results import FitResult

Vector = list  # a list of floats


def dot(x: Sequence[float], w: Sequence[float]) -> float:
    """Sum of ``x[j] * w[j]``, added up from left to right."""
    total = 0.0
    for xj, wj in zip(x, w):
        total += xj * wj
    return total


def loss_and_gradient(rows: Sequence[Sequence[float]], targets: Sequence[float],
                      w: Sequence[float], b: float,
                      loss_factor: float) -> tuple[float, Vector, float]:
    """Loss of a batch and its gradient with respect to ``w`` and ``b``.

    Parameters
    ----------
    rows : sequence of m sequences of d floats
        The batch's samples.
    targets : sequence of m floats
    w : sequence of d floats
    b : float
    loss_factor : float
        ``a`` in ``L = a * mean(r**2)``: 1.0 for mse, 0.5 for half_mse.

    Returns
    -------
    loss : float
    grad_w : list of d floats
    grad_b : float
    """
    m = len(rows)
    sum_of_squares = 0.0
    sum_r_x = [0.0] * len(w)
    sum_r = 0.0
    for x, target in zip(rows, targets):
        r = dot(x, w) + b - target
        sum_of_squares += r * r
        for j in range(len(w)):
            sum_r_x[j] += r * x[j]
        sum_r += r
    loss = loss_factor * sum_of_squares / m
    grad_w = [2.0 * loss_factor * s / m for s in sum_r_x]
    grad_b = 2.0 * loss_factor * sum_r / m
    return loss, grad_w, grad_b


def train_epoch(rows: Sequence[Sequence[float]], targets: Sequence[float],
                order: Sequence[int], w: Vector, b: float, *, batch_size: int,
                lr: float, loss_factor: float, fit_intercept: bool,
                max_steps: int) -> tuple[Vector, float, int, float, bool]:
    """One epoch of (mini-)batch gradient descent.

    The samples are taken in ``order`` and cut into consecutive batches of
    ``batch_size`` (the last one may be smaller). For each batch, in turn: the
    loss and gradient at the current parameters, then one step
    ``w = w - lr * grad_w`` (and ``b = b - lr * grad_b`` if ``fit_intercept``).
    ``batch_size = 1`` is per-sample SGD; ``batch_size >= n`` is full-batch
    gradient descent. At most ``max_steps`` batches are used.

    Returns ``(w, b, steps, loss_sum, nonfinite)``: the new parameters, the
    number of steps taken, the sum of the batch losses, and whether the epoch
    stopped early at a batch whose loss was not finite (its step not taken).
    """
    n = len(rows)
    batches = [order[start:start + batch_size] for start in range(0, n, batch_size)]
    loss_sum = 0.0
    for step, batch in enumerate(batches[:max_steps]):
        batch_rows = [rows[i] for i in batch]
        batch_targets = [targets[i] for i in batch]
        loss, grad_w, grad_b = loss_and_gradient(batch_rows, batch_targets, w, b, loss_factor)
        if not math.isfinite(loss):
            return w, b, step, loss_sum, True
        loss_sum += loss
        w = [wj - lr * gj for wj, gj in zip(w, grad_w)]
        if fit_intercept:
            b = b - lr * grad_b
    return w, b, min(len(batches), max_steps), loss_sum, False


class ReferenceEngine:
    """Adapter that lets the shared training loop run :func:`train_epoch`."""

    name = "reference"

    def prepare(self, X: np.ndarray, y: np.ndarray) -> tuple[list, list]:
        return X.tolist(), y.tolist()

    def run_epoch(self, data, order, w, b, *, batch_size, lr, loss_factor, fit_intercept,
                  max_steps, n_threads):
        rows, targets = data
        visit = list(range(len(rows))) if order is None else order.tolist()
        new_w, b, steps, loss_sum, nonfinite = train_epoch(
            rows, targets, visit, w.tolist(), float(b), batch_size=batch_size, lr=lr,
            loss_factor=loss_factor, fit_intercept=fit_intercept, max_steps=max_steps)
        w[:] = new_w
        return b, steps, loss_sum, nonfinite


ENGINE = ReferenceEngine()


# ---------------------------------------------------------------------------
# Public functions with the same signatures as the compiled path
# ---------------------------------------------------------------------------

def value_and_grad(X: Any, y: Any, w: Any, b: float = 0.0, *,
                   loss: str = "mse") -> tuple[float, np.ndarray, float]:
    """Plain-Python twin of :func:`gdcore.value_and_grad` (same arguments and checks)."""
    from ._api import value_and_grad as compiled_value_and_grad

    return compiled_value_and_grad(X, y, w, b, loss=loss, backend="reference")


def predict(X: Any, w: Any, b: float = 0.0) -> np.ndarray:
    """Plain-Python twin of :func:`gdcore.predict`: ``w . x + b`` for every row."""
    X = _validation.check_X(X)
    w = _validation.check_weights(w, X.shape[1], "w")
    b = _validation.check_real(b, "b")
    weights = w.tolist()
    predictions = [dot(x, weights) + b for x in X.tolist()]
    result = np.array(predictions, dtype=np.float64)
    if not all(math.isfinite(p) for p in predictions):
        _validation.raise_if_nonfinite_input(X)
    return result


def fit(X: Any, y: Any, **options: Any) -> FitResult:
    """Plain-Python twin of :func:`gdcore.fit`: same options, ``backend="reference"``."""
    from ._api import fit as compiled_fit

    if "backend" in options:
        raise TypeError("gdcore.reference.fit always uses the reference backend; "
                        "do not pass backend")
    return compiled_fit(X, y, backend="reference", **options)
