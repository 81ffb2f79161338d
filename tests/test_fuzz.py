"""Property-based fuzzing of gdcore's public functions (hypothesis).

Every public function gets random shapes (0-d to 3-d, zero-size included),
dtypes (floats of every width, integers, bools, complex, strings, objects,
datetimes), layouts (C, Fortran, strided, reversed, unaligned, read-only,
lists), values (NaN and inf anywhere, 1e308, subnormals, -0.0) and option
values (zero, negative, huge batch sizes, NaN rates, wrong types). The
properties:

* no crash and no hang: the call returns, or raises ``TypeError`` or
  ``ValueError`` whose message names one of the arguments given to the call
  (as a whole word: ``X`` in "X must be 2-D", not in "Xeon"), or
  ``gdcore.DivergenceError``; nothing else;
* the inputs are unmodified (same dtype, shape, strides and bytes);
* what is returned has the documented shape (and type), and ``fit`` returns
  finite parameters (divergence raises).

CI runs ``GDCORE_FUZZ_EXAMPLES`` examples per test (default 100; the whole
file then takes well under a minute). A long run outside CI::

    GDCORE_FUZZ_EXAMPLES=20000 python -m pytest tests/test_fuzz.py -q \
        --hypothesis-show-statistics
"""

from __future__ import annotations

import inspect
import math
import numbers
import operator
import os
import pickle
import re
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import gdcore

EXAMPLES = int(os.environ.get("GDCORE_FUZZ_EXAMPLES", "100"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])
#: A call on these tiny inputs that takes longer than this is a hang.
SLOW = 20.0

SPECIAL = [0.0, -0.0, 1.0, -1.0, 1e308, -1e308, 1.7976931348623157e308, 5e-324,
           -5e-324, 2.2250738585072014e-308, 1e-310, 1e154, -1e154, 3.0, 0.5,
           math.nan, math.inf, -math.inf]
REAL_DTYPES = [np.float64, np.float64, np.float64, np.float32, np.float16, np.int64,
               np.int8, np.uint8, np.uint64, np.bool_]
ODD_DTYPES = [np.complex128, np.object_, "U3", "datetime64[s]"]


# ---------------------------------------------------------------------------
# strategies
# ---------------------------------------------------------------------------

finite_or_not = st.one_of(st.sampled_from(SPECIAL), st.floats(-1e3, 1e3),
                          st.floats(allow_nan=True, allow_infinity=True))


def _values(draw, dtype, size):
    kind = np.dtype(dtype).kind
    if kind == "f":
        values = draw(st.lists(finite_or_not, min_size=size, max_size=size))
        with np.errstate(over="ignore", invalid="ignore"):
            return np.array(values, dtype=np.float64).astype(dtype)
    if kind in "iu":
        info = np.iinfo(dtype)
        values = draw(st.lists(st.one_of(st.integers(-3, 3), st.sampled_from(
            [int(info.min), int(info.max)])), min_size=size, max_size=size))
        return np.array([min(max(v, int(info.min)), int(info.max)) for v in values],
                        dtype=dtype)
    if kind == "b":
        return np.array(draw(st.lists(st.booleans(), min_size=size, max_size=size)))
    if kind == "c":
        return np.array(draw(st.lists(finite_or_not, min_size=size, max_size=size)),
                        dtype=np.float64).astype(dtype) * (1 + 1j)
    if kind == "O":
        return np.array([draw(st.one_of(st.floats(), st.none(), st.text(max_size=2),
                                        st.integers()))
                         for _ in range(size)] or [], dtype=object)
    if kind == "U":
        return np.array(draw(st.lists(st.text(max_size=3), min_size=size,
                                      max_size=size)), dtype=dtype)
    return np.arange(size).astype(dtype)


