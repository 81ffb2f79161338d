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


def apply_update(state: list, totals: list, grad: Vector, rule: Any, t: int, lr: float,
                 n_outputs: int) -> None:
    """One step of the update rule on the flat parameters, in place.

    ``state`` is the lists ``[params, grad_sum, velocity, square_avg, aux,
    l1_applied, average]`` and ``totals`` the list ``[l1_total]``; ``rule``
    is the run's validated options (``gdcore._options.Config``), ``t`` the
    global step (0-based; ``s = t + 1`` counts steps as PyTorch does) and
    ``lr`` its rate. For each parameter ``p`` with loss gradient ``g`` (the
    ``n_outputs`` intercepts, the last entries, only if ``rule.fit_intercept``;
    the penalties apply to them only with ``decay_bias``):

    1. penalty: ``g += weight_decay * p`` (not for AdamW, which decays ``p``
       itself), and ``g += l1 * sign(p)`` with ``l1_method="subgradient"``;
    2. ``grad_sum += g`` (for the epoch's gradient norm);
    3. the optimizer's step (PyTorch's rules):

       * SGD: momentum (PyTorch's convention) ``v = g`` at the very first step
         (``t == 0``), afterwards ``v = momentum * v + (1 - dampening) * g``;
         the direction is ``v``, or ``g + momentum * v`` with Nesterov (or
         ``g`` without momentum); ``p -= lr * direction``;
       * Adam: ``m = beta1 * m + (1 - beta1) * g``, ``v = beta2 * v + (1 -
         beta2) * g**2`` (amsgrad: ``vmax = max(vmax, v)`` is used for ``v``),
         ``p -= lr / (1 - beta1**s) * (m / (sqrt(v) / sqrt(1 - beta2**s) +
         eps))``; AdamW first shrinks ``p *= 1 - lr * weight_decay``;
       * Adagrad: ``S += g**2``, ``p -= lr / (1 + t * lr_decay) * (g / (sqrt(S)
         + eps))``;
       * RMSprop: ``S = alpha * S + (1 - alpha) * g**2``; centred: ``a = alpha
         * a + (1 - alpha) * g`` and ``D = sqrt(S - a**2) + eps``, else ``D =
         sqrt(S) + eps``; with momentum ``v = momentum * v + g / D`` and ``p -=
         lr * v``, else ``p -= lr * (g / D)``;

    4. L1 after the step: ``l1_method="proximal"`` soft-thresholds, ``p =
       sign(p) * max(|p| - lr * l1, 0)``; ``"cumulative"`` (Tsuruoka et al.,
       as scikit-learn's SGDRegressor) first adds ``lr * l1`` to the total
       ``u`` (once per step), then clips ``p`` towards 0 by what ``u`` exceeds
       the penalty ``q`` already applied to it, ``q`` recording what it did;
    5. averaging: from step ``average_from`` on, ``average`` is the running
       mean of the parameters after each step.
    """
    params, grad_sum, velocity, square_avg, aux, l1_applied, average = state
    numbers = rule.optimizer.rule_numbers()
    kind = numbers["kind"]
    decoupled = numbers.get("decoupled", False)
    s = t + 1
    cumulative = rule.l1_method == "cumulative" and rule.l1 != 0.0
    proximal = rule.l1_method == "proximal" and rule.l1 != 0.0
    if cumulative:
        totals[0] += lr * rule.l1
    u = totals[0]
    n_weights = len(params) - n_outputs
    n_params = len(params) if rule.fit_intercept else n_weights
    for j in range(n_params):
        penalized = j < n_weights or rule.decay_bias
        p = params[j]
        g = grad[j]
        if penalized and not decoupled:
            g = g + rule.weight_decay * p
        if penalized and rule.l1_method == "subgradient":
            g = g + rule.l1 * sign(p)
        grad_sum[j] += g
        if kind == "sgd":
            if rule.momentum != 0.0:
                if t == 0:
                    velocity[j] = g
                else:
                    velocity[j] = rule.momentum * velocity[j] + (1.0 - rule.dampening) * g
                g = g + rule.momentum * velocity[j] if rule.nesterov else velocity[j]
            p -= lr * g
        elif kind == "adam":
            beta1, beta2 = numbers["beta1"], numbers["beta2"]
            if penalized and decoupled:
                p = p * (1.0 - lr * rule.weight_decay)
            velocity[j] = beta1 * velocity[j] + (1.0 - beta1) * g
            square_avg[j] = beta2 * square_avg[j] + (1.0 - beta2) * g * g
            v = square_avg[j]
            if numbers["amsgrad"]:
                aux[j] = max(aux[j], v)
                v = aux[j]
            step_size = lr / (1.0 - beta1 ** s)
            denominator = math.sqrt(v) / math.sqrt(1.0 - beta2 ** s) + numbers["eps"]
            p = p - step_size * (velocity[j] / denominator)
        elif kind == "adagrad":
            square_avg[j] = square_avg[j] + g * g
            step_size = lr / (1.0 + t * numbers["lr_decay"])
            p = p - step_size * (g / (math.sqrt(square_avg[j]) + numbers["eps"]))
        else:                                           # rmsprop
            alpha = numbers["alpha"]
            square_avg[j] = alpha * square_avg[j] + (1.0 - alpha) * g * g
            if numbers["centered"]:
                aux[j] = alpha * aux[j] + (1.0 - alpha) * g
                denominator = math.sqrt(square_avg[j] - aux[j] * aux[j]) + numbers["eps"]
            else:
                denominator = math.sqrt(square_avg[j]) + numbers["eps"]
            if rule.momentum > 0.0:
                velocity[j] = rule.momentum * velocity[j] + g / denominator
                p = p - lr * velocity[j]
            else:
                p = p - lr * (g / denominator)
        if penalized and proximal:
            p = sign(p) * max(abs(p) - lr * rule.l1, 0.0)
        elif penalized and cumulative:
            before = p
            if p > 0.0:
                p = max(0.0, p - (u + l1_applied[j]))
            elif p < 0.0:
                p = min(0.0, p + (u - l1_applied[j]))
            l1_applied[j] += p - before
        params[j] = p
    if 0 <= rule.average_from <= t:
        count = t - rule.average_from + 1
        for j in range(n_params):
            average[j] += (params[j] - average[j]) / count


