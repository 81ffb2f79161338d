"""Impossible sizes fail fast: an allocation sized by the user that the
machine cannot give is a MemoryError (or, for files, an ENOSPC OSError)
naming the argument, within a second -- not a hang while memory grows until
the operating system kills the process.

The data stay what they were: the per-block seeds are made one at a time,
and give the bits the up-front ``spawn`` gave, for every size and chunking.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import gdcore
from gdcore import _data, _validation

BLOCK = _data.BLOCK_ROWS


# ---------------------------------------------------------------------------
# The same data as before: lazy per-block seeds are the spawned children
# ---------------------------------------------------------------------------

def _root(seed):
    if isinstance(seed, np.random.SeedSequence):
        return np.random.SeedSequence(seed.entropy, spawn_key=seed.spawn_key,
                                      pool_size=seed.pool_size,
                                      n_children_spawned=seed.n_children_spawned)
    return np.random.SeedSequence(seed)


def _previous_make_regression(n, d, noise, bias, seed):
    """make_regression as it was written before the seeds were made lazily:
    every block's SeedSequence spawned up front."""
    weights_seed, rows_seed = _root(seed).spawn(2)
    w_true = np.random.default_rng(weights_seed).standard_normal(d)
    X, y = np.empty((n, d)), np.empty(n)
    for block, block_seed in enumerate(rows_seed.spawn(-(-n // BLOCK))):
        rows = slice(block * BLOCK, min((block + 1) * BLOCK, n))
        rng = np.random.default_rng(block_seed)
        rng.standard_normal(out=X[rows])
        np.matmul(X[rows], w_true, out=y[rows])
        y[rows] += bias
        if noise > 0:
            y[rows] += noise * rng.standard_normal(y[rows].shape[0])
    return X, y, w_true


def _spawned_seed():
    seed = np.random.SeedSequence(7, spawn_key=(3, 1))
    seed.spawn(5)                       # n_children_spawned = 5
    return seed


@pytest.mark.parametrize("seed", [0, 2024, _spawned_seed()], ids=["0", "2024", "spawned"])
def test_block_seeds_are_the_children_spawn_made(seed):
    _, rows_seed = _root(seed).spawn(2)
    spawned = _root(seed).spawn(2)[1].spawn(300)
    for block in (0, 1, 2, 17, 299):
        lazy = _data._block_seed(rows_seed, block)
        assert lazy.spawn_key == spawned[block].spawn_key
        np.testing.assert_array_equal(lazy.generate_state(8), spawned[block].generate_state(8))


@pytest.mark.parametrize("n,d", [(1, 1), (BLOCK - 1, 2), (BLOCK, 1), (2 * BLOCK + 5, 3)])
@pytest.mark.parametrize("seed", [11, _spawned_seed()], ids=["11", "spawned"])
def test_data_are_bit_for_bit_the_previous_data(tmp_path, n, d, seed):
    expected = _previous_make_regression(n, d, 0.3, -2.0, seed)
    got = gdcore.make_regression(n, d, noise=0.3, bias=-2.0, seed=seed)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)
    for chunk_rows in (None, 1000):
        w_true = gdcore.make_regression_npy(tmp_path / "X.npy", tmp_path / "y.npy", n, d,
                                            noise=0.3, bias=-2.0, seed=seed,
                                            chunk_rows=chunk_rows)
        np.testing.assert_array_equal(np.load(tmp_path / "X.npy"), expected[0])
        np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), expected[1])
        np.testing.assert_array_equal(w_true, expected[2])


# ---------------------------------------------------------------------------
# Sizes the machine cannot hold: refused within a second, under a memory limit
# ---------------------------------------------------------------------------

LIMITED = textwrap.dedent("""
    import contextlib, io, json, resource, sys, time
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))   # 2 GiB of address space
    import numpy as np
    import gdcore
    from gdcore.__main__ import main

    def command(*argv):
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                status = main(list(argv))
            except SystemExit as exc:
                status = exc.code
        return status, err.getvalue()

    cases = {
        "rows": lambda: gdcore.make_regression(10**12, 1),
        "features": lambda: gdcore.make_regression(1, 10**12),
        # 3.5 GB: within most machines' memory, beyond this process's limit
        "over the limit": lambda: gdcore.make_regression(40_000_000, 10),
        "npy rows": lambda: gdcore.make_regression_npy("X.npy", "y.npy", 10**12, 1),
        "npy features": lambda: gdcore.make_regression_npy("X.npy", "y.npy", 10, 10**12),
        "grid": lambda: gdcore.loss_surface(np.ones(3), np.ones(3), np.zeros(10**6),
                                            np.zeros(10**6)),
        "grid over the limit": lambda: gdcore.loss_surface(np.ones(3), np.ones(3),
                                                           np.zeros(20_000),
                                                           np.zeros(10_000)),
        "path": lambda: gdcore.descent_path(np.ones(3), np.ones(3), method="sgd",
                                            epochs=10**12),
        "train -n": lambda: command("train", "-n", "1000000000000", "-d", "1"),
        "train -d": lambda: command("train", "-n", "1", "-d", "1000000000000"),
        "timing -n": lambda: command("-n", "1000000000000", "-d", "1"),
    }
    results = {}
    for name, call in cases.items():
        started = time.perf_counter()
        try:
            outcome = ["returned", repr(call()), None]
        except BaseException as exc:
            outcome = [type(exc).__name__, str(exc), getattr(exc, "errno", None)]
        results[name] = outcome + [time.perf_counter() - started]
    print(json.dumps(results))
""")


