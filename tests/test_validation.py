"""Input checking at the boundary (docs/design.md, "Guarantees").

Every bad input gets a TypeError (wrong kind of object) or ValueError (right
kind, bad value) whose message names the argument, and nothing passed in is
modified. Good inputs of other dtypes and layouts are converted once and give
exactly the float64 answer; a float64 C-contiguous X, read-only memmaps
included, is used as is and never copied.
"""

from __future__ import annotations

import copy
import functools
import re

import numpy as np
import pytest

import gdcore
from gdcore import _dispatch, _options

NAN, INF = float("nan"), float("inf")

_rng = np.random.default_rng(0)
X0 = _rng.standard_normal((8, 3))
Y0 = _rng.standard_normal(8)
W0 = _rng.standard_normal(3)


def _with(array, index, value):
    out = np.array(array, dtype=np.float64)
    out[index] = value
    return out


def _objects(array, value):
    """``array`` as an object array (numbers, which gdcore converts) with
    ``value`` at (1, 1): a thing that is not a number."""
    out = np.array(array, dtype=object)
    out[1, 1] = value
    return out


def _names(*names):
    """A regex that requires every given argument name as a whole word."""
    return "(?s)" + "".join(rf"(?=.*\b{name}\b)" for name in names)


def _snapshot(kwargs):
    return {key: copy.deepcopy(value) for key, value in kwargs.items()}


def _assert_unchanged(before, after):
    """Every array argument still holds what it held before the call."""
    for key, value in after.items():
        if isinstance(value, np.ndarray):
            old = before[key]
            assert value.dtype == old.dtype and value.shape == old.shape, key
            if value.dtype.kind in "fc":
                assert np.array_equal(value, old, equal_nan=True), key
            else:
                assert np.array_equal(value, old), key
        elif isinstance(value, list):
            assert repr(value) == repr(before[key]), key


# ---------------------------------------------------------------------------
# fit
# ---------------------------------------------------------------------------