def _layout(draw, array):
    """The same values in another memory layout (or as a list)."""
    layout = draw(st.sampled_from(["C", "C", "F", "strided", "reversed", "unaligned",
                                   "readonly", "list"]))
    if layout == "F":
        return np.asfortranarray(array)
    if layout == "strided" and array.ndim >= 1:
        wide = np.repeat(array, 2, axis=0)
        return wide[::2]
    if layout == "reversed" and array.ndim >= 1:
        return np.ascontiguousarray(array[::-1])[::-1]
    if layout == "unaligned" and array.dtype.kind in "biufc" and array.size:
        raw = np.zeros(array.nbytes + 1, dtype=np.uint8)
        view = raw[1:].view(array.dtype).reshape(array.shape)
        view[...] = array
        return view
    if layout == "readonly":
        array = array.copy()
        array.flags.writeable = False
        return array
    if layout == "list" and array.dtype.kind in "biuf":
        return array.tolist()
    return array


@st.composite
def arrays(draw, shape=None, dtypes=None, max_side=5):
    """A random array-like: random (or given) shape, dtype, values and layout."""
    if shape is None:
        ndim = draw(st.sampled_from([0, 1, 1, 2, 2, 2, 3]))
        shape = tuple(draw(st.integers(0, max_side)) for _ in range(ndim))
    dtype = draw(st.sampled_from(dtypes or REAL_DTYPES + ODD_DTYPES[:1] * 1)) \
        if dtypes != "any" else draw(st.sampled_from(REAL_DTYPES + ODD_DTYPES))
    if shape == () and np.dtype(dtype).kind in "biuf":
        # 0-d real arrays other than float64 hit a known validation bug (see
        # test_zero_d_arrays_are_refused_whatever_their_dtype); float64 only.
        dtype = np.float64
    size = int(np.prod(shape, dtype=np.int64))
    array = _values(draw, dtype, size).reshape(shape)
    return _layout(draw, array)


@st.composite
def problems(draw):
    """``(X, y, w)`` with mostly consistent shapes, sometimes not."""
    n = draw(st.integers(0, 6))
    d = draw(st.integers(0, 4))
    consistent = draw(st.booleans()) or draw(st.booleans())
    x_shape = draw(st.sampled_from([(n, d), (n, d), (n,), (n, d, 1), ()])) \
        if not consistent else draw(st.sampled_from([(n, d), (n,)]))
    dtypes = None if draw(st.integers(0, 4)) else "any"
    X = draw(arrays(shape=x_shape, dtypes=dtypes))
    y_shape = (n,) if consistent else draw(st.sampled_from([(n,), (n + 1,), (n, 1), ()]))
    y = draw(arrays(shape=y_shape, dtypes=dtypes))
    features = d if len(x_shape) == 2 else 1
    w_shape = (features,) if consistent else draw(st.sampled_from(
        [(features,), (features + 1,), (features, 1), ()]))
    w = draw(arrays(shape=w_shape))
    return X, y, w


reals = st.one_of(st.sampled_from(SPECIAL), st.floats(-10, 10),
                  st.sampled_from([None, "0.1", True, np.float32(0.25), np.array(0.5),
                                   np.array([0.5]), 1 + 0j, 10 ** 400, -(10 ** 400)]))
counts = st.one_of(st.integers(-2, 8),
                   st.sampled_from([0, 2 ** 31, 2 ** 62, sys.maxsize, 2 ** 63, 2 ** 100,
                                    1.0, 2.5, "3", None, True, np.int64(4),
                                    np.uint64(2 ** 63 + 5)]))
epochs_values = st.one_of(st.integers(0, 3),
                          st.sampled_from([-1, 1.0, "2", None, False, 2 ** 64, np.int8(2)]))
lrs = st.one_of(st.floats(1e-6, 0.5), st.sampled_from(
    [0.0, -0.1, 1e308, 5e-324, math.nan, math.inf, 1e3, 1e30, "0.1", None, True]))
threads = st.one_of(st.none(), st.integers(-1, 4), st.sampled_from([2000, 1.0, True, "2"]))


# ---------------------------------------------------------------------------
# the properties, checked around every call
# ---------------------------------------------------------------------------

