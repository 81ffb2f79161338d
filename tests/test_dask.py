"""gdcore.dask: batch GD, SGD and mini-batch on Dask arrays.

Run on a ``distributed.LocalCluster`` of 2 worker processes bound to
127.0.0.1 (and on Dask's synchronous scheduler), against the in-memory
functions on the same data. Skipped when dask or distributed is missing.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys

import numpy as np
import pytest

import gdcore

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import gdcore.dask as gdask  # noqa: E402

#: In-memory and Dask runs do the same arithmetic, the sums over rows grouped
#: by chunk: "the tests hold it to 1e-12" (gdcore.dask's documentation).
CHUNKS_RTOL = 1e-12


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1,
                                       host="127.0.0.1", processes=True,
                                       dashboard_address=None,
                                       silence_logs=logging.ERROR)
    with distributed.Client(cluster) as client:
        yield client
    cluster.close()


@pytest.fixture(params=["cluster", "sync"])
def scheduler(request):
    """Run a test on the 2-worker cluster and on Dask's synchronous scheduler."""
    if request.param == "cluster":
        request.getfixturevalue("client")
        yield "cluster"
    else:
        with dask.config.set(scheduler="sync"):
            yield "sync"


@pytest.fixture(scope="module")
def data():
    X, y, w_true = gdcore.make_regression(5000, 6, noise=0.3, bias=1.5, seed=4)
    return X, y, w_true


def _dask(X, y, rows):
    return da.from_array(X, chunks=(rows, X.shape[1])), da.from_array(y, chunks=rows)


@pytest.fixture(scope="session")
def close(assert_agree):
    """Agreement of a Dask result with the in-memory one (see CHUNKS_RTOL)."""
    def check(a, b):
        assert_agree(a, b, rtol=CHUNKS_RTOL, atol=0)
    return check


# ---------------------------------------------------------------------------
# batch: parallel over chunks, summed in chunk order
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("rows", [5000, 1000, 333])
@pytest.mark.parametrize("loss,fit_intercept", [("mse", True), ("half_mse", False)])
def test_batch_fit_equals_in_memory_batch(scheduler, close, data, rows, loss, fit_intercept):
    X, y, _ = data
    options = dict(method="batch", lr=0.1, epochs=25, loss=loss,
                   fit_intercept=fit_intercept, w0=np.full(6, 0.2), b0=-0.5)
    expected = gdcore.fit(X, y, **options)
    got = gdask.fit(*_dask(X, y, rows), **options)
    close(got, expected)           # w, b, history, grad_norm, lr_history and the counts
    assert (got.epochs_run, got.n_steps, got.batch_size, got.method, got.backend) == \
        (25, 25, 5000, "batch", "dask")


def test_batch_fit_same_bits_every_run_and_any_scheduler(client, data):
    X, y, _ = data
    Xd, yd = _dask(X, y, 500)
    first = gdask.fit(Xd, yd, method="batch", lr=0.1, epochs=10)
    again = gdask.fit(Xd.persist(), yd.persist(), method="batch", lr=0.1, epochs=10)
    with dask.config.set(scheduler="sync"):
        local = gdask.fit(Xd, yd, method="batch", lr=0.1, epochs=10, n_threads=2)
    for result in (again, local):
        np.testing.assert_array_equal(result.w, first.w)
        assert result.b == first.b
        np.testing.assert_array_equal(result.history, first.history)


@pytest.mark.parametrize("rows", [5000, 999])
def test_value_and_grad_equals_in_memory(scheduler, close, data, rows):
    X, y, w_true = data
    for loss in ("mse", "half_mse"):
        expected = gdcore.value_and_grad(X, y, w_true + 0.1, 0.3, loss=loss)
        got = gdask.value_and_grad(*_dask(X, y, rows), w_true + 0.1, 0.3, loss=loss)
        close(got, expected)
        assert isinstance(got[0], float) and isinstance(got[2], float)