FIT_BAD = [
    # non-finite data and parameters
    ("X-nan", dict(X=_with(X0, (2, 1), NAN)), ValueError, "X"),
    ("X-inf", dict(X=_with(X0, (0, 0), INF)), ValueError, "X"),
    ("X-minus-inf", dict(X=_with(X0, (7, 2), -INF)), ValueError, "X"),
    ("y-nan", dict(y=_with(Y0, 3, NAN)), ValueError, "y"),
    ("y-inf", dict(y=_with(Y0, 7, INF)), ValueError, "y"),
    ("w0-nan", dict(w0=_with(W0, 1, NAN)), ValueError, "w0"),
    ("w0-inf", dict(w0=_with(W0, 2, -INF)), ValueError, "w0"),
    ("b0-nan", dict(b0=NAN), ValueError, "b0"),
    ("b0-inf", dict(b0=INF), ValueError, "b0"),
    # shapes
    ("y-shorter", dict(y=Y0[:-1].copy()), ValueError, ("X", "y")),
    ("y-longer", dict(y=np.append(Y0, 1.0)), ValueError, ("X", "y")),
    ("X-0d", dict(X=np.array(1.0)), ValueError, "X"),
    ("X-3d", dict(X=X0.reshape(8, 3, 1).copy()), ValueError, "X"),
    ("X-no-samples", dict(X=np.empty((0, 3)), y=np.empty(0)), ValueError, "X"),
    ("X-no-features", dict(X=np.empty((8, 0)), w0=None), ValueError, "X"),
    ("X-empty-list", dict(X=[], y=[], w0=None), ValueError, "X"),
    ("y-2d", dict(y=Y0.reshape(8, 1).copy()), ValueError, "y"),
    ("w0-short", dict(w0=W0[:2].copy()), ValueError, "w0"),
    ("w0-2d", dict(w0=W0.reshape(3, 1).copy()), ValueError, "w0"),
    ("w0-scalar", dict(w0=1.0), ValueError, "w0"),
    # dtypes
    ("X-complex", dict(X=X0 + 1j), TypeError, "X"),
    ("X-strings", dict(X=X0.astype(str)), TypeError, "X"),
    ("X-object-dict", dict(X=_objects(X0, {"a": 1})), TypeError, "X"),
    ("X-object-string", dict(X=_objects(X0, "1.5")), TypeError, "X"),
    ("X-object-none", dict(X=_objects(X0, None)), ValueError, "X"),
    ("X-str", dict(X="abc"), TypeError, "X"),
    ("X-ragged", dict(X=[[1.0, 2.0], [3.0]], y=[1.0, 2.0], w0=None), TypeError, "X"),
    ("X-none", dict(X=None), TypeError, "X"),
    ("y-complex", dict(y=Y0 + 0j), TypeError, "y"),
    ("y-strings", dict(y=Y0.astype(str)), TypeError, "y"),
    ("w0-complex", dict(w0=W0 + 1j), TypeError, "w0"),
    # learning rate
    ("lr-zero", dict(lr=0), ValueError, "lr"),
    ("lr-negative", dict(lr=-1), ValueError, "lr"),
    ("lr-nan", dict(lr=NAN), ValueError, "lr"),
    ("lr-inf", dict(lr=INF), ValueError, "lr"),
    ("lr-string", dict(lr="0.1"), TypeError, "lr"),
    ("lr-bool", dict(lr=True), TypeError, "lr"),
    ("lr-none", dict(lr=None), TypeError, "lr"),
    # epochs and batch_size
    ("epochs-negative", dict(epochs=-1), ValueError, "epochs"),
    ("epochs-fraction", dict(epochs=2.5), TypeError, "epochs"),
    ("epochs-float", dict(epochs=2.0), TypeError, "epochs"),
    ("epochs-bool", dict(epochs=True), TypeError, "epochs"),
    ("batch_size-zero", dict(batch_size=0), ValueError, "batch_size"),
    ("batch_size-negative", dict(batch_size=-4), ValueError, "batch_size"),
    ("batch_size-fraction", dict(batch_size=2.5), TypeError, "batch_size"),
    ("batch_size-string", dict(batch_size="4"), TypeError, "batch_size"),
    ("batch_size-zero-with-batch", dict(method="batch", batch_size=0), ValueError,
     "batch_size"),
    # choices
    ("method-unknown", dict(method="newton"), ValueError, "method"),
    ("method-case", dict(method="Batch"), ValueError, "method"),
    ("method-int", dict(method=1), TypeError, "method"),
    ("method-none", dict(method=None), TypeError, "method"),
    ("loss-unknown", dict(loss="mae"), ValueError, "loss"),
    ("loss-int", dict(loss=2), TypeError, "loss"),
    ("backend-unknown", dict(backend="fortran"), ValueError, "backend"),
    ("backend-none", dict(backend=None), TypeError, "backend"),
    # flags, seed, threads
    ("fit_intercept-int", dict(fit_intercept=1), TypeError, "fit_intercept"),
    ("fit_intercept-str", dict(fit_intercept="yes"), TypeError, "fit_intercept"),
    ("shuffle-int", dict(shuffle=0), TypeError, "shuffle"),
    ("shuffle-none", dict(shuffle=None), TypeError, "shuffle"),
    ("seed-negative", dict(seed=-1), ValueError, "seed"),
    ("seed-fraction", dict(seed=1.5), TypeError, "seed"),
    ("seed-string", dict(seed="42"), TypeError, "seed"),
    ("n_threads-zero", dict(n_threads=0), ValueError, "n_threads"),
    ("n_threads-negative", dict(n_threads=-2), ValueError, "n_threads"),
    ("n_threads-fraction", dict(n_threads=1.5), TypeError, "n_threads"),
]


@pytest.mark.parametrize("case,overrides,error,names", FIT_BAD, ids=[c[0] for c in FIT_BAD])
def test_fit_rejects_bad_input(backend, case, overrides, error, names):
    """fit raises the right exception, its message names the argument, and
    nothing passed in is modified."""
    kwargs = dict(X=X0.copy(), y=Y0.copy(), w0=W0.copy(), method="minibatch", batch_size=3,
                  lr=0.01, epochs=2, seed=0, backend=backend)
    kwargs.update(copy.deepcopy(overrides))
    X, y = kwargs.pop("X"), kwargs.pop("y")
    before = _snapshot({"X": X, "y": y, **kwargs})
    names = (names,) if isinstance(names, str) else names
    with pytest.raises(error, match=_names(*names)):
        gdcore.fit(X, y, **kwargs)
    _assert_unchanged(before, {"X": X, "y": y, **kwargs})


