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
from sklearn.utils.estimator_checks import (  # noqa: E402
    check_estimator,
    parametrize_with_checks,
)


@parametrize_with_checks([gdcore.LinearRegressor()])
def test_each_sklearn_check(estimator, check):
    """Each of scikit-learn's estimator checks, one test each."""
    check(estimator)


def test_check_estimator_passes_completely():
    """check_estimator as a user runs it: every check passes, none is an
    expected failure, and nothing warns about the estimator's conventions."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = check_estimator(gdcore.LinearRegressor(), on_fail=None)
    # check_array_api_input is skipped for every estimator unless the
    # environment asks for array-API checks (SCIPY_ARRAY_API=1)
    environment = {"check_array_api_input"}
    failed = {r["check_name"]: f"{r['status']}: {str(r['exception'])[:300]}" for r in results
              if r["status"] != "passed"
              and not (r["status"] == "skipped" and r["check_name"] in environment)}
    assert failed == {}
    assert len(results) > 40
    assert "check_fit1d" in {r["check_name"] for r in results if r["status"] == "passed"}
    assert [str(w.message) for w in caught if "BaseEstimator" in str(w.message)
            or "gdcore" in w.filename] == []


def test_inherits_from_sklearn_bases():
    from sklearn.base import BaseEstimator, RegressorMixin, is_regressor

    assert issubclass(gdcore.LinearRegressor, BaseEstimator)
    assert issubclass(gdcore.LinearRegressor, RegressorMixin)
    assert is_regressor(gdcore.LinearRegressor())


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


# ---------------------------------------------------------------------------
# scikit-learn's input conventions, one by one
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def problem():
    X, y, _ = gdcore.make_regression(200, 3, noise=0.1, bias=0.5, seed=4)
    return X, y


FAST = dict(method="batch", lr=0.3, epochs=200)


def test_1d_X_is_refused_by_the_estimator_but_not_by_fit(problem):
    X, y = problem
    model = gdcore.LinearRegressor(**FAST)
    for call in (lambda: model.fit(X[:, 0], y), lambda: model.partial_fit(X[:, 0], y),
                 lambda: model.fit(list(X[:, 0]), y)):
        with pytest.raises(ValueError, match="X must be 2-D.*Reshape your data"):
            call()
    assert not hasattr(model, "coef_")
    model.fit(X[:, :1], y)
    for call in (lambda: model.predict(X[:, 0]), lambda: model.score(X[:, 0], y)):
        with pytest.raises(ValueError, match="Reshape your data"):
            call()
    # gdcore.fit keeps taking a 1-D X as one feature
    assert gdcore.fit(X[:, 0], y, **FAST).w.shape == (1,)


def test_object_arrays_of_numbers_are_converted(problem):
    X, y = problem
    plain = gdcore.LinearRegressor(**FAST).fit(X, y)
    objects = gdcore.LinearRegressor(**FAST).fit(X.astype(object), y.astype(object))
    np.testing.assert_array_equal(objects.coef_, plain.coef_)
    np.testing.assert_array_equal(objects.predict(X.astype(object)), plain.predict(X))
    result = gdcore.fit(X.astype(object), y, **FAST)
    np.testing.assert_array_equal(result.w, plain.coef_)
    assert result.copied == ("X",)
    # any real number: Python and NumPy numbers, bools, Fractions, Decimals
    from decimal import Decimal
    from fractions import Fraction

    mixed = np.array([[1, 2.5, True], [np.float32(0.5), Fraction(1, 4), Decimal("0.125")]],
                     dtype=object)
    np.testing.assert_array_equal(gdcore.fit(mixed, [1.0, 2.0], epochs=0).w, np.zeros(3))
    from gdcore import _validation
    np.testing.assert_array_equal(_validation.as_float_array(mixed, "X"),
                                  [[1, 2.5, 1], [0.5, 0.25, 0.125]])


@pytest.mark.parametrize("bad, error, message", [
    ({"foo": "bar"}, TypeError, r"X must hold real numbers.*dict.*index \(2, 1\).*"
                                r"argument must be a string or a real number"),
    ("1.5", TypeError, r"X must hold real numbers.*'1.5' \(type str\) at index \(2, 1\)"),
    (None, ValueError, r"X has 1 missing value\(s\) \(the first at index \(2, 1\)\)"),
    (1 + 2j, TypeError, "X must hold real numbers.*complex"),
])
def test_object_arrays_of_other_things_are_refused(problem, bad, error, message):
    X, y = problem
    X = X.astype(object)
    X[2, 1] = bad
    with pytest.raises(error, match=message):
        gdcore.LinearRegressor().fit(X, y)
    with pytest.raises(error, match=message):
        gdcore.fit(X, y)


# ---------------------------------------------------------------------------
# pandas
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pd():
    return pytest.importorskip("pandas")


@pytest.fixture
def frame(pd, problem):
    X, y = problem
    return pd.DataFrame(X, columns=["size", "age", "rooms"]), pd.Series(y, name="price")


def test_feature_names_in_from_a_dataframe(frame, problem):
    X_frame, y = frame
    X, _ = problem
    model = gdcore.LinearRegressor(**FAST).fit(X_frame, y)
    assert model.feature_names_in_.dtype == object
    assert list(model.feature_names_in_) == ["size", "age", "rooms"]
    with pytest.warns(UserWarning, match="X does not have valid feature names") as caught:
        np.testing.assert_array_equal(model.predict(X_frame), model.predict(X))
    assert caught[0].filename == __file__       # the caller's line
    # a later fit on an array forgets the names
    model.fit(X, y.to_numpy())
    assert not hasattr(model, "feature_names_in_")


@pytest.mark.parametrize("columns, message", [
    (["age", "size", "rooms"], "Feature names must be in the same order as they were in fit"),
    (["size", "age", "floors"], "Feature names unseen at fit time:\n- floors\n"
                                "Feature names seen at fit time, yet now missing:\n- rooms"),
])
def test_reordered_or_other_columns_are_refused(frame, columns, message):
    """The bug the issue found: reordered columns gave wrong predictions silently."""
    X_frame, y = frame
    model = gdcore.LinearRegressor(**FAST).fit(X_frame, y)
    other = X_frame.rename(columns=dict(zip(X_frame.columns, columns, strict=True)))
    for call in (lambda: model.predict(other), lambda: model.score(other, y),
                 lambda: model.partial_fit(other, y)):
        with pytest.raises(ValueError, match=message):
            call()
    # columns picked by name are fine, in any order
    np.testing.assert_array_equal(model.predict(X_frame[["size", "age", "rooms"]]),
                                  model.predict(X_frame))


def test_names_on_one_side_only_warn(frame, problem):
    X_frame, y = frame
    X, _ = problem
    model = gdcore.LinearRegressor(**FAST).fit(X_frame, y)
    with pytest.warns(UserWarning, match="X does not have valid feature names, but "
                                         "LinearRegressor was fitted with feature names"):
        model.predict(X)
    model = gdcore.LinearRegressor(**FAST).fit(X, y)
    with pytest.warns(UserWarning, match="X has feature names, but LinearRegressor was "
                                         "fitted without feature names"):
        model.predict(X_frame)


def test_mixed_column_name_types_are_refused(pd, problem):
    X, y = problem
    X_frame = pd.DataFrame(X, columns=["a", 1, "c"])
    with pytest.raises(TypeError, match="column names must all be strings"):
        gdcore.LinearRegressor().fit(X_frame, y)
    # no string names at all: no feature names, as in scikit-learn
    model = gdcore.LinearRegressor(**FAST).fit(pd.DataFrame(X), y)
    assert not hasattr(model, "feature_names_in_")


@pytest.mark.parametrize("dtype", ["Float64", "Int64", "float32", "object"])
def test_nullable_and_object_columns_are_accepted(pd, problem, dtype):
    X, y = problem
    X = np.round(X * 10)                       # integers, so that Int64 holds them
    X_frame = pd.DataFrame(X, columns=["a", "b", "c"]).astype(dtype)
    y_series = pd.Series(np.round(y * 10)).astype("Float64" if dtype == "object" else dtype)
    model = gdcore.LinearRegressor(method="batch", lr=0.003, epochs=50).fit(X_frame, y_series)
    plain = gdcore.LinearRegressor(method="batch", lr=0.003, epochs=50).fit(
        X, np.round(y * 10))
    np.testing.assert_allclose(model.coef_, plain.coef_, rtol=1e-6 if dtype == "float32"
                               else 0)
    assert list(model.feature_names_in_) == ["a", "b", "c"]
    assert np.isfinite(model.predict(X_frame)).all()


def test_a_missing_value_is_refused_naming_X_or_y(pd, problem):
    X, y = problem
    X_frame = pd.DataFrame(X, columns=["a", "b", "c"]).astype("Float64")
    X_frame.iloc[5, 2] = pd.NA
    with pytest.raises(ValueError, match=r"^X has 1 missing value\(s\) \(the first in row 5, "
                                         r"column 'c'\)"):
        gdcore.LinearRegressor().fit(X_frame, y)
    with pytest.raises(ValueError, match="^X has 1 missing value"):
        gdcore.fit(X_frame, y)
    y_series = pd.Series(y).astype("Float64")
    y_series.iloc[3] = pd.NA
    with pytest.raises(ValueError, match=r"^y has 1 missing value\(s\) \(the first in row 3\)"):
        gdcore.LinearRegressor().fit(X, y_series)
    X_frame = pd.DataFrame(X, columns=["a", "b", "c"]).astype(object)
    X_frame.iloc[0, 0] = "text"
    with pytest.raises(TypeError, match="X must hold real numbers.*'text'"):
        gdcore.LinearRegressor().fit(X_frame, y)


def test_importing_gdcore_does_not_import_sklearn():
    """scikit-learn is imported only when LinearRegressor is first used."""
    import subprocess
    import sys

    code = ("import sys, gdcore; assert 'sklearn' not in sys.modules; "
            "gdcore.LinearRegressor; assert 'sklearn.base' in sys.modules; "
            "from gdcore import LinearRegressor; assert 'LinearRegressor' in dir(gdcore)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
