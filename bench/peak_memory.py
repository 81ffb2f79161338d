"""Peak memory (and time) of gdcore on big data: in memory, memory-mapped, Dask.

Not a test and not collected by pytest: a script that prints a table (and, with
``--json FILE``, writes the numbers). Every measurement runs in a fresh
subprocess, so one run's memory cannot hide in another's.

What is measured, per training call (one epoch unless ``--epochs``):

* ``peak RSS`` -- the process's resident-set high-water mark over the call
  (``VmHWM`` of ``/proc/self/status``, reset just before the call through
  ``/proc/self/clear_refs``; where that is not allowed, ``ru_maxrss`` since
  the process started). It counts the mapped pages of a memmapped ``X`` that
  are resident, which is page cache the kernel may drop at any time.
* ``peak anon`` / ``peak file`` -- the largest ``RssAnon`` (memory the process
  owns: arrays it allocated) and ``RssFile`` (resident pages of mapped files)
  seen by a thread sampling ``/proc/self/status`` every 10 ms during the call.
* ``extra`` -- peak RSS minus the RSS just before the call: what training
  adds on top of the data.

The contract: training needs ``X`` (in memory, or its pages in the page
cache) + ``y`` + O(n) indices (one ``intp`` per row when shuffling, plus 4
bytes a row while an order is drawn on two threads) + O(d).

Usage (Linux)::

    python bench/peak_memory.py memory --gb 4                 # X of 4 GB in memory
    python bench/peak_memory.py memmap --gb 30 --dir DIR      # X of 30 GB on disk
    python bench/peak_memory.py dask --n 2000000 --d 100      # Dask vs in memory

``memmap`` writes ``X.npy`` and ``y.npy`` with ``gdcore.make_regression_npy``
into ``--dir`` (default: the system's temporary directory) when the disk has
room for them (plus 2 GB), measures the writer too, and deletes the files
afterwards (``--keep`` keeps them). ``dask`` needs ``gdcore[dask]`` and starts
a ``distributed.LocalCluster`` of 2 single-threaded worker processes on
127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

GB = 10 ** 9
MiB = 2 ** 20


# ---------------------------------------------------------------------------
# In the measuring subprocess
# ---------------------------------------------------------------------------

def _status() -> dict:
    """The memory lines of /proc/self/status, in bytes."""
    values = {}
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem"):
                    values[key] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    return values


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False if not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


class _Sampler(threading.Thread):
    """Track the largest RssAnon and RssFile while a call runs."""

    def __init__(self, interval: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.peak_anon = 0
        self.peak_file = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            status = _status()
            self.peak_anon = max(self.peak_anon, status.get("RssAnon", 0))
            self.peak_file = max(self.peak_file, status.get("RssFile", 0))
            self._done.wait(self.interval)

    def stop(self) -> None:
        self._done.set()
        self.join()


def measure(label: str, call) -> dict:
    """Run ``call()`` and return its time and memory figures (bytes, seconds)."""
    before = _status()
    reset = _reset_peak()
    sampler = _Sampler()
    sampler.start()
    start = time.perf_counter()
    call()
    seconds = time.perf_counter() - start
    sampler.stop()
    after = _status()
    if reset and "VmHWM" in after:
        peak = after["VmHWM"]
    else:       # ru_maxrss is in KiB on Linux, and counts since process start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"label": label, "seconds": seconds, "rss_before": before.get("VmRSS", 0),
            "peak_rss": peak, "peak_anon": max(sampler.peak_anon, after.get("RssAnon", 0)),
            "peak_file": max(sampler.peak_file, after.get("RssFile", 0)),
            "extra": peak - before.get("VmRSS", 0), "peak_reset": reset}


def _child_memory(args) -> list:
    import numpy as np

    import gdcore

    n = int(args.gb * GB // (8 * args.d))
    rows = []
    data = {}

    def make():
        data["X"], data["y"], _ = gdcore.make_regression(n, args.d, noise=0.1, seed=0)

    rows.append(measure(f"make_regression {n} x {args.d}", make))
    X, y = data["X"], data["y"]
    for method in args.methods:
        options = dict(method=method, batch_size=args.batch_size, epochs=args.epochs,
                       lr=_LR[method], seed=0)
        rows.append(measure(f"fit {method} (in memory)",
                            lambda options=options: gdcore.fit(X, y, **options)))
    rows.append(measure("value_and_grad (in memory)",
                        lambda: gdcore.value_and_grad(X, y, np.zeros(args.d))))
    for row in rows:
        row.update(n=n, d=args.d, X_bytes=X.nbytes, y_bytes=y.nbytes)
    return rows


def _child_write(args) -> list:
    import gdcore

    n = int(args.gb * GB // (8 * args.d))
    row = measure(f"make_regression_npy {n} x {args.d}", lambda: gdcore.make_regression_npy(
        args.path_X, args.path_y, n, args.d, noise=0.1, seed=0))
    row.update(n=n, d=args.d, X_bytes=8 * n * args.d, y_bytes=8 * n)
    return [row]


def _child_memmap(args) -> list:
    import numpy as np

    import gdcore

    X = np.load(args.path_X, mmap_mode="r")
    y = np.load(args.path_y, mmap_mode="r")
    rows = [measure("value_and_grad (memmap)",
                    lambda: gdcore.value_and_grad(X, y, np.zeros(X.shape[1])))]
    for method in args.methods:
        options = dict(method=method, batch_size=args.batch_size, epochs=args.epochs,
                       lr=_LR[method], shuffle=False)
        rows.append(measure(f"fit {method} (memmap, shuffle=False)",
                            lambda options=options: gdcore.fit(X, y, **options)))
    for row in rows:
        row.update(n=X.shape[0], d=X.shape[1], X_bytes=X.nbytes, y_bytes=y.nbytes)
    return rows


def _child_dask(args) -> list:
    import logging

    import dask
    import dask.array as da
    import distributed

    import gdcore
    import gdcore.dask as gdask

    X, y, _ = gdcore.make_regression(args.n, args.d, noise=0.1, seed=0)
    rows = []
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1,
                                       host="127.0.0.1", processes=True,
                                       dashboard_address=None, silence_logs=logging.ERROR)
    with distributed.Client(cluster):
        Xd = da.from_array(X, chunks=(args.chunk_rows, args.d))
        yd = da.from_array(y, chunks=args.chunk_rows)
        Xd, yd = dask.persist(Xd, yd)
        distributed.wait([Xd, yd])
        for method in args.methods:
            options = dict(method=method, batch_size=args.batch_size, epochs=args.epochs,
                           lr=_LR[method], shuffle=False)
            gdcore.fit(X, y, **dict(options, epochs=1))     # warm up
            memory = measure(f"fit {method} in memory",
                             lambda options=options: gdcore.fit(X, y, **options))
            on_dask = measure(f"gdcore.dask.fit {method}",
                              lambda options=options: gdask.fit(Xd, yd, **options))
            for row in (memory, on_dask):
                row.update(n=args.n, d=args.d, X_bytes=X.nbytes, y_bytes=y.nbytes,
                           samples_per_s=args.n * args.epochs / row["seconds"])
            on_dask["ratio"] = memory["seconds"] / on_dask["seconds"]
            rows += [memory, on_dask]
    cluster.close()
    return rows


_LR = {"batch": 0.1, "sgd": 0.001, "minibatch": 0.01}
_CHILDREN = {"memory": _child_memory, "write": _child_write, "memmap": _child_memmap,
             "dask": _child_dask}


# ---------------------------------------------------------------------------
# The driver
# ---------------------------------------------------------------------------

def _run_child(kind: str, args, extra: list) -> list:
    command = [sys.executable, __file__, "--child", kind, *extra]
    out = subprocess.run(command, capture_output=True, text=True)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        raise SystemExit(f"measurement {kind} failed (exit {out.returncode})")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _common(args) -> list:
    return ["--d", str(args.d), "--epochs", str(args.epochs), "--batch-size",
            str(args.batch_size), "--methods", ",".join(args.methods)]


def _print(rows: list) -> None:
    print(f"{'call':44s} {'seconds':>8s} {'peak RSS':>10s} {'extra':>10s} "
          f"{'peak anon':>10s} {'peak file':>10s}  (MiB)")
    for row in rows:
        print(f"{row['label']:44s} {row['seconds']:8.2f} {row['peak_rss'] / MiB:10.0f} "
              f"{row['extra'] / MiB:10.0f} {row['peak_anon'] / MiB:10.0f} "
              f"{row['peak_file'] / MiB:10.0f}"
              + (f"   {row['samples_per_s']:.3g} samples/s" if "samples_per_s" in row
                 else "")
              + (f"  (x{row['ratio']:.2f} of in memory)" if "ratio" in row else ""))
    if rows and "X_bytes" in rows[0]:
        row = rows[0]
        print(f"X: {row['X_bytes'] / MiB:.0f} MiB ({row['n']} x {row['d']}), "
              f"y: {row['y_bytes'] / MiB:.0f} MiB, one index per row: "
              f"{8 * row['n'] / MiB:.0f} MiB")


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=textwrap.dedent(__doc__.split("Usage")[1]))
    parser.add_argument("mode", choices=["memory", "memmap", "dask"])
    parser.add_argument("--gb", type=float, default=4.0, help="size of X in GB (10**9 B)")
    parser.add_argument("--d", type=int, default=100, help="features")
    parser.add_argument("--n", type=int, default=2_000_000, help="rows (dask mode)")
    parser.add_argument("--chunk-rows", type=int, default=250_000, help="dask chunk rows")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--methods", default=None,
                        help="comma-separated methods (default: all for memory, "
                             "minibatch,sgd for memmap, batch,minibatch for dask)")
    parser.add_argument("--dir", default=tempfile.gettempdir(),
                        help="where memmap mode writes its files")
    parser.add_argument("--keep", action="store_true", help="keep the memmap files")
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args(argv)
    default_methods = {"memory": "batch,sgd,minibatch", "memmap": "minibatch,sgd",
                       "dask": "batch,minibatch"}[args.mode]
    args.methods = (args.methods or default_methods).split(",")

    if args.mode == "memory":
        rows = _run_child("memory", args, ["--gb", str(args.gb), *_common(args)])
    elif args.mode == "dask":
        rows = _run_child("dask", args, ["--n", str(args.n), "--chunk-rows",
                                         str(args.chunk_rows), *_common(args)])
    else:
        n = int(args.gb * GB // (8 * args.d))
        need = 8 * n * (args.d + 1) + 2 * GB
        free = shutil.disk_usage(args.dir).free
        if free < need:
            print(f"skipped: {args.dir} has {free / GB:.1f} GB free, the data need "
                  f"{need / GB:.1f} GB (with 2 GB to spare)")
            return 0
        folder = tempfile.mkdtemp(prefix="gdcore-peak-", dir=args.dir)
        path_X, path_y = os.path.join(folder, "X.npy"), os.path.join(folder, "y.npy")
        paths = ["--path-X", path_X, "--path-y", path_y]
        try:
            rows = _run_child("write", args, ["--gb", str(args.gb), *paths, *_common(args)])
            rows += _run_child("memmap", args, [*paths, *_common(args)])
        finally:
            if not args.keep:
                shutil.rmtree(folder, ignore_errors=True)
    _print(rows)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)
    return 0


def _child_main(argv: list) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", required=True)
    parser.add_argument("--gb", type=float)
    parser.add_argument("--d", type=int)
    parser.add_argument("--n", type=int)
    parser.add_argument("--chunk-rows", type=int)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--methods")
    parser.add_argument("--path-X")
    parser.add_argument("--path-y")
    args = parser.parse_args(argv)
    args.methods = args.methods.split(",")
    print(json.dumps(_CHILDREN[args.child](args)))
    return 0


if __name__ == "__main__":
    if "--child" in sys.argv:
        raise SystemExit(_child_main(sys.argv[1:]))
    raise SystemExit(main())