@pytest.mark.parametrize("method", ["batch", "sgd", "minibatch"])
def test_fit_nan_in_last_row_is_found(backend, method):
    """A NaN in the very last row of X (reached only at the end of an epoch)
    still raises ValueError naming X, for every method."""
    X = _with(X0, (7, 2), NAN)
    with pytest.raises(ValueError, match=_names("X")):
        gdcore.fit(X, Y0, method=method, batch_size=3, shuffle=False, backend=backend)


# ---------------------------------------------------------------------------
# value_and_grad
# ---------------------------------------------------------------------------

VALUE_AND_GRAD_BAD = [
    ("X-nan", dict(X=_with(X0, (1, 1), NAN)), ValueError, "X"),
    ("X-inf", dict(X=_with(X0, (5, 0), INF)), ValueError, "X"),
    ("y-nan", dict(y=_with(Y0, 0, NAN)), ValueError, "y"),
    ("y-inf", dict(y=_with(Y0, 4, -INF)), ValueError, "y"),
    ("w-nan", dict(w=_with(W0, 0, NAN)), ValueError, "w"),
    ("w-inf", dict(w=_with(W0, 1, INF)), ValueError, "w"),
    ("b-nan", dict(b=NAN), ValueError, "b"),
    ("b-inf", dict(b=-INF), ValueError, "b"),
    ("b-string", dict(b="0.5"), TypeError, "b"),
    ("b-bool", dict(b=True), TypeError, "b"),
    ("w-short", dict(w=W0[:2].copy()), ValueError, "w"),
    ("w-long", dict(w=np.append(W0, 0.0)), ValueError, "w"),
    ("y-shorter", dict(y=Y0[:-2].copy()), ValueError, ("X", "y")),
    ("X-0d", dict(X=np.array(2.0)), ValueError, "X"),
    ("X-3d", dict(X=X0.reshape(2, 4, 3).copy()), ValueError, "X"),
    ("X-no-samples", dict(X=np.empty((0, 3)), y=np.empty(0)), ValueError, "X"),
    ("X-no-features", dict(X=np.empty((8, 0)), w=np.empty(0)), ValueError, "X"),
    ("y-2d", dict(y=np.stack([Y0, Y0], axis=1)), ValueError, "y"),
    ("X-complex", dict(X=X0.astype(complex)), TypeError, "X"),
    ("X-object-dict", dict(X=_objects(X0, {"a": 1})), TypeError, "X"),
    ("y-strings", dict(y=Y0.astype(str)), TypeError, "y"),
    ("w-complex", dict(w=W0 * 1j), TypeError, "w"),
    ("loss-unknown", dict(loss="l1"), ValueError, "loss"),
    ("loss-none", dict(loss=None), TypeError, "loss"),
    ("backend-unknown", dict(backend="numpy"), ValueError, "backend"),
    ("n_threads-zero", dict(n_threads=0), ValueError, "n_threads"),
]


@pytest.mark.parametrize("case,overrides,error,names", VALUE_AND_GRAD_BAD,
                         ids=[c[0] for c in VALUE_AND_GRAD_BAD])
def test_value_and_grad_rejects_bad_input(backend, case, overrides, error, names):
    """value_and_grad raises the right exception naming the argument and
    modifies nothing."""
    kwargs = dict(X=X0.copy(), y=Y0.copy(), w=W0.copy(), b=0.5, backend=backend)
    kwargs.update(copy.deepcopy(overrides))
    before = _snapshot(kwargs)
    X, y, w, b = (kwargs.pop(name) for name in ("X", "y", "w", "b"))
    names = (names,) if isinstance(names, str) else names
    with pytest.raises(error, match=_names(*names)):
        gdcore.value_and_grad(X, y, w, b, **kwargs)
    _assert_unchanged(before, {"X": X, "y": y, "w": w, "b": b, **kwargs})


# ---------------------------------------------------------------------------
# predict
# ---------------------------------------------------------------------------