def _snapshot(value):
    if isinstance(value, np.ndarray):
        data = value.tobytes() if value.dtype.kind != "O" else pickle.dumps(value.tolist())
        return ("array", value.dtype.str, value.shape, value.strides,
                value.flags.writeable, data)
    try:
        return ("pickle", pickle.dumps(value))
    except Exception:   # pragma: no cover - every value drawn here pickles
        return ("repr", repr(value))


def _argument_names(function, args, kwargs):
    """The names of the arguments given to ``function(*args, **kwargs)``: the
    parameters its positional arguments bind to, and its keywords."""
    signature = inspect.signature(function)
    bound = signature.bind(*args, **kwargs)
    names = set()
    for name, value in bound.arguments.items():
        if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
            names |= set(value)
        else:
            names.add(name)
    return names


def names_an_argument(message, names):
    """Whether ``message`` has one of ``names`` as a whole word (not inside a
    longer name: ``w`` is not named by "w0" or "weights")."""
    return any(re.search(rf"(?<!\w){re.escape(name)}(?!\w)", message) for name in names)


def test_names_an_argument_takes_whole_words_among_the_names_given():
    """The check of the error messages itself: a single letter does not match
    inside words, and only the names actually given count."""
    assert not names_an_argument("something went wrong", {"X", "y", "w", "b"})
    assert not names_an_argument("sample_weight must be 1-D", {"w", "weight"})
    assert not names_an_argument("w0 must have shape (3,)", {"w"})
    assert names_an_argument("w must have shape (3,)", {"w"})
    assert names_an_argument("X and y must have the same number of samples", {"y"})
    assert names_an_argument("got a bad value for X's 2nd column", {"X"})
    assert names_an_argument("n_threads must be an integer in [1, 1024]; got 0",
                             {"X", "n_threads"})
    assert not names_an_argument("n_threads must be an integer", {"threads"})
    assert _argument_names(gdcore.value_and_grad, (1, 2, 3), {"loss": "mse"}) == \
        {"X", "y", "w", "loss"}
    assert _argument_names(gdcore.descent_path, (1, 2), {"lr": 0.1}) == {"X", "y", "lr"}


def _call(function, *args, also=(), **kwargs):
    """Call; return ``("ok", result)`` or ``("error", exc)`` for the allowed
    errors, after checking the inputs are untouched and the call was quick.

    An error must name one of the arguments given to the call (or of
    ``also``: the arguments given to the constructor of an estimator whose
    method is called)."""
    names = _argument_names(function, args, kwargs) | set(also)
    before = [_snapshot(a) for a in args] + [_snapshot(v) for v in kwargs.values()]
    start = time.perf_counter()
    try:
        outcome = ("ok", function(*args, **kwargs))
    except gdcore.DivergenceError as exc:
        assert np.isfinite(exc.w).all() and np.isfinite(exc.b).all(), exc
        outcome = ("error", exc)
    except (TypeError, ValueError) as exc:
        message = str(exc)
        assert names_an_argument(message, names), \
            f"the error names none of {sorted(names)}: {message!r}"
        outcome = ("error", exc)
    elapsed = time.perf_counter() - start
    assert elapsed < SLOW, f"call took {elapsed:.1f} s"
    after = [_snapshot(a) for a in args] + [_snapshot(v) for v in kwargs.values()]
    assert after == before, "an input was modified"
    return outcome


def _small(n_samples, n_features, limit=10 ** 5):
    """False when both are integer-like and their product is above ``limit``."""
    try:
        return operator.index(n_samples) * operator.index(n_features) <= limit
    except TypeError:
        return True


def _as_array(value):
    """``value`` as gdcore takes it: an array (an object array of real numbers
    as float64), or None."""
    try:
        array = np.asarray(value)
    except Exception:
        return None
    if array.dtype.kind == "O":
        if not all(isinstance(item, (numbers.Real, np.bool_)) for item in array.ravel()):
            return None
        return array.astype(np.float64)
    return array


