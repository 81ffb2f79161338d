"""gdcore.dask when a worker dies mid-fit (a LocalCluster of worker processes).

Data built by a graph (here ``da.from_array``, persisted) are recomputed on
the surviving or restarted workers and the fit ends with the bits of an
undisturbed run; data scattered into the dead worker's memory only are lost:
one ``DataLostError`` that says so, carrying the last parameters and state,
and the checkpoint file as last saved. Skipped without distributed.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal

import numpy as np
import pytest

import gdcore

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import gdcore.dask as gdask  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=None,
                                       silence_logs=logging.CRITICAL)
    with distributed.Client(cluster) as client:
        yield client
    cluster.close()


@pytest.fixture(scope="module")
def data():
    X, y, _ = gdcore.make_regression(4000, 5, noise=0.2, seed=21)
    return X, y


def _kill_a_worker(client, address=None):
    """SIGKILL one of the cluster's worker processes (started by this test):
    the one at ``address``, or the first."""
    pids = client.run(os.getpid)
    os.kill(pids[address or sorted(pids)[0]], signal.SIGKILL)


@pytest.mark.parametrize("method,strategy", [("batch", "sequential"), ("sgd", "sequential"),
                                             ("minibatch", "local")])
def test_killed_worker_with_recomputable_data_gives_the_same_bits(client, data, method,
                                                                  strategy):
    X, y = data
    Xd, yd = dask.persist(da.from_array(X, chunks=(1000, 5)), da.from_array(y, chunks=1000))
    options = dict(method=method, lr=0.05 if method == "batch" else 0.003, epochs=3, seed=4,
                   strategy=strategy)
    expected = gdask.fit(Xd, yd, **options)
    killed = []

    def kill_once(info):
        if info["epoch"] == 0 and not killed:
            killed.append(True)
            _kill_a_worker(client)

    got = gdask.fit(Xd, yd, callback=kill_once, **options)
    assert killed
    np.testing.assert_array_equal(got.w, expected.w)
    assert got.b == expected.b
    np.testing.assert_array_equal(got.history, expected.history)
    client.wait_for_workers(2, timeout=60)


def test_lost_scattered_data_is_one_clear_error_keeping_the_run(client, data, tmp_path):
    X, y = data
    client.wait_for_workers(2, timeout=60)
    address = sorted(client.scheduler_info()["workers"])[0]
    x_future, y_future = client.scatter([X, y], workers=[address], broadcast=False)
    Xd = da.from_delayed(dask.delayed(x_future), shape=X.shape, dtype=X.dtype)
    yd = da.from_delayed(dask.delayed(y_future), shape=y.shape, dtype=y.dtype)
    seen = []

    def kill_after_two(info):
        seen.append((info["w"].copy(), info["b"]))
        if info["epoch"] == 1:
            _kill_a_worker(client, address)

    path = tmp_path / "run.ckpt"
    with pytest.raises(gdask.DataLostError) as lost:
        gdask.fit(Xd, yd, method="sgd", lr=0.003, epochs=5, seed=1, callback=kill_after_two,
                  checkpoint=path, checkpoint_seconds=1e-6)
    message = str(lost.value)
    assert "lost with a worker" in message and "persist" in message
    np.testing.assert_array_equal(lost.value.w, seen[-1][0])
    assert lost.value.b == seen[-1][1] and lost.value.epoch == 2
    assert lost.value.state.epoch == 2 and path.exists()
    again = pickle.loads(pickle.dumps(lost.value))          # every gdcore error pickles
    assert type(again) is gdask.DataLostError and str(again) == message
    np.testing.assert_array_equal(again.w, lost.value.w)
    assert again.epoch == 2 and again.state.epoch == 2
    # the run continues in memory from the error's state, as one run would
    rest = gdcore.fit(X, y, method="sgd", lr=0.003, epochs=3, seed=1,
                      warm_start=lost.value.state)
    assert rest.epochs_run == 3 and np.isfinite(rest.w).all()
    client.wait_for_workers(2, timeout=60)
