"""Shared fixtures of the gdcore test suite.

The helpers here are deliberately independent of gdcore's arithmetic: the
NumPy replay of the training loop (``numpy_fit``) and the shuffle orders
(``shuffle_orders``) restate DESIGN.md in a few lines of NumPy, so the tests
can check gdcore against something it does not share code with.

They are handed out as session fixtures (not imported from this file) so that
they work under any pytest import mode and inside hypothesis tests.
"""

from __future__ import annotations

import os

# The suite makes thousands of tiny full-batch calls, each one an OpenMP
# parallel region. With the default (active, spinning) wait policy, a busy
# machine can make each region cost milliseconds instead of microseconds.
# Results do not depend on it (the thread-count tests prove that); it must be
# set before gdcore's OpenMP runtime loads, and a value already set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import gdcore  # noqa: E402

#: loss name -> ``a`` in ``L = a * mean(r**2)`` (DESIGN.md, "The problem it solves")
LOSS_FACTOR = {"mse": 1.0, "half_mse": 0.5}


def _numpy_fit(X, y, *, lr, epochs, batch_size, loss="mse", w0=None, b0=0.0,
               fit_intercept=True, orders=None):
    """Mini-batch gradient descent on least squares, written out with NumPy.

    ``batch_size=1`` is SGD and ``batch_size >= n`` full-batch GD. ``orders``
    is a list with one row order per epoch (None: 0..n-1 every epoch). Each
    batch's loss is taken before its update, the last (partial) batch is
    averaged over its own size, and ``history[k]`` is the mean of epoch k's
    batch losses. Returns ``(w, b, history)``.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    y = np.asarray(y, dtype=np.float64)
    a = LOSS_FACTOR[loss]
    n, d = X.shape
    w = np.zeros(d) if w0 is None else np.array(w0, dtype=np.float64)
    b = float(b0)
    history = []
    for epoch in range(epochs):
        order = np.arange(n) if orders is None else np.asarray(orders[epoch])
        batch_losses = []
        for start in range(0, n, batch_size):
            rows = order[start:start + batch_size]
            Xb, yb = X[rows], y[rows]
            m = len(rows)
            r = Xb @ w + b - yb
            batch_losses.append(a * np.mean(r ** 2))
            w = w - lr * (2 * a / m) * (Xb.T @ r)
            if fit_intercept:
                b = b - lr * (2 * a / m) * r.sum()
        history.append(np.mean(batch_losses))
    return w, b, np.array(history)


def _shuffle_orders(n, epochs, seed):
    """The row order of each epoch with ``shuffle=True``, as documented in
    ``gdcore.fit``: a fresh ``rng.permutation(n)`` every epoch, all drawn from
    one ``rng = default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    return [rng.permutation(n) for _ in range(epochs)]


def _regression(n, d, seed=0, *, noise=0.5, bias=0.3):
    """A small noisy problem from gdcore.make_regression (float64, C order)."""
    X, y, _ = gdcore.make_regression(n, d, noise=noise, bias=bias, seed=seed)
    return X, y


@pytest.fixture(scope="session")
def numpy_fit():
    """The NumPy replay of the training loop (see ``_numpy_fit``)."""
    return _numpy_fit


@pytest.fixture(scope="session")
def shuffle_orders():
    """Per-epoch row orders of ``shuffle=True`` (see ``_shuffle_orders``)."""
    return _shuffle_orders


@pytest.fixture(scope="session")
def regression():
    """Factory ``regression(n, d, seed=0)`` -> ``(X, y)`` of a noisy problem."""
    return _regression
