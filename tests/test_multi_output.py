"""Multi-output targets: y of shape (n, k) trains W (d, k) and b (k,) at once.

The loss is the sum over outputs of each output's loss, so training k outputs
together must give what k single-output fits give, in both backends.
"""

from __future__ import annotations

import numpy as np
import pytest

import gdcore

METHODS = [("batch", 32), ("sgd", 1), ("minibatch", 7)]
OPTIONS = [dict(), dict(momentum=0.9, nesterov=True, weight_decay=0.01, average=3),
           dict(sample_weight=np.arange(61) % 4, schedule="invscaling", l1=0.001)]


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((61, 11))          # d > 8: the unrolled dot product runs
    W = rng.standard_normal((11, 3))
    Y = X @ W + np.array([0.5, -1.0, 2.0]) + 0.1 * rng.standard_normal((61, 3))
    return X, Y


@pytest.mark.parametrize("method,batch_size", METHODS)
@pytest.mark.parametrize("options", OPTIONS, ids=["plain", "momentum-decay-avg", "weights"])
def test_k_outputs_train_as_k_separate_problems(problem, method, batch_size, options):
    """Each column of W and b equals the single-output fit on that column of Y;
    the history is the sum of the single-output histories."""
    X, Y = problem
    common = dict(method=method, batch_size=batch_size, lr=0.01, epochs=3, seed=5, **options)
    together = gdcore.fit(X, Y, **common)
    alone = [gdcore.fit(X, Y[:, c], **common) for c in range(3)]
    assert together.w.shape == (11, 3) and together.b.shape == (3,)
    np.testing.assert_allclose(together.w, np.column_stack([r.w for r in alone]),
                               rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(together.b, [r.b for r in alone], rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(together.history, sum(r.history for r in alone), rtol=1e-10)


@pytest.mark.parametrize("method,batch_size", METHODS)
@pytest.mark.parametrize("options", OPTIONS[:2], ids=["plain", "momentum-decay-avg"])
def test_compiled_k_outputs_are_the_single_output_fits_bit_for_bit(problem, method,
                                                                  batch_size, options):
    """The compiled loops give each output the single-output arithmetic (its
    own dot product, gradient and update over its own weights), so without
    sample weights each column is the single-output fit exactly."""
    X, Y = problem
    common = dict(method=method, batch_size=batch_size, lr=0.01, epochs=3, seed=5, **options)
    together = gdcore.fit(X, Y, **common)
    for c in range(3):
        alone = gdcore.fit(X, Y[:, c], **common)
        np.testing.assert_array_equal(together.w[:, c], alone.w)
        assert together.b[c] == alone.b


@pytest.mark.parametrize("method,batch_size", METHODS)
def test_grad_norm_is_the_norm_over_every_output(max_relative_difference, problem, method,
                                                 batch_size):
    """grad_norm of k outputs is the norm of the k outputs' gradients together:
    sqrt(sum_c grad_norm_c**2) of the single-output fits (summed by output,
    so equal up to the order of the sum: a few ulps)."""
    X, Y = problem
    common = dict(method=method, batch_size=batch_size, lr=0.01, epochs=3, seed=5,
                  momentum=0.9, weight_decay=0.01)
    together = gdcore.fit(X, Y, **common)
    alone = [gdcore.fit(X, Y[:, c], **common) for c in range(3)]
    expected = np.sqrt(sum(r.grad_norm ** 2 for r in alone))
    assert together.grad_norm.shape == (3,)
    assert max_relative_difference(together.grad_norm, expected) < 1e-14


@pytest.mark.parametrize("method,batch_size", METHODS)
def test_held_out_loss_is_the_sum_over_outputs_in_both_backends(assert_agree, problem, method,
                                                                batch_size):
    """With a validation fraction, the held-out loss of k outputs is the sum of
    the single-output held-out losses, and both backends agree on it."""
    X, Y = problem
    common = dict(method=method, batch_size=batch_size, lr=0.01, epochs=3, seed=5,
                  validation_fraction=0.25)
    fast = gdcore.fit(X, Y, **common)
    slow = gdcore.fit(X, Y, backend="reference", **common)
    alone = [gdcore.fit(X, Y[:, c], **common) for c in range(3)]
    assert_agree(fast.val_loss, slow.val_loss)
    np.testing.assert_allclose(fast.val_loss, sum(r.val_loss for r in alone), rtol=1e-10)


@pytest.mark.parametrize("method,batch_size", METHODS)
@pytest.mark.parametrize("options", OPTIONS, ids=["plain", "momentum-decay-avg", "weights"])
def test_backends_agree(assert_agree, problem, method, batch_size, options):
    X, Y = problem
    common = dict(method=method, batch_size=batch_size, lr=0.01, epochs=2, seed=1, **options)
    fast = gdcore.fit(X, Y, **common)
    slow = gdcore.fit(X, Y, backend="reference", **common)
    assert_agree(fast, slow)


def test_value_and_grad_matches_numpy(problem, backend):
    """Loss a * sum_c mean_i r**2, gradients (2a/n) X.T @ R and (2a/n) sum_i R."""
    X, Y = problem
    rng = np.random.default_rng(0)
    W, b = rng.standard_normal((11, 3)), rng.standard_normal(3)
    for loss, a in (("mse", 1.0), ("half_mse", 0.5)):
        value, grad_W, grad_b = gdcore.value_and_grad(X, Y, W, b, loss=loss, backend=backend)
        R = X @ W + b - Y
        n = X.shape[0]
        np.testing.assert_allclose(value, a * (R ** 2).sum() / n, rtol=1e-12)
        np.testing.assert_allclose(grad_W, 2 * a / n * X.T @ R, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(grad_b, 2 * a / n * R.sum(axis=0), rtol=1e-10, atol=1e-12)


def test_least_squares_optimum_for_every_output(problem):
    X, Y = problem
    result = gdcore.fit(X, Y, method="batch", lr=0.3, epochs=3000)
    A = np.column_stack([X, np.ones(len(X))])
    solution = np.linalg.lstsq(A, Y, rcond=None)[0]
    np.testing.assert_allclose(result.w, solution[:-1], rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(result.b, solution[-1], rtol=1e-7, atol=1e-8)


def test_predict_and_estimator_shapes(problem):
    X, Y = problem
    result = gdcore.fit(X, Y, method="batch", lr=0.3, epochs=50)
    assert gdcore.predict(X, result.w, result.b).shape == (61, 3)
    np.testing.assert_allclose(gdcore.predict(X, result.w, result.b),
                               X @ result.w + result.b, rtol=1e-12)
    model = gdcore.LinearRegressor(method="batch", lr=0.3, epochs=50).fit(X, Y)
    assert model.coef_.shape == (3, 11) and model.intercept_.shape == (3,)
    np.testing.assert_array_equal(model.coef_, result.w.T)
    assert model.predict(X).shape == (61, 3)
    per_output = [gdcore.LinearRegressor(method="batch", lr=0.3, epochs=50)
                  .fit(X, Y[:, c]).score(X, Y[:, c]) for c in range(3)]
    assert model.score(X, Y) == pytest.approx(np.mean(per_output), rel=1e-9)


def test_initial_values_and_fixed_intercepts(problem):
    X, Y = problem
    W0 = np.ones((11, 3))
    b0 = np.array([1.0, 2.0, 3.0])
    frozen = W0.copy(), b0.copy()
    result = gdcore.fit(X, Y, w0=W0, b0=b0, fit_intercept=False, epochs=2, seed=0)
    np.testing.assert_array_equal(result.b, b0)
    np.testing.assert_array_equal(W0, frozen[0])
    np.testing.assert_array_equal(b0, frozen[1])
    scalar = gdcore.fit(X, Y, b0=2.0, fit_intercept=False, epochs=1, seed=0)
    np.testing.assert_array_equal(scalar.b, [2.0, 2.0, 2.0])


def test_warm_start_multi_output(problem):
    X, Y = problem
    common = dict(method="minibatch", batch_size=8, lr=0.01, seed=4, momentum=0.5)
    once = gdcore.fit(X, Y, epochs=4, **common)
    twice = gdcore.fit(X, Y, epochs=2, warm_start=gdcore.fit(X, Y, epochs=2, **common),
                       **common)
    np.testing.assert_array_equal(once.w, twice.w)
    np.testing.assert_array_equal(once.b, twice.b)


@pytest.mark.parametrize("call,match", [
    (lambda X, Y: gdcore.fit(X, Y, w0=np.zeros(11)), "w0 must have shape"),
    (lambda X, Y: gdcore.fit(X, Y, w0=np.zeros((11, 2))), "w0 must have shape"),
    (lambda X, Y: gdcore.fit(X, Y, b0=[1.0, 2.0]), "b0 must be a number or have shape"),
    (lambda X, Y: gdcore.fit(X, Y, b0=[1.0, np.nan, 2.0]), "b0 must be finite"),
    (lambda X, Y: gdcore.fit(X, Y[:, :, None]), "y must have shape"),
    (lambda X, Y: gdcore.fit(X, Y[:, :0]), "y must have shape"),
    (lambda X, Y: gdcore.value_and_grad(X, Y, np.zeros(11)), "w must have shape"),
    (lambda X, Y: gdcore.predict(X, np.zeros((11, 3)), [0.0]), "b must be a number or"),
])
def test_bad_shapes_are_refused(problem, call, match):
    X, Y = problem
    before = Y.copy()
    with pytest.raises(ValueError, match=match):
        call(X, Y)
    np.testing.assert_array_equal(Y, before)


def test_nonfinite_target_is_named(problem):
    X, Y = problem
    Y = Y.copy()
    Y[5, 2] = np.inf
    with pytest.raises(ValueError, match=r"y must contain only finite values .* \(5, 2\)"):
        gdcore.fit(X, Y, epochs=1, seed=0)
