"""The compiled backend and the plain-Python reference compute the same numbers.

DESIGN.md: "The two backends agree to rtol=1e-9 on every result; the tests
prove it." Each case is small (a few epochs on make_regression data) so the
whole grid stays fast.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import gdcore

RTOL = 1e-9
ATOL = 1e-12

SHAPES = [(13, 1), (50, 3), (101, 5)]
#: d = 11 takes the 8-way unrolled dot product of the kernels plus a remainder
WIDE = (40, 11)
BATCH_SIZES = ["1", "7", "n-1", "n", "n+5"]
SHUFFLES = [None, 3]          # None: shuffle=False; an int: shuffle=True with that seed


def _batch_size(kind: str, n: int) -> int:
    return {"1": 1, "7": 7, "n-1": n - 1, "n": n, "n+5": n + 5}[kind]


def _assert_results_agree(a, b):
    np.testing.assert_allclose(a.w, b.w, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(a.b, b.b, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(a.history, b.history, rtol=RTOL, atol=ATOL)
    assert a.history.shape == b.history.shape
    assert (a.epochs_run, a.n_steps, a.batch_size) == (b.epochs_run, b.n_steps, b.batch_size)


@pytest.mark.parametrize("shuffle_seed", SHUFFLES, ids=["ordered", "shuffled"])
@pytest.mark.parametrize("fit_intercept", [True, False], ids=["intercept", "no-intercept"])
@pytest.mark.parametrize("loss", ["mse", "half_mse"])
@pytest.mark.parametrize("batch_kind", BATCH_SIZES)
@pytest.mark.parametrize("method", ["batch", "sgd", "minibatch"])
@pytest.mark.parametrize("shape", SHAPES + [WIDE], ids=lambda s: f"{s[0]}x{s[1]}")
def test_fit_backends_agree(regression, shape, method, batch_kind, loss, fit_intercept,
                            shuffle_seed):
    """fit's w, b and history agree between backends over the whole option grid,
    including d=1 and n not divisible by the batch size."""
    n, d = shape
    X, y = regression(n, d, seed=n + d)
    options = dict(method=method, batch_size=_batch_size(batch_kind, n), lr=0.02, epochs=3,
                   loss=loss, fit_intercept=fit_intercept, shuffle=shuffle_seed is not None,
                   seed=shuffle_seed, b0=0.1)
    compiled = gdcore.fit(X, y, backend="cython", **options)
    reference = gdcore.fit(X, y, backend="reference", **options)
    _assert_results_agree(compiled, reference)
    # Training moved the parameters: the comparison is not between two copies of w0.
    assert np.abs(compiled.w).max() > 1e-3


@pytest.mark.parametrize("method", ["batch", "sgd", "minibatch"])
def test_fit_backends_agree_from_given_start(regression, method):
    """Agreement also holds from non-zero w0 and b0 over more epochs."""
    X, y = regression(37, 4, seed=11)
    options = dict(method=method, batch_size=5, lr=0.03, epochs=8, w0=[0.5, -1.0, 2.0, 0.25],
                   b0=-0.75, shuffle=True, seed=123)
    _assert_results_agree(gdcore.fit(X, y, **options),
                          gdcore.fit(X, y, backend="reference", **options))


def test_reference_fit_is_the_reference_backend(regression):
    """gdcore.reference.fit is gdcore.fit with backend="reference" (same numbers)
    and refuses a backend argument."""
    X, y = regression(20, 2)
    options = dict(method="minibatch", batch_size=6, lr=0.05, epochs=2, seed=1)
    a = gdcore.reference.fit(X, y, **options)
    b = gdcore.fit(X, y, backend="reference", **options)
    np.testing.assert_array_equal(a.w, b.w)
    assert a.b == b.b
    np.testing.assert_array_equal(a.history, b.history)
    with pytest.raises(TypeError, match="backend"):
        gdcore.reference.fit(X, y, backend="cython")


@pytest.mark.parametrize("loss", ["mse", "half_mse"])
@pytest.mark.parametrize("shape", SHAPES + [(1, 1), (3000, 12)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_value_and_grad_backends_agree(shape, loss):
    """value_and_grad's loss and both gradients agree between backends (the
    3000 x 12 case spans several row blocks of the parallel pass and a d that
    is not a multiple of the 8-way unrolled dot product)."""
    n, d = shape
    rng = np.random.default_rng(n * d)
    X = rng.standard_normal((n, d))
    y = rng.standard_normal(n)
    w = rng.standard_normal(d)
    compiled = gdcore.value_and_grad(X, y, w, 0.4, loss=loss, backend="cython")
    reference = gdcore.value_and_grad(X, y, w, 0.4, loss=loss, backend="reference")
    assert compiled[0] == pytest.approx(reference[0], rel=RTOL, abs=ATOL)
    np.testing.assert_allclose(compiled[1], reference[1], rtol=RTOL, atol=ATOL)
    assert compiled[2] == pytest.approx(reference[2], rel=RTOL, abs=ATOL)
    # and gdcore.reference.value_and_grad is the reference backend
    twin = gdcore.reference.value_and_grad(X, y, w, 0.4, loss=loss)
    assert twin[0] == reference[0] and twin[2] == reference[2]
    np.testing.assert_array_equal(twin[1], reference[1])


@pytest.mark.parametrize("shape", SHAPES + [(1, 1), (500, 9)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_predict_matches_reference_predict(shape):
    """gdcore.predict agrees with the plain-Python gdcore.reference.predict and
    with X @ w + b."""
    n, d = shape
    rng = np.random.default_rng(d)
    X = rng.standard_normal((n, d))
    w = rng.standard_normal(d)
    compiled = gdcore.predict(X, w, -1.5)
    reference = gdcore.reference.predict(X, w, -1.5)
    assert compiled.shape == reference.shape == (n,)
    assert compiled.dtype == reference.dtype == np.float64
    np.testing.assert_allclose(compiled, reference, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(compiled, X @ w - 1.5, rtol=1e-12, atol=ATOL)


@pytest.mark.parametrize("backend", ["cython", "reference"])
def test_one_dimensional_X_is_one_feature(regression, backend):
    """A 1-D X of shape (n,) trains, evaluates and predicts like its (n, 1) column."""
    X, y = regression(25, 1)
    options = dict(method="minibatch", batch_size=4, lr=0.05, epochs=3, seed=5,
                   backend=backend)
    flat, column = gdcore.fit(X[:, 0], y, **options), gdcore.fit(X, y, **options)
    np.testing.assert_array_equal(flat.w, column.w)
    assert flat.b == column.b
    np.testing.assert_array_equal(flat.history, column.history)
    a = gdcore.value_and_grad(X[:, 0], y, [0.3], 0.1, backend=backend)
    b = gdcore.value_and_grad(X, y, [0.3], 0.1, backend=backend)
    assert a[0] == b[0] and a[2] == b[2]
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(gdcore.predict(X[:, 0], [2.0], 1.0), X[:, 0] * 2.0 + 1.0)


@pytest.mark.parametrize("lr", [0.01, 1e300, 1e308])
@pytest.mark.parametrize("method", ["batch", "sgd", "minibatch"])
@pytest.mark.parametrize("backend", ["cython", "reference"])
def test_exact_solution_is_a_fixed_point_for_any_finite_lr(backend, method, lr):
    """Starting at an exact solution (every residual exactly 0, so every gradient
    is exactly 0) a step changes nothing, whatever the (finite, valid) learning
    rate: w - lr * 0 == w. Both backends must return w0 and b0 unchanged."""
    X = np.array([[1.0, 0.5], [2.0, -1.0], [3.0, 2.0], [-1.0, 0.25]])
    w0, b0 = np.array([2.0, -1.0]), 0.5
    y = X @ w0 + b0                       # exact in binary floating point
    assert np.all(X @ w0 + b0 - y == 0.0)
    result = gdcore.fit(X, y, method=method, batch_size=3, lr=lr, epochs=2, w0=w0, b0=b0,
                        shuffle=False, backend=backend)
    np.testing.assert_array_equal(result.w, w0)
    assert result.b == b0
    np.testing.assert_array_equal(result.history, [0.0, 0.0])


def _kernel_variants():
    """The compiled kernel builds this CPU can run (baseline, AVX2, AVX-512),
    when the package builds several; otherwise just the one in use."""
    try:
        from gdcore import _dispatch
    except ImportError:
        return {"in use": gdcore._api._kernels}
    return {name: _dispatch.load(name) for name in _dispatch.available()}


@pytest.mark.parametrize("n_features", [10, 37])
def test_every_kernel_build_computes_the_same_bits(monkeypatch, regression, n_features):
    """Every instruction-set build of the kernels gives bit-identical
    value_and_grad and fit results (they differ in speed only), on shapes that
    use the vector paths (d = 10: short rows, d = 37) and several row blocks
    (n = 3000), with and without momentum and weight decay."""
    variants = _kernel_variants()
    if len(variants) < 2:
        pytest.skip("only one kernel build on this machine")
    X, y = regression(3000, n_features, seed=1)
    w = np.linspace(-0.5, 0.5, n_features)
    outputs = {}
    for name, module in variants.items():
        monkeypatch.setattr(gdcore._api, "_kernels", module)
        monkeypatch.setattr(gdcore._api, "_short_row_kernels", module)
        results = [gdcore.value_and_grad(X, y, w, 0.1, loss="half_mse")]
        for method in ("batch", "sgd", "minibatch"):
            for options in ({}, dict(momentum=0.8, nesterov=True, weight_decay=0.01)):
                fitted = gdcore.fit(X, y, method=method, batch_size=32, lr=0.005, epochs=2,
                                    seed=3, **options)
                results.append((fitted.w, fitted.b, fitted.history))
        outputs[name] = results
    first_name, first = next(iter(outputs.items()))
    for name, results in outputs.items():
        for got, want in zip(results, first):
            for a, b in zip(got, want):
                assert np.array_equal(a, b), (name, first_name)


def test_short_rows_take_the_avx2_build_where_avx512_is_chosen(regression):
    """Per-sample epochs on rows of at most SHORT_ROW_FEATURES use the AVX2
    build when the AVX-512 one was chosen unforced (it is faster there), and
    the chosen build otherwise; either way the fit is the same bits as the
    chosen build's own."""
    from gdcore import _dispatch
    chosen = gdcore._api._kernels
    short = gdcore._api._short_row_kernels
    forced = bool(os.environ.get("GDCORE_KERNELS", "").strip())
    if _dispatch.KERNELS_NAME == "avx512" and not forced:
        assert short is _dispatch.load("avx2")
    else:
        assert short is chosen
    X, y = regression(500, _dispatch.SHORT_ROW_FEATURES, seed=2)
    fitted = gdcore.fit(X, y, method="sgd", lr=0.01, epochs=2, shuffle=False, momentum=0.5)
    params = np.zeros(X.shape[1] + 1)
    grad_sum = np.zeros_like(params)
    velocity = np.zeros_like(params)
    for epoch in range(2):
        rule = chosen.Rule(lr=0.01, batch_size=1, momentum=0.5)
        chosen.run_epoch(X, y, None, None, params, velocity, None, grad_sum, rule,
                         epoch * 500, 0, 500)
    np.testing.assert_array_equal(fitted.w, params[:-1])
    assert fitted.b == params[-1]
