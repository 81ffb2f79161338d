"""gdcore.dask.fit takes every option of gdcore.fit: each against the in-memory run.

The options come from the option table (``gdcore._options.ALL``): a new
option fails ``test_every_option_has_a_case`` until it has a case here. Each
case runs on Dask (chunks of 1000 rows, Dask's synchronous scheduler) and in
memory on the same data: the same bits for the sequential strategy (chunks
are whole batches, no shuffling), CHUNKS_RTOL for batch descent (sums grouped
by chunk) and for what is summed chunk by chunk (losses, held-out loss).
"""

from __future__ import annotations

import numpy as np
import pytest

import gdcore
from gdcore import _options

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")

import gdcore.dask as gdask  # noqa: E402

CHUNKS_RTOL = 1e-12
ROWS = 1000

#: Every run: per-sample SGD without shuffling (the sequential strategy's
#: exact case), unless the case says otherwise.
BASE = dict(method="sgd", lr=0.002, epochs=2, shuffle=False)


@pytest.fixture(scope="module")
def data():
    X, y, _ = gdcore.make_regression(5000, 6, noise=0.3, bias=1.5, seed=4)
    return X, y


def _weights(n):
    return np.random.default_rng(0).uniform(0.0, 3.0, n)


#: option -> (options of the case, how close: "bits" or "rtol")
CASES = {
    "method": (dict(method="batch", lr=0.1, epochs=5), "rtol"),
    "batch_size": (dict(method="minibatch", batch_size=40), "bits"),
    "lr": (dict(lr=0.001), "bits"),
    "epochs": (dict(epochs=3), "bits"),
    "fit_intercept": (dict(fit_intercept=False), "bits"),
    "loss": (dict(loss="half_mse"), "bits"),
    "shuffle": (dict(shuffle=True, seed=3), "within chunks"),
    "seed": (dict(seed=3), "bits"),
    "n_threads": (dict(method="batch", n_threads=2, lr=0.1), "rtol"),
    "momentum": (dict(momentum=0.5), "bits"),
    "nesterov": (dict(momentum=0.5, nesterov=True), "bits"),
    "dampening": (dict(momentum=0.5, dampening=0.3), "bits"),
    "weight_decay": (dict(weight_decay=0.1), "bits"),
    "l1": (dict(l1=0.05), "bits"),
    "decay_bias": (dict(weight_decay=0.1, decay_bias=True), "bits"),
    "schedule": (dict(schedule="invscaling"), "bits"),
    "average": (dict(average=True), "bits"),
    "tol": (dict(tol=1e-3, epochs=20, n_iter_no_change=1), "bits"),
    "stop_on": (dict(tol=1e-3, stop_on="validation", epochs=20, seed=1), "bits"),
    "n_iter_no_change": (dict(tol=1e-2, n_iter_no_change=2, epochs=20), "bits"),
    "validation_fraction": (dict(validation_fraction=0.2, seed=1), "bits"),
    "on_divergence": (dict(lr=1e10, on_divergence="stop"), "bits"),
    "check_lr": (dict(method="batch", lr=5.0, check_lr=True, on_divergence="stop"), "rtol"),
    "callback": (dict(callback=lambda info: info["epoch"] >= 0), "bits"),
    "callback_every": (dict(callback=lambda info: None, callback_every=700), "bits"),
    "verbose": (dict(verbose=1), "bits"),
    "progress": (dict(progress=True), "bits"),
    "checkpoint": (dict(checkpoint="CHECKPOINT"), "bits"),
    "checkpoint_seconds": (dict(checkpoint="CHECKPOINT", checkpoint_seconds=0.001), "bits"),
    "optimizer": (dict(optimizer="adam"), "bits"),
    "l1_method": (dict(l1=0.05, l1_method="cumulative"), "bits"),
    "w0": (dict(w0=np.linspace(-1, 1, 6)), "bits"),
    "b0": (dict(b0=0.75), "bits"),
    "sample_weight": (dict(sample_weight="WEIGHTS"), "bits"),
    "warm_start": (dict(warm_start="WARM"), "bits"),
    "restore_best": (dict(restore_best=True, lr=0.02, epochs=4), "bits"),
}

#: what the history and held-out loss are held to (losses summed chunk by chunk)
LOSSES = ("history", "val_loss")


