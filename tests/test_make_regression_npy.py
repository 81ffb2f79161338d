"""make_regression_npy: make_regression's data written to .npy files in chunks.

The files must hold exactly make_regression's arrays for the same arguments,
for any chunk size, while the writer's own memory stays O(chunk).
"""

from __future__ import annotations

import errno
import os
import pathlib
import tracemalloc

import numpy as np
import pytest

import gdcore
from gdcore import _data

BLOCK = _data.BLOCK_ROWS


def _write(tmp_path, *args, name="data", **kwargs):
    path_X = tmp_path / f"{name}_X.npy"
    path_y = tmp_path / f"{name}_y.npy"
    w_true = gdcore.make_regression_npy(path_X, path_y, *args, **kwargs)
    return path_X, path_y, w_true


@pytest.mark.parametrize("n_samples,n_features,chunk_rows", [
    (1, 1, None),
    (5, 3, 1),
    (5, 3, 10 ** 12),
    (BLOCK - 1, 2, 4097),
    (BLOCK, 1, BLOCK),
    (BLOCK + 1, 2, 7),
    (2 * BLOCK + 123, 3, BLOCK - 1),
    (2 * BLOCK + 123, 3, BLOCK + 1),
    (2 * BLOCK + 123, 3, 3 * BLOCK),
    (3 * BLOCK, 2, 1000),
    (1000, 37, None),
])
def test_files_equal_make_regression_bit_for_bit(tmp_path, n_samples, n_features,
                                                 chunk_rows):
    """Same arguments, same bits as make_regression, whatever the chunk size
    (smaller than, equal to, larger than and straddling the 65,536-row blocks)."""
    kwargs = dict(noise=0.7, bias=-1.25, seed=2024)
    path_X, path_y, w_true = _write(tmp_path, n_samples, n_features,
                                    chunk_rows=chunk_rows, **kwargs)
    X, y, w_ref = gdcore.make_regression(n_samples, n_features, **kwargs)
    X_file = np.load(path_X, mmap_mode="r")
    y_file = np.load(path_y, mmap_mode="r")
    assert X_file.shape == (n_samples, n_features) and y_file.shape == (n_samples,)
    assert X_file.dtype == np.float64 and y_file.dtype == np.float64
    assert X_file.flags.c_contiguous
    np.testing.assert_array_equal(X_file, X)
    np.testing.assert_array_equal(y_file, y)
    np.testing.assert_array_equal(w_true, w_ref)


@pytest.mark.parametrize("kwargs", [
    dict(),
    dict(noise=0.0, bias=3.0, seed=1),
    dict(noise=2.0, seed=np.random.SeedSequence(99)),
])
def test_noise_bias_and_seed_kinds(tmp_path, kwargs):
    kwargs.setdefault("seed", 5)
    path_X, path_y, w_true = _write(tmp_path, 70_000, 2, chunk_rows=30_000, **kwargs)
    X, y, w_ref = gdcore.make_regression(70_000, 2, **kwargs)
    np.testing.assert_array_equal(np.load(path_X), X)
    np.testing.assert_array_equal(np.load(path_y), y)
    np.testing.assert_array_equal(w_true, w_ref)


def test_chunk_size_never_changes_the_data(tmp_path):
    """Writing with several chunk sizes gives byte-identical files."""
    digests = set()
    for k, chunk_rows in enumerate([1, 2, 999, BLOCK, 100_000, None]):
        path_X, path_y, _ = _write(tmp_path, BLOCK + 500, 3, noise=0.1, seed=3,
                                   chunk_rows=chunk_rows, name=f"c{k}")
        digests.add((path_X.read_bytes(), path_y.read_bytes()))
    assert len(digests) == 1


def test_accepts_str_and_pathlike_and_overwrites(tmp_path):
    path_X, path_y = tmp_path / "X.npy", tmp_path / "y.npy"
    path_X.write_bytes(b"old contents, much longer than the new file will be" * 1000)
    w1 = gdcore.make_regression_npy(str(path_X), os.fspath(path_y), 10, 2, seed=0)
    w2 = gdcore.make_regression_npy(pathlib.Path(path_X), path_y, 10, 2, seed=0)
    np.testing.assert_array_equal(w1, w2)
    X, y, _ = gdcore.make_regression(10, 2, seed=0)
    np.testing.assert_array_equal(np.load(path_X), X)
    np.testing.assert_array_equal(np.load(path_y), y)