def _sanitized() -> bool:
    """True when the AddressSanitizer runtime is loaded (docs/scale.md's ASan run)."""
    try:
        with open("/proc/self/maps") as maps:
            return "libasan" in maps.read()
    except OSError:
        return False


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    if not sys.platform.startswith("linux"):
        pytest.skip("RLIMIT_AS is a Linux limit")
    if _sanitized():
        # its shadow memory is terabytes of address space: under a 2 GiB RLIMIT_AS
        # every later mmap fails ("ERROR: Failed to mmap") before gdcore is reached
        pytest.skip("RLIMIT_AS cannot be set under AddressSanitizer")
    where = tmp_path_factory.mktemp("limited")
    done = subprocess.run([sys.executable, "-c", LIMITED], cwd=where, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), where


@pytest.mark.parametrize("case,error,names", [
    ("rows", "MemoryError", "n_samples=1000000000000, n_features=1: 16 TB of memory"),
    ("features", "MemoryError", "n_samples=1, n_features=1000000000000: 16 TB of memory"),
    ("over the limit", "MemoryError", "n_samples=40000000, n_features=10: 3.52 GB of memory "
                                      "needed for X, y and w_true, more than this process "
                                      "may use (its memory limit, RLIMIT_AS, is 2.15 GB)"),
    ("npy features", "MemoryError", "n_samples=10, n_features=1000000000000"),
    ("grid", "MemoryError", "w_values and b_values (1,000,000 x 1,000,000 = "
                            "1,000,000,000,000 grid points): 24 TB of memory"),
    ("grid over the limit", "MemoryError", "w_values and b_values (20,000 x 10,000 = "
                                           "200,000,000 grid points): 4.8 GB of memory"),
    ("path", "MemoryError", "epochs=1000000000000 (3,000,000,000,000 steps"),
])
def test_impossible_sizes_are_a_memory_error_naming_the_argument(limited, case, error,
                                                                 names):
    results, _ = limited
    kind, message, _, seconds = results[case]
    assert kind == error, message
    assert message.startswith(names), message
    assert seconds < 1.0


def test_data_files_larger_than_the_disk_are_refused_at_once(limited):
    results, where = limited
    kind, message, number, seconds = results["npy rows"]
    assert kind == "OSError" and number == 28          # ENOSPC
    assert message.startswith("[Errno 28] n_samples=1000000000000, n_features=1: 16 TB of "
                              ".npy files, more than the ")
    assert seconds < 1.0
    assert list(where.iterdir()) == []


@pytest.mark.parametrize("case,flags", [("train -n", "-n/--n-samples 1000000000000 and "
                                                     "-d/--n-features 1: 16 TB of memory"),
                                        ("train -d", "-n/--n-samples 1 and -d/--n-features "
                                                     "1000000000000: 16 TB of memory")])
def test_the_command_line_names_its_flags(limited, case, flags):
    results, _ = limited
    kind, text, _, seconds = results[case]
    status, stderr = eval(text)                  # (status, stderr) of main
    assert status == 2 and len(stderr.strip().splitlines()) == 1
    assert stderr.startswith(f"python -m gdcore train: error: {flags}")
    assert seconds < 1.0


def test_the_timing_command_names_its_flags(limited):
    results, _ = limited
    kind, text, _, seconds = results["timing -n"]
    status, stderr = eval(text)
    assert status == 2 and stderr == ("python -m gdcore: error: -n/--n-samples 1000000000000 "
                                      "and -d/--n-features 1: 16 TB of memory needed for X, y "
                                      f"and w_true, more than this machine has "
                                      f"({_validation.format_bytes(_physical())})\n")
    assert seconds < 1.0


def _physical():
    return _validation.physical_memory()


def test_an_allocation_failing_inside_is_named(monkeypatch):
    """A MemoryError of the allocation itself (no limit known, too little
    free memory) names the arguments too."""
    monkeypatch.setattr(_validation, "memory_limit", lambda: None)
    monkeypatch.setattr(_data.np, "empty", lambda *a, **k: (_ for _ in ()).throw(
        MemoryError("Unable to allocate")))
    with pytest.raises(MemoryError, match=r"^n_samples=1000, n_features=2: 24 kB of "
                                          r"memory needed for X, y and w_true, which this "
                                          r"process cannot get"):
        gdcore.make_regression(1000, 2)


def test_memory_check_units_and_a_machine_without_sysconf(monkeypatch):
    assert _validation.format_bytes(999) == "999 bytes"
    assert _validation.format_bytes(16 * 10 ** 12) == "16 TB"
    assert _validation.format_bytes(3.52e9) == "3.52 GB"
    monkeypatch.setattr(_validation.os, "sysconf", lambda name: (_ for _ in ()).throw(
        ValueError(name)))
    assert _validation.physical_memory() is None
    _validation.check_memory(10 ** 30, "n", "x")          # unknown memory: no refusal
