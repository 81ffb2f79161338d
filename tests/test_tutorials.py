"""The four tutorials gdcore grew from (README), reproduced number for number.

Where the arithmetic can be done by hand it is, in the docstrings, and the
tests check gdcore against those closed forms rather than against itself.
"""

from __future__ import annotations

import numpy as np
import pytest

import gdcore

BACKENDS = ["cython", "reference"]

# ---------------------------------------------------------------------------
# Tutorial 1: one weight, no bias, x = [1, 2, 3], y = 2x
# ---------------------------------------------------------------------------

X1 = np.array([1.0, 2.0, 3.0])
Y1 = np.array([2.0, 4.0, 6.0])
TUTORIAL1 = dict(lr=0.01, epochs=100, w0=[1.0], loss="mse", fit_intercept=False,
                 shuffle=False)


@pytest.mark.parametrize("backend", BACKENDS)
def test_tutorial1_batch_closed_form(backend):
    """Full batch: r_i = (w - 2) x_i, so dL/dw = (2/3) * sum(x_i**2) * (w - 2)
    = (28/3)(w - 2) and each step is w - 2 <- (1 - 0.28/3)(w - 2). From w = 1:
    w_k = 2 - q**k with q = 1 - 0.28/3, and history[k] = (14/3) q**(2k)."""
    result = gdcore.fit(X1, Y1, method="batch", backend=backend, **TUTORIAL1)
    q = 1 - 0.28 / 3
    assert result.w[0] == pytest.approx(2 - q ** 100, rel=1e-13)
    k = np.arange(100)
    np.testing.assert_allclose(result.history, (14 / 3) * q ** (2 * k), rtol=1e-11)
    assert result.b == 0.0
    assert gdcore.predict([4.0], result.w, result.b)[0] == pytest.approx(8.0, abs=1e-3)
    assert gdcore.predict([4.0], result.w, result.b)[0] == pytest.approx(
        4 * (2 - q ** 100), rel=1e-13)


@pytest.mark.parametrize("backend", BACKENDS)
def test_tutorial1_sgd_closed_form(backend):
    """Per-sample SGD in order: sample i does w - 2 <- (1 - 0.02 x_i**2)(w - 2),
    so one epoch multiplies w - 2 by p = 0.98 * 0.92 * 0.82 and w_100 = 2 - p**100.
    history[k] is the mean of the three per-sample losses, each taken before
    its own update: e**2, (0.98*2*e)**2, (0.98*0.92*3*e)**2 with e = -p**k."""
    result = gdcore.fit(X1, Y1, method="sgd", backend=backend, **TUTORIAL1)
    p = 0.98 * 0.92 * 0.82
    assert result.w[0] == pytest.approx(2 - p ** 100, abs=1e-14)
    e = p ** np.arange(100)
    expected = (e ** 2 + (0.98 * 2 * e) ** 2 + (0.98 * 0.92 * 3 * e) ** 2) / 3
    np.testing.assert_allclose(result.history[:20], expected[:20], rtol=1e-11)
    # later on w - 2 is ~1e-10 and w itself carries ~1e-16 of rounding
    np.testing.assert_allclose(result.history, expected, rtol=1e-6, atol=1e-20)
    assert gdcore.predict([4.0], result.w)[0] == pytest.approx(8.0, abs=1e-9)


def test_tutorial1_minibatch_sizes_span_the_family():
    """On the tutorial data, minibatch of 1 is the sgd answer and of 3 the batch
    answer; a batch of 2 lands in between (both about 8 for x = 4)."""
    sgd = gdcore.fit(X1, Y1, method="sgd", **TUTORIAL1)
    batch = gdcore.fit(X1, Y1, method="batch", **TUTORIAL1)
    assert gdcore.fit(X1, Y1, method="minibatch", batch_size=1, **TUTORIAL1).w[0] == sgd.w[0]
    assert gdcore.fit(X1, Y1, method="minibatch", batch_size=3, **TUTORIAL1).w[0] == batch.w[0]
    two = gdcore.fit(X1, Y1, method="minibatch", batch_size=2, **TUTORIAL1)
    assert batch.w[0] < two.w[0] < sgd.w[0] <= 2.0


