"""gdcore.dask's local SGD (strategy="local"): parallel replicas, averaged.

Checked against a plain-Python simulation of the documented schedule (every
chunk a replica running gdcore.reference's epoch over its own rows from the
same state; every sync_every rows the buffers averaged, weighted by rows),
for the same bits on any scheduler and cluster size, and against the
sequential strategy where they must agree (one chunk).
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest

import gdcore
from gdcore import reference
from gdcore._options import OPTIONS, Config

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")

import gdcore.dask as gdask  # noqa: E402
from gdcore._dask_chunks import Chunks  # noqa: E402

#: the compiled kernels and the reference path agree to this
BACKENDS_RTOL = 1e-9


@pytest.fixture(scope="module")
def data():
    X, y, _ = gdcore.make_regression(3000, 5, noise=0.2, bias=-0.5, seed=11)
    return X, y


def simulate(X, y, chunk_rows, epochs, sync_every=None, **options):
    """The local strategy written out in plain Python over gdcore.reference."""
    names = {record.name for record in OPTIONS}
    config = Config(**{k: v for k, v in options.items() if k in names})
    b = {"sgd": 1}.get(config.method, config.batch_size)
    config = dataclasses.replace(config, batch_size=b)
    state = gdcore.fit(X, y, epochs=0, **options).state       # the starting state
    buffers, l1_total = state.buffers.tolist(), state.l1_total
    bounds = [(lo, min(lo + chunk_rows, X.shape[0])) for lo in range(0, X.shape[0], chunk_rows)]
    steps = [-(-(hi - lo) // b) for lo, hi in bounds]
    per_epoch = max(steps)
    per_round = per_epoch if sync_every is None else -(-sync_every // b)
    ratio = per_epoch / sum(steps)
    rows, targets = X.tolist(), [[t] for t in y.tolist()]
    global_step, history = 0, []
    for epoch in range(epochs):
        lr = config.schedule.epoch_lr(config.lr, epoch, state.schedule_state)
        seeds = ([int(state.rng.integers(2 ** 63)) for _ in bounds] if config.shuffle
                 else None)
        buffers[1] = [0.0] * len(buffers[1])                    # the epoch's gradient sum
        running, at = 0.0, 0
        while at < per_epoch:
            end = min(per_epoch, (at // per_round + 1) * per_round)
            replicas = []
            for c, (lo, hi) in enumerate(bounds):
                first, stop = min(at, steps[c]), min(end, steps[c])
                if first >= stop:
                    continue
                visit = (list(range(hi - lo)) if seeds is None
                         else np.random.default_rng(seeds[c]).permutation(hi - lo).tolist())
                mine, totals = [row[:] for row in buffers], [l1_total]
                _, run, _, nonfinite = reference.train_epoch(
                    rows[lo:hi], targets[lo:hi], visit, None, mine, totals, config, b, lr,
                    global_step, first, stop, 0.0)
                assert not nonfinite
                replicas.append((mine, totals[0], run, min(stop * b, hi - lo) - first * b))
            total = sum(n for *_, n in replicas)
            merged = [[sum(n / total * mine[r][j] for mine, _, _, n in replicas)
                       for j in range(len(buffers[r]))] for r in range(len(buffers))]
            merged[1] = [buffers[1][j] + ratio * sum(mine[1][j] - buffers[1][j]
                                                     for mine, *_ in replicas)
                         for j in range(len(buffers[1]))]
            l1_total = sum(n / total * l1 for _, l1, _, n in replicas)
            running += ratio * sum(run for _, _, run, _ in replicas)
            buffers = merged
            global_step += end - at
            at = end
        history.append(running / per_epoch)
    params = np.array(buffers[0 if not options.get("average") else 6])
    return params[:-1], params[-1], np.array(history)


CASES = [
    dict(method="sgd", lr=0.002, shuffle=False),
    dict(method="sgd", lr=0.002, shuffle=True, seed=5, momentum=0.5),
    dict(method="minibatch", batch_size=16, lr=0.02, seed=1, optimizer="adam",
         schedule="invscaling"),
    dict(method="minibatch", batch_size=10, lr=0.01, shuffle=False, weight_decay=0.1,
         l1=0.02, l1_method="cumulative", average=True),
]


@pytest.mark.parametrize("options", CASES)
@pytest.mark.parametrize("chunk_rows,sync_every", [(1000, None), (700, 250), (3000, 96)])
def test_local_sgd_is_the_documented_averaging(data, options, chunk_rows, sync_every):
    X, y = data
    with dask.config.set(scheduler="sync"):
        got = gdask.fit(da.from_array(X, chunks=(chunk_rows, 5)), y, epochs=2,
                        strategy="local", sync_every=sync_every, **options)
    w, b, history = simulate(X, y, chunk_rows, 2, sync_every, **options)
    np.testing.assert_allclose(got.w, w, rtol=BACKENDS_RTOL)
    np.testing.assert_allclose(got.b, b, rtol=BACKENDS_RTOL)
    np.testing.assert_allclose(got.history, history, rtol=BACKENDS_RTOL)
    batch = {"sgd": 1}.get(options["method"], options.get("batch_size"))
    assert got.steps_per_epoch == -(-min(chunk_rows, 3000) // batch)


def test_one_chunk_is_the_sequential_run(data):
    X, y = data
    options = dict(method="minibatch", batch_size=20, lr=0.01, epochs=2, seed=3, momentum=0.3)
    Xd = da.from_array(X, chunks=(3000, 5))
    with dask.config.set(scheduler="sync"):
        local = gdask.fit(Xd, y, strategy="local", **options)
        sequential = gdask.fit(Xd, y, **options)
    np.testing.assert_array_equal(local.w, sequential.w)
    assert local.b == sequential.b


def test_same_bits_on_any_scheduler_and_cluster(data):
    """Replicas are chunks, averaged in chunk order on the client: where a
    replica runs, when it ends, and whether a task runs one chunk or all the
    chunks a worker holds (persisted data) changes nothing."""
    distributed = pytest.importorskip("distributed")
    X, y = data
    Xd, yd = da.from_array(X, chunks=(500, 5)), da.from_array(y, chunks=500)
    options = dict(method="sgd", lr=0.003, epochs=2, seed=9, strategy="local",
                   sync_every=200, momentum=0.2)
    with dask.config.set(scheduler="sync"):
        expected = gdask.fit(Xd, yd, **options)
    with dask.config.set(scheduler="threads", num_workers=3):
        threads = gdask.fit(Xd, yd, **options)
    results = [threads]
    for workers in (1, 2):
        with distributed.LocalCluster(n_workers=workers, threads_per_worker=1,
                                      processes=False, dashboard_address=None,
                                      silence_logs=logging.ERROR) as cluster, \
                distributed.Client(cluster):
            results.append(gdask.fit(Xd, yd, **options))
            persisted = dask.persist(Xd, yd)       # one task per worker thread's chunks
            assert Chunks(*persisted).groups is not None
            results.append(gdask.fit(*persisted, **options))
    for result in results:
        np.testing.assert_array_equal(result.w, expected.w)
        assert result.b == expected.b
        np.testing.assert_array_equal(result.history, expected.history)


def test_local_sgd_converges_and_diverges_as_documented(data):
    X, y = data
    Xd = da.from_array(X, chunks=(750, 5))
    with dask.config.set(scheduler="sync"):
        local = gdask.fit(Xd, y, method="sgd", lr=0.002, epochs=5, seed=0, strategy="local")
        with pytest.raises(gdcore.DivergenceError) as failed:
            gdask.fit(Xd, y, method="sgd", lr=1e10, epochs=2, strategy="local",
                      sync_every=100)
        stopped = gdask.fit(Xd, y, method="sgd", lr=1e10, epochs=2, strategy="local",
                            sync_every=100, on_divergence="stop")
    best = gdcore.fit(X, y, method="batch", lr=0.2, epochs=300).history[-1]
    assert local.history[-1] < 1.05 * best
    assert np.isfinite(failed.value.w).all() and failed.value.epoch == 0
    assert stopped.stop_reason == "diverged" and np.isfinite(stopped.w).all()
