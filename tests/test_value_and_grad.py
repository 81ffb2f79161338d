"""value_and_grad is the loss of README's table ("Loss conventions") and its true gradient.

Three independent witnesses: central finite differences of the loss that
value_and_grad itself returns, the NumPy closed form (2a/n) X.T @ r, and the
least-squares optimum from numpy.linalg.lstsq, where the gradient vanishes.
"""

from __future__ import annotations

import numpy as np
import pytest

import gdcore

LOSSES = ["mse", "half_mse"]


def _problem(n=40, d=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = X @ rng.standard_normal(d) + 0.7 + 0.3 * rng.standard_normal(n)
    w = rng.standard_normal(d)          # far from the optimum: gradients are O(1)
    return X, y, w, -0.4


@pytest.mark.parametrize("loss", LOSSES)
def test_gradient_matches_central_finite_differences(backend, loss):
    """Each component of grad_w and grad_b equals the central difference
    (L(p + h) - L(p - h)) / 2h of value_and_grad's own loss, h = 1e-6."""
    X, y, w, b = _problem()
    value, grad_w, grad_b = gdcore.value_and_grad(X, y, w, b, loss=loss, backend=backend)
    h = 1e-6

    def loss_at(w_, b_):
        return gdcore.value_and_grad(X, y, w_, b_, loss=loss, backend=backend)[0]

    numeric_w = np.empty_like(w)
    for j in range(w.size):
        step = np.zeros_like(w)
        step[j] = h
        numeric_w[j] = (loss_at(w + step, b) - loss_at(w - step, b)) / (2 * h)
    numeric_b = (loss_at(w, b + h) - loss_at(w, b - h)) / (2 * h)
    np.testing.assert_allclose(grad_w, numeric_w, rtol=1e-6, atol=1e-7)
    assert grad_b == pytest.approx(numeric_b, rel=1e-6, abs=1e-7)
    assert value > 0.1      # away from the optimum, so the check is not vacuous


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("shape", [(1, 1), (7, 1), (40, 4), (300, 11)],
                         ids=lambda s: f"{s[0]}x{s[1]}")
def test_matches_numpy_closed_form(loss_factor, backend, loss, shape):
    """loss = a*mean(r**2), grad_w = (2a/n) X.T @ r, grad_b = (2a/n) sum(r),
    with r = X @ w + b - y and a = 1 (mse) or 1/2 (half_mse)."""
    X, y, w, b = _problem(*shape, seed=shape[0])
    a = loss_factor[loss]
    n = shape[0]
    r = X @ w + b - y
    value, grad_w, grad_b = gdcore.value_and_grad(X, y, w, b, loss=loss, backend=backend)
    assert value == pytest.approx(a * np.mean(r ** 2), rel=1e-12)
    np.testing.assert_allclose(grad_w, (2 * a / n) * (X.T @ r), rtol=1e-11, atol=1e-13)
    assert grad_b == pytest.approx((2 * a / n) * r.sum(), rel=1e-11, abs=1e-13)


def test_half_mse_is_half_of_mse(backend):
    """half_mse's loss and gradients are exactly half of mse's."""
    X, y, w, b = _problem(seed=3)
    full = gdcore.value_and_grad(X, y, w, b, loss="mse", backend=backend)
    half = gdcore.value_and_grad(X, y, w, b, loss="half_mse", backend=backend)
    assert half[0] == pytest.approx(full[0] / 2, rel=1e-15)
    np.testing.assert_allclose(half[1], full[1] / 2, rtol=1e-15)
    assert half[2] == pytest.approx(full[2] / 2, rel=1e-15)


@pytest.mark.parametrize("loss", LOSSES)
def test_gradient_vanishes_at_least_squares_optimum(backend, loss):
    """At lstsq's solution (with a column of ones for b) both gradients are ~0
    and the loss is the minimum: any nearby point is worse."""
    X, y, _, _ = _problem(n=200, d=5, seed=8)
    A = np.column_stack([X, np.ones(len(y))])
    solution = np.linalg.lstsq(A, y, rcond=None)[0]
    w_star, b_star = solution[:-1], solution[-1]
    value, grad_w, grad_b = gdcore.value_and_grad(X, y, w_star, b_star, loss=loss,
                                                  backend=backend)
    np.testing.assert_allclose(grad_w, 0.0, atol=1e-12)
    assert grad_b == pytest.approx(0.0, abs=1e-12)
    rng = np.random.default_rng(0)
    for _ in range(5):
        nearby = gdcore.value_and_grad(X, y, w_star + 1e-3 * rng.standard_normal(5),
                                       b_star, loss=loss, backend=backend)[0]
        assert nearby > value


def test_return_types(backend):
    """Returns (float, float64 array of shape (d,), float), and the gradient is
    a fresh array, not one of the inputs."""
    X, y, w, b = _problem(n=10, d=3)
    value, grad_w, grad_b = gdcore.value_and_grad(X, y, w, b, backend=backend)
    assert type(value) is float and type(grad_b) is float
    assert isinstance(grad_w, np.ndarray)
    assert grad_w.shape == (3,) and grad_w.dtype == np.float64
    assert not np.shares_memory(grad_w, w)


def test_default_b_and_loss(backend):
    """b defaults to 0.0 and loss to "mse"."""
    X, y, w, _ = _problem(n=12, d=2)
    default = gdcore.value_and_grad(X, y, w, backend=backend)
    explicit = gdcore.value_and_grad(X, y, w, 0.0, loss="mse", backend=backend)
    assert default[0] == explicit[0] and default[2] == explicit[2]
    np.testing.assert_array_equal(default[1], explicit[1])


def test_value_and_grad_does_not_modify_inputs(backend):
    X, y, w, b = _problem(n=12, d=2)
    copies = X.copy(), y.copy(), w.copy()
    gdcore.value_and_grad(X, y, w, b, backend=backend)
    np.testing.assert_array_equal(X, copies[0])
    np.testing.assert_array_equal(y, copies[1])
    np.testing.assert_array_equal(w, copies[2])


@pytest.mark.parametrize("n", [1023, 1024, 1025, 2049, 65537, 66560, 131073])
def test_every_row_counted_across_block_edges(n):
    """The full-data pass splits the rows into fixed blocks (at least 1024 rows,
    at most 64 blocks); around those edges every row is still counted once:
    the result matches the NumPy closed form and is the same on 1 thread."""
    rng = np.random.default_rng(n)
    X = rng.standard_normal((n, 3))
    y = rng.standard_normal(n)
    w = rng.standard_normal(3)
    r = X @ w + 0.2 - y
    value, grad_w, grad_b = gdcore.value_and_grad(X, y, w, 0.2)
    assert value == pytest.approx(np.mean(r ** 2), rel=1e-12)
    np.testing.assert_allclose(grad_w, (2 / n) * (X.T @ r), rtol=1e-10, atol=1e-14)
    assert grad_b == pytest.approx((2 / n) * r.sum(), rel=1e-10, abs=1e-14)
    single = gdcore.value_and_grad(X, y, w, 0.2, n_threads=1)
    assert single[0] == value and single[2] == grad_b
    np.testing.assert_array_equal(single[1], grad_w)


@pytest.mark.parametrize("d", [7, 8, 9, 16, 17, 33])
def test_unrolled_dot_product_widths(d):
    """Widths around the 8-way unrolled dot product give the closed form."""
    rng = np.random.default_rng(d)
    X = rng.standard_normal((50, d))
    y = rng.standard_normal(50)
    w = rng.standard_normal(d)
    r = X @ w - 0.3 - y
    value, grad_w, grad_b = gdcore.value_and_grad(X, y, w, -0.3)
    assert value == pytest.approx(np.mean(r ** 2), rel=1e-12)
    np.testing.assert_allclose(grad_w, (2 / 50) * (X.T @ r), rtol=1e-10, atol=1e-14)
    assert grad_b == pytest.approx((2 / 50) * r.sum(), rel=1e-10, abs=1e-14)