# ---------------------------------------------------------------------------
# Tutorial 2: one sample by hand, then 100 points y = 2x + 3
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_tutorial2_one_sample_by_hand(backend):
    """(x, y) = (1.5, 0.8), w = 0.8, b = 0.2, half_mse: r = 1.2 + 0.2 - 0.8 = 0.6,
    L = 0.6**2 / 2 = 0.18, dL/dw = r x = 0.9, dL/db = r = 0.6. One step with
    lr = 0.1: w = 0.8 - 0.09 = 0.71, b = 0.2 - 0.06 = 0.14; then
    r = 1.065 + 0.14 - 0.8 = 0.405 and L = 0.405**2 / 2 = 0.0820125."""
    X, y = [[1.5]], [0.8]
    value, grad_w, grad_b = gdcore.value_and_grad(X, y, [0.8], 0.2, loss="half_mse",
                                                  backend=backend)
    assert value == pytest.approx(0.18, rel=1e-14)
    assert grad_w[0] == pytest.approx(0.9, rel=1e-14)
    assert grad_b == pytest.approx(0.6, rel=1e-14)
    for method in ("batch", "sgd", "minibatch"):
        result = gdcore.fit(X, y, method=method, lr=0.1, epochs=1, w0=[0.8], b0=0.2,
                            loss="half_mse", backend=backend)
        assert result.w[0] == pytest.approx(0.71, rel=1e-14)
        assert result.b == pytest.approx(0.14, rel=1e-13)
        np.testing.assert_allclose(result.history, [0.18], rtol=1e-14)
        after = gdcore.value_and_grad(X, y, result.w, result.b, loss="half_mse",
                                      backend=backend)[0]
        assert after == pytest.approx(0.0820125, rel=1e-12)


def _tutorial2_points():
    x = np.random.default_rng(0).random(100)      # U[0, 1)
    return x, 2 * x + 3


def test_tutorial2_hundred_points_full_batch(numpy_fit):
    """100 points x ~ U[0, 1), y = 2x + 3, 15 full-batch epochs (half_mse,
    lr = 0.1): the loss falls every epoch, (w, b) head for (2, 3), both
    backends agree and both match the NumPy replay."""
    x, y = _tutorial2_points()
    options = dict(method="batch", lr=0.1, epochs=15, loss="half_mse")
    compiled = gdcore.fit(x, y, **options)
    reference = gdcore.fit(x, y, backend="reference", **options)
    assert compiled.history.shape == (15,)
    assert np.all(np.diff(compiled.history) < 0)
    np.testing.assert_allclose(compiled.w, reference.w, rtol=1e-9)
    assert compiled.b == pytest.approx(reference.b, rel=1e-9)
    np.testing.assert_allclose(compiled.history, reference.history, rtol=1e-9)
    w, b, history = numpy_fit(x, y, lr=0.1, epochs=15, batch_size=100, loss="half_mse")
    np.testing.assert_allclose(compiled.w, w, rtol=1e-12)
    assert compiled.b == pytest.approx(b, rel=1e-12)
    np.testing.assert_allclose(compiled.history, history, rtol=1e-12)
    start = gdcore.value_and_grad(x, y, [0.0], 0.0, loss="half_mse")[0]
    end = gdcore.value_and_grad(x, y, compiled.w, compiled.b, loss="half_mse")[0]
    assert end < start / 10


# ---------------------------------------------------------------------------
# Tutorial 3: xs = -1..4, ys = 2x - 1, w from 8, b held at -1
# ---------------------------------------------------------------------------

X3 = np.arange(-1.0, 5.0)          # [-1, 0, 1, 2, 3, 4]
Y3 = 2 * X3 - 1
TUTORIAL3 = dict(method="batch", lr=0.01, w0=[8.0], b0=-1.0, fit_intercept=False,
                 loss="mse")


