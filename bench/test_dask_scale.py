"""gdcore.dask at scale under pytest: ``bench/dask_scale.py`` at two sizes.

``pytest bench/test_dask_scale.py`` runs every measurement small (20,000 x 20
rows, seconds); ``--bench-size=full`` runs the throughput on 2,000,000 x 100
(chunks of 250,000 rows, 1 and 2 worker processes), as in ``docs/scale.md``.
Each prints its table (run with ``-s`` to see it). Skipped without
``distributed``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("distributed")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import dask_scale  # noqa: E402

SIZES = {"small": dict(n=20_000, d=20, chunk_rows=2_500),
         "full": dict(n=2_000_000, d=100, chunk_rows=250_000)}


def test_throughput(bench_size):
    rows = dask_scale.throughput(**SIZES[bench_size.name], workers=[1, 2], epochs=3)
    print("\n" + dask_scale.load() + "\n" + dask_scale.table(rows))
    assert all(row["seconds"] > 0 for row in rows)


def test_fixed_costs():
    rows = dask_scale.costs([8, 32, 64], epochs=3)
    print("\n" + dask_scale.load() + "\n" + dask_scale.table(rows))
    assert len(rows) == 2 * (3 * 3 + 3)


def test_statistical_efficiency():
    rows = dask_scale.efficiency(n=5_000, d=5, epochs=2)
    print("\n" + dask_scale.table(rows))
    assert all(row["epoch 2"] >= -1e-9 for row in rows)      # nothing beats the optimum


@pytest.mark.parametrize("processes", [True, False], ids=["processes", "threads"])
def test_round_trip(processes):
    rows = dask_scale.roundtrip([1, 2], processes=processes, repeats=5)
    print("\n" + dask_scale.load() + "\n" + dask_scale.table(rows))
    assert [row["workers"] for row in rows] == [1, 1, 2, 2]
    assert all(0 < row["best ms"] <= row["median ms"] for row in rows)