PREDICT_BAD = [
    ("X-nan", dict(X=_with(X0, (3, 2), NAN)), ValueError, "X"),
    ("X-inf", dict(X=_with(X0, (0, 1), INF)), ValueError, "X"),
    ("w-nan", dict(w=_with(W0, 2, NAN)), ValueError, "w"),
    ("w-inf", dict(w=_with(W0, 0, -INF)), ValueError, "w"),
    ("b-nan", dict(b=NAN), ValueError, "b"),
    ("b-inf", dict(b=INF), ValueError, "b"),
    ("b-string", dict(b="1"), TypeError, "b"),
    ("w-short", dict(w=W0[:1].copy()), ValueError, "w"),
    ("X-0d", dict(X=np.array(4.0)), ValueError, "X"),
    ("X-3d", dict(X=X0.reshape(8, 1, 3).copy()), ValueError, "X"),
    ("X-no-samples", dict(X=np.empty((0, 3))), ValueError, "X"),
    ("X-complex", dict(X=X0 + 2j), TypeError, "X"),
    ("X-strings", dict(X=X0.astype(str)), TypeError, "X"),
    ("w-complex", dict(w=W0.astype(complex)), TypeError, "w"),
]


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("case,overrides,error,names", PREDICT_BAD,
                         ids=[c[0] for c in PREDICT_BAD])
def test_predict_rejects_bad_input(backend, case, overrides, error, names):
    """predict (both backends) raises naming the argument and modifies nothing."""
    kwargs = dict(X=X0.copy(), w=W0.copy(), b=0.5)
    kwargs.update(copy.deepcopy(overrides))
    before = _snapshot(kwargs)
    with pytest.raises(error, match=_names(names)):
        gdcore.predict(kwargs["X"], kwargs["w"], kwargs["b"], backend=backend)
    _assert_unchanged(before, kwargs)


@pytest.mark.parametrize("backend", ["numpy", "Cython", None, 1])
def test_predict_rejects_an_unknown_backend(backend):
    error = TypeError if not isinstance(backend, str) else ValueError
    with pytest.raises(error, match=_names("backend")):
        gdcore.predict(X0, W0, backend=backend)


# ---------------------------------------------------------------------------
# Accepted inputs: converted once, same float64 answer
# ---------------------------------------------------------------------------

def _variants(array):
    """Non-float64 / non-C-contiguous / non-array forms of a float64 array,
    each with the float64 C-contiguous array it stands for."""
    as_ints = np.rint(array * 3).astype(np.int64)
    return {
        "float32": (array.astype(np.float32), array.astype(np.float32).astype(np.float64)),
        "int64": (as_ints, as_ints.astype(np.float64)),
        "int8": (as_ints.astype(np.int8), as_ints.astype(np.float64)),
        "uint16": (np.abs(as_ints).astype(np.uint16), np.abs(as_ints).astype(np.float64)),
        "bool": (array > 0, (array > 0).astype(np.float64)),
        "fortran": (np.asfortranarray(array), array.copy()),
        "strided": (np.repeat(array, 2, axis=0)[::2], array.copy()),
        "list": (array.tolist(), array.copy()),
        "tuple": (_as_tuple(array.tolist()), array.copy()),
    }


def _as_tuple(value):
    return tuple(_as_tuple(v) for v in value) if isinstance(value, list) else value


VARIANTS = list(_variants(X0))


@pytest.mark.parametrize("kind", VARIANTS)
def test_fit_accepts_other_dtypes_and_layouts(backend, kind):
    """float32, integer, bool, Fortran-ordered, strided, list and tuple X, y and
    w0 train exactly like their float64 C-contiguous values."""
    X_in, X_ref = _variants(X0)[kind]
    y_in, y_ref = _variants(Y0)[kind]
    w_in, w_ref = _variants(W0)[kind]
    options = dict(method="minibatch", batch_size=3, lr=0.01, epochs=2, seed=1,
                   backend=backend)
    got = gdcore.fit(X_in, y_in, w0=w_in, **options)
    want = gdcore.fit(X_ref, y_ref, w0=w_ref, **options)
    assert got.w.dtype == np.float64
    np.testing.assert_array_equal(got.w, want.w)
    assert got.b == want.b
    np.testing.assert_array_equal(got.history, want.history)


@pytest.mark.parametrize("kind", VARIANTS)
def test_value_and_grad_accepts_other_dtypes_and_layouts(backend, kind):
    X_in, X_ref = _variants(X0)[kind]
    y_in, y_ref = _variants(Y0)[kind]
    w_in, w_ref = _variants(W0)[kind]
    got = gdcore.value_and_grad(X_in, y_in, w_in, 0.25, backend=backend)
    want = gdcore.value_and_grad(X_ref, y_ref, w_ref, 0.25, backend=backend)
    assert got[0] == want[0] and got[2] == want[2]
    assert got[1].dtype == np.float64
    np.testing.assert_array_equal(got[1], want[1])


