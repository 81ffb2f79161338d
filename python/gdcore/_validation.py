"""Input checks, done once at the boundary before any kernel runs.

Every check raises ``TypeError`` (wrong kind of object) or ``ValueError`` (right
kind, bad value) with a message that names the argument, says what was expected
and shows what came. Nothing here modifies its input: arrays are converted to
float64 C-contiguous only when they are not already (a documented copy), and
arrays that a kernel writes to are always fresh copies made by the caller.

Finiteness of ``X`` and ``y`` is not checked here on the fast path, because
that would cost an extra pass over ``X``: a non-finite input makes the loss
non-finite, and only then :func:`raise_if_nonfinite_input` finds the culprit.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import math
import numbers
import operator
import os
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

_NUMERIC_KINDS = "biuf"
#: Upper bound of ``n_threads`` (the kernels use at most one thread per row
#: block anyway, and OpenMP takes a C int).
MAX_THREADS = 1024
#: Upper bound of counts (epochs, steps) that reach the kernels as a C
#: ``Py_ssize_t``.
MAX_COUNT = sys.maxsize


def describe(value: Any) -> str:
    """Short description of what came, for error messages."""
    if isinstance(value, np.ndarray):
        return f"array of dtype {value.dtype} and shape {value.shape}"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} (type {type(value).__name__})"


class DataTypeError(TypeError, ValueError):
    """Data of a kind gdcore does not take (complex, strings, objects, sparse).

    A ``TypeError`` (the type is wrong) that is also a ``ValueError``, which is
    how scikit-learn and its estimator checks report such input.
    """


def as_float_array(value: Any, name: str, *, keep_float32: bool = False) -> np.ndarray:
    """Return ``value`` as a float64 array, C-contiguous, copying only if needed.

    A float64 C-contiguous ndarray (a read-only memmap included) is returned as
    is, and so is a float32 one with ``keep_float32`` (the compiled kernels
    read it as it is, each value made a double as it is loaded). Integer,
    boolean, float16 (float32 without ``keep_float32``) and Fortran-ordered
    arrays, lists and other
    array-likes are converted once, and so are object arrays whose entries are
    all real numbers and pandas objects, nullable dtypes (``Float64``,
    ``Int64``, ``boolean``) included. Complex, string and other dtypes, and
    object arrays holding anything but numbers, raise ``TypeError``. A
    missing value (``None``, ``pandas.NA``) is a ``ValueError``, and so is a
    ``numpy.ma`` masked array with a masked entry (one without is used as its
    data).
    """
    if isinstance(value, (str, bytes)):
        raise DataTypeError(f"{name} must be a real numeric array-like; got "
                            f"{describe(value)}")
    if type(value).__module__.startswith("scipy.sparse"):
        raise DataTypeError(f"{name} is a sparse {type(value).__name__}; sparse input is "
                            f"not supported: pass a dense array ({name}.toarray())")
    if isinstance(value, np.ma.MaskedArray):
        value = _unmasked(value, name)
    if _is_pandas(value):
        value = _from_pandas(value, name)
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as exc:
        # ragged nested lists, objects numpy cannot turn into an array
        raise DataTypeError(
            f"{name} must be a real numeric array-like; got {describe(value)} ({exc})"
        ) from None
    if array.dtype.kind == "O":
        if array.ndim == 0:             # None, a dict, ...: not an array of anything
            raise DataTypeError(f"{name} must be a real numeric array-like; got "
                                f"{describe(value)}")
        array = _object_numbers(array, name)
    if array.dtype.kind == "c":
        raise DataTypeError(f"{name} must hold real numbers; got complex data "
                            f"({describe(array)}): Complex data not supported")
    if array.dtype.kind not in _NUMERIC_KINDS:
        raise DataTypeError(
            f"{name} must hold real numbers (bool, integer or float); got {array.dtype} "
            f"data ({describe(array)})"
        )
    if is_used_as_is(array, keep_float32):
        return array
    # not ascontiguousarray: it would turn a 0-d array into shape (1,)
    return np.asarray(array, dtype=np.float64, order="C")


def _is_pandas(value: Any) -> bool:
    """A pandas DataFrame or Series (pandas is never imported here)."""
    return (type(value).__module__.partition(".")[0] == "pandas"
            and hasattr(value, "to_numpy") and hasattr(value, "dtypes"))


def _is_missing(item: Any) -> bool:
    """None, or pandas' NA / NaT (a missing value, not a number)."""
    return item is None or type(item).__name__ in ("NAType", "NaTType")


def _missing_value_error(name: str, count: int, where: str) -> ValueError:
    return ValueError(f"{name} has {count} missing value(s) (the first {where}); gdcore does "
                      f"not skip missing values: fill them in or leave those samples out")


