"""gdcore.dask at scale: throughput, fixed costs and statistical efficiency.

Measurements (each prints a markdown table and the machine's load)::

    python bench/dask_scale.py throughput --n 2000000 --d 100 --workers 1,2
    python bench/dask_scale.py costs                 # fixed cost per epoch and per chunk
    python bench/dask_scale.py efficiency            # local SGD vs sequential, loss by epoch
    python bench/dask_scale.py ceiling --n 2000000   # 1 vs 2 plain processes, no Dask
    python bench/dask_scale.py roundtrip             # one empty task: Dask's floor
    python bench/dask_scale.py model                 # the cost model on 1e9 x 100

``throughput`` times one epoch (the median of the epochs after the first,
from a callback's timestamps) of every method and strategy in memory and on
a ``distributed.LocalCluster`` of 1, 2, ... worker processes of one thread
each, with the data persisted on the workers in chunks of ``--chunk-rows``.
``costs`` fits ``seconds per epoch = a + b * chunks`` on data too small to
cost anything else (batch, and local SGD with one sync per epoch).
``ceiling`` measures what the machine gives two processes at once (plain
``gdcore.fit`` on half the rows each, no Dask): the bound on any speed-up.
``roundtrip`` times computing one empty task on the cluster: the least any
epoch that needs the client (every epoch of batch and local SGD) costs.
``efficiency`` compares the loss after each epoch of local SGD (several
chunkings and sync periods) with the sequential strategy (the in-memory
bits) and with the least-squares optimum, on well- and ill-conditioned
problems.

``bench/test_dask_scale.py`` runs them at a small size under pytest
(skipped without ``distributed``). The machine's load (``os.getloadavg``)
is printed with every table: on a shared machine the timings are noisy.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

import gdcore


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} cores"


def epoch_times(fit: Callable[..., Any], X: Any, y: Any, epochs: int,
                **options: Any) -> list[float]:
    """Seconds of each epoch of ``fit(X, y, **options)`` after the first (the
    first pays set-up), from a callback's timestamps."""
    stamps: list[float] = []

    def tick(info: dict) -> None:
        stamps.append(time.perf_counter())

    start = time.perf_counter()
    fit(X, y, epochs=epochs, callback=tick, shuffle=False, **options)
    times = list(np.diff([start, *stamps]))
    return times[1:] if len(times) > 1 else times


def epoch_seconds(fit: Callable[..., Any], X: Any, y: Any, epochs: int,
                  **options: Any) -> float:
    """The median of :func:`epoch_times`."""
    return float(statistics.median(epoch_times(fit, X, y, epochs, **options)))


#: (label, options, strategy) of the throughput table
METHODS = [
    ("batch", dict(method="batch", lr=0.01), None),
    ("sgd, sequential", dict(method="sgd", lr=0.001), "sequential"),
    ("sgd, local", dict(method="sgd", lr=0.001), "local"),
    ("minibatch 32, sequential", dict(method="minibatch", lr=0.01), "sequential"),
    ("minibatch 32, local", dict(method="minibatch", lr=0.01), "local"),
]


def _cluster(workers: int, processes: bool = True) -> Any:
    import distributed
    # worker threads of one process talk in-process, which takes no host
    where = {"host": "127.0.0.1"} if processes else {}
    cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1,
                                       processes=processes, **where,
                                       dashboard_address=None, silence_logs=logging.ERROR)
    return cluster, distributed.Client(cluster)


def _per_pass(run: Callable[[int], Any], passes: int = 3) -> float:
    """Seconds per pass of a peer: ``run(passes)`` / passes (its set-up included:
    differences of two runs are lost in the noise of a shared machine)."""
    start = time.perf_counter()
    run(passes)
    return (time.perf_counter() - start) / passes


def peers(Xd: Any, yd: Any, n: int) -> list[dict]:
    """dask-glm's and dask-ml's gradient descent, and dask-ml's Incremental
    SGDRegressor, per pass on the same persisted chunks (when installed; 3
    passes, set-up included)."""
    rows: list[dict] = []
    try:
        import dask_glm.algorithms
        import dask_glm.families
        from dask_ml.linear_model import LinearRegression
        from dask_ml.wrappers import Incremental
        from sklearn.linear_model import SGDRegressor
    except ImportError:
        return rows
    entries = {
        "dask_glm gradient_descent (Normal), per iteration": lambda k: (
            dask_glm.algorithms.gradient_descent(Xd, yd, max_iter=k, tol=0.0,
                                                 family=dask_glm.families.Normal)),
        "dask-ml LinearRegression(solver='gradient_descent'), per iteration": lambda k: (
            LinearRegression(solver="gradient_descent", max_iter=k, tol=0.0).fit(Xd, yd)),
        "dask-ml Incremental(SGDRegressor), per pass": lambda k: [
            Incremental(SGDRegressor(learning_rate="constant", eta0=0.001)).fit(Xd, yd)
            for _ in range(k)],
    }
    for label, run in entries.items():
        seconds = _per_pass(run)
        rows.append({"setup": "peer, same cluster", "method": label, "seconds": seconds,
                     "rows/s": n / seconds})
    return rows


