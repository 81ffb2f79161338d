"""Sample weights: weights are divided by their mean over the training rows
(computed without overflow, from the weights divided by the largest) and
a batch's loss is ``a * sum(s * r**2) / m``. Weight 0 drops a sample, an
integer weight k repeats it k times (exactly for full batch), a common factor
changes nothing; sgd and mini-batch follow the NumPy replay of those semantics
(``rule_fit``, tests/conftest.py); both backends agree; bad weights raise
naming ``sample_weight``.
"""

from __future__ import annotations

import numpy as np
import pytest

import gdcore

METHODS = [("batch", 21), ("sgd", 1), ("minibatch", 4)]   # n = 21: 5 x 4 + 1


@pytest.fixture(scope="module")
def data():
    X, y, _ = gdcore.make_regression(21, 3, noise=0.5, bias=-0.4, seed=13)
    return X, y


@pytest.fixture(scope="module")
def weights():
    return np.random.default_rng(0).uniform(0.2, 3.0, 21)


# ---------------------------------------------------------------------------
# Oracle and agreement
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("loss", ["mse", "half_mse"])
@pytest.mark.parametrize("shuffle", [False, True], ids=["ordered", "shuffled"])
@pytest.mark.parametrize("method,batch_size", METHODS)
def test_matches_weighted_oracle(data, weights, rule_fit, shuffle_orders, backend, method,
                                 batch_size, shuffle, loss):
    X, y = data
    result = gdcore.fit(X, y, method=method, batch_size=batch_size, lr=0.02, epochs=3,
                        loss=loss, sample_weight=weights, shuffle=shuffle, seed=6,
                        backend=backend)
    size = {"batch": 21, "sgd": 1}.get(method, batch_size)
    orders = shuffle_orders(21, 3, 6) if shuffle and method != "batch" else None
    w, b, history, _ = rule_fit(X, y, sample_weight=weights, lr=0.02, epochs=3,
                                batch_size=size, loss=loss, orders=orders)
    np.testing.assert_allclose(result.w, w, rtol=1e-11, atol=1e-14)
    assert result.b == pytest.approx(b, rel=1e-11, abs=1e-14)
    np.testing.assert_allclose(result.history, history, rtol=1e-11, atol=1e-14)
    # the weights matter
    unweighted = gdcore.fit(X, y, method=method, batch_size=batch_size, lr=0.02, epochs=3,
                            loss=loss, shuffle=shuffle, seed=6, backend=backend)
    assert not np.allclose(result.w, unweighted.w, rtol=1e-4)


@pytest.mark.parametrize("shuffle", [False, True], ids=["ordered", "shuffled"])
@pytest.mark.parametrize("method,batch_size", METHODS)
def test_backends_agree(assert_agree, data, weights, method, batch_size, shuffle):
    X, y = data
    w = weights.copy()
    w[[2, 9, 20]] = 0.0
    options = dict(method=method, batch_size=batch_size, lr=0.03, epochs=3, sample_weight=w,
                   shuffle=shuffle, seed=1, momentum=0.4, weight_decay=0.05,
                   schedule="invscaling", average=True)
    compiled = gdcore.fit(X, y, backend="cython", **options)
    reference = gdcore.fit(X, y, backend="reference", **options)
    assert_agree(compiled, reference)


@pytest.mark.parametrize("method,batch_size", METHODS)
def test_momentum_with_zero_weights_matches_oracle(data, rule_fit, backend, method,
                                                   batch_size):
    """A zero-weight sample in sgd is a step of zero gradient: with momentum the
    buffer still moves the parameters (so it is not the same as dropping the
    row there); the oracle does the same."""
    X, y = data
    w = np.ones(21)
    w[::3] = 0.0
    result = gdcore.fit(X, y, method=method, batch_size=batch_size, lr=0.02, epochs=2,
                        sample_weight=w, momentum=0.5, shuffle=False, backend=backend)
    size = {"batch": 21, "sgd": 1}.get(method, batch_size)
    expected_w, expected_b, history, _ = rule_fit(X, y, sample_weight=w, lr=0.02, epochs=2,
                                                  batch_size=size, momentum=0.5)
    np.testing.assert_allclose(result.w, expected_w, rtol=1e-11, atol=1e-14)
    assert result.b == pytest.approx(expected_b, rel=1e-11, abs=1e-14)
    np.testing.assert_allclose(result.history, history, rtol=1e-11, atol=1e-14)