def _from_pandas(value: Any, name: str) -> Any:
    """A DataFrame or Series as a NumPy array: numeric columns as they are,
    nullable numeric dtypes (``Float64``, ``Int64``, ``boolean``) as float64,
    anything else as objects (checked by :func:`_object_numbers`); a missing
    value (``pandas.NA``) of a nullable or object column is refused naming
    ``name`` and its place."""
    dtypes = list(value.dtypes) if value.ndim == 2 else [value.dtype]
    if all(isinstance(dtype, np.dtype) and dtype.kind in _NUMERIC_KINDS for dtype in dtypes):
        return value.to_numpy()
    missing = np.asarray(value.isna())
    if missing.any():
        position = [int(i) for i in np.argwhere(missing)[0]]
        where = f"in row {value.index[position[0]]!r}"
        if value.ndim == 2:
            where += f", column {value.columns[position[1]]!r}"
        raise _missing_value_error(name, int(missing.sum()), where)
    if all(getattr(dtype, "kind", "O") in _NUMERIC_KINDS for dtype in dtypes):
        return value.to_numpy(dtype=np.float64)
    return value.to_numpy(dtype=object)


def _object_numbers(array: np.ndarray, name: str) -> np.ndarray:
    """An object array whose entries are all real numbers, as float64 (a
    copy); ``TypeError`` naming ``name`` for strings and other objects,
    ``ValueError`` for missing values (None, ``pandas.NA``)."""
    flat = array.reshape(-1)
    for index, item in enumerate(flat):
        if isinstance(item, (numbers.Real, np.bool_)) or (
                isinstance(item, numbers.Number) and not isinstance(item, numbers.Complex)):
            continue                        # Decimal is a Number, not a Real
        where = np.unravel_index(index, array.shape)
        at = int(where[0]) if len(where) == 1 else tuple(int(i) for i in where)
        if _is_missing(item):
            count = sum(1 for other in flat if _is_missing(other))
            raise _missing_value_error(name, count, f"at index {at}")
        try:
            float(item)
            detail = f"{type(item).__name__!r} is not a number"
        except (TypeError, ValueError) as exc:
            detail = str(exc)
        raise DataTypeError(f"{name} must hold real numbers; got an object array holding "
                            f"{describe(item)} at index {at} ({detail})")
    return array.astype(np.float64)


def _unmasked(value: np.ma.MaskedArray, name: str) -> np.ndarray:
    """The data of a masked array that has no masked entry (no copy).

    ``numpy.asarray`` would return the data under the mask too, so masked-out
    values would silently be used as numbers: refused, naming ``name``.
    """
    mask = np.ma.getmask(value)
    if mask is not np.ma.nomask and mask.any():
        position = tuple(int(i) for i in np.argwhere(mask)[0])
        where = position[0] if len(position) == 1 else position
        raise ValueError(f"{name} is a masked array with {int(mask.sum())} masked "
                         f"value(s) (the first at index {where}); gdcore does not skip "
                         f"masked values: fill them ({name}.filled(...)) or leave those "
                         f"samples out")
    return np.ma.getdata(value)


def check_X(X: Any, name: str = "X", *, keep_float32: bool = False) -> np.ndarray:
    """Return ``X`` as a float64 (or with ``keep_float32``, float32)
    C-contiguous 2-D array; 1-D means one feature."""
    array = as_float_array(X, name, keep_float32=keep_float32)
    if array.ndim == 1:
        array = array.reshape(-1, 1)
    elif array.ndim != 2:
        raise ValueError(
            f"{name} must be 1-D (n_samples,) or 2-D (n_samples, n_features); "
            f"got {array.ndim}-D with shape {array.shape}"
        )
    for axis, what in ((0, "sample"), (1, "feature")):
        if array.shape[axis] == 0:
            raise ValueError(f"{name} must have at least one {what}: found 0 {what}(s) "
                             f"(shape={array.shape}) while a minimum of 1 is required.")
    return array


def is_used_as_is(value: Any, keep_float32: bool = False) -> bool:
    """True when ``value`` is used as is: a float64 C-contiguous ndarray (or a
    float32 one, with ``keep_float32``)."""
    dtypes = (np.float64, np.float32) if keep_float32 else (np.float64,)
    return (isinstance(value, np.ndarray) and value.dtype in dtypes
            and value.flags.c_contiguous)


def refuse_copy(value: Any, name: str, keep_float32: bool = False) -> None:
    """With ``copy=False``: raise instead of converting ``value``."""
    if not is_used_as_is(value, keep_float32):
        what = describe(value)
        kinds = "float64 (or float32)" if keep_float32 else "float64"
        raise ValueError(f"{name} must already be a {kinds} C-contiguous array with "
                         f"copy=False (so that it is not copied); got {what}. Convert it "
                         f"once with numpy.ascontiguousarray({name}, dtype=numpy.float64), "
                         f"or pass copy=True")