def test_predict_equals_in_memory(scheduler, data):
    X, y, w_true = data
    lazy = gdask.predict(_dask(X, y, 700)[0], w_true, 0.25)
    assert isinstance(lazy, da.Array) and lazy.shape == (5000,)
    np.testing.assert_array_equal(lazy.compute(), gdcore.predict(X, w_true, 0.25))


# ---------------------------------------------------------------------------
# sgd / minibatch: chunks streamed in order
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("rows", [5000, 1024, 640])
@pytest.mark.parametrize("method,batch_size", [("sgd", 1), ("minibatch", 32),
                                               ("minibatch", 64)])
def test_streaming_equals_in_memory_when_batches_align(scheduler, close, data, rows, method,
                                                       batch_size):
    """Chunk sizes that are multiples of batch_size (the last chunk may be
    shorter: it ends the epoch): the same bits as in memory, without shuffle."""
    X, y, _ = data
    options = dict(method=method, batch_size=batch_size, lr=0.005, epochs=2,
                   loss="half_mse", b0=0.5, shuffle=False)
    expected = gdcore.fit(X, y, **options)
    got = gdask.fit(*_dask(X, y, rows), **options)
    np.testing.assert_array_equal(got.w, expected.w)
    assert got.b == expected.b
    close(got.history, expected.history)
    assert got.n_steps == expected.n_steps and got.batch_size == expected.batch_size


def _chunkwise(X, y, bounds, epochs, seeds=None, **options):
    """Documented semantics: each epoch, one epoch of gdcore.fit per chunk."""
    w, b = options.pop("w0", np.zeros(X.shape[1])), options.pop("b0", 0.0)
    for epoch in range(epochs):
        for k, (start, stop) in enumerate(bounds):
            seed = None if seeds is None else seeds[epoch][k]
            result = gdcore.fit(X[start:stop], y[start:stop], epochs=1, w0=w, b0=b,
                                shuffle=seed is not None, seed=seed, **options)
            w, b = result.w, result.b
    return w, b


def test_batches_restart_at_chunk_boundaries(scheduler, data):
    """Chunks of 100 rows with batches of 32: every chunk ends with a batch of 4
    rows (averaged over 4), exactly as one epoch of gdcore.fit per chunk."""
    X, y, _ = data
    options = dict(method="minibatch", batch_size=32, lr=0.01)
    got = gdask.fit(*_dask(X, y, 100), epochs=2, shuffle=False, **options)
    bounds = [(s, s + 100) for s in range(0, 5000, 100)]
    w, b = _chunkwise(X, y, bounds, 2, **options)
    np.testing.assert_array_equal(got.w, w)
    assert got.b == b
    assert got.n_steps == 2 * 50 * 4 and got.steps_per_epoch == 50 * 4
    in_memory = gdcore.fit(X, y, shuffle=False, epochs=2, **options)
    assert not np.array_equal(got.w, in_memory.w)   # batches differ, so do the bits


def test_shuffle_within_chunks_as_documented(scheduler, data):
    X, y, _ = data
    options = dict(method="minibatch", batch_size=16, lr=0.01)
    got = gdask.fit(*_dask(X, y, 1000), epochs=2, shuffle=True, seed=77, **options)
    rng = np.random.default_rng(77)
    seeds = [[int(rng.integers(2 ** 63)) for _ in range(5)] for _ in range(2)]
    bounds = [(s, s + 1000) for s in range(0, 5000, 1000)]
    w, b = _chunkwise(X, y, bounds, 2, seeds=seeds, **options)
    np.testing.assert_array_equal(got.w, w)
    assert got.b == b
    again = gdask.fit(*_dask(X, y, 1000), epochs=2, shuffle=True, seed=77, **options)
    other = gdask.fit(*_dask(X, y, 1000), epochs=2, shuffle=True, seed=78, **options)
    np.testing.assert_array_equal(again.w, got.w)
    assert not np.array_equal(other.w, got.w)


