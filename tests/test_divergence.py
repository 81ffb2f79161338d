"""Divergence: a too-large learning rate raises DivergenceError, keeping the
last finite parameters; a non-finite *input* is a ValueError instead.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import gdcore

METHODS = [("batch", 50), ("sgd", 1), ("minibatch", 7)]
HUGE_LRS = [1e3, 1e6, 1e300]


@pytest.fixture(scope="module")
def data():
    X, y, _ = gdcore.make_regression(50, 3, noise=0.1, bias=0.5, seed=0)
    return X, y


def _diverge(X, y, **options):
    with pytest.raises(gdcore.DivergenceError) as info:
        gdcore.fit(X, y, **options)
    return info.value


@pytest.mark.parametrize("lr", HUGE_LRS)
@pytest.mark.parametrize("method,batch_size", METHODS)
def test_huge_lr_raises_divergence_error(data, backend, method, batch_size, lr):
    """The error is a FloatingPointError carrying finite w and b, the epoch and
    step, and the finite history of the epochs completed before."""
    X, y = data
    err = _diverge(X, y, method=method, batch_size=batch_size, lr=lr, epochs=100,
                   shuffle=False, backend=backend)
    assert isinstance(err, FloatingPointError)
    assert isinstance(err.epoch, int) and isinstance(err.step, int)
    assert 0 <= err.epoch < 100
    assert 0 <= err.step < -(-50 // batch_size)
    assert err.w.shape == (3,) and np.isfinite(err.w).all()
    assert np.isfinite(err.b)
    assert err.history.shape == (err.epoch,) and np.isfinite(err.history).all()
    assert f"epoch {err.epoch}" in str(err)


@pytest.mark.parametrize("scale", [1.0, 0.1], ids=["unit-data", "small-data"])
@pytest.mark.parametrize("lr", HUGE_LRS + [1e308])
@pytest.mark.parametrize("method,batch_size", METHODS)
def test_backends_report_the_same_divergence(assert_agree, data, method, batch_size, lr,
                                            scale):
    """Both backends stop at the same epoch and step with the same parameters
    (lr is any positive finite float, up to the largest ones; on the
    small-data variant the gradients are below 1, so lr * grad is finite even
    for lr = 1e308)."""
    X, y = data[0] * scale, data[1] * scale
    options = dict(method=method, batch_size=batch_size, lr=lr, epochs=100, shuffle=False)
    compiled = _diverge(X, y, backend="cython", **options)
    reference = _diverge(X, y, backend="reference", **options)
    assert_agree(compiled, reference, atol=0)


@pytest.mark.parametrize("lr", HUGE_LRS)
@pytest.mark.parametrize("method,batch_size", METHODS)
def test_kept_parameters_are_those_of_the_shorter_run(data, backend, method, batch_size,
                                                      lr):
    """err.w, err.b are exactly the parameters after err.epoch full epochs plus
    err.step updates: fit with epochs=err.epoch, then err.step more batches
    (a one-epoch run on the first err.step * batch_size rows), lands on them
    bit for bit, and its history is err.history."""
    X, y = data
    options = dict(method=method, batch_size=batch_size, lr=lr, shuffle=False,
                   backend=backend)
    err = _diverge(X, y, epochs=100, **options)
    shorter = gdcore.fit(X, y, epochs=err.epoch, **options)
    np.testing.assert_array_equal(shorter.history, err.history)
    w, b = shorter.w, shorter.b
    if err.step:
        rows = err.step * batch_size
        partial = gdcore.fit(X[:rows], y[:rows], method="minibatch", batch_size=batch_size,
                             lr=lr, epochs=1, w0=w, b0=b, shuffle=False, backend=backend)
        w, b = partial.w, partial.b
    np.testing.assert_array_equal(err.w, w)
    assert err.b == b


@pytest.mark.parametrize("method,batch_size", [("sgd", 1), ("minibatch", 7)])
def test_shuffled_divergence(assert_agree, data, shuffle_orders, method, batch_size):
    """With shuffle=True both backends diverge at the same epoch and step, and
    the kept parameters are those of err.epoch shuffled epochs followed by
    err.step batches in that epoch's order."""
    X, y = data
    options = dict(method=method, batch_size=batch_size, lr=1e6, shuffle=True, seed=17)
    err = _diverge(X, y, epochs=100, **options)
    twin = _diverge(X, y, epochs=100, backend="reference", **options)
    assert_agree(err, twin, atol=0)
    shorter = gdcore.fit(X, y, epochs=err.epoch, **options)
    rows = shuffle_orders(len(y), err.epoch + 1, 17)[err.epoch][:err.step * batch_size]
    partial = gdcore.fit(X[rows], y[rows], method="minibatch", batch_size=batch_size, lr=1e6,
                         epochs=1, w0=shorter.w, b0=shorter.b, shuffle=False)
    np.testing.assert_array_equal(err.w, partial.w)
    assert err.b == partial.b