def test_every_option_has_a_case():
    assert set(CASES) | set(gdask.NOT_ON_DASK) == set(_options.ALL)
    assert not set(CASES) & set(gdask.NOT_ON_DASK)


def _resolve(options, data, tmp_path, where):
    X, y = data
    options = dict(options)
    if options.get("checkpoint") == "CHECKPOINT":
        options["checkpoint"] = tmp_path / f"{where}.ckpt"
    if options.get("sample_weight") == "WEIGHTS":
        options["sample_weight"] = _weights(X.shape[0])
    if options.get("warm_start") == "WARM":
        options["warm_start"] = gdcore.fit(X, y, **BASE)
    return options


@pytest.mark.parametrize("method", ["sgd", "batch"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_option_on_dask_as_in_memory(name, method, data, tmp_path, assert_agree, recwarn):
    """Each option with per-sample SGD (the sequential strategy: the same
    bits) and with batch descent (CHUNKS_RTOL); a case that sets its own
    method runs once."""
    X, y = data
    case, closeness = CASES[name]
    if method == "batch":
        if "method" in case:
            pytest.skip("the case sets its own method")
        case, closeness = {"method": "batch", "lr": 0.05, **case}, "rtol"
    options = {**BASE, **case}
    if closeness == "within chunks":
        # each chunk's rows in a random order of its own: tests/test_dask.py
        # (test_shuffle_within_chunks_as_documented) checks the documented order
        pytest.skip("shuffling is within chunks: see test_dask.py")
    expected = gdcore.fit(X, y, **_resolve(options, data, tmp_path, "memory"))
    with dask.config.set(scheduler="sync"):
        got = gdask.fit(da.from_array(X, chunks=(ROWS, 6)), da.from_array(y, chunks=ROWS),
                        **_resolve(options, data, tmp_path, "dask"))
    assert got.backend == "dask"
    assert_agree(got, expected, rtol=CHUNKS_RTOL, atol=0)
    if closeness == "bits":
        np.testing.assert_array_equal(got.w, expected.w)
        assert got.b == expected.b
        np.testing.assert_array_equal(got.grad_norm, expected.grad_norm)
    if name == "check_lr":
        assert sum("the largest learning rate for which" in str(w.message) for w in recwarn) == 2
        warned = [w for w in recwarn if "the largest learning rate for which" in str(w.message)]
        assert {w.filename for w in warned} == {__file__}


def test_dask_sample_weight_and_multi_output(data, assert_agree):
    """Weights as a Dask array (their mean summed by chunk: CHUNKS_RTOL) and a
    2-D y (k outputs in the same passes), for each method."""
    X, y = data
    Y = np.column_stack([y, -2.0 * y + 1.0])
    weights = _weights(X.shape[0])
    Xd = da.from_array(X, chunks=(ROWS, 6))
    with dask.config.set(scheduler="sync"):
        for method in ("batch", "sgd", "minibatch"):
            options = dict(BASE, method=method, batch_size=40,
                           lr=0.1 if method == "batch" else 0.002)
            got = gdask.fit(Xd, da.from_array(y, chunks=ROWS),
                            sample_weight=da.from_array(weights, chunks=700), **options)
            assert_agree(got, gdcore.fit(X, y, sample_weight=weights, **options),
                         rtol=CHUNKS_RTOL, atol=0)
            got = gdask.fit(Xd, da.from_array(Y, chunks=(ROWS, 2)), **options)
            expected = gdcore.fit(X, Y, **options)
            assert got.w.shape == (6, 2) and got.b.shape == (2,)
            assert_agree(got, expected, rtol=CHUNKS_RTOL, atol=0)
            if method != "batch":
                np.testing.assert_array_equal(got.w, expected.w)
        got = gdask.value_and_grad(Xd, Y, np.ones((6, 2)), np.zeros(2))
        assert_agree(got, gdcore.value_and_grad(X, Y, np.ones((6, 2)), np.zeros(2)),
                     rtol=CHUNKS_RTOL, atol=0)
        np.testing.assert_allclose(gdask.predict(Xd, np.ones((6, 2)), np.zeros(2)).compute(),
                                   gdcore.predict(X, np.ones((6, 2)), np.zeros(2)))


def test_bad_dask_sample_weight_is_named(data):
    X, y = data
    Xd = da.from_array(X, chunks=(ROWS, 6))
    weights = _weights(X.shape[0])
    weights[3210] = -1.0
    with pytest.raises(ValueError, match=r"sample_weight must be finite and >= 0; got "
                                         r"-1.0 at index 3210"):
        gdask.fit(Xd, y, sample_weight=da.from_array(weights, chunks=500))
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(5000,\)"):
        gdask.fit(Xd, y, sample_weight=da.ones(4999))
    with pytest.raises(ValueError, match=r"sample_weight must not be all zero"):
        gdask.fit(Xd, y, sample_weight=da.zeros(5000))


def test_checkpoint_resumes_with_the_same_bits(data, tmp_path):
    """A run cut short by a callback and started again from its checkpoint
    ends with the bits of an uninterrupted run (as in memory)."""
    X, y = data
    Xd, yd = da.from_array(X, chunks=(ROWS, 6)), da.from_array(y, chunks=ROWS)
    options = dict(method="minibatch", batch_size=20, lr=0.01, epochs=3, seed=2,
                   momentum=0.3)
    path = tmp_path / "run.ckpt"
    with dask.config.set(scheduler="sync"):
        whole = gdask.fit(Xd, yd, **options)
        cut = gdask.fit(Xd, yd, checkpoint=path, checkpoint_seconds=1e-6,
                        callback=lambda info: info["epoch"] == 1 and info["step"] == 150,
                        callback_every=50, **options)
        assert cut.stop_reason == "callback"
        path.unlink()
        gdask.fit(Xd, yd, checkpoint=path, checkpoint_seconds=1e-6, epochs=1,
                  **{k: v for k, v in options.items() if k != "epochs"})
        resumed = gdask.fit(Xd, yd, checkpoint=path, **options)
    np.testing.assert_array_equal(resumed.w, whole.w)
    assert resumed.b == whole.b


def test_dataframes_and_unknown_chunk_sizes(data, assert_agree):
    X, y = data
    options = dict(method="batch", lr=0.1, epochs=3)
    expected = gdcore.fit(X, y, **options)
    Xd = da.from_array(X, chunks=(ROWS, 6))
    keep = da.from_array(np.ones(5000, dtype=bool), chunks=ROWS)
    X_unknown, y_unknown = Xd[keep], da.from_array(y, chunks=ROWS)[keep]
    assert np.isnan(X_unknown.shape[0]) and np.isnan(y_unknown.shape[0])
    with dask.config.set(scheduler="sync"):
        got = gdask.fit(X_unknown, y_unknown, **options)
        assert np.isnan(X_unknown.shape[0])          # the caller's array is not touched
        assert_agree(got, expected, rtol=CHUNKS_RTOL, atol=0)
        dd = pytest.importorskip("dask.dataframe")
        pd = pytest.importorskip("pandas")
        frame = dd.from_pandas(pd.DataFrame(X, columns=list("abcdef")), npartitions=5)
        target = dd.from_pandas(pd.Series(y), npartitions=5)
        assert_agree(gdask.fit(frame, target, **options), expected, rtol=CHUNKS_RTOL,
                     atol=0)


def test_strategy_and_sync_every_are_checked(data):
    X, y = data
    Xd = da.from_array(X, chunks=(ROWS, 6))
    with pytest.raises(ValueError, match=r"\bstrategy\b"):
        gdask.fit(Xd, y, strategy="async")
    with pytest.raises(ValueError, match=r"strategy='local' applies to method='sgd'"):
        gdask.fit(Xd, y, method="batch", strategy="local")
    with pytest.raises(ValueError, match=r"\bsync_every\b"):
        gdask.fit(Xd, y, strategy="local", sync_every=0)
    with pytest.raises(TypeError, match=r"\bsync_every\b"):
        gdask.fit(Xd, y, strategy="local", sync_every=1.5)


def test_max_stable_lr_as_in_memory(data):
    X, _ = data
    for fit_intercept in (True, False):
        np.testing.assert_allclose(
            gdask.max_stable_lr(da.from_array(X, chunks=(700, 3)), fit_intercept=fit_intercept,
                                loss="half_mse"),
            gdcore.max_stable_lr(X, fit_intercept=fit_intercept, loss="half_mse"),
            rtol=CHUNKS_RTOL)