def check_X_y(X: Any, y: Any, *, keep_float32: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Check ``X`` and the target ``y``: one value per row of ``X``, shape
    (n_samples,), or (n_samples, k) for k outputs (``keep_float32``: a float32
    C-contiguous ``X`` is kept as it is; ``y`` is always float64)."""
    X = check_X(X, keep_float32=keep_float32)
    if y is None:
        raise ValueError("fit requires y to be passed, but the target y is None")
    y = as_float_array(y, "y")
    if y.ndim not in (1, 2) or (y.ndim == 2 and y.shape[1] == 0):
        raise ValueError(f"y must have shape (n_samples,) or (n_samples, n_outputs) with "
                         f"n_outputs >= 1; got shape {y.shape}")
    if y.shape[0] != X.shape[0]:
        raise ValueError(
            f"X and y must have the same number of samples; got X with {X.shape[0]} "
            f"and y with {y.shape[0]}"
        )
    return X, y


def n_outputs(y: np.ndarray) -> int | None:
    """None for a 1-D target (one output, vectors w and scalar b); k for (n, k)."""
    return None if y.ndim == 1 else y.shape[1]


def check_weights(w: Any, n_features: int, name: str,
                  outputs: int | None = None) -> np.ndarray:
    """Return ``w`` as a finite float64 C-contiguous array of shape
    ``(n_features,)``, or ``(n_features, outputs)`` for several outputs.

    The result may share memory with ``w``: callers that update it in place
    copy it first.
    """
    array = as_float_array(w, name)
    shape = (n_features,) if outputs is None else (n_features, outputs)
    if array.shape != shape:
        what = "" if outputs is None else f" and y's {outputs} output(s)"
        raise ValueError(
            f"{name} must have shape {shape} to match X's {n_features} feature(s){what}; "
            f"got shape {array.shape}"
        )
    raise_if_nonfinite(array, name)
    return array


def check_intercept(b: Any, name: str, outputs: int | None = None) -> float | np.ndarray:
    """A finite scalar intercept; with several outputs, a scalar (the same for
    each) or one value per output, returned as an array of shape (outputs,)."""
    if outputs is None or np.ndim(b) == 0:
        value = check_real(b, name)
        return value if outputs is None else np.full(outputs, value)
    array = as_float_array(b, name)
    if array.shape != (outputs,):
        raise ValueError(f"{name} must be a number or have shape ({outputs},), one "
                         f"intercept per output; got shape {array.shape}")
    raise_if_nonfinite(array, name)
    return array


def check_vector(value: Any, name: str, of: str = "") -> np.ndarray:
    """``value`` as a non-empty 1-D float64 array (see ``as_float_array``).

    ``of`` completes the message: "{name} must be a non-empty 1-D array{of}".
    """
    array = as_float_array(value, name)
    if array.ndim != 1 or array.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array{of}; got shape {array.shape}")
    return array


def raise_if_nonfinite(array: np.ndarray, name: str) -> None:
    """``ValueError`` naming the first non-finite entry of ``array``."""
    if not np.isfinite(array).all():
        position = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
        where = position[0] if len(position) == 1 else position
        raise ValueError(f"{name} must be finite; got {array[position]} at index {where}")


def check_real(value: Any, name: str, *, positive: bool = False) -> float:
    """Return ``value`` as a finite Python float (``> 0`` if ``positive``)."""
    real = not isinstance(value, (bool, np.bool_)) and isinstance(value, numbers.Real)
    zero_d = (isinstance(value, np.ndarray) and value.ndim == 0
              and value.dtype.kind in "iuf")
    if not (real or zero_d):
        raise TypeError(f"{name} must be a real number; got {describe(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise ValueError(f"{name} must be a finite number; got {describe(value)}, "
                         f"too large for a float") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite; got {number}")
    if positive and number <= 0.0:
        raise ValueError(f"{name} must be a positive number; got {number}")
    return number


def check_lr(value: Any, name: str) -> float | str:
    """A learning rate: a positive finite number, or ``"auto"``."""
    if isinstance(value, str):
        if value == "auto":
            return value
        raise TypeError(f'{name} must be a positive number or "auto"; got {value!r}')
    return check_real(value, name, positive=True)


def check_int(value: Any, name: str, *, minimum: int, maximum: int | None = None) -> int:
    """Return ``value`` as a Python int in ``[minimum, maximum]``; bools are refused."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer; got {describe(value)}")
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer; got {describe(value)}") from None
    if number < minimum or (maximum is not None and number > maximum):
        expected = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"{name} must be an integer {expected}; got {number}")
    return number