def throughput(n: int, d: int, chunk_rows: int, workers: list[int], epochs: int,
               processes: bool = True, with_peers: bool = False,
               repeats: int = 3) -> list[dict]:
    """Seconds per epoch, in memory and on a cluster per worker count: every
    cluster is started first with its own persisted copy of the data, then
    the measurements go round ``repeats`` times (a burst of load elsewhere
    spoils one round, not one configuration); the median and the best epoch
    over all rounds are reported."""
    import dask
    import dask.array as da

    import gdcore.dask as gdask
    X, y, _ = gdcore.make_regression(n, d, noise=0.1, seed=0)
    clusters = {}
    try:
        for count in workers:
            cluster, client = _cluster(count, processes)
            with client.as_current():
                Xd, yd = dask.persist(da.from_array(X, chunks=(chunk_rows, d)),
                                      da.from_array(y, chunks=chunk_rows))
                dask.compute(Xd.sum(), yd.sum())
            clusters[count] = (cluster, client, Xd, yd)
        times: dict[tuple[str, str], list[float]] = {}
        for _ in range(repeats):
            for label, options, _strategy in METHODS:
                if "local" not in label:
                    key = ("in memory (2 threads)", label.split(",")[0])
                    times.setdefault(key, []).extend(
                        epoch_times(gdcore.fit, X, y, epochs, **options))
            for count, (_, client, Xd, yd) in clusters.items():
                with client.as_current():
                    for label, options, strategy in METHODS:
                        extra = {} if strategy is None else {"strategy": strategy}
                        key = (f"gdcore.dask, {count} worker{'s' if count > 1 else ''}", label)
                        times.setdefault(key, []).extend(
                            epoch_times(gdask.fit, Xd, yd, epochs, **options, **extra))
        rows = [{"setup": setup, "method": label, "seconds": statistics.median(seconds),
                 "best": min(seconds), "rows/s": n / statistics.median(seconds)}
                for (setup, label), seconds in times.items()]
        if with_peers:
            _, client, Xd, yd = clusters[max(workers)]
            with client.as_current():
                rows += peers(Xd, yd, n)
    finally:
        for cluster, client, *_ in clusters.values():
            client.close()
            cluster.close()
    return rows


def costs(chunk_counts: list[int], d: int = 10, rows_per_chunk: int = 100,
          workers: int = 2, epochs: int = 6) -> list[dict]:
    """Seconds per epoch on tiny chunks: the fixed costs of the Dask path,
    with the chunks persisted (one task per worker thread over its chunks)
    and not (a task per chunk, the data rebuilt from the graph)."""
    import dask
    import dask.array as da

    import gdcore.dask as gdask
    rows: list[dict] = []
    cluster, client = _cluster(workers)
    try:
        for chunks in chunk_counts:
            n = chunks * rows_per_chunk
            X, y, _ = gdcore.make_regression(n, d, seed=1)
            Xd, yd = da.from_array(X, chunks=(rows_per_chunk, d)), da.from_array(
                y, chunks=rows_per_chunk)
            for kind, (Xk, yk) in (("persisted", dask.persist(Xd, yd)),
                                   ("a task per chunk", (Xd, yd))):
                for label, options, strategy in (METHODS[0], METHODS[1], METHODS[2]):
                    extra = {} if strategy is None else {"strategy": strategy}
                    seconds = epoch_seconds(gdask.fit, Xk, yk, epochs, **options, **extra)
                    rows.append({"chunks": chunks, "data": kind, "method": label,
                                 "seconds": seconds})
    finally:
        client.close()
        cluster.close()
    for kind in ("persisted", "a task per chunk"):
        for label, _, _ in METHODS[:3]:
            mine = [row for row in rows if row["method"] == label and row["data"] == kind]
            slope, intercept = np.polyfit([r["chunks"] for r in mine],
                                          [r["seconds"] for r in mine], 1)
            rows.append({"chunks": "fit", "data": kind, "method": label,
                         "seconds": f"{1e3 * intercept:.2f} ms + {1e3 * slope:.3f} ms x chunks"})
    return rows


