"""Semantics of training: one family of methods, the loss history, the
partial last batch, the intercept, shuffling and thread-count independence.

Expected values come from an independent NumPy replay of the algorithm
(the ``numpy_fit`` fixture), never from gdcore itself.
"""

from __future__ import annotations

import numpy as np
import pytest

import gdcore


def _assert_identical(a, b):
    np.testing.assert_array_equal(a.w, b.w)
    assert a.b == b.b
    np.testing.assert_array_equal(a.history, b.history)


# ---------------------------------------------------------------------------
# One family: batch_size = 1 is sgd, batch_size >= n is batch
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("loss", ["mse", "half_mse"])
@pytest.mark.parametrize("shuffle", [False, True])
def test_minibatch_of_one_is_exactly_sgd(regression, backend, loss, shuffle):
    """minibatch with batch_size=1 gives bit for bit the sgd result."""
    X, y = regression(23, 3)
    options = dict(lr=0.03, epochs=3, loss=loss, shuffle=shuffle, seed=7, backend=backend)
    _assert_identical(gdcore.fit(X, y, method="minibatch", batch_size=1, **options),
                      gdcore.fit(X, y, method="sgd", **options))


@pytest.mark.parametrize("loss", ["mse", "half_mse"])
@pytest.mark.parametrize("extra", [0, 1, 5, 1000])
@pytest.mark.parametrize("shuffle", [False, True])
def test_minibatch_of_n_or_more_is_exactly_batch(regression, backend, loss, extra, shuffle):
    """minibatch with batch_size >= n gives bit for bit the full-batch result
    (shuffling one batch holding every sample cannot change anything)."""
    X, y = regression(23, 3)
    options = dict(lr=0.05, epochs=4, loss=loss, shuffle=shuffle, seed=7, backend=backend)
    minibatch = gdcore.fit(X, y, method="minibatch", batch_size=23 + extra, **options)
    _assert_identical(minibatch, gdcore.fit(X, y, method="batch", **options))
    assert minibatch.batch_size == 23


def test_result_records_steps_and_resolved_batch_size(regression, backend):
    """FitResult counts epochs and updates and reports the batch size used."""
    X, y = regression(10, 2)
    for method, batch_size, resolved, per_epoch in [("batch", 4, 10, 1), ("sgd", 4, 1, 10),
                                                    ("minibatch", 4, 4, 3),
                                                    ("minibatch", 50, 10, 1)]:
        result = gdcore.fit(X, y, method=method, batch_size=batch_size, epochs=3,
                            backend=backend)
        assert result.batch_size == resolved
        assert result.epochs_run == 3
        assert result.n_steps == 3 * per_epoch
        assert result.history.shape == (3,)
        assert result.w.shape == (2,) and result.w.dtype == np.float64
        assert isinstance(result.b, float)


# ---------------------------------------------------------------------------
# History and the partial last batch, against the NumPy replay
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("loss", ["mse", "half_mse"])
@pytest.mark.parametrize("method,batch_size", [("batch", 10), ("sgd", 1), ("minibatch", 4),
                                               ("minibatch", 3), ("minibatch", 9)])
def test_fit_matches_numpy_replay(regression, numpy_fit, backend, loss, method, batch_size):
    """w, b and history[k] (mean over the epoch's batches of each batch's loss
    before its update) match an independent NumPy replay, for n=10 where the
    last batch is partial (4+4+2, 3+3+3+1, 9+1)."""
    X, y = regression(10, 3, seed=4)
    result = gdcore.fit(X, y, method=method, batch_size=batch_size, lr=0.04, epochs=3,
                        loss=loss, w0=[0.1, -0.2, 0.3], b0=0.5, shuffle=False,
                        backend=backend)
    w, b, history = numpy_fit(X, y, lr=0.04, epochs=3, batch_size=batch_size, loss=loss,
                              w0=[0.1, -0.2, 0.3], b0=0.5)
    np.testing.assert_allclose(result.w, w, rtol=1e-12, atol=1e-14)
    assert result.b == pytest.approx(b, rel=1e-12, abs=1e-14)
    np.testing.assert_allclose(result.history, history, rtol=1e-12, atol=1e-14)


