"""The epoch loop shared by both backends.

A backend ("engine") knows how to run one epoch over a given sample order,
updating a weight vector in place; everything around it lives here once: the
sample order, the loss history, and what happens when the loss or the
parameters stop being finite.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np

from ._results import DivergenceError, FitResult
from ._validation import raise_if_nonfinite_input


class Engine(Protocol):
    """What the training loop needs from a backend."""

    name: str

    def prepare(self, X: np.ndarray, y: np.ndarray) -> Any:
        """Turn the validated arrays into whatever ``run_epoch`` reads."""

    def run_epoch(self, data: Any, order: np.ndarray | None, w: np.ndarray, b: float, *,
                  batch_size: int, lr: float, loss_factor: float, fit_intercept: bool,
                  max_steps: int, n_threads: int) -> tuple[float, int, float, bool]:
        """Run up to ``max_steps`` updates of one epoch, updating ``w`` in place.

        Returns ``(b, steps, loss_sum, nonfinite)``: the new intercept, the
        number of updates applied, the sum of those steps' batch losses (each
        before its update), and whether the epoch stopped at a batch whose loss
        was not finite (that batch's update not applied).
        """


def _finite(w: np.ndarray, b: float) -> bool:
    return math.isfinite(b) and bool(np.isfinite(w).all())


def train(engine: Engine, X: np.ndarray, y: np.ndarray, w: np.ndarray, b: float, *,
          method: str, batch_size: int, lr: float, epochs: int, loss_factor: float,
          fit_intercept: bool, shuffle: bool, seed: Any, n_threads: int) -> FitResult:
    """Train in place on a fresh ``w`` (never the caller's array) and return the result.

    ``batch_size`` is the resolved one (``n`` for batch, 1 for sgd). With
    ``shuffle``, epoch 0 visits the rows in ``rng.permutation(n)`` order and
    every later epoch shuffles the previous order again in place (a fresh
    uniformly random permutation, without a second index array), where
    ``rng = numpy.random.default_rng(seed)``.
    """
    n = X.shape[0]
    data = engine.prepare(X, y)
    steps_per_epoch = -(-n // batch_size)
    history: list[float] = []
    # One batch holds every sample, so its order cannot matter: draw none.
    shuffle = shuffle and batch_size < n
    rng = np.random.default_rng(seed) if shuffle else None
    order = np.arange(n, dtype=np.intp) if shuffle else None
    n_steps = 0
    options = dict(batch_size=batch_size, lr=lr, loss_factor=loss_factor,
                   fit_intercept=fit_intercept, n_threads=n_threads)

    for epoch in range(epochs):
        if rng is not None:
            rng.shuffle(order)
        w_start, b_start = w.copy(), b
        b, steps, loss_sum, nonfinite = engine.run_epoch(
            data, order, w, b, max_steps=steps_per_epoch, **options)
        n_steps += steps
        if nonfinite:
            # A non-finite input looks like divergence from inside the loop;
            # this is the only place that pays for a full finiteness check.
            raise_if_nonfinite_input(X, y)
        if nonfinite or not _finite(w, b):
            if nonfinite and _finite(w, b):
                step = steps        # the parameters in force gave a non-finite loss
            else:
                # The update of step `steps - 1` overflowed: replay the epoch
                # from its start up to just before it (deterministic, so the
                # replay lands on exactly the parameters that step started from).
                step = steps - 1
                w[:] = w_start
                b = engine.run_epoch(data, order, w, b_start, max_steps=step, **options)[0]
            raise DivergenceError(
                f"training diverged in epoch {epoch}, step {step}: the loss or the "
                f"parameters stopped being finite (lr={lr} is probably too large for "
                f"this data); the error's w and b hold the last finite parameters",
                w=w, b=b, epoch=epoch, step=step, history=np.array(history))
        history.append(loss_sum / steps_per_epoch)

    return FitResult(w=w, b=float(b), history=np.array(history), epochs_run=epochs,
                     n_steps=n_steps, batch_size=batch_size, method=method,
                     backend=engine.name)
