"""Every exception gdcore defines pickles and unpickles to an error that acts
the same: same type (and bases), message, args and attributes, notes
included. Errors cross process boundaries this way (joblib and
multiprocessing workers, Dask).
"""

from __future__ import annotations

import pickle
import sys

import numpy as np
import pytest

import gdcore
from gdcore import DivergenceError, NotFittedError
from gdcore._io import CommandError
from gdcore._validation import DataTypeError


def _round_trip(error):
    return pickle.loads(pickle.dumps(error))


def _assert_same(error, copy):
    assert type(copy) is type(error)
    assert str(copy) == str(error) and copy.args == error.args
    assert copy.__notes__ == error.__notes__
    for name, value in vars(error).items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(getattr(copy, name), value)
        else:
            assert getattr(copy, name) == value


def _raised(call):
    try:
        call()
    except Exception as exc:
        return exc
    raise AssertionError("nothing was raised")


def _divergence():
    X, y, _ = gdcore.make_regression(50, 3, seed=0)
    return _raised(lambda: gdcore.fit(X, y, method="batch", lr=1e6, epochs=50))


def _command_error():
    from gdcore._cli import train
    return _raised(lambda: train(["-o", "model.txt"], "gdcore"))


@pytest.mark.parametrize("make", [
    _divergence,
    _command_error,
    lambda: _raised(lambda: gdcore.fit([["a", "b"]], [1.0])),
    lambda: NotFittedError("this LinearRegressor is not fitted yet"),
    lambda: DivergenceError("made by hand", w=np.ones(2), b=np.zeros(3), epoch=4, step=0,
                            history=np.arange(4.0)),
], ids=["DivergenceError", "CommandError", "DataTypeError", "NotFittedError",
        "DivergenceError-multi-output"])
def test_pickles_to_an_equal_acting_error(make):
    error = make()
    assert isinstance(error, (DivergenceError, CommandError, DataTypeError, NotFittedError))
    error.add_note("seen in a worker")
    error.extra = "an attribute set by the caller"
    copy = _round_trip(error)
    _assert_same(error, copy)
    if isinstance(error, DivergenceError):
        assert isinstance(copy, FloatingPointError)
        assert (copy.epoch, copy.step) == (error.epoch, error.step)
    if isinstance(error, DataTypeError):
        assert isinstance(copy, TypeError) and isinstance(copy, ValueError)


def test_not_fitted_error_pickles_once_scikit_learn_is_imported():
    """The error is then also scikit-learn's NotFittedError (a class made at
    run time), which pickle could not find by name: joblib workers failed."""
    from sklearn.exceptions import NotFittedError as SklearnNotFittedError

    error = _raised(lambda: gdcore.LinearRegressor().predict([[1.0]]))
    assert isinstance(error, SklearnNotFittedError) and isinstance(error, NotFittedError)
    error.add_note("seen in a worker")
    copy = _round_trip(error)
    _assert_same(error, copy)
    assert isinstance(copy, SklearnNotFittedError) and isinstance(copy, NotFittedError)
    assert isinstance(copy, ValueError) and isinstance(copy, AttributeError)


def test_not_fitted_error_unpickled_without_scikit_learn(monkeypatch):
    """Where scikit-learn is missing, it comes back as gdcore's NotFittedError."""
    pytest.importorskip("sklearn")
    error = _raised(lambda: gdcore.LinearRegressor().predict([[1.0]]))
    data = pickle.dumps(error)
    monkeypatch.setitem(sys.modules, "sklearn.exceptions", None)
    copy = pickle.loads(data)
    assert type(copy) is NotFittedError and str(copy) == str(error)


def test_a_subclass_of_a_gdcore_error_keeps_its_type():
    class Mine(NotFittedError):
        pass

    class MyDivergence(DivergenceError):
        pass

    for error in (Mine("x"), MyDivergence("d", w=np.ones(1), b=0.0, epoch=0, step=0,
                                          history=np.ones(0))):
        globals()[type(error).__name__] = type(error)      # picklable by name
        type(error).__qualname__ = type(error).__name__
        try:
            copy = _round_trip(error)
        finally:
            del globals()[type(error).__name__]
        assert type(copy) is type(error) and str(copy) == str(error)