def check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {describe(value)}")
    return bool(value)


def check_choice(value: Any, name: str, choices: tuple[str, ...] | Mapping) -> str:
    options = ", ".join(repr(c) for c in choices)
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {options}; got {describe(value)}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {options}; got {value!r}")
    return value


def check_n_threads(n_threads: Any) -> int | None:
    """None (every core), or a thread count in [1, MAX_THREADS]."""
    if n_threads is None:
        return None
    return check_int(n_threads, "n_threads", minimum=1, maximum=MAX_THREADS)


def check_callable(value: Any, name: str) -> Any:
    if not callable(value):
        raise TypeError(f"{name} must be callable or None; got {describe(value)}")
    return value


def check_unit_interval(value: Any, name: str) -> float:
    """A finite float in [0, 1]."""
    number = check_real(value, name)
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"{name} must be in [0, 1]; got {number}")
    return number


def check_fraction(value: Any, name: str) -> float:
    """A finite float in (0, 1)."""
    number = check_real(value, name)
    if not 0.0 < number < 1.0:
        raise ValueError(f"{name} must be in (0, 1); got {number}")
    return number


def check_factor(value: Any, name: str) -> float:
    """A finite float in (0, 1] (a multiplicative decay)."""
    number = check_real(value, name)
    if not 0.0 < number <= 1.0:
        raise ValueError(f"{name} must be in (0, 1]; got {number}")
    return number


def check_shuffle_block(value: Any, name: str) -> int | str | None:
    """``"auto"``, None or a number of rows >= 1."""
    if value is None or (isinstance(value, str) and value == "auto"):
        return value
    if isinstance(value, str):
        raise ValueError(f"{name} must be 'auto', None or an integer >= 1; got {value!r}")
    return check_int(value, name, minimum=1)


def check_seed(seed: Any, name: str = "seed") -> Any:
    """Accept what ``numpy.random.default_rng`` accepts: None, an int >= 0, a
    ``SeedSequence`` or a ``Generator``."""
    if seed is None or isinstance(seed, (np.random.SeedSequence, np.random.Generator)):
        return seed
    return check_int(seed, name, minimum=0)


def raise_if_nonfinite_input(X: np.ndarray, y: np.ndarray | None = None) -> None:
    """Raise ``ValueError`` naming the first non-finite value of ``X`` or ``y``.

    Called only after a kernel saw a non-finite loss, so the common path never
    pays for this pass over ``X``.
    """
    for name, array in (("X", X), ("y", y)):
        if array is None:
            continue
        bad = ~np.isfinite(array)
        if bad.any():
            position = tuple(int(i) for i in np.argwhere(bad)[0])
            where = position[0] if len(position) == 1 else position
            raise ValueError(
                f"{name} must contain only finite values (no NaN or inf); got "
                f"{array[position]} at index {where}"
            )


def check_non_negative(value: Any, name: str) -> float:
    """Return ``value`` as a finite float ``>= 0``."""
    number = check_real(value, name)
    if number < 0.0:
        raise ValueError(f"{name} must be >= 0; got {number}")
    return number


def check_average(average: Any, name: str = "average") -> bool | int:
    """``average``: False, True, or the first averaged global step (an int >= 0)."""
    if isinstance(average, (bool, np.bool_)):
        return bool(average)
    return check_int(average, name, minimum=0, maximum=MAX_COUNT)


def first_averaged_step(average: bool | int) -> int:
    """The first averaged global step of a checked ``average``, or -1: none."""
    if isinstance(average, bool):
        return 0 if average else -1
    return average


