"""gdcore.dask at scale: throughput, fixed costs and statistical efficiency.

Three measurements (each prints a markdown table and the machine's load)::

    python bench/dask_scale.py throughput --n 2000000 --d 100 --workers 1,2
    python bench/dask_scale.py costs                 # fixed cost per epoch and per chunk
    python bench/dask_scale.py efficiency            # local SGD vs sequential, loss by epoch
    python bench/dask_scale.py ceiling --n 2000000   # 1 vs 2 plain processes, no Dask

``throughput`` times one epoch (the median of the epochs after the first,
from a callback's timestamps) of every method and strategy in memory and on
a ``distributed.LocalCluster`` of 1, 2, ... worker processes of one thread
each, with the data persisted on the workers in chunks of ``--chunk-rows``.
``costs`` fits ``seconds per epoch = a + b * chunks`` on data too small to
cost anything else (batch, and local SGD with one sync per epoch).
``ceiling`` measures what the machine gives two processes at once (plain
``gdcore.fit`` on half the rows each, no Dask): the bound on any speed-up.
``efficiency`` compares the loss after each epoch of local SGD (several
chunkings and sync periods) with the sequential strategy (the in-memory
bits) and with the least-squares optimum, on well- and ill-conditioned
problems.

``bench/test_dask_scale.py`` runs all three at a small size under pytest
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


def epoch_seconds(fit: Callable[..., Any], X: Any, y: Any, epochs: int,
                  **options: Any) -> float:
    """Median seconds of the epochs of ``fit(X, y, **options)`` after the
    first (the first pays set-up), from a callback's timestamps."""
    stamps: list[float] = []

    def tick(info: dict) -> None:
        stamps.append(time.perf_counter())

    start = time.perf_counter()
    fit(X, y, epochs=epochs, callback=tick, shuffle=False, **options)
    times = np.diff([start, *stamps])
    return float(statistics.median(times[1:] if len(times) > 1 else times))


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
    cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1,
                                       processes=processes, host="127.0.0.1",
                                       dashboard_address=None, silence_logs=logging.ERROR)
    return cluster, distributed.Client(cluster)


def throughput(n: int, d: int, chunk_rows: int, workers: list[int], epochs: int,
               processes: bool = True) -> list[dict]:
    import dask
    import dask.array as da

    import gdcore.dask as gdask
    X, y, _ = gdcore.make_regression(n, d, noise=0.1, seed=0)
    rows: list[dict] = []
    for label, options, _ in METHODS:
        if "local" in label:
            continue
        seconds = epoch_seconds(gdcore.fit, X, y, epochs, **options)
        rows.append({"setup": "in memory (2 threads)", "method": label.split(",")[0],
                     "seconds": seconds, "rows/s": n / seconds})
    for count in workers:
        cluster, client = _cluster(count, processes)
        try:
            Xd, yd = dask.persist(da.from_array(X, chunks=(chunk_rows, d)),
                                  da.from_array(y, chunks=chunk_rows))
            dask.compute(Xd.sum(), yd.sum())
            for label, options, strategy in METHODS:
                extra = {} if strategy is None else {"strategy": strategy}
                seconds = epoch_seconds(gdask.fit, Xd, yd, epochs, **options, **extra)
                rows.append({"setup": f"gdcore.dask, {count} worker"
                             f"{'s' if count > 1 else ''}", "method": label,
                             "seconds": seconds, "rows/s": n / seconds})
            del Xd, yd
        finally:
            client.close()
            cluster.close()
    return rows