# ---------------------------------------------------------------------------
# Exact properties
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("loss", ["mse", "half_mse"])
@pytest.mark.parametrize("options", [{}, dict(momentum=0.7, weight_decay=0.1, l1=0.01)],
                         ids=["plain", "momentum-penalties"])
def test_zero_weight_drops_the_sample_for_batch(data, backend, loss, options):
    """Full batch: weights 0 on some rows and 1 elsewhere is training on the
    other rows alone (up to rounding: the weights become n / (n - k))."""
    X, y = data
    dropped = [0, 5, 6, 17]
    keep = np.setdiff1d(np.arange(21), dropped)
    w = np.ones(21)
    w[dropped] = 0.0
    common = dict(method="batch", lr=0.05, epochs=6, loss=loss, backend=backend, **options)
    weighted = gdcore.fit(X, y, sample_weight=w, **common)
    subset = gdcore.fit(X[keep], y[keep], **common)
    np.testing.assert_allclose(weighted.w, subset.w, rtol=1e-12, atol=1e-15)
    assert weighted.b == pytest.approx(subset.b, rel=1e-12, abs=1e-15)
    np.testing.assert_allclose(weighted.history, subset.history, rtol=1e-12)
    np.testing.assert_allclose(weighted.grad_norm, subset.grad_norm, rtol=1e-12)