def check_sample_weight(sample_weight: Any, n_samples: int, train_rows: np.ndarray | None,
                        scale: tuple[float, float] | None = None
                        ) -> tuple[np.ndarray | None, tuple[float, float] | None]:
    """The normalised weights (a copy, or None) and the scale they were
    normalised with, ``(largest, mean)``.

    Weights must be finite, non-negative and not all zero on the training
    rows. Without ``scale`` it is computed from these weights: ``largest`` is
    the largest training weight and ``mean`` the mean over the training rows
    of the weights divided by it (values in [0, 1], whose sum cannot
    overflow); the weights are divided by ``largest`` and then by ``mean``,
    so they average 1 over the training rows, any finite weights (1e308
    included) are normalised, and multiplying all of them by a constant
    changes nothing (but rounding). A given ``scale`` (a run's earlier call,
    ``TrainState.weight_scale``) is used as it is, so weights of different
    calls keep their ratios.
    """
    if sample_weight is None:
        return None, scale
    weights = as_float_array(sample_weight, "sample_weight")
    if weights.ndim != 1 or weights.shape[0] != n_samples:
        raise ValueError(f"sample_weight must have shape ({n_samples},), one weight per "
                         f"sample; got shape {weights.shape}")
    bad = ~np.isfinite(weights) | (weights < 0)
    if bad.any():
        position = int(np.flatnonzero(bad)[0])
        raise ValueError(f"sample_weight must be finite and >= 0; got "
                         f"{weights[position]} at index {position}")
    used = weights if train_rows is None else weights[train_rows]
    if not used.any():
        raise ValueError("sample_weight must not be all zero (on the training rows)")
    if scale is None:
        largest = float(used.max())
        scale = (largest, float((used / largest).mean()))
    largest, mean = scale
    with np.errstate(over="ignore"):
        normalised = weights / largest / mean
    if not np.isfinite(normalised if train_rows is None else normalised[train_rows]).all():
        raise ValueError(f"sample_weight is too large next to the weights that set this "
                         f"run's scale (the largest of its first weighted call was "
                         f"{largest:g}): up to {float(used.max()):g} here, a ratio "
                         f"float64 cannot hold")
    if not np.isfinite(normalised).all():
        # rows held out for validation may weigh more; training never uses them
        np.minimum(normalised, np.finfo(np.float64).max, out=normalised)
    return normalised, scale


def held_out_rows(n_samples: int, fraction: float, seed: Any) -> np.ndarray:
    """The rows ``validation_fraction`` holds out, in increasing order;
    ``ValueError`` when no training row would be left.

    ``round(fraction * n)`` rows, at least one, a random subset drawn from a
    child of ``seed`` (so the shuffling stream is not disturbed).
    """
    n_val = max(1, int(round(fraction * n_samples)))
    if n_val >= n_samples:
        raise ValueError(f"validation_fraction={fraction} leaves no sample to train on "
                         f"with {n_samples} samples")
    if isinstance(seed, np.random.Generator):
        split_rng = seed.spawn(1)[0]
    else:
        # spawn() advances a SeedSequence: work on a copy, so the caller's seed
        # gives the same split every time
        root = (copy.deepcopy(seed) if isinstance(seed, np.random.SeedSequence)
                else np.random.SeedSequence(seed))
        split_rng = np.random.default_rng(root.spawn(1)[0])
    held_out = np.zeros(n_samples, dtype=bool)
    held_out[split_rng.permutation(n_samples)[:n_val]] = True
    return np.flatnonzero(held_out).astype(np.intp)     # a mask, not a sort: O(n)


def check_warm_start(previous: Any, n_features: int, outputs: int | None) -> Any:
    """The ``TrainState`` of ``warm_start`` (a ``FitResult`` or a ``TrainState``),
    checked against this run's data; returned as is (the caller copies it)."""
    source = getattr(previous, "state", previous)
    if not all(hasattr(source, a) for a in ("buffers", "n_features", "outputs",
                                             "global_step")):
        raise TypeError(f"warm_start must be a FitResult or a TrainState; got "
                        f"{describe(previous)}")
    if source.n_features != n_features:
        raise ValueError(f"warm_start was trained on {source.n_features} feature(s); this "
                         f"X has {n_features}")
    if source.outputs != outputs:
        def shape(k: int | None) -> str:
            return "a 1-D y" if k is None else f"a y of {k} column(s)"
        raise ValueError(f"warm_start was trained on {shape(source.outputs)}; this fit has "
                         f"{shape(outputs)}")
    return source


def check_n_features(X: np.ndarray, expected: int, what: str, original: Any = None) -> None:
    """``ValueError`` unless ``X`` has ``expected`` features (``what`` says where
    that number comes from; a 1-D ``original`` gets a hint)."""
    if X.shape[1] != expected:
        hint = ""
        if original is not None and np.ndim(original) == 1:
            hint = (" (a 1-D X means one feature: Reshape your data with "
                    "X.reshape(1, -1) if it is a single sample)")
        raise ValueError(f"X has {X.shape[1]} features, but LinearRegressor is expecting "
                         f"{expected} features as input ({what}){hint}")


def warn_from_caller(message: str, category: type[Warning]) -> None:
    """``warnings.warn`` attributed to the first caller outside gdcore (the
    line of the user's code that called ``fit``, an estimator's ``fit``, or
    ``gdcore.dask.fit``)."""
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and \
            frame.f_globals.get("__name__", "").partition(".")[0] == "gdcore":
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level + 1)


def feature_names(X: Any) -> np.ndarray | None:
    """The column names of a DataFrame ``X`` as an object array when they are
    all strings (scikit-learn's rule), else None; ``TypeError`` for a mix of
    strings and other names."""
    columns = getattr(X, "columns", None)
    if columns is None:
        return None
    names = np.asarray(columns, dtype=object)
    kinds = sorted({type(name).__qualname__ for name in names})
    if len(kinds) > 1 and "str" in kinds:
        raise TypeError(f"X's column names must all be strings, or none of them; got "
                        f"names of the types {kinds}: convert them, e.g. "
                        f"X.columns = X.columns.astype(str)")
    return names if kinds == ["str"] else None


