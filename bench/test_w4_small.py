"""W4: many epochs on small data, the tutorials' and NIST-sized problems:
(n, d, epochs) = (3, 1, 20,000), (16, 6, 20,000), (442, 10, 2,000), shuffle
off and on.

Entries per group: gdcore ``fit(method="sgd", epochs=E)`` (the "gdcore"
entry), scikit-learn's ``SGDRegressor(max_iter=E, tol=None)`` with a
constant rate (the same steps: its "squared_error" is half the squared
error, so ``eta0 = 2 * lr``), and gdcore's full-batch ``fit(method="batch",
epochs=E)`` for the cost of an epoch that is one step. The target: gdcore
at least 2x faster than scikit-learn (ratio >= 2), and full-batch epochs
costing at most 1 us plus the arithmetic.

These sizes do not depend on ``--bench-size``. Correctness outside the
timed calls: in order, scikit-learn's parameters equal gdcore's to 1e-9.
"""

import warnings

import numpy as np
import pytest

import gdcore

LR = 1e-3
SHAPES = [(3, 1, 20_000), (16, 6, 20_000), (442, 10, 2_000)]


def _cases():
    for n, d, epochs in SHAPES:
        for shuffle in (False, True):
            yield pytest.param(n, d, epochs, shuffle,
                               id=f"{n}x{d}-{'shuffle' if shuffle else 'ordered'}",
                               marks=pytest.mark.benchmark(
                                   group=f"W4 {n} x {d}, {epochs} epochs, shuffle={shuffle}"))


CASES = list(_cases())


def _data(n, d):
    X, y, _ = gdcore.make_regression(n, d, noise=0.1, seed=0)
    return X, y


def _gdcore(X, y, method, epochs, shuffle):
    return gdcore.fit(X, y, method=method, lr=LR, epochs=epochs, shuffle=shuffle, seed=0)


def _sklearn(X, y, epochs, shuffle):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import SGDRegressor

    model = SGDRegressor(loss="squared_error", penalty=None, learning_rate="constant",
                         eta0=2 * LR, max_iter=epochs, tol=None, shuffle=shuffle,
                         random_state=0, average=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y)


@pytest.mark.parametrize("n,d,epochs,shuffle", CASES)
def test_w4_gdcore(bench, n, d, epochs, shuffle):
    X, y = _data(n, d)
    result = bench(lambda: _gdcore(X, y, "sgd", epochs, shuffle), impl="gdcore sgd",
                   role="gdcore")
    assert np.isfinite(result.w).all()


@pytest.mark.parametrize("n,d,epochs,shuffle", CASES)
def test_w4_gdcore_full_batch(bench, n, d, epochs, shuffle):
    X, y = _data(n, d)
    result = bench(lambda: _gdcore(X, y, "batch", epochs, shuffle),
                   impl="gdcore full batch (1 step/epoch)")
    assert np.isfinite(result.w).all()


@pytest.mark.parametrize("n,d,epochs,shuffle", CASES)
def test_w4_sklearn(bench, n, d, epochs, shuffle):
    pytest.importorskip("sklearn")
    X, y = _data(n, d)
    model = bench(lambda: _sklearn(X, y, epochs, shuffle), impl="sklearn SGDRegressor")
    if not shuffle:
        ref = _gdcore(X, y, "sgd", epochs, False)
        np.testing.assert_allclose(model.coef_, ref.w, rtol=1e-9, atol=1e-12)