def test_epochs_zero_returns_the_start(data):
    X, y, _ = data
    for method in ("batch", "sgd"):
        result = gdask.fit(*_dask(X, y, 1000), method=method, epochs=0,
                           w0=np.arange(6.0), b0=2.0)
        np.testing.assert_array_equal(result.w, np.arange(6.0))
        assert result.b == 2.0 and result.history.shape == (0,) and result.n_steps == 0


# ---------------------------------------------------------------------------
# gdcore.fit's training loop: its options, defaults and result
# ---------------------------------------------------------------------------

def test_defaults_are_those_of_gdcore_fit(data):
    """No options: gdcore.fit's defaults, mini-batches of 32 shuffled within
    each chunk (one seed per chunk drawn from the run's generator)."""
    X, y, _ = data
    with dask.config.set(scheduler="sync"):
        got = gdask.fit(*_dask(X, y, 1000), epochs=2, seed=5)
    assert (got.method, got.batch_size, got.backend) == ("minibatch", 32, "dask")
    rng = np.random.default_rng(5)
    seeds = [[int(rng.integers(2 ** 63)) for _ in range(5)] for _ in range(2)]
    bounds = [(s, s + 1000) for s in range(0, 5000, 1000)]
    w, b = _chunkwise(X, y, bounds, 2, seeds=seeds, method="minibatch", batch_size=32,
                      lr=0.01)
    np.testing.assert_array_equal(got.w, w)
    assert got.b == b


@pytest.mark.parametrize("method,batch_size", [("batch", 32), ("sgd", 1), ("minibatch", 40)])
def test_update_rule_options_as_in_memory(close, data, method, batch_size):
    """Momentum, penalties, schedules and averaging run in the same compiled
    rule as in memory: the same bits for aligned streaming, CHUNKS_RTOL for
    batch (its sums are grouped by chunk)."""
    X, y, _ = data
    options = dict(method=method, batch_size=batch_size, lr=0.002, epochs=4, shuffle=False,
                   momentum=0.6, nesterov=True, weight_decay=0.05, l1=0.01,
                   schedule="exponential", average=3)
    expected = gdcore.fit(X, y, **options)
    with dask.config.set(scheduler="sync"):
        got = gdask.fit(*_dask(X, y, 1000), **options)
    close(got, expected)
    if method != "batch":
        np.testing.assert_array_equal(got.w, expected.w)
        assert got.b == expected.b


def test_warm_starts_in_both_directions(close, data):
    """A result of either function continues in the other, exactly as one run
    (the history to CHUNKS_RTOL: a streamed epoch adds its loss chunk by chunk)."""
    X, y, _ = data
    options = dict(method="sgd", lr=0.002, shuffle=False, momentum=0.5, schedule="step")
    whole = gdcore.fit(X, y, epochs=4, **options)
    with dask.config.set(scheduler="sync"):
        first = gdask.fit(*_dask(X, y, 1000), epochs=2, **options)
        second = gdcore.fit(X, y, epochs=2, warm_start=first, **options)
        np.testing.assert_array_equal(second.w, whole.w)
        assert second.b == whole.b
        again = gdask.fit(*_dask(X, y, 1000), epochs=2,
                          warm_start=gdcore.fit(X, y, epochs=2, **options), **options)
    np.testing.assert_array_equal(again.w, whole.w)
    close(np.r_[first.history, again.history], whole.history)