@pytest.mark.parametrize("kind", VARIANTS)
def test_predict_accepts_other_dtypes_and_layouts(backend, kind):
    predict = functools.partial(gdcore.predict, backend=backend)
    X_in, X_ref = _variants(X0)[kind]
    w_in, w_ref = _variants(W0)[kind]
    got = predict(X_in, w_in, 1.0)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, predict(X_ref, w_ref, 1.0))


def test_numpy_scalars_are_accepted_as_numbers():
    """NumPy scalars and 0-d arrays work where Python numbers do."""
    a = gdcore.fit(X0, Y0, lr=np.float32(0.25), epochs=np.int64(2), batch_size=np.int32(3),
                   b0=np.float64(0.5), seed=np.uint8(3))
    b = gdcore.fit(X0, Y0, lr=0.25, epochs=2, batch_size=3, b0=0.5, seed=3)
    np.testing.assert_array_equal(a.w, b.w)
    assert a.b == b.b
    assert gdcore.value_and_grad(X0, Y0, W0, np.array(0.5))[0] == \
        gdcore.value_and_grad(X0, Y0, W0, 0.5)[0]


# ---------------------------------------------------------------------------
# No copies of float64 C-contiguous data; read-only memmaps work
# ---------------------------------------------------------------------------

@pytest.fixture
def memmapped(tmp_path):
    path = tmp_path / "X.npy"
    np.save(path, X0)
    X = np.load(path, mmap_mode="r")
    assert isinstance(X, np.memmap) and not X.flags.writeable
    return X


def test_read_only_memmap_works(memmapped, backend):
    """A read-only np.memmap float64 X trains, evaluates and predicts like the
    in-memory array."""
    options = dict(method="sgd", lr=0.01, epochs=2, seed=2, backend=backend)
    got, want = gdcore.fit(memmapped, Y0, **options), gdcore.fit(X0, Y0, **options)
    np.testing.assert_array_equal(got.w, want.w)
    assert got.b == want.b
    for method in ("batch", "minibatch"):
        options["method"] = method
        np.testing.assert_array_equal(gdcore.fit(memmapped, Y0, **options).w,
                                      gdcore.fit(X0, Y0, **options).w)
    got_vg = gdcore.value_and_grad(memmapped, Y0, W0, backend=backend)
    want_vg = gdcore.value_and_grad(X0, Y0, W0, backend=backend)
    assert got_vg[0] == want_vg[0]
    np.testing.assert_array_equal(got_vg[1], want_vg[1])
    np.testing.assert_array_equal(gdcore.predict(memmapped, W0), gdcore.predict(X0, W0))


@pytest.fixture
def kernel_spy(monkeypatch):
    """Record the arrays the compiled kernels receive (calls pass through).

    Patches the kernel modules that gdcore's trainers and value_and_grad
    actually call (the one chosen for this CPU, ``gdcore._dispatch.kernels``,
    and the one for per-sample epochs on short rows,
    ``gdcore._dispatch.short_row_kernels``; often the same).
    """
    seen = []

    def wrap(module, name):
        original = getattr(module, name)

        def spy(*args, **kwargs):
            # X and Y are the first two parameters of both kernels
            arrays = list(args[:2]) + [kwargs[k] for k in ("X", "y") if k in kwargs]
            seen.append((name, arrays))
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, spy)

    modules = {id(m): m for m in (_dispatch.require(), _dispatch.short_row_kernels)}
    for module in modules.values():
        wrap(module, "run_epoch")
        wrap(module, "run_epochs")
        wrap(module, "full_sums")
    return seen


@pytest.mark.parametrize("method", ["batch", "sgd", "minibatch"])
def test_fit_does_not_copy_float64_c_contiguous_X(kernel_spy, memmapped, method):
    """The kernel reads the caller's own X and y buffers (in memory or
    memmapped, 2-D or 1-D), not a copy."""
    for X in (X0, memmapped, np.ascontiguousarray(X0[:, 0])):
        kernel_spy.clear()
        gdcore.fit(X, Y0, method=method, batch_size=3, epochs=2)
        # one epoch per call, or both in one (kernels.run_epochs)
        assert [name for name, _ in kernel_spy] in (["run_epoch", "run_epoch"],
                                                    ["run_epochs"])
        for _, args in kernel_spy:
            assert np.shares_memory(args[0], X)
            assert np.shares_memory(args[1], Y0)