def check_feature_names(fitted: np.ndarray | None, given: np.ndarray | None,
                        estimator: str) -> None:
    """``X``'s column names against those of the fit, as scikit-learn checks
    them: a ``ValueError`` when they differ (other names, missing names, or
    the same in another order, which would silently use the wrong weights);
    a ``UserWarning`` when only one of the two had names."""
    if fitted is None and given is None:
        return
    if fitted is None:
        warn_from_caller(f"X has feature names, but {estimator} was fitted without "
                         f"feature names", UserWarning)
        return
    if given is None:
        warn_from_caller(f"X does not have valid feature names, but {estimator} was "
                         f"fitted with feature names", UserWarning)
        return
    if len(fitted) == len(given) and (fitted == given).all():
        return
    message = "The feature names should match those that were passed during fit.\n"
    unexpected = sorted(set(given) - set(fitted))
    missing = sorted(set(fitted) - set(given))

    def listed(names: list) -> str:
        shown = [f"- {name}" for name in names[:5]]
        if len(names) > 5:
            shown.append("- ...")
        return "\n".join(shown) + "\n"

    if unexpected:
        message += "Feature names unseen at fit time:\n" + listed(unexpected)
    if missing:
        message += "Feature names seen at fit time, yet now missing:\n" + listed(missing)
    if not unexpected and not missing:
        message += "Feature names must be in the same order as they were in fit.\n"
    raise ValueError(message)


# ---------------------------------------------------------------------------
# Loss landscapes
# ---------------------------------------------------------------------------

def check_one_output(X: Any, y: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    """``X`` and a single-output ``y`` (n_samples,), checked as fit checks them."""
    X, y = check_X_y(X, y)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D (n_samples,): {what} handles one output; got "
                         f"shape {y.shape}")
    return X, y


def check_candidates(W: Any, n_features: int) -> np.ndarray:
    """The candidate weights of ``loss_grid`` as a finite (K, n_features) array."""
    W = as_float_array(W, "W")
    if W.ndim == 1 and n_features == 1:
        W = W.reshape(-1, 1)
    elif W.ndim != 2 or W.shape[1] != n_features:
        one = " or (n_candidates,) since X has one feature" if n_features == 1 else ""
        raise ValueError(
            f"W must have shape (n_candidates, {n_features}) to match X's {n_features} "
            f"feature(s){one}; got shape {W.shape}")
    finite = np.isfinite(W)
    if not finite.all():
        k, j = (int(i) for i in np.argwhere(~finite)[0])
        raise ValueError(f"W must be finite; got {W[k, j]} at candidate {k}, feature {j}")
    return W


def check_candidate_intercepts(b: Any, n_candidates: int) -> np.ndarray:
    """The candidate intercepts of ``loss_grid`` as a finite (K,) array."""
    try:
        scalar = np.ndim(b) == 0
    except (TypeError, ValueError):         # ragged lists: as_float_array says why
        scalar = False
    if scalar:
        return np.full(n_candidates, check_real(b, "b"))
    B = as_float_array(b, "b")
    if B.shape != (n_candidates,):
        raise ValueError(f"b must be a number or have shape ({n_candidates},), one "
                         f"intercept per candidate of W; got shape {B.shape}")
    finite = np.isfinite(B)
    if not finite.all():
        k = int(np.flatnonzero(~finite)[0])
        raise ValueError(f"b must be finite; got {B[k]} at candidate {k}")
    return B


def check_axis(values: Any, name: str) -> np.ndarray:
    """A non-empty, finite 1-D float64 array of grid values."""
    array = check_vector(values, name, " of values")
    raise_if_nonfinite(array, name)
    return array


# ---------------------------------------------------------------------------
# Sizes the user chooses: refused at once when the machine cannot hold them
# ---------------------------------------------------------------------------