def test_partial_last_batch_is_averaged_over_its_own_size(regression, numpy_fit, backend):
    """n=10, batch_size=4: batches of 4, 4 and 2; the last one's gradient and
    loss are means over 2 samples, not 4. The replay that divides by 4 is
    distinguishable, so this test would catch that mistake."""
    X, y = regression(10, 2, seed=9)
    result = gdcore.fit(X, y, method="minibatch", batch_size=4, lr=0.05, epochs=1,
                        shuffle=False, backend=backend)
    w, b, history = numpy_fit(X, y, lr=0.05, epochs=1, batch_size=4)
    np.testing.assert_allclose(result.w, w, rtol=1e-12, atol=1e-14)
    assert result.b == pytest.approx(b, rel=1e-12)
    assert result.history[0] == pytest.approx(history[0], rel=1e-12)

    # The wrong convention: last batch summed and divided by batch_size (4).
    w_wrong, b_wrong = np.zeros(2), 0.0
    losses = []
    for start in (0, 4, 8):
        Xb, yb = X[start:start + 4], y[start:start + 4]
        r = Xb @ w_wrong + b_wrong - yb
        losses.append(np.sum(r ** 2) / 4)
        w_wrong = w_wrong - 0.05 * (2 / 4) * (Xb.T @ r)
        b_wrong = b_wrong - 0.05 * (2 / 4) * r.sum()
    assert not np.allclose(result.w, w_wrong, rtol=1e-6)
    assert result.history[0] != pytest.approx(np.mean(losses), rel=1e-6)


@pytest.mark.parametrize("loss", ["mse", "half_mse"])
def test_batch_history_is_value_and_grad_at_epoch_start(regression, backend, loss):
    """For method="batch", history[k] is value_and_grad's loss at the
    parameters the epoch started from (those after k epochs)."""
    X, y = regression(40, 3, seed=2)
    options = dict(method="batch", lr=0.1, loss=loss, backend=backend)
    result = gdcore.fit(X, y, epochs=5, **options)
    for k in range(5):
        start = gdcore.fit(X, y, epochs=k, **options)
        value = gdcore.value_and_grad(X, y, start.w, start.b, loss=loss, backend=backend)[0]
        assert result.history[k] == pytest.approx(value, rel=1e-14, abs=0)
    # and the loss the training reports keeps falling on this easy problem
    assert np.all(np.diff(result.history) < 0)


@pytest.mark.parametrize("method", ["batch", "sgd", "minibatch"])
def test_epochs_zero_returns_the_start(regression, backend, method):
    """epochs=0 applies no update: w0, b0 and an empty history come back."""
    X, y = regression(12, 2)
    result = gdcore.fit(X, y, method=method, epochs=0, w0=[1.5, -2.0], b0=0.25,
                        backend=backend)
    np.testing.assert_array_equal(result.w, [1.5, -2.0])
    assert result.b == 0.25
    assert result.history.shape == (0,)
    assert result.n_steps == 0


@pytest.mark.parametrize("method", ["batch", "sgd", "minibatch"])
@pytest.mark.parametrize("shuffle", [False, True])
def test_no_intercept_keeps_b0_exactly(regression, numpy_fit, shuffle_orders, backend,
                                      method, shuffle):
    """fit_intercept=False holds b at b0 exactly while w is learned (and the
    w learned is the NumPy replay's with b fixed at b0)."""
    X, y = regression(17, 2, seed=3)
    result = gdcore.fit(X, y, method=method, batch_size=5, lr=0.03, epochs=3, b0=-1.25,
                        fit_intercept=False, shuffle=shuffle, seed=0, backend=backend)
    assert result.b == -1.25
    batch_size = {"batch": 17, "sgd": 1, "minibatch": 5}[method]
    orders = shuffle_orders(17, 3, 0) if shuffle and method != "batch" else None
    w, _, history = numpy_fit(X, y, lr=0.03, epochs=3, batch_size=batch_size, b0=-1.25,
                              fit_intercept=False, orders=orders)
    np.testing.assert_allclose(result.w, w, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(result.history, history, rtol=1e-12)


def test_fit_does_not_modify_its_inputs(regression, backend):
    """fit never modifies X, y or w0, and the returned w is a new array."""
    X, y = regression(15, 3)
    w0 = np.array([0.5, 0.5, -0.5])
    copies = X.copy(), y.copy(), w0.copy()
    for method in ("batch", "sgd", "minibatch"):
        result = gdcore.fit(X, y, method=method, batch_size=4, lr=0.05, epochs=2, w0=w0,
                            backend=backend)
        assert not np.shares_memory(result.w, w0)
        assert not np.shares_memory(result.w, X)
    np.testing.assert_array_equal(X, copies[0])
    np.testing.assert_array_equal(y, copies[1])
    np.testing.assert_array_equal(w0, copies[2])


# ---------------------------------------------------------------------------
# Shuffling
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["sgd", "minibatch"])
def test_same_seed_same_result_different_seed_different(regression, backend, method):
    """shuffle=True is reproducible from its seed, and the seed matters."""
    X, y = regression(30, 3)
    options = dict(method=method, batch_size=4, lr=0.03, epochs=3, shuffle=True,
                   backend=backend)
    first = gdcore.fit(X, y, seed=42, **options)
    _assert_identical(first, gdcore.fit(X, y, seed=42, **options))
    other = gdcore.fit(X, y, seed=43, **options)
    assert not np.array_equal(first.w, other.w)
    unshuffled = gdcore.fit(X, y, **{**options, "shuffle": False})
    assert not np.array_equal(first.w, unshuffled.w)