def _excess_by_epoch(fit: Callable[..., Any], X: Any, y: Any, X_memory: np.ndarray,
                     optimum: float, epochs: int, **options: Any) -> list[float]:
    """``(L - L*) / L*`` over all rows of the result after each epoch (one
    epoch at a time through ``warm_start``: the bits of one run, and the
    returned parameters, averaged ones included)."""
    losses: list[float] = []
    result = None
    for _ in range(epochs):
        result = fit(X, y, epochs=1, warm_start=result, **options)
        loss = gdcore.value_and_grad(X_memory, y, result.w, result.b)[0]
        losses.append((loss - optimum) / optimum)
    return losses


def efficiency(n: int = 100_000, d: int = 20, epochs: int = 5,
               rates: tuple[float, ...] = (0.005, 0.0005)) -> list[dict]:
    """Excess loss after each epoch: local SGD vs the sequential strategy
    (and averaged SGD), on a well- and an ill-conditioned problem."""
    import dask
    import dask.array as da

    import gdcore.dask as gdask
    rows: list[dict] = []
    problems = {"well-conditioned": np.ones(d),
                "ill-conditioned (column scales 0.1..3)": np.geomspace(0.1, 3.0, d)}
    for (name, scales), lr in ((p, lr) for p in problems.items() for lr in rates):
        X, y, _ = gdcore.make_regression(n, d, noise=0.5, seed=2)
        X = np.ascontiguousarray(X * scales)
        A = np.column_stack([X, np.ones(n)])
        optimum = float(np.mean((A @ np.linalg.lstsq(A, y, rcond=None)[0] - y) ** 2))
        base = dict(method="sgd", lr=lr, seed=0)
        runs = {
            "sequential (the in-memory bits)": _excess_by_epoch(
                gdcore.fit, X, y, X, optimum, epochs, **base),
            "sequential, averaged SGD (average=True)": _excess_by_epoch(
                gdcore.fit, X, y, X, optimum, epochs, average=True, **base),
        }
        with dask.config.set(scheduler="sync"):
            for replicas in (2, 8, 32):
                Xd = da.from_array(X, chunks=(-(-n // replicas), d))
                for sync in (None, 100):
                    label = (f"local, {replicas} replicas, sync "
                             f"{'per epoch' if sync is None else f'every {sync} rows'}")
                    runs[label] = _excess_by_epoch(gdask.fit, Xd, y, X, optimum, epochs,
                                                   strategy="local", sync_every=sync, **base)
                if lr * replicas <= max(rates):      # a rate known to be stable here
                    runs[f"local, {replicas} replicas, sync per epoch, lr x {replicas}"] = \
                        _excess_by_epoch(gdask.fit, Xd, y, X, optimum, epochs,
                                         strategy="local", **dict(base, lr=lr * replicas))
        for label, losses in runs.items():
            rows.append({"problem": name, "lr": lr, "run": label,
                         **{f"epoch {k + 1}": loss for k, loss in enumerate(losses)}})
    return rows


def _one_process(n: int, d: int, epochs: int) -> float:
    X, y, _ = gdcore.make_regression(n, d, seed=0)
    return epoch_seconds(gdcore.fit, X, y, epochs, method="sgd", lr=0.001)


def ceiling(n: int, d: int, epochs: int, processes: int = 2) -> list[dict]:
    """What the machine itself gives: one SGD epoch of plain ``gdcore.fit``
    over n rows in one process, and over n / p rows in each of p processes
    at once (no Dask): the best speed-up any parallel strategy can reach."""
    import multiprocessing

    rows = []
    for count in (1, processes):
        with multiprocessing.get_context("spawn").Pool(count) as pool:
            times = pool.starmap(_one_process, [(n // count, d, epochs)] * count)
        rows.append({"processes": count, "rows each": n // count,
                     "seconds (slowest)": max(times), "rows/s": n / max(times)})
    rows.append({"processes": f"speed-up {processes} vs 1",
                 "rows/s": rows[1]["rows/s"] / rows[0]["rows/s"]})
    return rows


def _nothing() -> None:
    return None


def _median_and_best(call: Callable[[], Any], repeats: int) -> dict:
    """Milliseconds of ``call()`` over ``repeats`` calls after a first one."""
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return {"median ms": 1e3 * statistics.median(times), "best ms": 1e3 * min(times)}


def roundtrip(workers: list[int], processes: bool = True, repeats: int = 50) -> list[dict]:
    """Seconds to compute one empty task (``client.submit(...).result()``)
    and one empty task per worker (``dask.compute`` of delayed calls, as an
    epoch of gdcore.dask does) on a cluster of each size: Dask's own cost of
    one round trip, which every epoch of batch descent and local SGD pays."""
    import dask

    rows = []
    for count in workers:
        cluster, client = _cluster(count, processes)
        try:
            one = _median_and_best(
                lambda c=client: c.submit(_nothing, pure=False).result(), repeats)
            each = _median_and_best(
                lambda w=count: dask.compute(
                    *[dask.delayed(_nothing, pure=False)() for _ in range(w)]), repeats)
        finally:
            client.close()
            cluster.close()
        rows.append({"workers": count, "call": "submit one empty task", **one})
        rows.append({"workers": count, "call": "compute one empty task per worker", **each})
    return rows


#: Constants of the cost model measured on the development machine (see
#: docs/scale.md): seconds per round trip ``a``, per task ``b`` and per chunk
#: inside a task ``c`` of each way of running an epoch (``costs``: ``b + c``
#: from a task per chunk, ``c`` from persisted chunks), bytes per second one
#: worker thread scans in the batch kernel and rows per second of its SGD
#: kernel (one worker of ``throughput``, less the fixed costs).
MEASURED = {"batch": (0.019, 0.00038, 0.00038), "local": (0.011, 0.00088, 0.00055),
            "sequential": (0.0, 0.0060, 0.0), "beta": 2.8e10, "r": 2.8e7}


def epoch_model(method: str, n: float, d: int, workers: int, chunks: int, cores: float,
                constants: dict = MEASURED, rounds: int = 1) -> float:
    """Predicted seconds per epoch (the cost model of ``docs/scale.md``), the
    chunks persisted: one task per worker over its chunks.

    ``method`` is "batch", "local" or "sequential"; ``cores`` how many
    workers really run at once (the contention term ``min(workers, cores)``);
    ``rounds`` the averages per epoch of local SGD.
    """
    a, b, c = constants[method]
    busy = min(workers, cores)
    tasks = min(chunks, workers)
    if method == "batch":
        return a + b * tasks + c * chunks + n * d * 8 / (busy * constants["beta"])
    if method == "local":
        return rounds * (a + b * tasks + c * chunks) + n / (busy * constants["r"])
    return a + b * chunks + n / constants["r"]


def model(n: float = 1e9, d: int = 100, check: list[dict] | None = None) -> list[dict]:
    """The model's epochs for 10, 100 and 1000 workers on n x d (float64),
    chunks of at most 2 GB and at least one per worker; with ``check`` (rows
    of ``throughput`` on 2,000,000 x 100 in 8 chunks), the model against them."""
    rows: list[dict] = []
    if check:
        for row in check:
            if not row["setup"].startswith("gdcore.dask") or "minibatch" in row["method"]:
                continue
            workers = int(row["setup"].split(", ")[1].split()[0])
            method = ("batch" if row["method"] == "batch" else row["method"].split(", ")[1])
            predicted = epoch_model(method, 2e6, 100, workers, 8, cores=2)
            rows.append({"workers": workers, "method": method, "measured s": row["seconds"],
                         "model s (2 cores)": predicted,
                         "model / measured": predicted / row["seconds"]})
        return rows
    for workers in (10, 100, 1000):
        chunks = int(max(workers, np.ceil(n * d * 8 / 2e9)))
        row: dict = {"workers": workers, "chunks": chunks,
                     "GB per worker": n * d * 8 / workers / 1e9}
        for method in ("batch", "local", "sequential"):
            row[f"{method} s/epoch"] = epoch_model(method, n, d, workers, chunks,
                                                   cores=workers)
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    if not rows:
        return ""
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        cells = []
        for key in keys:
            value = row.get(key, "")
            cells.append(f"{value:.3g}" if isinstance(value, float) else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["throughput", "costs", "efficiency", "ceiling",
                                         "roundtrip", "model"])
    parser.add_argument("--n", type=int, default=2_000_000)
    parser.add_argument("--d", type=int, default=100)
    parser.add_argument("--chunk-rows", type=int, default=250_000)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--peers", action="store_true",
                        help="throughput: also dask-glm and dask-ml on the largest cluster")
    parser.add_argument("--threads", action="store_true",
                        help="workers as threads of one process (default: processes)")
    args = parser.parse_args(argv)
    # the data go to the workers once, through the graph (persisted)
    warnings.filterwarnings("ignore", "Sending large graph")
    print(load())
    if args.what == "throughput":
        rows = throughput(args.n, args.d, args.chunk_rows,
                          [int(w) for w in args.workers.split(",")], args.epochs,
                          processes=not args.threads, with_peers=args.peers)
    elif args.what == "model":
        rows = model()
    elif args.what == "ceiling":
        rows = ceiling(args.n, args.d, args.epochs)
    elif args.what == "roundtrip":
        rows = roundtrip([int(w) for w in args.workers.split(",")], processes=not args.threads)
    elif args.what == "costs":
        rows = costs([8, 32, 128, 256])
    else:
        rows = efficiency(epochs=args.epochs)
    print(table(rows))
    print(load())


if __name__ == "__main__":
    main()