def test_value_and_grad_does_not_copy_float64_c_contiguous_X(kernel_spy, memmapped):
    for X in (X0, memmapped):
        kernel_spy.clear()
        gdcore.value_and_grad(X, Y0, W0)
        ((name, args),) = kernel_spy
        assert name == "full_sums"
        assert np.shares_memory(args[0], X) and np.shares_memory(args[1], Y0)


def test_other_layouts_are_converted_to_c_contiguous_float64(kernel_spy):
    """The spy can tell a copy from the original: a Fortran-ordered X reaches
    the kernel as a C-contiguous float64 copy."""
    X = np.asfortranarray(X0)
    gdcore.fit(X, Y0, epochs=1)
    ((_, args),) = kernel_spy
    assert not np.shares_memory(args[0], X)
    assert args[0].flags.c_contiguous and args[0].dtype == np.float64


@pytest.mark.parametrize("call", ["fit-batch", "fit-sgd", "fit-minibatch", "value_and_grad"])
def test_no_copy_of_a_large_X_in_memory_terms(call):
    """Black-box view of the same promise: on a 16 MB float64 C-contiguous X,
    the memory NumPy and Python allocate during the call (tracemalloc) stays far
    below the size of X, so no copy of X was made."""
    import tracemalloc

    X, y, _ = gdcore.make_regression(200_000, 10, seed=0)
    tracemalloc.start()
    try:
        if call == "value_and_grad":
            gdcore.value_and_grad(X, y, np.zeros(10))
        else:
            gdcore.fit(X, y, method=call.split("-")[1], batch_size=64, lr=0.01, epochs=1,
                       seed=0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < X.nbytes / 4


@pytest.mark.parametrize("variant", _dispatch.available())
def test_kernel_refuses_to_update_a_silent_copy(variant):
    """Arrays a kernel writes (the training state, the sums' output) must be
    float64, C-contiguous and writeable: anything else raises instead of
    updating a temporary copy."""
    kernels = _dispatch.load(variant)
    X, Y = np.ascontiguousarray(X0), Y0.reshape(-1, 1)
    rule = kernels.Rule(_options.Config(batch_size=3), 3, 1)
    rows = len(kernels.STATE_ROWS)

    def run(state):
        return kernels.run_epoch(X, Y, None, None, state, rule, 0.01, 0, 0, 100, 0.0, 0.0)

    def sums(out):
        kernels.full_sums(X, Y, None, np.zeros(4), out, 1)

    good = np.zeros((rows, 4))
    assert run(good)[0] == 3                                  # the good calls work
    assert np.any(good[0] != 0)
    out = np.zeros(5)
    sums(out)
    assert out[0] == pytest.approx(np.sum(Y0 ** 2), rel=1e-14)      # at w = b = 0
    for shape, call in (((rows, 4), run), ((5,), sums)):
        read_only = np.zeros(shape)
        read_only.flags.writeable = False
        strided = np.zeros(shape[:-1] + (2 * shape[-1],))[..., ::2]
        for bad in (np.zeros(shape, dtype=np.float32), strided, read_only,
                    np.zeros(shape).tolist()):
            with pytest.raises((TypeError, ValueError)):
                call(bad)
            if isinstance(bad, np.ndarray):
                assert not np.any(bad)                        # nothing written


# ---------------------------------------------------------------------------
# Numbers out of the range the kernels can take
# ---------------------------------------------------------------------------

HUGE = 10 ** 400          # a Python int no float64 can hold

OUT_OF_RANGE = [
    ("fit-lr", lambda: gdcore.fit(X0, Y0, lr=HUGE), "lr"),
    ("fit-b0", lambda: gdcore.fit(X0, Y0, b0=-HUGE), "b0"),
    ("fit-epochs", lambda: gdcore.fit(X0, Y0, epochs=10 ** 20), "epochs"),
    ("fit-n_threads-batch", lambda: gdcore.fit(X0, Y0, method="batch", n_threads=2 ** 31),
     "n_threads"),
    ("fit-n_threads-sgd", lambda: gdcore.fit(X0, Y0, method="sgd", n_threads=2 ** 64),
     "n_threads"),
    ("value_and_grad-b", lambda: gdcore.value_and_grad(X0, Y0, W0, HUGE), "b"),
    ("value_and_grad-n_threads", lambda: gdcore.value_and_grad(X0, Y0, W0, n_threads=2 ** 31),
     "n_threads"),
    ("predict-b", lambda: gdcore.predict(X0, W0, HUGE), "b"),
    ("reference-predict-b", lambda: gdcore.predict(X0, W0, HUGE, backend="reference"), "b"),
    ("make_regression-bias", lambda: gdcore.make_regression(5, 2, bias=HUGE), "bias"),
    ("make_regression-noise", lambda: gdcore.make_regression(5, 2, noise=HUGE), "noise"),
]


@pytest.mark.parametrize("case,call,name", OUT_OF_RANGE, ids=[c[0] for c in OUT_OF_RANGE])
def test_out_of_range_numbers_are_refused_by_name(case, call, name):
    """A number of the right type but beyond what float64 / a C int can hold
    (10**400 for a float, 2**31 and up for a thread count, more epochs than an
    array can index) is a bad input like any other: TypeError or ValueError
    naming the argument, not an OverflowError from deep inside."""
    with pytest.raises((TypeError, ValueError), match=rf"\b{name}\b"):
        call()


# ---------------------------------------------------------------------------
# numpy.ma masked arrays: masked entries are refused, never used as numbers
# ---------------------------------------------------------------------------

def _masked_problem():
    X, y, _ = gdcore.make_regression(40, 3, noise=0.1, seed=2)
    X_masked = np.ma.masked_array(X.copy(), mask=np.zeros_like(X, dtype=bool))
    X_masked[5, 1] = np.ma.masked
    X_masked.data[5, 1] = 1e6                 # what the mask hides: not data
    y_masked = np.ma.masked_array(y.copy(), mask=y > 10 ** 9)
    y_masked[7] = np.ma.masked
    return X, y, X_masked, y_masked


@pytest.mark.parametrize("call,name,where", [
    (lambda X, y, Xm, ym: gdcore.fit(Xm, y, epochs=1), "X", "(5, 1)"),
    (lambda X, y, Xm, ym: gdcore.fit(X, ym, epochs=1), "y", "7"),
    (lambda X, y, Xm, ym: gdcore.fit(X, y, epochs=1, sample_weight=np.ma.masked_less(
        np.arange(40.0), 1)), "sample_weight", "0"),
    (lambda X, y, Xm, ym: gdcore.fit(X, y, epochs=1, w0=np.ma.masked_array(
        [1.0, 2.0, 3.0], mask=[0, 1, 0])), "w0", "1"),
    (lambda X, y, Xm, ym: gdcore.value_and_grad(Xm, y, np.zeros(3)), "X", "(5, 1)"),
    (lambda X, y, Xm, ym: gdcore.predict(Xm, np.zeros(3), 0.0), "X", "(5, 1)"),
    (lambda X, y, Xm, ym: gdcore.loss_grid(X, ym, np.zeros((2, 3))), "y", "7"),
    (lambda X, y, Xm, ym: gdcore.LinearRegressor(epochs=1).fit(Xm, y), "X", "(5, 1)"),
    (lambda X, y, Xm, ym: gdcore.LinearRegressor(epochs=1).fit(X, y).score(X, ym), "y",
     "7"),
])
def test_masked_entries_are_refused_naming_the_argument(call, name, where):
    X, y, X_masked, y_masked = _masked_problem()
    with pytest.raises(ValueError, match=rf"^{name} is a masked array with 1 masked "
                                         rf"value\(s\) \(the first at index "
                                         rf"{re.escape(where)}\)"):
        call(X, y, X_masked, y_masked)


def test_a_masked_array_without_masked_entries_is_its_data(kernel_spy):
    """Used as its data, not copied (the kernels read the same memory)."""
    X, y, _ = gdcore.make_regression(40, 3, noise=0.1, seed=2)
    plain = gdcore.fit(X, y, epochs=2, seed=1)
    X_masked = np.ma.masked_array(X)
    y_masked = np.ma.masked_array(y, mask=np.zeros(40, bool))
    kernel_spy.clear()
    masked = gdcore.fit(X_masked, y_masked, epochs=2, seed=1)
    np.testing.assert_array_equal(masked.w, plain.w)
    assert masked.b == plain.b
    for _, args in kernel_spy:
        assert type(args[0]) is np.ndarray and np.shares_memory(args[0], X)
        assert np.shares_memory(args[1], y)