def test_early_stopping_callbacks_and_divergence_policy(data):
    """tol / n_iter_no_change, callbacks (every few steps, over chunk
    boundaries) and on_divergence="stop" behave as in memory."""
    X, y, _ = data
    Xd, yd = _dask(X, y, 1000)
    options = dict(method="minibatch", batch_size=50, lr=0.05, epochs=100, tol=1e-3,
                   n_iter_no_change=2, shuffle=False)
    seen = {"dask": [], "memory": []}

    def record(where):
        return lambda info: seen[where].append((info["epoch"], info["step"],
                                                info["global_step"], info["w"].tolist()))

    with dask.config.set(scheduler="sync"):
        got = gdask.fit(Xd, yd, callback=record("dask"), callback_every=30, **options)
        stopped = gdask.fit(Xd, yd, method="sgd", lr=1e10, epochs=3, shuffle=False,
                            on_divergence="stop")
    expected = gdcore.fit(X, y, callback=record("memory"), callback_every=30, **options)
    assert got.stop_reason == expected.stop_reason == "tol (loss)"
    assert got.epochs_run == expected.epochs_run < 100
    np.testing.assert_array_equal(got.w, expected.w)
    assert seen["dask"] == seen["memory"] and len(seen["dask"]) > got.epochs_run
    in_memory = gdcore.fit(X, y, method="sgd", lr=1e10, epochs=3, shuffle=False,
                           on_divergence="stop")
    assert stopped.stop_reason == in_memory.stop_reason == "diverged"
    assert stopped.n_steps == in_memory.n_steps
    np.testing.assert_array_equal(stopped.w, in_memory.w)


#: a value other than the default of each option gdcore.dask.fit refuses
NOT_DEFAULT = {"backend": "reference", "copy": False, "shuffle_block": 7,
               "standardize": True}


@pytest.mark.parametrize("name", sorted(gdask.NOT_ON_DASK))
def test_options_not_on_dask_are_refused_unless_default(name):
    X = da.from_array(np.ones((10, 2)), chunks=5)
    with pytest.raises(ValueError, match=rf"^{name} is not available in gdcore.dask.fit"):
        gdask.fit(X, np.ones(10), epochs=1, **{name: NOT_DEFAULT[name]})
    default = gdcore.fit.__kwdefaults__[name]
    assert gdask.fit(X, np.ones(10), epochs=1, **{name: default}).epochs_run == 1


# ---------------------------------------------------------------------------
# divergence and non-finite input: the in-memory behaviour, global indices
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("method,lr", [("batch", 1e200), ("sgd", 1e10),
                                       ("minibatch", 1e8)])
def test_divergence_matches_in_memory(scheduler, close, data, method, lr):
    X, y, _ = data
    options = dict(method=method, batch_size=32, lr=lr, epochs=3, shuffle=False)
    with pytest.raises(gdcore.DivergenceError) as expected:
        gdcore.fit(X, y, **options)
    with pytest.raises(gdcore.DivergenceError) as got:
        gdask.fit(*_dask(X, y, 640), **options)
    assert np.isfinite(got.value.w).all() and np.isfinite(got.value.b)
    close(got.value, expected.value)          # epoch, step, w, b, history
    if method != "batch":
        np.testing.assert_array_equal(got.value.w, expected.value.w)
        assert got.value.b == expected.value.b


@pytest.mark.parametrize("method", ["batch", "sgd", "minibatch"])
@pytest.mark.parametrize("where", [("X", (3210, 4)), ("y", (4999,)), ("X", (0, 0))])
def test_nonfinite_input_is_named_with_its_global_index(scheduler, data, method, where):
    X, y, w_true = data
    X, y = X.copy(), y.copy()
    name, index = where
    (X if name == "X" else y)[index] = np.inf
    X[4000, 2] = np.nan if name == "y" else X[4000, 2]   # an X value wins over y
    expected_name, expected_index = ("X", (4000, 2)) if name == "y" else where
    shown = expected_index if len(expected_index) > 1 else expected_index[0]
    message = (rf"{expected_name} must contain only finite values; got \S+ at index "
               + re.escape(str(shown)))
    with pytest.raises(ValueError, match=message):
        gdask.fit(*_dask(X, y, 1000), method=method, lr=0.01, epochs=1)
    with pytest.raises(ValueError, match=message):
        gdask.value_and_grad(*_dask(X, y, 1000), w_true)


# ---------------------------------------------------------------------------
# inputs: kinds, shapes, chunkings; never modified
# ---------------------------------------------------------------------------