def _nonfinite(*values):
    for value in values:
        array = _as_array(value)
        if array is not None and array.dtype.kind in "fc" and array.size \
                and not np.isfinite(array).all():
            return True
    return False


def _valid_shapes(X, y):
    """``(n, d, w_shape)`` when X and y have valid shapes (y 1-D, or 2-D for
    several outputs), else None."""
    X, y = _as_array(X), _as_array(y)
    if X is None or y is None or X.dtype.kind not in "biuf" or y.dtype.kind not in "biuf":
        return None
    if X.ndim == 1:
        X = X.reshape(-1, 1)
    if X.ndim != 2 or y.ndim not in (1, 2) or X.shape[0] == 0 or X.shape[1] == 0 \
            or y.shape[0] != X.shape[0]:
        return None
    w_shape = (X.shape[1],) if y.ndim == 1 else (X.shape[1], y.shape[1])
    return X.shape[0], X.shape[1], w_shape


# ---------------------------------------------------------------------------
# the public functions
# ---------------------------------------------------------------------------

@FUZZ
@given(problem=problems(), b=reals, loss=st.sampled_from(["mse", "half_mse", "mae", 3]),
       n_threads=threads)
def test_fuzz_value_and_grad(problem, b, loss, n_threads):
    X, y, w = problem
    kind, result = _call(gdcore.value_and_grad, X, y, w, b, loss=loss, n_threads=n_threads)
    shape = _valid_shapes(X, y)
    if kind == "ok":
        value, grad_w, grad_b = result
        assert shape is not None and grad_w.shape == shape[2]
        assert grad_w.dtype == np.float64 and type(value) is float
        assert type(grad_b) is float if len(shape[2]) == 1 else \
            grad_b.shape == shape[2][1:]
        assert not _nonfinite(X, y), "non-finite input accepted"
    elif shape is not None and _nonfinite(X, y) and not _nonfinite(w) \
            and isinstance(b, float) and math.isfinite(b) and loss in ("mse", "half_mse") \
            and _valid_weights(w, shape[2]) and _valid_threads(n_threads):
        assert isinstance(result, ValueError)


def _valid_weights(w, w_shape):
    w = _as_array(w)
    return w is not None and w.dtype.kind in "biuf" and w.shape == w_shape


def _valid_threads(n_threads):
    return n_threads is None or (type(n_threads) is int and 1 <= n_threads <= 1024)


@FUZZ
@given(problem=problems(), method=st.sampled_from(["batch", "sgd", "minibatch", "adam", 1]),
       batch_size=counts, lr=lrs, epochs=epochs_values, b0=reals,
       fit_intercept=st.sampled_from([True, False, 1, None]),
       loss=st.sampled_from(["mse", "half_mse", "l1"]),
       shuffle=st.sampled_from([True, False, "no"]),
       seed=st.one_of(st.none(), st.integers(0, 2 ** 64), st.sampled_from([-1, 1.5, "s"])),
       backend=st.sampled_from(["cython", "cython", "cython", "reference", "rust"]),
       use_w0=st.booleans(), n_threads=threads)
def test_fuzz_fit(problem, method, batch_size, lr, epochs, b0, fit_intercept, loss, shuffle,
                  seed, backend, use_w0, n_threads):
    X, y, w = problem
    kwargs = dict(method=method, batch_size=batch_size, lr=lr, epochs=epochs, b0=b0,
                  fit_intercept=fit_intercept, loss=loss, shuffle=shuffle, seed=seed,
                  backend=backend, n_threads=n_threads)
    if use_w0:
        kwargs["w0"] = w
    kind, result = _call(gdcore.fit, X, y, **kwargs)
    if kind == "ok":
        shape = _valid_shapes(X, y)
        assert shape is not None
        n, _, w_shape = shape
        _assert_fit_result(result, n, w_shape, method, batch_size, epochs)
        assert np.isfinite(result.w).all() and np.isfinite(result.b).all()
        if result.epochs_run > 0:
            assert not _nonfinite(X, y), "non-finite input accepted"