def test_batch_divergence_keeps_parameters_of_epochs_completed(data, backend):
    """For batch, err.w is exactly fit(..., epochs=err.epoch).w (step is 0)."""
    X, y = data
    err = _diverge(X, y, method="batch", lr=1e3, epochs=100, backend=backend)
    assert err.step == 0
    kept = gdcore.fit(X, y, method="batch", lr=1e3, epochs=err.epoch, backend=backend)
    np.testing.assert_array_equal(kept.w, err.w)
    assert kept.b == err.b


@pytest.mark.parametrize("method", ["batch", "sgd", "minibatch"])
def test_overflowing_first_update_keeps_the_start(backend, method):
    """When the very first update overflows the parameters to inf, the error
    keeps w0 and b0 exactly (epoch 0, step 0, empty history)."""
    X, y, _ = gdcore.make_regression(20, 2, bias=100.0, seed=1)
    err = _diverge(X, y, method=method, batch_size=3, lr=1e308, loss="half_mse",
                   w0=[0.5, -0.5], b0=0.25, epochs=2, shuffle=False, backend=backend)
    assert (err.epoch, err.step) == (0, 0)
    np.testing.assert_array_equal(err.w, [0.5, -0.5])
    assert err.b == 0.25
    assert err.history.shape == (0,)


def test_divergence_error_pickles(data):
    """The error survives pickling with its message and every attribute."""
    X, y = data
    err = _diverge(X, y, method="minibatch", batch_size=7, lr=1e6, epochs=100,
                   shuffle=False)
    clone = pickle.loads(pickle.dumps(err))
    assert type(clone) is gdcore.DivergenceError
    assert str(clone) == str(err)
    assert (clone.epoch, clone.step, clone.b) == (err.epoch, err.step, err.b)
    np.testing.assert_array_equal(clone.w, err.w)
    np.testing.assert_array_equal(clone.history, err.history)


def test_fit_does_not_modify_inputs_when_diverging(data):
    X, y = data
    w0 = np.array([0.1, 0.2, 0.3])
    copies = X.copy(), y.copy(), w0.copy()
    err = _diverge(X, y, method="sgd", lr=1e6, epochs=10, w0=w0, shuffle=False)
    assert not np.shares_memory(err.w, w0)
    for array, original in zip((X, y, w0), copies, strict=True):
        np.testing.assert_array_equal(array, original)


@pytest.mark.parametrize("method,batch_size", METHODS)
def test_nan_in_X_mid_training_is_a_value_error(data, backend, method, batch_size):
    """A NaN in X that training reaches only after several good updates (in
    row 30, epoch 0 for sgd/minibatch) is reported as a ValueError naming X,
    not as divergence; nothing is modified."""
    X, y = data
    X = X.copy()
    X[30, 1] = np.nan
    copy = X.copy()
    with pytest.raises(ValueError, match=r"\bX\b") as info:
        gdcore.fit(X, y, method=method, batch_size=batch_size, lr=0.01, epochs=3,
                   shuffle=False, backend=backend)
    assert not isinstance(info.value, gdcore.DivergenceError)
    np.testing.assert_array_equal(X, copy)


def test_inf_in_y_mid_training_is_a_value_error(data, backend):
    X, y = data
    y = y.copy()
    y[40] = -np.inf
    with pytest.raises(ValueError, match=r"\by\b"):
        gdcore.fit(X, y, method="sgd", lr=0.01, epochs=2, shuffle=False, backend=backend)


def test_estimator_fit_raises_divergence_error(data):
    X, y = data
    with pytest.raises(gdcore.DivergenceError):
        gdcore.LinearRegressor(method="batch", lr=1e6, epochs=100).fit(X, y)