def train_epoch(rows: Sequence[Sequence[float]], targets: Sequence[Sequence[float]],
                order: Sequence[int], weights: Sequence[float] | None, state: list,
                totals: list, rule: Any, batch_size: int, lr: float, global_step: int,
                first_step: int, stop_step: int,
                loss_sum: float = 0.0) -> tuple[int, float, float, bool]:
    """Steps ``first_step .. stop_step - 1`` of one epoch of (mini-)batch descent.

    The samples are taken in ``order`` and cut into consecutive batches of
    ``batch_size`` (the last one may be smaller). For each batch, in turn: the
    loss and gradient at the current parameters, then one step of
    :func:`apply_update` with rate ``lr / (t + 1) ** power`` (``t`` the
    global step). ``batch_size = 1`` is per-sample SGD; ``batch_size >=
    len(order)`` is full-batch gradient descent. ``state`` (the lists of
    :func:`apply_update`) and ``totals`` are updated in place.

    Returns ``(steps, loss_sum, part, nonfinite)``: the number of steps taken;
    ``loss_sum`` (the epoch's sum of batch losses so far) with theirs added;
    the sum of their batch losses alone; and whether the epoch stopped early
    at a batch whose loss was not finite (its step not taken).
    """
    params = state[0]
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
        apply_update(state, totals, gradient, rule, t, rate, n_outputs)
        steps += 1
    return steps, loss_sum, part, False


def standardized(rows: Sequence[Sequence[float]],
                 standardize: Sequence[Sequence[float]]) -> list[list[float]]:
    """The rows as ``standardize=True`` trains on them: ``z[j] = (x[j] -
    centre[j]) * inv_scale[j]``, with ``standardize = [centres, inv_scales]``
    (``inv_scale`` is ``1 / scale``, 0 for a constant feature). The model
    ``z @ v + c`` is ``x @ w + b`` with ``w = v * inv_scale`` and ``b = c -
    centre @ w``."""
    centres, inv_scales = standardize
    return [[(x - m) * a for x, m, a in zip(row, centres, inv_scales, strict=True)]
            for row in rows]


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