def _assert_fit_result(result, n, w_shape, method, batch_size, epochs):
    """The documented FitResult of a run that ended after its epochs."""
    assert isinstance(result, gdcore.FitResult)
    assert result.w.shape == w_shape and result.w.dtype == np.float64
    if len(w_shape) == 1:
        assert type(result.b) is float
    else:
        assert result.b.shape == w_shape[1:] and result.b.dtype == np.float64
    assert result.stop_reason == "max_epochs" and result.epochs_run == epochs
    for history in (result.history, result.grad_norm, result.lr_history):
        assert history.shape == (result.epochs_run,)
    assert result.val_loss is None
    resolved = {"batch": n, "sgd": 1}.get(method, min(n, batch_size))
    assert result.batch_size == resolved
    assert result.steps_per_epoch == -(-n // resolved)
    assert result.n_steps == result.epochs_run * result.steps_per_epoch


@FUZZ
@given(problem=problems(), b=reals)
def test_fuzz_predict(problem, b):
    X, _, w = problem
    kind, result = _call(gdcore.predict, X, w, b)
    if kind == "ok":
        X_array, w_array = _as_array(X), _as_array(w)
        # (n,) for a weight vector, (n, k) for k outputs' weights (d, k)
        assert result.shape == (X_array.shape[0],) + w_array.shape[1:]
        assert result.dtype == np.float64
        assert not _nonfinite(X), "non-finite X accepted"


@FUZZ
@given(problem=problems(), method=st.sampled_from(["batch", "sgd", "minibatch"]),
       lr=lrs, epochs=epochs_values, batch_size=counts)
def test_fuzz_estimator(problem, method, lr, epochs, batch_size):
    X, y, _ = problem
    given = dict(method=method, lr=lr, epochs=epochs, batch_size=batch_size, seed=0)
    model = gdcore.LinearRegressor(**given)
    kind, result = _call(model.fit, X, y, also=given)
    if kind == "ok":
        assert result is model
        n, d, w_shape = _valid_shapes(X, y)
        outputs = w_shape[1:]
        assert model.coef_.shape == outputs + (d,)          # (n_outputs, n_features)
        assert (type(model.intercept_) is float) if not outputs else \
            model.intercept_.shape == outputs
        assert model.loss_curve_.shape == (model.n_iter_,) and model.n_iter_ == epochs
        assert model.n_features_in_ == d
        # (epochs=0 trains on nothing, so a non-finite X or y can come this far)
        kind, predictions = _call(model.predict, X)
        if kind == "ok":
            assert predictions.shape == (n,) + outputs and predictions.dtype == np.float64
        kind, score = _call(model.score, X, y)
        if kind == "ok":
            assert type(score) is float


@FUZZ
@given(n_samples=counts, n_features=counts, noise=reals, bias=reals,
       seed=st.one_of(st.none(), st.integers(0, 2 ** 70), st.sampled_from([-1, 1.5]),
                      st.builds(np.random.SeedSequence, st.integers(0, 10))))
def test_fuzz_make_regression(n_samples, n_features, noise, bias, seed):
    assume(_small(n_samples, n_features))   # no huge (valid, slow) allocations
    kind, result = _call(gdcore.make_regression, n_samples, n_features, noise=noise,
                         bias=bias, seed=seed)
    if kind == "ok":
        X, y, w_true = result
        assert X.shape == (n_samples, n_features) and y.shape == (n_samples,)
        assert w_true.shape == (n_features,) and np.isfinite(X).all()
        assert X.dtype == y.dtype == w_true.dtype == np.float64 and X.flags.c_contiguous


@settings(FUZZ, max_examples=max(10, EXAMPLES // 4))
@given(n_samples=counts, n_features=counts, noise=reals, bias=reals,
       seed=st.one_of(st.none(), st.integers(0, 2 ** 70), st.sampled_from([-1, 1.5])),
       chunk_rows=st.one_of(st.none(), counts),
       paths=st.sampled_from(["ok", "same", "none", "empty", "bytes", "missing-dir"]))
def test_fuzz_make_regression_npy(n_samples, n_features, noise, bias, seed, chunk_rows,
                                  paths):
    assume(_small(n_samples, n_features))   # no huge (valid, slow) allocations
    with tempfile.TemporaryDirectory() as folder:
        path_X = os.path.join(folder, "X.npy")
        path_y = {"ok": os.path.join(folder, "y.npy"), "same": path_X, "none": None,
                  "empty": "", "bytes": b"y.npy",
                  "missing-dir": os.path.join(folder, "missing", "y.npy")}[paths]
        try:
            kind, result = _call(gdcore.make_regression_npy, path_X, path_y, n_samples,
                                 n_features, noise=noise, bias=bias, seed=seed,
                                 chunk_rows=chunk_rows)
        except FileNotFoundError:
            assert paths == "missing-dir"
            assert os.listdir(folder) == []
            return
        if kind == "ok":
            assert result.shape == (n_features,)              # w_true
            assert np.load(path_X).shape == (n_samples, n_features)
            assert np.load(path_y).shape == (n_samples,)
            X, y, w_true = gdcore.make_regression(n_samples, n_features, noise=noise,
                                                  bias=bias, seed=seed) \
                if seed is not None else (None, None, None)
            if X is not None:
                np.testing.assert_array_equal(np.load(path_X), X)
                np.testing.assert_array_equal(np.load(path_y), y)
                np.testing.assert_array_equal(result, w_true)
        else:
            assert os.listdir(folder) == []


@FUZZ
@given(problem=problems(), loss=st.sampled_from(["mse", "half_mse", None]),
       fit_intercept=st.sampled_from([True, False, "yes"]),
       iterations=st.one_of(st.integers(-1, 30), st.sampled_from([2.0, None])))
def test_fuzz_max_stable_lr(problem, loss, fit_intercept, iterations):
    X, _, _ = problem
    kind, result = _call(gdcore.max_stable_lr, X, loss=loss, fit_intercept=fit_intercept,
                         iterations=iterations)
    if kind == "ok":
        assert type(result) is float
        # inf when the Hessian is zero (documented); 0.0 when it overflows (X
        # near 1e308: undocumented, and fit refuses lr=0)
        assert isinstance(result, float)
        if np.abs(np.asarray(X, dtype=np.float64)).max(initial=0) > 1e150:
            return      # NaN here: see test_max_stable_lr_on_huge_x_is_not_nan
        assert result >= 0 and not math.isnan(result)


@FUZZ
@given(problem=problems(), grid=arrays(), b=st.one_of(reals, arrays()))
def test_fuzz_loss_grid(problem, grid, b):
    X, y, _ = problem
    kind, result = _call(gdcore.loss_grid, X, y, grid, b)
    if kind == "ok":
        # one loss per candidate: the rows of W ((n_candidates,) for one feature)
        n_candidates = np.shape(grid)[0]
        assert result.shape == (n_candidates,) and result.dtype == np.float64


@FUZZ
@given(problem=problems(), w_values=arrays(), b_values=arrays())
def test_fuzz_loss_surface(problem, w_values, b_values):
    X, y, _ = problem
    assume(np.size(_as_array(w_values)) * np.size(_as_array(b_values)) <= 400
           if _as_array(w_values) is not None and _as_array(b_values) is not None else True)
    kind, result = _call(gdcore.loss_surface, X, y, w_values, b_values)
    if kind == "ok":
        assert result.shape == (np.size(w_values), np.size(b_values))
        assert result.dtype == np.float64


@FUZZ
@given(values=arrays(), smoothing=reals)
def test_fuzz_ewma(values, smoothing):
    kind, result = _call(gdcore.ewma, values, smoothing)
    if kind == "ok":
        assert result.shape == (np.size(values),) and np.ndim(values) == 1
        assert result.dtype == np.float64


@FUZZ
@given(problem=problems(), method=st.sampled_from(["batch", "sgd", "minibatch"]),
       lr=lrs, epochs=epochs_values.filter(lambda e: not (type(e) is int and e > 100)),
       batch_size=counts)
def test_fuzz_descent_path(problem, method, lr, epochs, batch_size):
    X, y, _ = problem
    kind, path = _call(gdcore.descent_path, X, y, method=method, lr=lr, epochs=epochs,
                       batch_size=batch_size, seed=1)
    if kind == "ok":
        n, _, w_shape = _valid_shapes(X, y)
        resolved = {"batch": n, "sgd": 1}.get(method, min(n, batch_size))
        assert path.batch_size == resolved and path.steps_per_epoch == -(-n // resolved)
        steps = epochs * path.steps_per_epoch
        assert path.n_steps == steps
        assert path.w.shape == (steps + 1,) + w_shape
        assert path.b.shape == (steps + 1,) + w_shape[1:]
        assert path.step_loss.shape == (steps,) and path.history.shape == (epochs,)


@pytest.mark.parametrize("value", [1e308, -1e308, 5e-324, 1e-310])
def test_extreme_but_finite_data_never_crash(value):
    """Deterministic companions of the fuzzers: every method on data full of
    1e308 or subnormals returns finite parameters or raises DivergenceError."""
    X = np.full((5, 2), value)
    y = np.full(5, value)
    for method in ("batch", "sgd", "minibatch"):
        kind, result = _call(gdcore.fit, X, y, method=method, batch_size=2, lr=0.1,
                             epochs=2, seed=0)
        if kind == "error":
            assert isinstance(result, gdcore.DivergenceError), result
    kind, result = _call(gdcore.value_and_grad, X, y, np.ones(2))
    assert kind == "ok"


# ---------------------------------------------------------------------------
# bugs the fuzzers found (fixed; these keep them fixed)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("scalar", [np.float32(2.0), np.array(2, dtype=np.int64), 2,
                                    np.array(2.0, dtype=np.float16), True])
def test_zero_d_arrays_are_refused_whatever_their_dtype(scalar):
    with pytest.raises(ValueError, match=r"\bX\b"):
        gdcore.value_and_grad(scalar, [1.0], [1.0])
    with pytest.raises(ValueError, match=r"\bX\b"):
        gdcore.predict(scalar, [1.0])
    with pytest.raises(ValueError, match=r"\bX\b"):
        gdcore.fit(scalar, [1.0], epochs=1)
    with pytest.raises(ValueError, match=r"\by\b"):
        gdcore.fit([1.0], scalar, epochs=1)
    with pytest.raises(ValueError, match=r"\bw\b"):
        gdcore.value_and_grad([1.0], [1.0], scalar)


def test_zero_d_float64_arrays_are_refused():
    """The float64 half of the same check, which works."""
    for call in (lambda: gdcore.value_and_grad(np.array(2.0), [1.0], [1.0]),
                 lambda: gdcore.predict(2.0, [1.0]),
                 lambda: gdcore.fit(2.0, [1.0], epochs=1)):
        with pytest.raises(ValueError, match=r"\bX\b"):
            call()


@pytest.mark.parametrize("X", [[[1e200]], [[1e155], [1.0]]])
def test_max_stable_lr_on_huge_x_is_not_nan(X):
    try:
        result = gdcore.max_stable_lr(np.array(X))
    except ValueError as exc:
        assert "X" in str(exc)
    else:
        assert not math.isnan(result)


def test_descent_path_refuses_more_epochs_than_fit():
    code = ("import gdcore\n"
            "try:\n"
            "    gdcore.descent_path([1.0, 2.0], [1.0, 2.0], epochs=2 ** 64)\n"
            "except ValueError as exc:\n"
            "    assert 'epochs' in str(exc)\n"
            "    print('ValueError')\n")
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                             text=True, timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail("descent_path(epochs=2**64) still running after 10 s")
    assert out.stdout.strip() == "ValueError", out.stderr
    with pytest.raises(ValueError, match=r"\bepochs\b"):
        gdcore.fit([1.0, 2.0], [1.0, 2.0], epochs=2 ** 64)