def costs(chunk_counts: list[int], d: int = 10, rows_per_chunk: int = 100,
          workers: int = 2, epochs: int = 6) -> list[dict]:
    """Seconds per epoch on tiny chunks: the fixed costs of the Dask path."""
    import dask
    import dask.array as da

    import gdcore.dask as gdask
    rows: list[dict] = []
    cluster, client = _cluster(workers)
    try:
        for chunks in chunk_counts:
            n = chunks * rows_per_chunk
            X, y, _ = gdcore.make_regression(n, d, seed=1)
            Xd, yd = dask.persist(da.from_array(X, chunks=(rows_per_chunk, d)),
                                  da.from_array(y, chunks=rows_per_chunk))
            for label, options, strategy in (METHODS[0], METHODS[1], METHODS[2]):
                extra = {} if strategy is None else {"strategy": strategy}
                seconds = epoch_seconds(gdask.fit, Xd, yd, epochs, **options, **extra)
                rows.append({"chunks": chunks, "method": label, "seconds": seconds})
    finally:
        client.close()
        cluster.close()
    for label, _, _ in METHODS[:3]:
        mine = [row for row in rows if row["method"] == label]
        slope, intercept = np.polyfit([r["chunks"] for r in mine],
                                      [r["seconds"] for r in mine], 1)
        rows.append({"chunks": "fit", "method": label,
                     "seconds": f"{1e3 * intercept:.2f} ms + {1e3 * slope:.3f} ms x chunks"})
    return rows


def _excess_by_epoch(fit: Callable[..., Any], X: Any, y: Any, X_memory: np.ndarray,
                     optimum: float, **options: Any) -> list[float]:
    """``(L - L*) / L*`` over all rows at the end of every epoch of a fit."""
    losses: list[float] = []

    def record(info: dict) -> None:
        if info["step"] is None:
            loss = gdcore.value_and_grad(X_memory, y, info["w"], info["b"])[0]
            losses.append((loss - optimum) / optimum)

    fit(X, y, callback=record, **options)
    return losses


def efficiency(n: int = 100_000, d: int = 20, epochs: int = 5) -> list[dict]:
    """Excess loss at the end of each epoch: local SGD vs the sequential
    strategy (and averaged SGD), on a well- and an ill-conditioned problem."""
    import dask
    import dask.array as da

    import gdcore.dask as gdask
    rows: list[dict] = []
    problems = {"well-conditioned": np.ones(d),
                "ill-conditioned (column scales 0.1..3)": np.geomspace(0.1, 3.0, d)}
    for name, scales in problems.items():
        X, y, _ = gdcore.make_regression(n, d, noise=0.5, seed=2)
        X = np.ascontiguousarray(X * scales)
        A = np.column_stack([X, np.ones(n)])
        optimum = float(np.mean((A @ np.linalg.lstsq(A, y, rcond=None)[0] - y) ** 2))
        base = dict(method="sgd", lr=0.005, seed=0, epochs=epochs)
        runs = {
            "sequential (the in-memory bits)": _excess_by_epoch(
                gdcore.fit, X, y, X, optimum, **base),
            "sequential, averaged SGD (average=True)": _excess_by_epoch(
                gdcore.fit, X, y, X, optimum, average=True, **base),
        }
        with dask.config.set(scheduler="sync"):
            for replicas in (2, 8, 32):
                Xd = da.from_array(X, chunks=(-(-n // replicas), d))
                for sync in (None, 1000):
                    label = (f"local, {replicas} replicas, sync "
                             f"{'per epoch' if sync is None else f'every {sync} rows'}")
                    runs[label] = _excess_by_epoch(gdask.fit, Xd, y, X, optimum,
                                                   strategy="local", sync_every=sync, **base)
        for label, losses in runs.items():
            rows.append({"problem": name, "run": label,
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
    parser.add_argument("what", choices=["throughput", "costs", "efficiency", "ceiling"])
    parser.add_argument("--n", type=int, default=2_000_000)
    parser.add_argument("--d", type=int, default=100)
    parser.add_argument("--chunk-rows", type=int, default=250_000)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--threads", action="store_true",
                        help="workers as threads of one process (default: processes)")
    args = parser.parse_args(argv)
    # the data go to the workers once, through the graph (persisted)
    warnings.filterwarnings("ignore", "Sending large graph")
    print(load())
    if args.what == "throughput":
        rows = throughput(args.n, args.d, args.chunk_rows,
                          [int(w) for w in args.workers.split(",")], args.epochs,
                          processes=not args.threads)
    elif args.what == "ceiling":
        rows = ceiling(args.n, args.d, args.epochs)
    elif args.what == "costs":
        rows = costs([8, 32, 128, 256])
    else:
        rows = efficiency(epochs=args.epochs)
    print(table(rows))
    print(load())


if __name__ == "__main__":
    main()