@pytest.mark.parametrize("method,batch_size", [("sgd", 1), ("minibatch", 4)])
def test_zero_weight_rows_never_move_plain_sgd(data, backend, method, batch_size):
    """Without momentum, a zero-weight row contributes nothing: plain sgd with
    weights 0 on a tail of rows equals sgd on the other rows with their
    weights rescaled (the zero rows sit after every other row, shuffle off)."""
    X, y = data
    w = np.ones(21)
    w[16:] = 0.0       # rows 16..20: for minibatch, batches 16-19 and 20 are all zero
    weighted = gdcore.fit(X, y, method=method, batch_size=batch_size, lr=0.02, epochs=3,
                          sample_weight=w, shuffle=False, backend=backend)
    # on 16 rows the weights are 21/16: a mean-loss scale of 21/16 = lr * 21/16
    subset = gdcore.fit(X[:16], y[:16], method=method, batch_size=batch_size,
                        lr=0.02 * 21 / 16, epochs=3, shuffle=False, backend=backend)
    np.testing.assert_allclose(weighted.w, subset.w, rtol=1e-12, atol=1e-15)
    assert weighted.b == pytest.approx(subset.b, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("loss", ["mse", "half_mse"])
def test_integer_weight_is_repetition_for_batch(data, backend, loss):
    """Full batch: integer weight k equals the sample repeated k times."""
    X, y = data
    counts = np.random.default_rng(4).integers(1, 4, 21)
    counts[3] = 0
    rows = np.repeat(np.arange(21), counts)
    common = dict(method="batch", lr=0.05, epochs=6, loss=loss, backend=backend,
                  momentum=0.3, weight_decay=0.05)
    weighted = gdcore.fit(X, y, sample_weight=counts, **common)
    repeated = gdcore.fit(X[rows], y[rows], **common)
    np.testing.assert_allclose(weighted.w, repeated.w, rtol=1e-12, atol=1e-15)
    assert weighted.b == pytest.approx(repeated.b, rel=1e-12, abs=1e-15)
    np.testing.assert_allclose(weighted.history, repeated.history, rtol=1e-12)


@pytest.mark.parametrize("method,batch_size", METHODS)
def test_common_factor_changes_nothing(data, weights, backend, method, batch_size):
    """Multiplying every weight by c changes nothing: exactly for a power of
    two, to rounding otherwise."""
    X, y = data
    common = dict(method=method, batch_size=batch_size, lr=0.02, epochs=3, seed=3,
                  backend=backend)
    base = gdcore.fit(X, y, sample_weight=weights, **common)
    doubled = gdcore.fit(X, y, sample_weight=weights * 4.0, **common)
    np.testing.assert_array_equal(base.w, doubled.w)
    assert base.b == doubled.b
    scaled = gdcore.fit(X, y, sample_weight=weights * 37.3, **common)
    np.testing.assert_allclose(base.w, scaled.w, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(base.history, scaled.history, rtol=1e-12)


@pytest.mark.parametrize("method,batch_size", METHODS)
def test_any_common_factor_changes_nothing_up_to_the_largest_float(data, weights, backend,
                                                                  method, batch_size):
    """Weights near the largest float64 (their mean used to overflow to inf,
    every weight became 0 and nothing trained) or near the smallest: the same
    training as the weights themselves."""
    X, y = data
    common = dict(method=method, batch_size=batch_size, lr=0.02, epochs=3, seed=3,
                  backend=backend)
    base = gdcore.fit(X, y, sample_weight=weights, **common)
    for factor in (1.7e308 / weights.max(), 1e308, 1e-300):
        with np.errstate(over="ignore"):
            scaled_weights = weights * factor
        if not np.isfinite(scaled_weights).all():
            continue
        scaled = gdcore.fit(X, y, sample_weight=scaled_weights, **common)
        np.testing.assert_allclose(scaled.w, base.w, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(scaled.history, base.history, rtol=1e-12)
    ones = gdcore.fit(X, y, sample_weight=np.ones(21), **common)
    huge = gdcore.fit(X, y, sample_weight=np.full(21, 1e308), **common)
    np.testing.assert_array_equal(huge.w, ones.w)
    assert huge.b == ones.b and np.all(huge.w != 0)


def test_score_with_huge_weights(data):
    X, y = data
    model = gdcore.LinearRegressor(method="batch", lr=0.1, epochs=20).fit(
        X, y, sample_weight=np.full(21, 1e308))
    assert model.score(X, y, sample_weight=np.full(21, 1e308)) == \
        pytest.approx(model.score(X, y), rel=1e-12)
    assert model.score(X, y) > 0.5


@pytest.mark.parametrize("method,batch_size", METHODS)
def test_unit_weights_are_no_weights(data, backend, method, batch_size):
    X, y = data
    common = dict(method=method, batch_size=batch_size, lr=0.02, epochs=2, seed=3,
                  backend=backend)
    a = gdcore.fit(X, y, sample_weight=np.ones(21), **common)
    b = gdcore.fit(X, y, **common)
    np.testing.assert_allclose(a.w, b.w, rtol=1e-14, atol=1e-16)
    np.testing.assert_allclose(a.history, b.history, rtol=1e-14)


def test_weights_accept_lists_and_ints_and_are_not_modified(data):
    X, y = data
    w = np.arange(1, 22)
    copy = w.copy()
    a = gdcore.fit(X, y, method="batch", epochs=2, sample_weight=w)
    b = gdcore.fit(X, y, method="batch", epochs=2, sample_weight=w.tolist())
    np.testing.assert_array_equal(a.w, b.w)
    np.testing.assert_array_equal(w, copy)
    wf = np.linspace(0.5, 2.0, 21)
    copyf = wf.copy()
    gdcore.fit(X, y, method="sgd", epochs=1, sample_weight=wf)
    np.testing.assert_array_equal(wf, copyf)


def _held_out(X, y, fraction, seed):
    """Rows that a fit with this validation split does not train on, found from
    outside: changing their target does not change w."""
    base = gdcore.fit(X, y, method="batch", lr=0.05, epochs=1, validation_fraction=fraction,
                      seed=seed).w
    rows = []
    for i in range(len(y)):
        changed = y.copy()
        changed[i] += 10.0
        w = gdcore.fit(X, changed, method="batch", lr=0.05, epochs=1,
                       validation_fraction=fraction, seed=seed).w
        if np.array_equal(w, base):
            rows.append(i)
    return np.array(rows)


def test_weights_normalised_over_training_rows_only(data, weights, backend):
    """With a validation split the weights are divided by their mean over the
    training rows: the weights of held-out rows change nothing at all."""
    X, y = data
    held = _held_out(X, y, 0.25, 5)
    assert len(held) == 5
    other = weights.copy()
    other[held] = 100.0
    common = dict(method="minibatch", batch_size=4, lr=0.02, epochs=3,
                  validation_fraction=0.25, seed=5, backend=backend)
    a = gdcore.fit(X, y, sample_weight=weights, **common)
    b = gdcore.fit(X, y, sample_weight=other, **common)
    np.testing.assert_array_equal(a.w, b.w)
    np.testing.assert_array_equal(a.val_loss, b.val_loss)
    # zero weight on every training row is an error even if held-out rows weigh
    only_held = np.zeros(21)
    only_held[held] = 1.0
    with pytest.raises(ValueError, match="sample_weight"):
        gdcore.fit(X, y, sample_weight=only_held, **common)


# ---------------------------------------------------------------------------
# Across calls: partial_fit chunks and warm starts keep their relative weights
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def chunks():
    X, y, _ = gdcore.make_regression(40, 3, noise=0.3, bias=0.2, seed=8)
    return (X[:20], y[:20]), (X[20:], y[20:])


def _stream(chunks, weights, lrs=None, **options):
    """partial_fit over the chunks with these weights (None: no weights) and
    learning rates (one per call)."""
    model = gdcore.LinearRegressor(method="batch", lr=0.05, shuffle=False, **options)
    for k, ((X, y), s) in enumerate(zip(chunks, weights, strict=True)):
        if lrs is not None:
            model.set_params(lr=lrs[k])
        model.partial_fit(X, y, sample_weight=s)
    return model


@pytest.mark.parametrize("backend_name", ["cython", "reference"])
def test_partial_fit_keeps_the_weight_of_a_chunk_relative_to_the_others(chunks,
                                                                       backend_name):
    """Chunk 2 weighted 3 after chunk 1 weighted 1 counts three times as much
    (scikit-learn's raw weights): one full-batch step with weights 3 is the
    step with weights 1 at three times the rate. It used to be divided by its
    own mean, i.e. weighted like chunk 1."""
    ones = np.ones(20)
    weighted = _stream(chunks, [ones, 3 * ones], backend=backend_name)
    tripled_rate = _stream(chunks, [ones, ones], lrs=[0.05, 0.15], backend=backend_name)
    np.testing.assert_allclose(weighted.coef_, tripled_rate.coef_, rtol=1e-13)
    assert weighted.intercept_ == pytest.approx(tripled_rate.intercept_, rel=1e-13)
    per_call_mean = _stream(chunks, [ones, ones], backend=backend_name)
    assert not np.allclose(weighted.coef_, per_call_mean.coef_, rtol=1e-3)
    assert weighted.result_.state.weight_scale == (1.0, 1.0)


def test_common_factor_across_calls_changes_nothing(chunks):
    """Weights (c, 3c) for any c, 1e308 included, train as (1, 3)."""
    ones = np.ones(20)
    base = _stream(chunks, [ones, 3 * ones])
    for c in (4.0, 1e-300, 1e300 / 3):
        scaled = _stream(chunks, [c * ones, 3 * c * ones])
        np.testing.assert_allclose(scaled.coef_, base.coef_, rtol=1e-12)
    huge = _stream(chunks, [np.full(20, 1e308), np.full(20, 1e308)])
    unit = _stream(chunks, [ones, ones])
    np.testing.assert_array_equal(huge.coef_, unit.coef_)


def test_equal_weights_on_every_call_are_no_weights(chunks):
    equal = _stream(chunks, [np.full(20, 7.0), np.full(20, 7.0)])
    none = _stream(chunks, [None, None])
    np.testing.assert_allclose(equal.coef_, none.coef_, rtol=1e-14)


def test_the_first_weighted_call_fixes_the_scale(chunks):
    """Calls before it are unweighted; a call without weights after it counts
    each sample 1 in its units; fit() starts afresh."""
    (X1, y1), _ = chunks
    s = np.linspace(1.0, 4.0, 20)
    model = _stream(chunks, [None, s])
    assert model.result_.state.weight_scale == (4.0, pytest.approx(0.625))
    model.partial_fit(X1, y1)
    assert model.result_.state.weight_scale == (4.0, pytest.approx(0.625))
    model.fit(X1, y1)
    assert model.result_.state.weight_scale is None


def test_k_weighted_calls_are_fit_with_k_epochs(chunks):
    """On the same data with the same weights, k partial_fit calls are fit
    with epochs=k, bit for bit (the scale is the same number every time)."""
    (X, y), _ = chunks
    s = np.linspace(0.5, 2.5, 20)
    options = dict(method="minibatch", batch_size=6, lr=0.05, seed=4, momentum=0.5)
    streamed = gdcore.LinearRegressor(**options)
    for _ in range(3):
        streamed.partial_fit(X, y, sample_weight=s)
    whole = gdcore.LinearRegressor(epochs=3, **options).fit(X, y, sample_weight=s)
    np.testing.assert_array_equal(streamed.coef_, whole.coef_)
    np.testing.assert_array_equal(streamed.loss_curve_, whole.loss_curve_)


def test_warm_start_keeps_the_scale(chunks):
    (X1, y1), (X2, y2) = chunks
    first = gdcore.fit(X1, y1, method="batch", lr=0.05, sample_weight=np.full(20, 2.0),
                       epochs=1)
    second = gdcore.fit(X2, y2, method="batch", lr=0.05, sample_weight=np.full(20, 6.0),
                        epochs=1, warm_start=first)
    tripled = gdcore.fit(X2, y2, method="batch", lr=0.15, epochs=1, warm_start=first)
    np.testing.assert_allclose(second.w, tripled.w, rtol=1e-13)
    assert first.state.weight_scale == (2.0, 1.0) == second.state.weight_scale


def test_weights_too_large_for_the_kept_scale_raise(chunks):
    (X1, y1), (X2, y2) = chunks
    model = gdcore.LinearRegressor(method="batch").partial_fit(
        X1, y1, sample_weight=np.full(20, 1e-300))
    with pytest.raises(ValueError, match=r"^sample_weight is too large next to the weights "
                                         r"that set this run's scale"):
        model.partial_fit(X2, y2, sample_weight=np.full(20, 1e300))
    with pytest.raises(ValueError, match="sample_weight must not be all zero"):
        model.partial_fit(X2, y2, sample_weight=np.zeros(20))


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------

BAD_WEIGHTS = [
    (lambda n: np.ones(n - 1), ValueError),
    (lambda n: np.ones(n + 1), ValueError),
    (lambda n: np.ones((n, 1)), ValueError),
    (lambda n: np.ones((1, n)), ValueError),
    (lambda n: 1.0, ValueError),
    (lambda n: np.r_[np.ones(n - 1), -1.0], ValueError),
    (lambda n: np.r_[-1e-300, np.ones(n - 1)], ValueError),
    (lambda n: np.r_[np.ones(n - 1), np.nan], ValueError),
    (lambda n: np.r_[np.ones(n - 1), np.inf], ValueError),
    (lambda n: np.zeros(n), ValueError),
    (lambda n: ["a"] * n, TypeError),
    (lambda n: np.ones(n, dtype=complex), TypeError),
]


@pytest.mark.parametrize("make,error", BAD_WEIGHTS,
                         ids=["short", "long", "column", "row", "scalar", "negative",
                              "tiny-negative", "nan", "inf", "all-zero", "strings",
                              "complex"])
def test_bad_weights_raise_naming_sample_weight(data, backend, make, error):
    X, y = data
    with pytest.raises(error, match="sample_weight"):
        gdcore.fit(X, y, method="sgd", epochs=1, sample_weight=make(21), backend=backend)
