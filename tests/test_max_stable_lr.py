"""gdcore.max_stable_lr: the largest stable full-batch rate, 2 / lambda_max(H)
with H = (2a/n) A^T A, A = [X, 1] (or X without intercept). Checked against
numpy.linalg.eigvalsh, against full-batch descent itself (0.9x the bound
converges, 1.1x diverges), and through fit(check_lr=True).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import gdcore


def _exact_bound(X, a=1.0, fit_intercept=True):
    """2 / lambda_max(H), H = (2a/n) A^T A, by numpy.linalg.eigvalsh."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    n = X.shape[0]
    A = np.c_[X, np.ones(n)] if fit_intercept else X
    H = 2 * a / n * A.T @ A
    return 2 / np.linalg.eigvalsh(H).max()


def _separated(n, scales, seed, offset=0.0):
    """X whose columns have very different scales, so that the top eigenvalue
    of A^T A is well separated from the next one."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, len(scales))) * np.array(scales) + offset


CASES = {
    "d1": _separated(50, [3.0], 0),
    "d3": _separated(80, [5.0, 1.0, 0.3], 1),
    "d5-offset": _separated(120, [4.0, 1.0, 0.5, 0.2, 0.1], 2, offset=0.5),
    "d4-large": _separated(200, [100.0, 10.0, 1.0, 1.0], 3),
}


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("loss", ["mse", "half_mse"])
@pytest.mark.parametrize("case", list(CASES))
def test_matches_eigvalsh(loss_factor, backend, case, loss, fit_intercept):
    X = CASES[case]
    expected = _exact_bound(X, loss_factor[loss], fit_intercept)
    got = gdcore.max_stable_lr(X, loss=loss, fit_intercept=fit_intercept, backend=backend)
    assert got == pytest.approx(expected, rel=1e-6)
    # the power iteration approaches lambda_max from below: never a smaller bound
    assert got >= expected * (1 - 1e-12)


@pytest.mark.parametrize("case", list(CASES))
def test_backends_agree(assert_agree, case):
    """The power iteration's passes over X are the backends' raw sums: the two
    estimates agree to the backends' tolerance."""
    X = CASES[case]
    for options in ({}, dict(loss="half_mse", fit_intercept=False, iterations=5)):
        assert_agree(gdcore.max_stable_lr(X, **options),
                     gdcore.max_stable_lr(X, backend="reference", **options))


def test_one_dimensional_X_and_lists(case="d1"):
    X = CASES[case]
    expected = gdcore.max_stable_lr(X)
    assert gdcore.max_stable_lr(X[:, 0]) == expected
    assert gdcore.max_stable_lr(X.tolist()) == expected


def test_half_mse_allows_twice_the_rate():
    X = CASES["d3"]
    assert gdcore.max_stable_lr(X, loss="half_mse") == pytest.approx(
        2 * gdcore.max_stable_lr(X, loss="mse"), rel=1e-12)


def test_independent_of_threads_and_leaves_X_alone():
    X = CASES["d5-offset"].copy()
    copy = X.copy()
    one = gdcore.max_stable_lr(X, n_threads=1)
    assert gdcore.max_stable_lr(X, n_threads=2) == one
    np.testing.assert_array_equal(X, copy)


def test_more_iterations_tighten_the_estimate():
    """Fewer iterations give an estimate of lambda_max from below, i.e. a bound
    from above; it tightens as iterations grow."""
    X = _separated(60, [2.0, 1.5, 1.0], 7)
    expected = _exact_bound(X)
    estimates = [gdcore.max_stable_lr(X, iterations=k) for k in (1, 3, 10, 200)]
    assert all(e >= expected * (1 - 1e-12) for e in estimates)
    assert estimates[0] >= estimates[1] >= estimates[2] >= estimates[3]
    assert estimates[3] == pytest.approx(expected, rel=1e-9)


def test_all_zero_X():
    """X = 0: without intercept any rate is stable (inf); with it, the
    intercept's curvature 2a alone sets the bound 1/a."""
    X = np.zeros((10, 2))
    assert gdcore.max_stable_lr(X, fit_intercept=False) == np.inf
    assert gdcore.max_stable_lr(X) == pytest.approx(1.0, rel=1e-12)
    assert gdcore.max_stable_lr(X, loss="half_mse") == pytest.approx(2.0, rel=1e-12)


# ---------------------------------------------------------------------------
# Start vectors orthogonal to the top eigenvector
# ---------------------------------------------------------------------------

def test_top_direction_orthogonal_to_ones_without_intercept():
    """X = [u, -u]: A^T A has its top eigenvector along (1, -1), exactly
    orthogonal to (1, 1); X is not zero, so the bound is finite (2/(2*2|u|^2/n)),
    not inf."""
    u = np.array([1.0, 2.0, -1.0, 0.5])
    X = np.c_[u, -u]
    expected = _exact_bound(X, fit_intercept=False)
    assert np.isfinite(expected)
    assert gdcore.max_stable_lr(X, fit_intercept=False) == pytest.approx(expected, rel=1e-6)


def test_top_direction_orthogonal_to_ones_with_intercept():
    """X = [u, -u] with mean(u) = 0 and |u|^2 large: A = [X, 1] has its top
    eigenvector along (1, -1, 0), orthogonal to (1, 1, 1); the bound must
    still be 2 / lambda_max (here 1/18), not the intercept's 1."""
    u = 3.0 * np.array([1.0, -1.0, 1.0, -1.0])
    X = np.c_[u, -u]
    expected = _exact_bound(X)
    assert expected == pytest.approx(1 / 18, rel=1e-12)
    assert gdcore.max_stable_lr(X) == pytest.approx(expected, rel=1e-6)