def physical_memory() -> int | None:
    """Bytes of physical memory of this machine (None where unknown)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None
    return total if total > 0 else None


def format_bytes(nbytes: float) -> str:
    """``nbytes`` in decimal units, three significant digits: ``16 TB``."""
    for unit in ("bytes", "kB", "MB", "GB", "TB", "PB", "EB", "ZB"):
        if nbytes < 1000 or unit == "ZB":
            return f"{nbytes:.3g} {unit}" if unit != "bytes" else f"{int(nbytes)} bytes"
        nbytes /= 1000
    raise AssertionError("unreachable")


def memory_limit() -> int | None:
    """The address-space limit of this process in bytes (``RLIMIT_AS``), or
    None: no limit, or a platform without one."""
    try:
        import resource
    except ImportError:
        return None
    try:
        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    except (AttributeError, ValueError, OSError):
        return None
    return None if limit == resource.RLIM_INFINITY or limit <= 0 else int(limit)


def check_memory(nbytes: int, what: str, needed_for: str) -> None:
    """``MemoryError`` when ``nbytes`` exceed this machine's physical memory
    or this process's memory limit.

    The message reads ``"{what}: {size} of memory needed for {needed_for},
    more than this machine has ({memory})"``; ``what`` names the arguments
    that chose the size, with their values.
    """
    total = physical_memory()
    if total is not None and nbytes > total:
        raise MemoryError(f"{what}: {format_bytes(nbytes)} of memory needed for "
                          f"{needed_for}, more than this machine has "
                          f"({format_bytes(total)})")
    limit = memory_limit()
    if limit is not None and nbytes > limit:
        raise MemoryError(f"{what}: {format_bytes(nbytes)} of memory needed for "
                          f"{needed_for}, more than this process may use (its memory "
                          f"limit, RLIMIT_AS, is {format_bytes(limit)})")


@contextlib.contextmanager
def allocating(nbytes: int, what: str, needed_for: str) -> Iterator[None]:
    """Allocate ``nbytes`` chosen by the arguments ``what`` inside this block.

    Refuses at once (:func:`check_memory`) what the machine cannot hold at
    all, and turns a ``MemoryError`` of an allocation inside the block (a
    memory limit of the process, too little free memory) into one that
    names the arguments.
    """
    check_memory(nbytes, what, needed_for)
    try:
        yield
    except MemoryError:
        raise MemoryError(f"{what}: {format_bytes(nbytes)} of memory needed for "
                          f"{needed_for}, which this process cannot get (a memory "
                          f"limit, or too little free memory)") from None


# ---------------------------------------------------------------------------
# Synthetic data
# ---------------------------------------------------------------------------

def check_regression(n_samples: Any, n_features: Any, noise: Any, bias: Any,
                     seed: Any) -> tuple[int, int, float, float, np.random.SeedSequence]:
    """``make_regression``'s arguments; returned with the root SeedSequence."""
    n_samples = check_int(n_samples, "n_samples", minimum=1)
    n_features = check_int(n_features, "n_features", minimum=1)
    noise = check_real(noise, "noise")
    if noise < 0:
        raise ValueError(f"noise must be >= 0 (a standard deviation); got {noise}")
    bias = check_real(bias, "bias")
    seed = check_seed(seed)
    if isinstance(seed, np.random.Generator):
        raise TypeError("seed must be an int, a SeedSequence or None; got a Generator "
                        "(make_regression derives one stream per block of rows)")
    if isinstance(seed, np.random.SeedSequence):
        # Spawn from a copy: the caller's SeedSequence is not advanced, so the
        # same object gives the same data every time it is passed.
        root = np.random.SeedSequence(seed.entropy, spawn_key=seed.spawn_key,
                                      pool_size=seed.pool_size,
                                      n_children_spawned=seed.n_children_spawned)
    else:
        root = np.random.SeedSequence(seed)
    return n_samples, n_features, noise, bias, root


def check_path(path: Any, name: str) -> str:
    """A file path (str or os.PathLike, non-empty) as a str."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or os.PathLike path; got "
                        f"{describe(path)}")
    text = os.fsdecode(os.fspath(path))
    if not text:
        raise ValueError(f"{name} must be a non-empty path; got {path!r}")
    return text


def same_file(a: str, b: str) -> bool:
    """True when the paths ``a`` and ``b`` name one file: ``os.path.samefile``
    when both exist (symbolic and hard links), the resolved paths otherwise."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_destinations(outputs: Sequence[tuple[str, str]],
                       inputs: Sequence[tuple[str, str]] = ()) -> None:
    """Check the files a call is about to write, before it does any work.

    ``outputs`` and ``inputs`` are ``(name, path)`` pairs (``name``: the
    argument or flag, named in the message). Every output must be writable
    the way ``gdcore._files`` writes (a new file in the destination's
    directory, then renamed onto it): not an existing directory or other
    non-regular file, in an existing directory gdcore may write to, and no
    two of the outputs and inputs may be the same file (symbolic links, hard
    links and ``a/../a`` spellings included).

    Raises
    ------
    IsADirectoryError, FileNotFoundError, NotADirectoryError, PermissionError
        A destination that cannot be written; the message names it.
    ValueError
        A destination that is not a regular file, or one file named twice.
    """
    for name, path in outputs:
        target = os.path.realpath(path)        # a symbolic link is written through
        shown = f"{name}: cannot write {path!r}"
        if os.path.isdir(target):
            raise IsADirectoryError(errno.EISDIR, f"{shown}: it is a directory")
        if os.path.lexists(target) and not os.path.isfile(target):
            raise ValueError(f"{shown}: it exists and is not a regular file")
        parent = os.path.dirname(target)
        # the folder as the user wrote it, unless a link leads elsewhere
        named_parent = os.path.dirname(path) or "."
        if os.path.realpath(named_parent) != parent:
            named_parent = parent
        if not os.path.exists(parent):
            raise FileNotFoundError(errno.ENOENT, f"{shown}: directory {named_parent!r} "
                                                  f"does not exist")
        if not os.path.isdir(parent):
            raise NotADirectoryError(errno.ENOTDIR, f"{shown}: {named_parent!r} is not a "
                                                    f"directory")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, f"{shown}: directory {named_parent!r} is "
                                                f"not writable")
    named = list(outputs) + list(inputs)
    for i, (name, path) in enumerate(outputs):
        for other, other_path in named[i + 1:]:
            if same_file(path, other_path):
                spelled = (f"{path!r}" if path == other_path
                           else f"{path!r} and {other_path!r}")
                raise ValueError(f"{name} and {other} must be two different files; both "
                                 f"name {spelled}")


