"""The reference path: gradient descent for least squares in plain Python.

This module is the specification of what gdcore computes, written the way a
textbook would write it: lists of floats, ``for`` loops, one formula per
line, no NumPy and nothing else from gdcore. It is slow and meant to be: it
is the independent statement of what the compiled kernels
(``gdcore/kernels.pxi``, ``gdcore/landscape.pxi``) compute, and the tests hold
the two to ``rtol=1e-9``. Every public function of gdcore runs it with
``backend="reference"``: the same checks, the same training loop around it
(sample order, schedules, early stopping, ...), only the arithmetic is this.

The model has ``k`` outputs (``k = 1`` for a single target): output ``c``
predicts ``W[c] . x + b[c]``, and the loss over a batch of ``m`` samples is

    L = a * (1/m) * sum_i sum_c s_i * r[i][c]**2,   r[i][c] = W[c] . x_i + b[c] - y_i[c]

with sample weights ``s`` (1 without) and ``a = 1`` for mse, ``a = 1/2`` for
half_mse, so that

    dL/dW[c] = (2a/m) * sum_i s_i * r[i][c] * x_i,   dL/db[c] = (2a/m) * sum_i s_i * r[i][c].

Each output learns what it would learn alone.

Parameters travel as one list, *by output*: ``W[0]`` (d weights), ...,
``W[k-1]``, then ``b[0..k-1]``; for one output that is ``w`` then ``b``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

Vector = list  # a list of floats


def dot(x: Sequence[float], w: Sequence[float]) -> float:
    """Sum of ``x[j] * w[j]``, added up from left to right."""
    total = 0.0
    for xj, wj in zip(x, w, strict=True):
        total += xj * wj
    return total


def sign(v: float) -> float:
    """-1, 0 or 1: the sign of ``v`` (0 for 0)."""
    return (v > 0) - (v < 0)


def sums(rows: Sequence[Sequence[float]], targets: Sequence[Sequence[float]] | None,
         W: Sequence[Sequence[float]], b: Sequence[float],
         weights: Sequence[float] | None = None) -> tuple[float, list, Vector]:
    """The raw sums over a batch that the loss and its gradient are made of.

    Parameters
    ----------
    rows : sequence of m sequences of d floats
        The batch's samples.
    targets : sequence of m sequences of k floats, or None
        Each sample's k targets (None: all 0).
    W : sequence of k sequences of d floats
        Each output's weights.
    b : sequence of k floats
        Each output's intercept.
    weights : sequence of m floats, optional
        Sample weights ``s`` (1 without).

    Returns
    -------
    sum_of_squares : float
        ``sum_i sum_c s_i * r[i][c]**2``
    sum_r_x : list of k lists of d floats
        ``sum_i s_i * r[i][c] * x_i`` for each output c
    sum_r : list of k floats
        ``sum_i s_i * r[i][c]``
    """
    m, k, d = len(rows), len(b), len(W[0])
    if weights is None:
        weights = [1.0] * m
    sum_of_squares = 0.0
    sum_r_x = [[0.0] * d for _ in range(k)]
    sum_r = [0.0] * k
    for i, (x, weight) in enumerate(zip(rows, weights, strict=True)):
        for c in range(k):
            r = dot(x, W[c]) + b[c]
            if targets is not None:
                r = r - targets[i][c]
            weighted_r = weight * r
            sum_of_squares += weighted_r * r
            for j in range(d):
                sum_r_x[c][j] += weighted_r * x[j]
            sum_r[c] += weighted_r
    return sum_of_squares, sum_r_x, sum_r


def loss_and_gradient(rows: Sequence[Sequence[float]], targets: Sequence[Sequence[float]],
                      W: Sequence[Sequence[float]], b: Sequence[float], loss_factor: float,
                      weights: Sequence[float] | None = None) -> tuple[float, list, Vector]:
    """Loss of a batch and its gradient with respect to ``W`` and ``b``.

    The arguments are those of :func:`sums`; ``loss_factor`` is ``a`` in
    ``L = a * mean(r**2)`` (1.0 for mse, 0.5 for half_mse). Returns
    ``(loss, grad_W, grad_b)``: a float, k lists of d floats, k floats.
    """
    m = len(rows)
    sum_of_squares, sum_r_x, sum_r = sums(rows, targets, W, b, weights)
    loss = loss_factor * sum_of_squares / m
    grad_W = [[2.0 * loss_factor * s / m for s in row] for row in sum_r_x]
    grad_b = [2.0 * loss_factor * s / m for s in sum_r]
    return loss, grad_W, grad_b


def split(params: Sequence[float], k: int) -> tuple[list, list]:
    """``(W, b)`` out of flat by-output parameters: k lists of d, k floats."""
    d = len(params) // k - 1
    return [list(params[c * d:(c + 1) * d]) for c in range(k)], list(params[k * d:])


def batch_loss_and_gradient(rows: Sequence[Sequence[float]],
                            targets: Sequence[Sequence[float]], params: Sequence[float],
                            loss_factor: float,
                            weights: Sequence[float] | None = None) -> tuple[float, Vector]:
    """:func:`loss_and_gradient` at the flat parameters ``params`` (by output);
    the gradient comes back in the same layout."""
    W, b = split(params, len(targets[0]))
    loss, grad_W, grad_b = loss_and_gradient(rows, targets, W, b, loss_factor, weights)
    return loss, [value for row in grad_W for value in row] + grad_b


def predict(rows: Sequence[Sequence[float]], W: Sequence[Sequence[float]],
            b: Sequence[float]) -> list:
    """``W[c] . x + b[c]`` for every row and output: m lists of k floats."""
    return [[dot(x, W[c]) + b[c] for c in range(len(b))] for x in rows]


def apply_update(params: Vector, grad: Vector, velocity: Vector, average: Vector,
                 grad_sum: Vector, rule: Any, t: int, lr: float, n_outputs: int) -> None:
    """One step of the update rule on the flat parameters, in place.

    ``rule`` is the run's validated options (``gdcore._options.Config``). For
    each parameter ``p`` with loss gradient ``g`` (the ``n_outputs``
    intercepts, the last entries, only if ``rule.fit_intercept``):

    1. penalty: ``g += weight_decay * p + l1 * sign(p)`` (an intercept only
       with ``decay_bias``);
    2. ``grad_sum += g`` (for the epoch's gradient norm);
    3. momentum (PyTorch's convention): ``v = g`` at the very first step
       (``t == 0``), afterwards ``v = momentum * v + (1 - dampening) * g``;
       the step direction is ``v``, or ``g + momentum * v`` with Nesterov;
    4. ``p -= lr * direction``;
    5. averaging: from step ``average_from`` on, ``average`` is the running
       mean of the parameters after each step.
    """
    n_weights = len(params) - n_outputs
    n_params = len(params) if rule.fit_intercept else n_weights
    for j in range(n_params):
        g = grad[j]
        if j < n_weights or rule.decay_bias:
            g = g + rule.weight_decay * params[j] + rule.l1 * sign(params[j])
        grad_sum[j] += g
        if rule.momentum != 0.0:
            if t == 0:
                velocity[j] = g
            else:
                velocity[j] = rule.momentum * velocity[j] + (1.0 - rule.dampening) * g
            g = g + rule.momentum * velocity[j] if rule.nesterov else velocity[j]
        params[j] -= lr * g
    if 0 <= rule.average_from <= t:
        count = t - rule.average_from + 1
        for j in range(n_params):
            average[j] += (params[j] - average[j]) / count


def train_epoch(rows: Sequence[Sequence[float]], targets: Sequence[Sequence[float]],
                order: Sequence[int], weights: Sequence[float] | None, state: list,
                rule: Any, batch_size: int, lr: float, global_step: int, first_step: int,
                stop_step: int, loss_sum: float = 0.0) -> tuple[int, float, float, bool]:
    """Steps ``first_step .. stop_step - 1`` of one epoch of (mini-)batch descent.

    The samples are taken in ``order`` and cut into consecutive batches of
    ``batch_size`` (the last one may be smaller). For each batch, in turn: the
    loss and gradient at the current parameters, then one step of
    :func:`apply_update` with rate ``lr / (t + 1) ** power`` (``t`` the
    global step). ``batch_size = 1`` is per-sample SGD; ``batch_size >=
    len(order)`` is full-batch gradient descent. ``state`` is the lists
    ``[params, grad_sum, velocity, average]``, updated in place.

    Returns ``(steps, loss_sum, part, nonfinite)``: the number of steps taken;
    ``loss_sum`` (the epoch's sum of batch losses so far) with theirs added;
    the sum of their batch losses alone; and whether the epoch stopped early
    at a batch whose loss was not finite (its step not taken).
    """
    params, grad_sum, velocity, average = state
    n_outputs = len(targets[0])
    batches = [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
    part = 0.0
    steps = 0
    for step in range(first_step, min(stop_step, len(batches))):
        batch = batches[step]
        t = global_step + step - first_step
        batch_weights = None if weights is None else [weights[i] for i in batch]
        loss, gradient = batch_loss_and_gradient(
            [rows[i] for i in batch], [targets[i] for i in batch], params, rule.loss_factor,
            batch_weights)
        if not math.isfinite(loss):
            return steps, loss_sum, part, True
        loss_sum += loss
        part += loss
        rate = lr / math.pow(t + 1, rule.power) if rule.power else lr
        apply_update(params, gradient, velocity, average, grad_sum, rule, t, rate, n_outputs)
        steps += 1
    return steps, loss_sum, part, False


def loss_values(rows: Sequence[Sequence[float]], targets: Sequence[float],
                candidates: Sequence[Sequence[float]], intercepts: Sequence[float],
                loss_factor: float) -> list[float]:
    """Loss of a one-output model at each candidate ``(candidates[k], intercepts[k])``.

    For each candidate in turn: ``r = w . x + b - y`` for every sample, the
    squares added up in sample order, ``a * sum / n``. The compiled
    ``gdcore.loss_grid`` does the same arithmetic in the same order.
    """
    n = len(rows)
    losses = []
    for w, b in zip(candidates, intercepts, strict=True):
        sum_of_squares = 0.0
        for x, target in zip(rows, targets, strict=True):
            r = dot(x, w) + b - target
            sum_of_squares += r * r
        losses.append(loss_factor * sum_of_squares / n)
    return losses