# ---------------------------------------------------------------------------
# It is the stability limit of full-batch descent
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def problem():
    X = _separated(60, [2.0, 1.0, 0.7], 11, offset=0.3)
    y = X @ np.array([1.0, -0.5, 2.0]) + 0.4 + 0.1 * np.random.default_rng(5).standard_normal(60)
    return X, y


@pytest.mark.parametrize("loss", ["mse", "half_mse"])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_below_the_bound_converges_above_diverges(problem, loss_factor, loss, fit_intercept):
    X, y = problem
    bound = gdcore.max_stable_lr(X, loss=loss, fit_intercept=fit_intercept)
    options = dict(method="batch", epochs=300, loss=loss, fit_intercept=fit_intercept)
    stable = gdcore.fit(X, y, lr=0.9 * bound, **options)
    A = np.c_[X, np.ones(60)] if fit_intercept else X
    theta = np.linalg.lstsq(A, y, rcond=None)[0]
    best = loss_factor[loss] * np.mean((A @ theta - y) ** 2)
    assert stable.history[-1] == pytest.approx(best, rel=1e-6)
    assert stable.history[-1] < stable.history[0]
    unstable = gdcore.fit(X, y, lr=1.1 * bound, on_divergence="stop", **options)
    # the top mode grows by |1 - 2.2| = 1.2 per epoch
    assert unstable.history[-1] > 1e6 * unstable.history[0]
    with pytest.raises(gdcore.DivergenceError):
        gdcore.fit(X, y, lr=1.1 * bound, method="batch", epochs=10000, loss=loss,
                   fit_intercept=fit_intercept)


# ---------------------------------------------------------------------------
# fit(check_lr=True)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["batch", "sgd", "minibatch"])
def test_check_lr_warns_above_the_bound(problem, method):
    X, y = problem
    bound = gdcore.max_stable_lr(X)
    with pytest.warns(RuntimeWarning, match="largest learning rate for which full-batch"):
        gdcore.fit(X, y, method=method, lr=1.05 * bound, epochs=1, check_lr=True,
                   on_divergence="stop")


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("loss", ["mse", "half_mse"])
def test_check_lr_is_silent_below_the_bound(problem, loss, fit_intercept):
    X, y = problem
    bound = gdcore.max_stable_lr(X, loss=loss, fit_intercept=fit_intercept)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gdcore.fit(X, y, method="batch", lr=0.95 * bound, epochs=2, loss=loss,
                   fit_intercept=fit_intercept, check_lr=True)
        gdcore.fit(X, y, method="batch", lr=1.05 * bound, epochs=2, loss=loss,
                   fit_intercept=fit_intercept)          # check_lr off: no warning
    with pytest.warns(RuntimeWarning, match="largest learning rate for which full-batch"):
        gdcore.fit(X, y, method="batch", lr=1.05 * bound, epochs=1, loss=loss,
                   fit_intercept=fit_intercept, check_lr=True)


def test_check_lr_does_not_change_the_result(problem):
    X, y = problem
    a = gdcore.fit(X, y, method="sgd", lr=0.01, epochs=2, seed=0, check_lr=True)
    b = gdcore.fit(X, y, method="sgd", lr=0.01, epochs=2, seed=0)
    np.testing.assert_array_equal(a.w, b.w)


def test_check_lr_warns_for_top_direction_orthogonal_to_ones():
    """The warning must not depend on the luck of the start vector."""
    u = np.array([1.0, 2.0, -1.0, 0.5])
    X = np.c_[u, -u]
    y = np.zeros(4)
    lr = 2 * _exact_bound(X, fit_intercept=False)
    with pytest.warns(RuntimeWarning, match="largest learning rate for which full-batch"):
        gdcore.fit(X, y, method="batch", lr=lr, epochs=1, fit_intercept=False, check_lr=True)


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------

BAD = [
    (dict(loss="mae"), ValueError, "loss"),
    (dict(loss=None), TypeError, "loss"),
    (dict(fit_intercept=1), TypeError, "fit_intercept"),
    (dict(fit_intercept="no"), TypeError, "fit_intercept"),
    (dict(iterations=0), ValueError, "iterations"),
    (dict(iterations=-5), ValueError, "iterations"),
    (dict(iterations=2.5), TypeError, "iterations"),
    (dict(n_threads=0), ValueError, "n_threads"),
    (dict(n_threads="2"), TypeError, "n_threads"),
    (dict(backend="numpy"), ValueError, "backend"),
    (dict(backend=None), TypeError, "backend"),
]


@pytest.mark.parametrize("options,error,name", BAD, ids=[str(case[0]) for case in BAD])
def test_bad_arguments_raise_naming_them(options, error, name):
    with pytest.raises(error, match=name):
        gdcore.max_stable_lr(CASES["d3"], **options)


@pytest.mark.parametrize("X,error", [(np.zeros((0, 2)), ValueError),
                                     (np.zeros((3, 0)), ValueError),
                                     (np.zeros((2, 2, 2)), ValueError),
                                     ([[1.0, np.nan], [0.0, 1.0]], ValueError),
                                     ([[1.0, np.inf], [0.0, 1.0]], ValueError),
                                     ("X", TypeError)],
                         ids=["no-rows", "no-columns", "3d", "nan", "inf", "str"])
def test_bad_X_raises_naming_it(X, error):
    with pytest.raises(error, match="X"):
        gdcore.max_stable_lr(X)


def test_check_lr_must_be_bool(problem):
    X, y = problem
    with pytest.raises(TypeError, match="check_lr"):
        gdcore.fit(X, y, epochs=1, check_lr=1)
