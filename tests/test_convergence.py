"""Gradient descent reaches the least-squares solution of numpy.linalg.lstsq.

On a well-conditioned problem (standard normal features, n >> d) full-batch GD
contracts the error by a constant factor per epoch, so a few hundred epochs
land on the optimum to ~1e-8 and beyond.
"""

from __future__ import annotations

import numpy as np
import pytest

import gdcore


@pytest.fixture(scope="module")
def problem():
    X, y, _ = gdcore.make_regression(300, 4, noise=0.3, bias=1.5, seed=21)
    return X, y


@pytest.mark.parametrize("loss,lr", [("mse", 0.3), ("half_mse", 0.6)])
def test_batch_gd_reaches_lstsq_with_intercept(problem, loss, lr):
    """With fit_intercept, GD's (w, b) equals lstsq on [X, 1] to 1e-8."""
    X, y = problem
    A = np.column_stack([X, np.ones(len(y))])
    solution = np.linalg.lstsq(A, y, rcond=None)[0]
    result = gdcore.fit(X, y, method="batch", lr=lr, epochs=300, loss=loss)
    np.testing.assert_allclose(result.w, solution[:-1], rtol=0, atol=1e-8)
    assert result.b == pytest.approx(solution[-1], abs=1e-8)
    # ... and the final training loss is lstsq's residual loss
    a = 1.0 if loss == "mse" else 0.5
    residual = A @ solution - y
    assert result.history[-1] == pytest.approx(a * np.mean(residual ** 2), rel=1e-8)


def test_batch_gd_reaches_lstsq_without_intercept(problem):
    """With fit_intercept=False (b held at 0), GD's w equals lstsq on X alone."""
    X, y = problem
    solution = np.linalg.lstsq(X, y, rcond=None)[0]
    result = gdcore.fit(X, y, method="batch", lr=0.3, epochs=300, fit_intercept=False)
    np.testing.assert_allclose(result.w, solution, rtol=0, atol=1e-8)
    assert result.b == 0.0


def test_reference_backend_reaches_lstsq_too(problem):
    """The plain-Python path converges to the same optimum (fewer rows, for speed)."""
    X, y = problem[0][:60], problem[1][:60]
    A = np.column_stack([X, np.ones(len(y))])
    solution = np.linalg.lstsq(A, y, rcond=None)[0]
    result = gdcore.fit(X, y, method="batch", lr=0.3, epochs=300, backend="reference")
    np.testing.assert_allclose(np.append(result.w, result.b), solution, rtol=0, atol=1e-8)


def test_sgd_and_minibatch_approach_lstsq(problem):
    """Stochastic methods with a small step hover near the optimum: on
    noise-free data (where every sample agrees with the optimum) they reach it."""
    X, _ = problem
    w_true = np.array([1.0, -2.0, 0.5, 3.0])
    y = X @ w_true + 0.25
    for method, lr in (("sgd", 0.02), ("minibatch", 0.1)):
        result = gdcore.fit(X, y, method=method, batch_size=8, lr=lr, epochs=60, seed=0)
        np.testing.assert_allclose(result.w, w_true, atol=1e-8)
        assert result.b == pytest.approx(0.25, abs=1e-8)
