"""Property-based tests: random small problems, random options.

Shapes up to 30 x 5 with entries in [-3, 3]; learning rates up to 0.02, which
keeps even per-sample steps stable (2 * lr * (|x|**2 + 1) < 2). Should a draw
diverge anyway, both backends must report the same divergence.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import gdcore

finite = dict(allow_nan=False, allow_infinity=False, allow_subnormal=False)


@st.composite
def problems(draw, max_n=30, max_d=5):
    n = draw(st.integers(1, max_n))
    d = draw(st.integers(1, max_d))
    X = draw(arrays(np.float64, (n, d), elements=st.floats(-3, 3, **finite)))
    y = draw(arrays(np.float64, n, elements=st.floats(-10, 10, **finite)))
    w = draw(arrays(np.float64, d, elements=st.floats(-2, 2, **finite)))
    b = draw(st.floats(-2, 2, **finite))
    return X, y, w, b


@st.composite
def fit_options(draw, n):
    return dict(
        method=draw(st.sampled_from(["batch", "sgd", "minibatch"])),
        batch_size=draw(st.integers(1, n + 3)),
        lr=draw(st.floats(1e-4, 0.02)),
        epochs=draw(st.integers(1, 3)),
        loss=draw(st.sampled_from(["mse", "half_mse"])),
        fit_intercept=draw(st.booleans()),
        shuffle=draw(st.booleans()),
        seed=draw(st.integers(0, 2 ** 32 - 1)),
    )


def _run(X, y, w0, b0, options, backend):
    try:
        return gdcore.fit(X, y, w0=w0, b0=b0, backend=backend, **options)
    except gdcore.DivergenceError as err:
        return err


@settings(max_examples=80, deadline=None)
@given(data=st.data(), problem=problems())
def test_backends_agree_on_random_problems(assert_agree, data, problem):
    """fit's results agree between backends within rtol=1e-9 (atol=1e-9: the
    values drawn here can cancel to about 0) for every method and option; a
    divergence, if any, is reported by both at the same epoch and step."""
    X, y, w0, b0 = problem
    options = data.draw(fit_options(len(y)))
    compiled = _run(X, y, w0, b0, options, "cython")
    reference = _run(X, y, w0, b0, options, "reference")
    assert type(compiled) is type(reference)
    if isinstance(compiled, gdcore.DivergenceError):
        assert (compiled.epoch, compiled.step) == (reference.epoch, reference.step)
        return
    assert_agree(compiled, reference, atol=1e-9)
    if not options["fit_intercept"]:
        assert compiled.b == reference.b == b0


@settings(max_examples=80, deadline=None)
@given(problem=problems(), loss=st.sampled_from(["mse", "half_mse"]),
       backend=st.sampled_from(["cython", "reference"]))
def test_value_and_grad_matches_numpy_formula(loss_factor, problem, loss, backend):
    """loss = a*mean(r**2), grad_w = (2a/n) X.T @ r, grad_b = (2a/n) sum(r)."""
    X, y, w, b = problem
    a, n = loss_factor[loss], len(y)
    r = X @ w + b - y
    value, grad_w, grad_b = gdcore.value_and_grad(X, y, w, b, loss=loss, backend=backend)
    assert value == pytest.approx(a * np.mean(r ** 2), rel=1e-9, abs=1e-9)
    np.testing.assert_allclose(grad_w, (2 * a / n) * (X.T @ r), rtol=1e-9, atol=1e-9)
    assert grad_b == pytest.approx((2 * a / n) * r.sum(), rel=1e-9, abs=1e-9)


@settings(max_examples=50, deadline=None)
@given(problem=problems(), lr=st.floats(1e-4, 0.02), seed=st.integers(0, 1000),
       extra=st.integers(0, 5))
def test_family_is_exact_on_random_problems(problem, lr, seed, extra):
    """batch_size=1 is bit for bit sgd and batch_size >= n bit for bit batch."""
    X, y, w0, b0 = problem
    n = len(y)
    common = dict(lr=lr, epochs=2, w0=w0, b0=b0, seed=seed)
    sgd = gdcore.fit(X, y, method="sgd", **common)
    one = gdcore.fit(X, y, method="minibatch", batch_size=1, **common)
    np.testing.assert_array_equal(sgd.w, one.w)
    assert sgd.b == one.b
    np.testing.assert_array_equal(sgd.history, one.history)
    batch = gdcore.fit(X, y, method="batch", **common)
    full = gdcore.fit(X, y, method="minibatch", batch_size=n + extra, **common)
    np.testing.assert_array_equal(batch.w, full.w)
    assert batch.b == full.b
    np.testing.assert_array_equal(batch.history, full.history)


@settings(max_examples=50, deadline=None)
@given(problem=problems(), backend=st.sampled_from(["cython", "reference"]))
def test_predict_matches_numpy(problem, backend):
    X, y, w, b = problem
    np.testing.assert_allclose(gdcore.predict(X, w, b, backend=backend), X @ w + b,
                               rtol=1e-12, atol=1e-12)