def test_inputs_of_other_kinds_and_chunkings(scheduler, close, data):
    """1-D X, integer and float32 chunks, several column chunks, y in memory,
    y chunked differently, empty chunks: all give the in-memory result."""
    X, y, _ = data
    options = dict(method="batch", lr=0.1, epochs=5)
    x1 = X[:, 0].copy()
    close(gdask.fit(da.from_array(x1, chunks=900), y, **options).w,
          gdcore.fit(x1, y, **options).w)
    Xi = np.round(X * 10).astype(np.int32)
    close(gdask.fit(da.from_array(Xi, chunks=(1100, 2)), da.from_array(y, chunks=700),
                    **options).w, gdcore.fit(Xi, y, **options).w)
    X32 = X.astype(np.float32)
    close(gdask.fit(da.from_array(X32, chunks=(1000, 3)), y, **options).w,
          gdcore.fit(X32, y, **options).w)
    Xd = da.from_array(X, chunks=((2000, 0, 3000), (6,)))
    assert 0 in Xd.chunks[0]
    close(gdask.fit(Xd, y, **options).w, gdcore.fit(X, y, **options).w)
    XF = da.from_array(np.asfortranarray(X), chunks=(1000, 6))
    sgd = dict(method="sgd", lr=0.001, epochs=1, shuffle=False)
    close(gdask.fit(XF, y, **sgd).w, gdcore.fit(X, y, **sgd).w)


def test_inputs_are_not_modified(data):
    X, y, _ = data
    X, y = X.copy(), y.copy()
    X_before, y_before = X.copy(), y.copy()
    w0 = np.ones(6)
    Xd, yd = _dask(X, y, 1000)
    for method in ("batch", "sgd", "minibatch"):
        gdask.fit(Xd, yd, method=method, lr=0.001, epochs=2, w0=w0, shuffle=True, seed=0)
    gdask.value_and_grad(Xd, yd, w0)
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(y, y_before)
    np.testing.assert_array_equal(w0, np.ones(6))


@pytest.mark.parametrize("call", [
    lambda X, y: gdask.fit(X, y),
    lambda X, y: gdask.value_and_grad(X, y, np.zeros(2)),
])
@pytest.mark.parametrize("X,y,error,name", [
    (np.zeros((4, 2)), np.zeros(4), TypeError, "X"),
    ([[1.0, 2.0]], np.zeros(1), TypeError, "X"),
    (da.zeros((4, 2), dtype=complex), np.zeros(4), TypeError, "X"),
    (da.zeros((4, 2), dtype="U3"), np.zeros(4), TypeError, "X"),
    (da.zeros((4, 2, 1)), np.zeros(4), ValueError, "X"),
    (da.zeros((0, 2)), np.zeros(0), ValueError, "X"),
    (da.zeros((4, 0)), np.zeros(4), ValueError, "X"),
    (da.zeros((4, 2)), np.zeros(5), ValueError, "y"),
    (da.zeros((4, 2)), da.zeros(5), ValueError, "y"),
    (da.zeros((4, 2)), np.zeros((4, 1, 1)), ValueError, "y"),
    (da.zeros((4, 2)), da.zeros((4, 1, 1)), ValueError, "y"),
    (da.zeros((4, 2)), da.zeros((4, 0)), ValueError, "y"),
    (da.zeros((4, 2)), da.zeros(4, dtype=complex), TypeError, "y"),
    (da.zeros((4, 2)), np.array(["a"] * 4), TypeError, "y"),
    (da.zeros((4, 2)), "abcd", TypeError, "y"),
])
def test_bad_arrays(call, X, y, error, name):
    with pytest.raises(error, match=rf"\b{name}\b"):
        call(X, y)


def test_unknown_chunk_sizes_are_measured():
    X = da.from_array(np.ones((10, 2)), chunks=5)
    X_unknown = X[X[:, 0] > 0]
    assert np.isnan(X_unknown.shape[0])
    y_unknown = da.from_array(np.ones(10), chunks=5)
    y_unknown = y_unknown[y_unknown > 0]
    result = gdask.fit(X_unknown, y_unknown, epochs=1)
    assert result.w.shape == (2,)
    assert np.isnan(X_unknown.shape[0]) and np.isnan(y_unknown.shape[0])   # not touched


