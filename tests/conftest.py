"""Shared fixtures of the gdcore test suite.

The helpers here are deliberately independent of gdcore's arithmetic: the
NumPy replay of the training loop (``rule_fit``, every update option and
sample weights; ``numpy_fit``, the same with all of them off) and the shuffle orders
(``shuffle_orders``) restate the README's contract in a few lines of NumPy, so the tests
can check gdcore against something it does not share code with.

Also shared here, so that every file holds the backends to one standard:

* the ``backend`` fixture, which runs a test once per backend (``cython``,
  ``reference``);
* the tolerance of backend agreement (``RTOL``, ``ATOL``) and its checks,
  ``assert_agree`` (two fit results, two divergence errors, two
  ``value_and_grad`` tuples or two arrays) and ``max_relative_difference``;
* the loss factors ``a`` of ``L = a * mean(r**2)`` (``loss_factor``).

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

#: loss name -> ``a`` in ``L = a * mean(r**2)`` (README, "Loss conventions")
LOSS_FACTOR = {"mse": 1.0, "half_mse": 0.5}

#: The backends of every public function (the ``backend`` fixture runs a test on each).
BACKEND_NAMES = ("cython", "reference")

#: Backend agreement (docs/design.md: "the two backends agree to rtol=1e-9 on every
#: result"): relative tolerance, and the absolute one for values that are 0
#: up to rounding (an intercept that stays near 0, a vanishing gradient).
RTOL = 1e-9
ATOL = 1e-12

#: What :func:`assert_agree` compares on two results of ``gdcore.fit``.
RESULT_ARRAYS = ("w", "b", "history", "grad_norm", "lr_history", "val_loss")
RESULT_COUNTS = ("epochs_run", "n_steps", "batch_size", "steps_per_epoch", "stop_reason")
#: ... and on two DivergenceErrors.
ERROR_ARRAYS = ("w", "b", "history")
ERROR_COUNTS = ("epoch", "step")


def max_relative_difference(a, b):
    """``max |a - b| / max(|a|, |b|)`` over the elements of two arrays (or
    numbers) of one shape: 0 where both are 0 (or the same infinity), inf
    where exactly one is NaN."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, f"shapes differ: {a.shape} and {b.shape}"
    if a.size == 0:
        return 0.0
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    with np.errstate(invalid="ignore", over="ignore"):
        scale = np.maximum(np.abs(a), np.abs(b))
        difference = np.where(same, 0.0, np.abs(a - b) / np.where(same, 1.0, scale))
    return float(np.nan_to_num(difference, nan=np.inf).max())


def _close(name, got, want, rtol, atol):
    if got is None or want is None:
        assert got is None and want is None, f"{name}: {got!r} and {want!r}"
        return
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{name}: shapes {got.shape} and {want.shape}"
    np.testing.assert_allclose(
        got, want, rtol=rtol, atol=atol,
        err_msg=f"{name}: max relative difference {max_relative_difference(got, want):.3g}")


def assert_agree(a, b, rtol=RTOL, atol=ATOL):
    """``a`` and ``b`` agree to ``rtol`` (and ``atol`` near 0).

    Two ``FitResult``: every array of :data:`RESULT_ARRAYS` (``val_loss`` None
    in both, or close) and the counts of :data:`RESULT_COUNTS` exactly. Two
    ``DivergenceError``: the same epoch and step, close parameters and
    history. Two tuples (``value_and_grad``'s): element by element. Anything
    else: as arrays of one shape.
    """
    if isinstance(a, gdcore.FitResult) or isinstance(b, gdcore.FitResult):
        assert type(a) is type(b), f"{type(a).__name__} and {type(b).__name__}"
        for name in RESULT_COUNTS:
            assert getattr(a, name) == getattr(b, name), name
        for name in RESULT_ARRAYS:
            _close(name, getattr(a, name), getattr(b, name), rtol, atol)
    elif isinstance(a, gdcore.DivergenceError) or isinstance(b, gdcore.DivergenceError):
        assert type(a) is type(b), f"{type(a).__name__} and {type(b).__name__}"
        for name in ERROR_COUNTS:
            assert getattr(a, name) == getattr(b, name), name
        for name in ERROR_ARRAYS:
            _close(name, getattr(a, name), getattr(b, name), rtol, atol)
    elif isinstance(a, tuple) or isinstance(b, tuple):
        assert len(a) == len(b), f"lengths {len(a)} and {len(b)}"
        for k, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(f"[{k}]", x, y, rtol, atol)
    else:
        _close("value", a, b, rtol, atol)


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


@pytest.fixture(params=BACKEND_NAMES)
def backend(request):
    """Each backend in turn: a test that takes ``backend`` runs once per backend."""
    return request.param


@pytest.fixture(scope="session", name="assert_agree")
def assert_agree_fixture():
    """Backend agreement of two results (see :func:`assert_agree`)."""
    return assert_agree


@pytest.fixture(scope="session", name="max_relative_difference")
def max_relative_difference_fixture():
    """See :func:`max_relative_difference`."""
    return max_relative_difference


@pytest.fixture(scope="session")
def loss_factor():
    """Loss name -> ``a`` in ``L = a * mean(r**2)`` (see :data:`LOSS_FACTOR`)."""
    return dict(LOSS_FACTOR)


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