@pytest.mark.parametrize("backend", BACKENDS)
def test_tutorial3_loss_at_start_by_hand(backend):
    """With b = -1: r_i = 8 x_i - 1 - (2 x_i - 1) = 6 x_i, sum(x**2) = 31,
    so L = 36 * 31 / 6 = 186 and dL/dw = (2/6) * 6 * 31 = 62."""
    value, grad_w, grad_b = gdcore.value_and_grad(X3, Y3, [8.0], -1.0, backend=backend)
    assert value == pytest.approx(186.0, rel=1e-15)
    assert grad_w[0] == pytest.approx(62.0, rel=1e-15)
    assert grad_b == pytest.approx(2 * 6 * X3.sum() / 6, rel=1e-15)     # 2 * sum(6x) / 6


@pytest.mark.parametrize("backend", BACKENDS)
def test_tutorial3_fifty_steps_closed_form(backend):
    """dL/dw = (2/6) * sum(x**2) * (w - 2) = (31/3)(w - 2), so each step is
    w - 2 <- q (w - 2) with q = 1 - 0.01 * 31/3: w_k = 2 + 6 q**k and the loss
    printed at step k is 186 q**(2k). b stays at -1 throughout."""
    q = 1 - 0.31 / 3
    result = gdcore.fit(X3, Y3, epochs=50, backend=backend, **TUTORIAL3)
    assert result.w[0] == pytest.approx(2 + 6 * q ** 50, rel=1e-13)
    assert result.history.shape == (50,)
    np.testing.assert_allclose(result.history, 186.0 * q ** (2 * np.arange(50)), rtol=1e-11)
    assert result.b == -1.0


def test_tutorial3_path_of_the_steps():
    """The w printed after each of the 50 steps (fit with epochs=k) follows the
    geometric path 2 + 6 q**k, and each loss lies on the loss curve L(w)."""
    q = 1 - 0.31 / 3
    for k in range(0, 51, 5):
        w_k = gdcore.fit(X3, Y3, epochs=k, **TUTORIAL3).w[0]
        assert w_k == pytest.approx(2 + 6 * q ** k, rel=1e-13)
        on_curve = gdcore.value_and_grad(X3, Y3, [w_k], -1.0)[0]
        assert on_curve == pytest.approx((31 / 6) * (w_k - 2) ** 2, rel=1e-10)


# ---------------------------------------------------------------------------
# Tutorial 4: brute-force search over a grid of w values
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_tutorial4_grid_search_finds_true_w(backend):
    """Evaluating the loss over a grid of w (b = -1, tutorial 3 data) puts the
    minimum at the true w = 2, where the loss is 0; the gradient changes sign
    there."""
    grid = np.arange(-20, 61) / 10.0          # -2.0 .. 6.0 in steps of 0.1, holds 2.0
    values = [gdcore.value_and_grad(X3, Y3, [w], -1.0, backend=backend) for w in grid]
    losses = np.array([v[0] for v in values])
    slopes = np.array([v[1][0] for v in values])
    best = int(np.argmin(losses))
    assert grid[best] == 2.0
    assert losses[best] == 0.0
    assert np.all(slopes[:best] < 0) and np.all(slopes[best + 1:] > 0)


def test_tutorial4_grid_search_over_w_and_b():
    """On tutorial 2's 100 points, a (w, b) grid's minimum sits at (2, 3)."""
    x, y = _tutorial2_points()
    ws = np.arange(0, 41) / 10.0
    bs = np.arange(0, 61) / 10.0
    losses = np.array([[gdcore.value_and_grad(x, y, [w], b)[0] for b in bs] for w in ws])
    i, j = np.unravel_index(np.argmin(losses), losses.shape)
    assert (ws[i], bs[j]) == (2.0, 3.0)
    assert losses[i, j] == pytest.approx(0.0, abs=1e-28)


def test_tutorial4_loss_curve_per_epoch():
    """The per-epoch loss curve of shuffled SGD on tutorial 2's points has one
    value per epoch; smoothed with an exponentially weighted mean it falls."""
    x, y = _tutorial2_points()
    result = gdcore.fit(x, y, method="sgd", lr=0.05, epochs=30, loss="half_mse", seed=0)
    assert result.history.shape == (30,)
    smoothed, level = [], result.history[0]
    for value in result.history:
        level = 0.7 * level + 0.3 * value
        smoothed.append(level)
    assert np.all(np.diff(smoothed) < 0)
