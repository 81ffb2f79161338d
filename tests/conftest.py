"""Shared fixtures of the gdcore test suite.

The helpers here are deliberately independent of gdcore's arithmetic: the
NumPy replay of the training loop (``rule_fit``, every update option and
sample weights; ``numpy_fit``, the same with all of them off) and the shuffle orders
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
    batch losses. A 1-D ``X`` is one feature. Returns ``(w, b, history)``:
    ``_rule_fit`` with every option off.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    w, b, history, _ = _rule_fit(X, y, lr=lr, epochs=epochs, batch_size=batch_size,
                                 loss=loss, w0=w0, b0=b0, fit_intercept=fit_intercept,
                                 orders=orders)
    return w, b, history


def _rule_fit(X, y, *, lr, epochs, batch_size, loss="mse", w0=None, b0=0.0,
                fit_intercept=True, orders=None, momentum=0.0, dampening=0.0,
                nesterov=False, weight_decay=0.0, l1=0.0, decay_bias=False,
                average_from=-1, sample_weight=None, power=0.0):
    """The documented update rule, step by step, with NumPy vectors.

    ``theta = [w, b]``. Per batch of m rows (the last one may be smaller):
    ``r = X_b w + b - y_b``, loss ``a * sum(s r^2) / m``, gradient
    ``(2a/m) [X_b, 1]^T (s r)``; penalty ``l2 * theta + l1 * sign(theta)`` on w
    (and b with decay_bias); momentum buffer ``v = g`` at global step 0, then
    ``v = mu v + (1 - dampening) g``; direction v or ``g + mu v`` (Nesterov);
    ``theta -= lr_t * direction`` with ``lr_t = lr / (t+1)**power``; b only
    moves with fit_intercept. Averaging: mean of the iterates after steps
    ``average_from, average_from + 1, ...`` (computed at the end from the
    recorded iterates). Returns ``(w, b, history, iterates)``.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n, d = X.shape
    a = LOSS_FACTOR[loss]
    s = np.ones(n) if sample_weight is None else np.asarray(sample_weight, float)
    s = s / s.mean()
    theta = np.zeros(d + 1)
    if w0 is not None:
        theta[:d] = w0
    theta[d] = b0
    active = d + 1 if fit_intercept else d
    penalised = np.ones(d + 1, dtype=bool)
    penalised[d] = decay_bias
    v = np.zeros(d + 1)
    history, iterates = [], []
    t = 0
    for epoch in range(epochs):
        order = np.arange(n) if orders is None else np.asarray(orders[epoch])
        losses = []
        for start in range(0, n, batch_size):
            rows = order[start:start + batch_size]
            m = len(rows)
            A = np.c_[X[rows], np.ones(m)]
            r = A @ theta - y[rows]
            sr = s[rows] * r
            losses.append(a * np.sum(sr * r) / m)
            g = (2 * a / m) * (A.T @ sr)
            g = g + penalised * (weight_decay * theta + l1 * np.sign(theta))
            if momentum:
                v = g.copy() if t == 0 else momentum * v + (1 - dampening) * g
                direction = g + momentum * v if nesterov else v
            else:
                direction = g
            rate = lr / (t + 1) ** power
            theta[:active] -= rate * direction[:active]
            iterates.append(theta.copy())
            t += 1
        history.append(np.mean(losses))
    if average_from >= 0 and average_from < len(iterates):
        final = np.mean(iterates[average_from:], axis=0)
    else:
        final = theta
    return final[:d], float(final[d]), np.array(history), np.array(iterates)


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
def rule_fit():
    """The NumPy replay with every update option (see ``_rule_fit``)."""
    return _rule_fit


@pytest.fixture(scope="session")
def shuffle_orders():
    """Per-epoch row orders of ``shuffle=True`` (see ``_shuffle_orders``)."""
    return _shuffle_orders


@pytest.fixture(scope="session")
def regression():
    """Factory ``regression(n, d, seed=0)`` -> ``(X, y)`` of a noisy problem."""
    return _regression