@pytest.mark.parametrize("seed", [0, 1, 2024])
def test_epoch_zero_order_is_default_rng_permutation(regression, numpy_fit, backend, seed):
    """With shuffle=True the first epoch visits the rows in
    numpy.random.default_rng(seed).permutation(n) order (README): one sgd
    epoch equals the NumPy replay in exactly that order, and not in 0..n-1."""
    X, y = regression(20, 2, seed=5)
    result = gdcore.fit(X, y, method="sgd", lr=0.05, epochs=1, shuffle=True, seed=seed,
                        backend=backend)
    order = np.random.default_rng(seed).permutation(20)
    w, b, history = numpy_fit(X, y, lr=0.05, epochs=1, batch_size=1, orders=[order])
    np.testing.assert_allclose(result.w, w, rtol=1e-12, atol=1e-14)
    assert result.b == pytest.approx(b, rel=1e-12)
    assert result.history[0] == pytest.approx(history[0], rel=1e-12)
    w_ordered, _, _ = numpy_fit(X, y, lr=0.05, epochs=1, batch_size=1)
    assert not np.allclose(result.w, w_ordered, rtol=1e-6)


def test_later_epochs_reshuffle_as_documented(regression, numpy_fit, shuffle_orders,
                                              backend):
    """Later epochs follow gdcore.fit's documented rule (each epoch shuffles the
    previous order again with the same generator): a 4-epoch minibatch run
    matches the NumPy replay over those orders."""
    X, y = regression(22, 3, seed=6)
    result = gdcore.fit(X, y, method="minibatch", batch_size=5, lr=0.04, epochs=4,
                        shuffle=True, seed=99, backend=backend)
    w, b, history = numpy_fit(X, y, lr=0.04, epochs=4, batch_size=5,
                              orders=shuffle_orders(22, 4, 99))
    np.testing.assert_allclose(result.w, w, rtol=1e-12, atol=1e-14)
    assert result.b == pytest.approx(b, rel=1e-12)
    np.testing.assert_allclose(result.history, history, rtol=1e-12)


@pytest.mark.parametrize("method", ["sgd", "minibatch"])
def test_seed_reproducible_across_backends(assert_agree, regression, method):
    """The Python layer draws the permutation, so both backends see the same
    order: shuffled runs with the same seed agree to rtol=1e-9."""
    X, y = regression(31, 4)
    options = dict(method=method, batch_size=6, lr=0.03, epochs=3, shuffle=True, seed=8)
    a = gdcore.fit(X, y, backend="cython", **options)
    b = gdcore.fit(X, y, backend="reference", **options)
    assert_agree(a, b)


def test_seed_sequence_and_generator_match_int_seed(regression):
    """seed may be an int, a SeedSequence or a Generator; each built from the
    same entropy gives the same order as numpy.random.default_rng would."""
    X, y = regression(18, 2)
    options = dict(method="sgd", lr=0.03, epochs=2, shuffle=True)
    by_int = gdcore.fit(X, y, seed=5, **options)
    _assert_identical(by_int, gdcore.fit(X, y, seed=np.random.SeedSequence(5), **options))
    _assert_identical(by_int, gdcore.fit(X, y, seed=np.random.default_rng(5), **options))
    _assert_identical(by_int, gdcore.fit(X, y, seed=np.int64(5), **options))


# ---------------------------------------------------------------------------
# Thread count does not change a single bit
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def large_problem():
    X, y, _ = gdcore.make_regression(50_000, 8, noise=0.5, bias=1.0, seed=12)
    return X, y


@pytest.mark.parametrize("loss", ["mse", "half_mse"])
def test_value_and_grad_bit_identical_for_any_thread_count(large_problem, loss):
    """n_threads=1 and 2 give bit-identical value_and_grad on 50,000 rows
    (about 49 row blocks: the reduction order is fixed, not per thread)."""
    X, y = large_problem
    w = np.linspace(-1, 1, 8)
    one = gdcore.value_and_grad(X, y, w, 0.3, loss=loss, n_threads=1)
    two = gdcore.value_and_grad(X, y, w, 0.3, loss=loss, n_threads=2)
    default = gdcore.value_and_grad(X, y, w, 0.3, loss=loss)
    for other in (two, default):
        assert one[0] == other[0]
        np.testing.assert_array_equal(one[1], other[1])
        assert one[2] == other[2]


def test_batch_fit_bit_identical_for_any_thread_count(large_problem):
    """A full-batch fit is bit for bit the same with 1 or 2 threads."""
    X, y = large_problem
    options = dict(method="batch", lr=0.2, epochs=3)
    one = gdcore.fit(X, y, n_threads=1, **options)
    _assert_identical(one, gdcore.fit(X, y, n_threads=2, **options))
    _assert_identical(one, gdcore.fit(X, y, **options))
