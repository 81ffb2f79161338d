"""LinearRegressor in scikit-learn's world (skipped when scikit-learn is absent).

scikit-learn is an optional test dependency: gdcore never imports it itself.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import gdcore

sklearn = pytest.importorskip("sklearn")
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import check_estimator  # noqa: E402

#: Checks that fail by design, with the reason (scikit-learn reports them as
#: expected failures instead of errors).
EXPECTED_FAILED = {
    "check_fit1d": "a 1-D X is one feature in gdcore (README), not an error",
    "check_dtype_object": "object arrays are refused (TypeError) rather than converted",
}


def test_check_estimator_passes():
    """Every scikit-learn estimator check passes, but the two listed above."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(gdcore.LinearRegressor(), on_fail=None,
                                  expected_failed_checks=EXPECTED_FAILED)
    failed = {r["check_name"]: str(r["exception"])[:300] for r in results
              if r["status"] == "failed"}
    assert failed == {}
    outcome = {r["check_name"]: r["status"] for r in results}
    for name in EXPECTED_FAILED:
        assert outcome.get(name) == "xfail", name


def test_not_fitted_error_is_also_sklearns():
    """With scikit-learn loaded, predicting before fit raises an error that is both
    gdcore's NotFittedError and scikit-learn's, and still a ValueError/AttributeError."""
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError) as info:
        gdcore.LinearRegressor().predict(np.ones((2, 2)))
    assert isinstance(info.value, gdcore.NotFittedError)
    assert isinstance(info.value, ValueError) and isinstance(info.value, AttributeError)


def test_pipeline_grid_search_and_cross_validation():
    """The estimator drops into a pipeline, a grid search and cross-validation."""
    X, y, _ = gdcore.make_regression(300, 4, noise=0.1, bias=2.0, seed=0)
    X = X * np.array([1.0, 10.0, 100.0, 0.1])         # badly scaled on purpose
    pipe = make_pipeline(StandardScaler(), gdcore.LinearRegressor(method="batch", epochs=300,
                                                                 lr=0.1))
    search = GridSearchCV(pipe, {"linearregressor__lr": [0.01, 0.3]}, cv=3)
    search.fit(X, y)
    assert search.best_params_ == {"linearregressor__lr": 0.3}
    scores = cross_val_score(search.best_estimator_, X, y, cv=3)
    assert scores.min() > 0.99


def test_random_state_is_an_alias_of_seed():
    """random_state seeds the model like seed; setting both is refused."""
    X, y, _ = gdcore.make_regression(100, 3, seed=1)
    a = gdcore.LinearRegressor(method="sgd", epochs=2, seed=5).fit(X, y)
    b = gdcore.LinearRegressor(method="sgd", epochs=2, random_state=5).fit(X, y)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    with pytest.raises(ValueError, match="random_state"):
        gdcore.LinearRegressor(seed=1, random_state=2).fit(X, y)