@pytest.mark.parametrize("kwargs,error,name", [
    (dict(method="newton"), ValueError, "method"),
    (dict(method=None), TypeError, "method"),
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(batch_size=2.0), TypeError, "batch_size"),
    (dict(lr=0.0), ValueError, "lr"),
    (dict(lr=float("nan")), ValueError, "lr"),
    (dict(lr="0.1"), TypeError, "lr"),
    (dict(epochs=-1), ValueError, "epochs"),
    (dict(w0=np.zeros(3)), ValueError, "w0"),
    (dict(w0=[np.nan, 0.0]), ValueError, "w0"),
    (dict(b0=float("inf")), ValueError, "b0"),
    (dict(fit_intercept=1), TypeError, "fit_intercept"),
    (dict(loss="mae"), ValueError, "loss"),
    (dict(shuffle="yes"), TypeError, "shuffle"),
    (dict(seed=-3), ValueError, "seed"),
    (dict(n_threads=0), ValueError, "n_threads"),
    (dict(n_threads=1.5), TypeError, "n_threads"),
    (dict(momentum=-1.0), ValueError, "momentum"),
    (dict(schedule="cosine"), ValueError, "schedule"),
    (dict(on_divergence="ignore"), ValueError, "on_divergence"),
    (dict(callback=3), TypeError, "callback"),
    (dict(learning_rate=0.1), TypeError, "learning_rate"),
])
def test_bad_options(kwargs, error, name):
    X = da.from_array(np.ones((10, 2)), chunks=5)
    with pytest.raises(error, match=rf"\b{name}\b"):
        gdask.fit(X, np.ones(10), **kwargs)


@pytest.mark.parametrize("args,kwargs,error,name", [
    ((np.zeros(3),), {}, ValueError, "w"),
    ((np.array([np.inf, 0.0]),), {}, ValueError, "w"),
    ((np.zeros(2), float("nan")), {}, ValueError, "b"),
    ((np.zeros(2),), dict(loss=1), TypeError, "loss"),
    ((np.zeros(2),), dict(n_threads=2000), ValueError, "n_threads"),
])
def test_value_and_grad_and_predict_bad_arguments(args, kwargs, error, name):
    X = da.from_array(np.ones((10, 2)), chunks=5)
    with pytest.raises(error, match=rf"\b{name}\b"):
        gdask.value_and_grad(X, np.ones(10), *args, **kwargs)
    if "loss" not in kwargs and "n_threads" not in kwargs:
        with pytest.raises(error, match=rf"\b{name}\b"):
            gdask.predict(X, *args)


def test_predict_reports_nonfinite_x_when_computed():
    X = np.ones((10, 2))
    X[7, 1] = np.nan
    lazy = gdask.predict(da.from_array(X, chunks=5), np.ones(2))
    with pytest.raises(ValueError, match=r"\bX\b"):
        lazy.compute(scheduler="sync")
    with pytest.raises(TypeError, match=r"\bX\b"):
        gdask.predict(np.ones((3, 2)), np.ones(2))


def test_import_gdcore_does_not_import_dask_and_gdcore_dask_explains_a_missing_dask():
    code = (
        "import sys\n"
        "import gdcore\n"
        "assert 'dask' not in sys.modules, 'import gdcore imported dask'\n"
        "sys.modules['dask'] = None\n"
        "sys.modules['dask.array'] = None\n"
        "try:\n"
        "    import gdcore.dask\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert "pip install" in out.stdout and "gdcore[dask]" in out.stdout


def test_lr_auto_is_refused():
    X = da.from_array(np.ones((10, 2)), chunks=5)
    with pytest.raises(ValueError, match="lr='auto' is not available in gdcore.dask.fit"):
        gdask.fit(X, np.ones(10), lr="auto")