# ---------------------------------------------------------------------------
# Dask arrays (gdcore.dask; the per-chunk array checks are the ones above)
# ---------------------------------------------------------------------------

def check_dask_X(X: Any, da: Any) -> Any:
    """``X`` as a 2-D Dask array with one chunk along the columns (``da`` is
    ``dask.array``, passed in: this module does not import Dask)."""
    if not isinstance(X, da.Array):
        raise TypeError(f"X must be a dask.array.Array (gdcore.fit takes in-memory "
                        f"arrays); got {describe(X)}")
    if X.dtype.kind not in _NUMERIC_KINDS:
        raise TypeError(f"X must hold real numbers (bool, integer or float); got "
                        f"{X.dtype} data (dask array of shape {X.shape})")
    if X.ndim == 1:
        X = X[:, None]
    elif X.ndim != 2:
        raise ValueError(f"X must be 1-D (n_samples,) or 2-D (n_samples, n_features); "
                         f"got {X.ndim}-D with shape {X.shape}")
    if any(math.isnan(size) for size in X.shape):
        raise ValueError(f"X must have known chunk sizes; got shape {X.shape} (call "
                         f"X.compute_chunk_sizes() first)")
    if X.shape[0] == 0:
        raise ValueError(f"X must have at least one sample; got shape {X.shape}")
    if X.shape[1] == 0:
        raise ValueError(f"X must have at least one feature; got shape {X.shape}")
    if len(X.chunks[1]) > 1:
        X = X.rechunk({1: -1})
    return X


def check_dask_X_y(X: Any, y: Any, da: Any) -> tuple[Any, Any]:
    """Check ``X`` and ``y`` (1-D, or 2-D for several outputs); return them with
    ``y`` chunked like ``X``'s rows (and in one chunk along its columns)."""
    X = check_dask_X(X, da)
    if not isinstance(y, da.Array):
        y = as_float_array(y, "y")
        if y.ndim not in (1, 2):
            raise ValueError(f"y must be 1-D (n_samples,) or 2-D (n_samples, k); got "
                             f"{y.ndim}-D with shape {y.shape}")
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"X and y must have the same number of samples; got X with "
                             f"{X.shape[0]} and y with {y.shape[0]}")
        if y.ndim == 2 and y.shape[1] == 0:
            raise ValueError(f"y must have at least one output; got shape {y.shape}")
        return X, da.from_array(y, chunks=(X.chunks[0],) + y.shape[1:])
    if y.dtype.kind not in _NUMERIC_KINDS:
        raise TypeError(f"y must hold real numbers (bool, integer or float); got "
                        f"{y.dtype} data (dask array of shape {y.shape})")
    if y.ndim not in (1, 2):
        raise ValueError(f"y must be 1-D (n_samples,) or 2-D (n_samples, k); got {y.ndim}-D "
                         f"with shape {y.shape}")
    if any(math.isnan(size) for size in y.shape):
        raise ValueError(f"y must have known chunk sizes; got shape {y.shape} (call "
                         f"y.compute_chunk_sizes() first)")
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"X and y must have the same number of samples; got X with "
                         f"{X.shape[0]} and y with {y.shape[0]}")
    if y.ndim == 2 and y.shape[1] == 0:
        raise ValueError(f"y must have at least one output; got shape {y.shape}")
    wanted = (X.chunks[0],) + ((y.shape[1],) if y.ndim == 2 else ())
    if y.chunks != wanted:
        y = y.rechunk(wanted)
    return X, y
