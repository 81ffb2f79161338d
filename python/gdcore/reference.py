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
                      w: Sequence[float], b: float, loss_factor: float,
                      weights: Sequence[float] | None = None) -> tuple[float, Vector, float]:
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
    weights : sequence of m floats, optional
        Sample weights ``s``: then ``L = a * sum(s * r**2) / m``.

    Returns
    -------
    loss : float
    grad_w : list of d floats
    grad_b : float
    """
    m = len(rows)
    if weights is None:
        weights = [1.0] * m
    sum_of_squares = 0.0
    sum_r_x = [0.0] * len(w)
    sum_r = 0.0
    for x, target, weight in zip(rows, targets, weights):
        r = dot(x, w) + b - target
        weighted_r = weight * r
        sum_of_squares += weighted_r * r
        for j in range(len(w)):
            sum_r_x[j] += weighted_r * x[j]
        sum_r += weighted_r
    loss = loss_factor * sum_of_squares / m
    grad_w = [2.0 * loss_factor * s / m for s in sum_r_x]
    grad_b = 2.0 * loss_factor * sum_r / m
    return loss, grad_w, grad_b


def loss_and_gradient_multi(rows: Sequence[Sequence[float]],
                            targets: Sequence[Sequence[float]],
                            W: Sequence[Sequence[float]], b: Sequence[float],
                            loss_factor: float, weights: Sequence[float] | None = None
                            ) -> tuple[float, list, Vector]:
    """Loss and gradient of a batch for k outputs at once.

    ``W`` is d lists of k weights, ``b`` k intercepts, each target a list of k
    values. The loss is the sum over outputs of each output's loss,
    ``a * sum_c sum_i s_i * r[i][c]**2 / m``, so the k outputs train exactly
    as k separate problems would. Returns ``(loss, grad_W, grad_b)`` with
    ``grad_W`` d lists of k.
    """
    m, d, k = len(rows), len(W), len(b)
    if weights is None:
        weights = [1.0] * m
    sum_of_squares = 0.0
    sum_r_x = [[0.0] * k for _ in range(d)]
    sum_r = [0.0] * k
    for x, target, weight in zip(rows, targets, weights):
        for c in range(k):
            prediction = 0.0
            for j in range(d):
                prediction += x[j] * W[j][c]
            r = prediction + b[c] - target[c]
            weighted_r = weight * r
            sum_of_squares += weighted_r * r
            for j in range(d):
                sum_r_x[j][c] += weighted_r * x[j]
            sum_r[c] += weighted_r
    scale = 2.0 * loss_factor / m
    grad_W = [[scale * value for value in row] for row in sum_r_x]
    return loss_factor * sum_of_squares / m, grad_W, [scale * value for value in sum_r]


def sign(v: float) -> float:
    return (v > 0) - (v < 0)


def apply_update(params: Vector, grad: Vector, velocity: Vector, average: Vector,
                 grad_sum: Vector, rule: dict, t: int, lr: float, n_outputs: int = 1) -> None:
    """One step of the update rule on ``params = w + [b]``, in place.

    (With k outputs, ``params`` is the d x k weights row by row, then the k
    intercepts; everything below applies to each entry alike.)

    For each parameter ``p`` with loss gradient ``g`` (the intercept only if
    ``fit_intercept``):

    1. penalty: ``g += l2 * p + l1 * sign(p)`` (the intercept only with
       ``decay_bias``);
    2. ``grad_sum += g`` (for the epoch's gradient norm);
    3. momentum (PyTorch's convention): ``v = g`` at the very first step
       (``t == 0``), afterwards ``v = momentum * v + (1 - dampening) * g``;
       the step direction is ``v``, or ``g + momentum * v`` with Nesterov;
    4. ``p -= lr * direction``;
    5. averaging: from step ``average_from`` on, ``average`` is the running
       mean of the parameters after each step.
    """
    n_weights = len(params) - n_outputs
    n_params = len(params) if rule["fit_intercept"] else n_weights
    for j in range(n_params):
        g = grad[j]
        if j < n_weights or rule["decay_bias"]:
            g = g + rule["l2"] * params[j] + rule["l1"] * sign(params[j])
        grad_sum[j] += g
        if rule["momentum"] != 0.0:
            if t == 0:
                velocity[j] = g
            else:
                velocity[j] = rule["momentum"] * velocity[j] + (1.0 - rule["dampening"]) * g
            g = g + rule["momentum"] * velocity[j] if rule["nesterov"] else velocity[j]
        params[j] -= lr * g
    if 0 <= rule["average_from"] <= t:
        count = t - rule["average_from"] + 1
        for j in range(n_params):
            average[j] += (params[j] - average[j]) / count


def train_epoch(rows: Sequence[Sequence[float]], targets: Sequence[float],
                order: Sequence[int], weights: Sequence[float] | None, params: Vector,
                velocity: Vector, average: Vector, grad_sum: Vector, rule: dict,
                global_step: int, first_step: int, stop_step: int,
                n_outputs: int = 1) -> tuple[int, float, bool]:
    """Steps ``first_step .. stop_step - 1`` of one epoch of (mini-)batch descent.

    The samples are taken in ``order`` and cut into consecutive batches of
    ``rule["batch_size"]`` (the last one may be smaller). For each batch, in
    turn: the loss and gradient at the current parameters, then one step of
    :func:`apply_update` with rate ``lr / (t + 1) ** power`` (``t`` the global
    step). ``batch_size = 1`` is per-sample SGD; ``batch_size >= len(order)``
    is full-batch gradient descent.

    Returns ``(steps, loss_sum, nonfinite)``: the number of steps taken, the
    sum of their batch losses, and whether the epoch stopped early at a batch
    whose loss was not finite (its step not taken).
    """
    batch_size = rule["batch_size"]
    batches = [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
    loss_sum = 0.0
    steps = 0
    for step in range(first_step, min(stop_step, len(batches))):
        batch = batches[step]
        t = global_step + step - first_step
        batch_weights = None if weights is None else [weights[i] for i in batch]
        loss, gradient = batch_loss_and_gradient(
            [rows[i] for i in batch], [targets[i] for i in batch], params, n_outputs,
            rule["loss_factor"], batch_weights)
        if not math.isfinite(loss):
            return steps, loss_sum, True
        loss_sum += loss
        lr = rule["lr"] / math.pow(t + 1, rule["power"]) if rule["power"] else rule["lr"]
        apply_update(params, gradient, velocity, average, grad_sum, rule, t, lr, n_outputs)
        steps += 1
    return steps, loss_sum, False


def batch_loss_and_gradient(rows, targets, params: Vector, n_outputs: int,
                            loss_factor: float, weights=None) -> tuple[float, Vector]:
    """Loss and gradient of a batch at ``params`` (laid out as in
    :func:`apply_update`); the gradient comes back in the same layout."""
    if n_outputs == 1 and not isinstance(targets[0], list):
        loss, grad_w, grad_b = loss_and_gradient(rows, targets, params[:-1], params[-1],
                                                 loss_factor, weights)
        return loss, grad_w + [grad_b]
    d = len(params) // n_outputs - 1
    W = [params[j * n_outputs:(j + 1) * n_outputs] for j in range(d)]
    loss, grad_W, grad_b = loss_and_gradient_multi(rows, targets, W, params[d * n_outputs:],
                                                   loss_factor, weights)
    return loss, [value for row in grad_W for value in row] + grad_b


class ReferenceEngine:
    """Adapter that lets the shared training loop run :func:`train_epoch`."""

    name = "reference"

    def prepare(self, X: np.ndarray, y: np.ndarray) -> tuple[list, list, int]:
        return X.tolist(), y.tolist(), 1 if y.ndim == 1 else y.shape[1]

    def subset_loss(self, data, rows, params, loss_factor):
        all_rows, targets, n_outputs = data
        loss, _ = batch_loss_and_gradient([all_rows[i] for i in rows],
                                          [targets[i] for i in rows], params.tolist(),
                                          n_outputs, loss_factor)
        return loss

    def run_epoch(self, data, order, weights, params, velocity, average, grad_sum, rule,
                  global_step, first_step, stop_step):
        rows, targets, n_outputs = data
        visit = list(range(len(rows))) if order is None else order.tolist()
        lists = [None if a is None else a.tolist()
                 for a in (params, velocity, average, grad_sum)]
        steps, loss_sum, nonfinite = train_epoch(
            rows, targets, visit, None if weights is None else weights.tolist(), *lists,
            rule, global_step, first_step, stop_step, n_outputs)
        for array, values in zip((params, velocity, average, grad_sum), lists):
            if array is not None:
                array[:] = values
        return steps, loss_sum, nonfinite


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


# ---------------------------------------------------------------------------
# Loss landscapes: the loss at many candidate parameter vectors
# ---------------------------------------------------------------------------

def loss_values(rows: Sequence[Sequence[float]], targets: Sequence[float],
                candidates: Sequence[Sequence[float]], intercepts: Sequence[float],
                loss_factor: float) -> list[float]:
    """Loss of the model at each candidate ``(candidates[k], intercepts[k])``.

    For each candidate in turn: ``r = w . x + b - y`` for every sample, the
    squares added up in sample order, ``a * sum / n``. The compiled
    ``gdcore.loss_grid`` does the same arithmetic in the same order.
    """
    n = len(rows)
    losses = []
    for w, b in zip(candidates, intercepts):
        sum_of_squares = 0.0
        for x, target in zip(rows, targets):
            r = dot(x, w) + b - target
            sum_of_squares += r * r
        losses.append(loss_factor * sum_of_squares / n)
    return losses


def loss_grid(X: Any, y: Any, W: Any, b: Any = 0.0, *, loss: str = "mse") -> np.ndarray:
    """Plain-Python twin of :func:`gdcore.loss_grid` (same arguments and checks)."""
    from .landscape import loss_grid as compiled_loss_grid

    return compiled_loss_grid(X, y, W, b, loss=loss, backend="reference")