def test_writer_memory_is_o_of_the_chunk(tmp_path):
    """Writing 40 MB of X in chunks of 1,000 rows allocates a few MB at most:
    no array of size X is ever made (the block of y, 512 KiB, is the largest)."""
    n, d = 100_000, 50                      # X is 40 MB
    tracemalloc.start()
    try:
        _write(tmp_path, n, d, noise=0.5, seed=1, chunk_rows=1000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2 ** 20, f"peak traced memory {peak} bytes"


def test_default_chunk_is_bounded(tmp_path):
    """chunk_rows=None uses about 64 MiB per chunk (at least one row)."""
    assert _data.DEFAULT_CHUNK_BYTES == 64 * 2 ** 20
    path_X, _, _ = _write(tmp_path, 3, 10 ** 7 // 8, seed=0)   # rows of 10 MB
    assert np.load(path_X, mmap_mode="r").shape == (3, 10 ** 7 // 8)


def test_exported():
    assert "make_regression_npy" in gdcore.__all__
    assert gdcore.make_regression_npy is _data.make_regression_npy


# ---------------------------------------------------------------------------
# errors: bad arguments raise before any file exists; I/O errors leave nothing
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("args,kwargs,error,name", [
    ((0, 3), {}, ValueError, "n_samples"),
    ((2.5, 3), {}, TypeError, "n_samples"),
    ((10, 0), {}, ValueError, "n_features"),
    ((10, "3"), {}, TypeError, "n_features"),
    ((10, 3), dict(noise=-1.0), ValueError, "noise"),
    ((10, 3), dict(noise=float("inf")), ValueError, "noise"),
    ((10, 3), dict(bias=float("nan")), ValueError, "bias"),
    ((10, 3), dict(bias="1"), TypeError, "bias"),
    ((10, 3), dict(seed=-1), ValueError, "seed"),
    ((10, 3), dict(seed=np.random.default_rng(0)), TypeError, "seed"),
    ((10, 3), dict(chunk_rows=0), ValueError, "chunk_rows"),
    ((10, 3), dict(chunk_rows=-5), ValueError, "chunk_rows"),
    ((10, 3), dict(chunk_rows=2.0), TypeError, "chunk_rows"),
    ((10, 3), dict(chunk_rows=True), TypeError, "chunk_rows"),
    ((10, 3), dict(chunk_rows="100"), TypeError, "chunk_rows"),
])
def test_rejects_bad_arguments_before_writing(tmp_path, args, kwargs, error, name):
    path_X, path_y = tmp_path / "X.npy", tmp_path / "y.npy"
    with pytest.raises(error, match=rf"\b{name}\b"):
        gdcore.make_regression_npy(path_X, path_y, *args, **kwargs)
    assert not path_X.exists() and not path_y.exists()


@pytest.mark.parametrize("which", ["path_X", "path_y"])
@pytest.mark.parametrize("bad,error", [
    (None, TypeError), (3, TypeError), (b"X.npy", TypeError), (["X.npy"], TypeError),
    ("", ValueError),
])
def test_rejects_bad_paths(tmp_path, which, bad, error):
    paths = {"path_X": tmp_path / "X.npy", "path_y": tmp_path / "y.npy"}
    paths[which] = bad
    with pytest.raises(error, match=rf"\b{which}\b"):
        gdcore.make_regression_npy(paths["path_X"], paths["path_y"], 10, 2)
    assert list(tmp_path.iterdir()) == []


def test_rejects_the_same_file_twice(tmp_path):
    with pytest.raises(ValueError, match=r"path_X and path_y"):
        gdcore.make_regression_npy(tmp_path / "a.npy", str(tmp_path / "a.npy"), 10, 2)
    assert list(tmp_path.iterdir()) == []


def test_missing_directory_raises_oserror_and_leaves_nothing(tmp_path):
    good, bad = tmp_path / "X.npy", tmp_path / "missing" / "y.npy"
    with pytest.raises(FileNotFoundError):
        gdcore.make_regression_npy(good, bad, 10, 2)
    assert not good.exists()


def test_full_disk_raises_oserror_and_leaves_nothing(tmp_path, monkeypatch):
    """The space is reserved before writing: no room is an OSError at once."""
    if not hasattr(os, "posix_fallocate"):
        pytest.skip("no posix_fallocate on this platform")

    def no_room(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_data.os, "posix_fallocate", no_room)
    with pytest.raises(OSError) as info:
        _write(tmp_path, 1000, 4, seed=0)
    assert info.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


def test_file_system_without_preallocation_still_works(tmp_path, monkeypatch):
    if not hasattr(os, "posix_fallocate"):
        pytest.skip("no posix_fallocate on this platform")

    def unsupported(fd, offset, length):
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(_data.os, "posix_fallocate", unsupported)
    path_X, path_y, _ = _write(tmp_path, 1000, 4, seed=0, chunk_rows=64)
    X, y, _ = gdcore.make_regression(1000, 4, seed=0)
    np.testing.assert_array_equal(np.load(path_X), X)
    np.testing.assert_array_equal(np.load(path_y), y)


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    """An error half-way (here: inside the generation loop) removes both files."""
    calls = []
    real = _data._finish_targets

    def fail_on_second_block(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(_data, "_finish_targets", fail_on_second_block)
    with pytest.raises(KeyboardInterrupt):
        _write(tmp_path, BLOCK + 10, 2, seed=0)
    assert list(tmp_path.iterdir()) == []


def test_a_seed_sequence_object_is_not_advanced(tmp_path):
    """Passing the same SeedSequence object twice gives the same data twice
    (make_regression spawns from a copy), and the object is left as it was."""
    seed = np.random.SeedSequence(1234)
    first = gdcore.make_regression(100, 3, noise=1.0, seed=seed)
    second = gdcore.make_regression(100, 3, noise=1.0, seed=seed)
    path_X, path_y, w_true = _write(tmp_path, 100, 3, noise=1.0, seed=seed)
    assert seed.n_children_spawned == 0
    fresh = gdcore.make_regression(100, 3, noise=1.0, seed=np.random.SeedSequence(1234))
    for a, b, c in zip(first, second, fresh, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(np.load(path_X), first[0])
    np.testing.assert_array_equal(np.load(path_y), first[1])
    np.testing.assert_array_equal(w_true, first[2])


@pytest.mark.parametrize("kwargs", [dict(bias=1.79e308, noise=1e306), dict(noise=1e308),
                                    dict(bias=-1.79e308, noise=1e306)])
def test_overflowing_targets_raise_instead_of_writing_inf(tmp_path, kwargs):
    """noise or bias near the float64 limit would put inf into y: ValueError
    naming them, from both functions (and the files are removed)."""
    with pytest.raises(ValueError, match=r"noise=.*bias=.*too large"):
        gdcore.make_regression(1000, 3, seed=0, **kwargs)
    with pytest.raises(ValueError, match=r"noise=.*bias=.*too large"):
        _write(tmp_path, 1000, 3, seed=0, **kwargs)
    assert list(tmp_path.iterdir()) == []
