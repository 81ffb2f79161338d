"""Synthetic regression problems, in memory or written to ``.npy`` files.

Both :func:`make_regression` and :func:`make_regression_npy` generate the rows
in blocks of :data:`BLOCK_ROWS`, each block from its own child of the seed, and
compute a block's targets with one ``X_block @ w_true`` over the whole block.
So the data depend only on ``(n_samples, n_features, noise, bias, seed)``,
never on how (or in what pieces) they are written: the ``.npy`` writer gives
the in-memory arrays bit for bit, for any ``chunk_rows``.

Reproducibility: ``X`` and ``w_true`` come from NumPy's ``PCG64`` streams and
are the same bits on every machine. ``y`` is computed with NumPy's
matrix-vector product (BLAS), whose rounding may depend on the BLAS library
and on the CPU kernel it picks; on one machine and NumPy installation it is
always the same bits (any number of BLAS threads).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np

from . import _validation
from ._files import write_all_atomically

#: Rows are generated in blocks of this many, each block from its own child of
#: the seed, so the data do not depend on how (or in what pieces) they are made.
BLOCK_ROWS = 65536

#: Default memory budget of one chunk of :func:`make_regression_npy`, in bytes.
DEFAULT_CHUNK_BYTES = 64 * 2 ** 20

#: errno values of a file system that cannot preallocate (the file stays sparse).
_FALLOCATE_UNSUPPORTED = {errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL}


def _weights_and_block_seeds(root: np.random.SeedSequence, n_samples: int,
                             n_features: int) -> tuple[np.ndarray, Iterator]:
    """``w_true`` and the SeedSequence of each block of :data:`BLOCK_ROWS` rows,
    made one at a time as the blocks are generated."""
    weights_seed, rows_seed = root.spawn(2)
    w_true = np.random.default_rng(weights_seed).standard_normal(n_features)
    n_blocks = -(-n_samples // BLOCK_ROWS)
    return w_true, (_block_seed(rows_seed, block) for block in range(n_blocks))


def _block_seed(rows_seed: np.random.SeedSequence, block: int) -> np.random.SeedSequence:
    """The ``block``-th child of the fresh ``rows_seed``: exactly what
    ``rows_seed.spawn(n_blocks)[block]`` is (a child extends its parent's
    spawn key with its number), without making the other children first --
    spawning all of them for 10**12 rows took longer than any allocation."""
    return np.random.SeedSequence(rows_seed.entropy,
                                  spawn_key=tuple(rows_seed.spawn_key) + (block,),
                                  pool_size=rows_seed.pool_size)


def _finish_targets(y_block: np.ndarray, bias: float, noise: float,
                    rng: np.random.Generator) -> None:
    """Add the intercept and the noise (drawn after the block's X) to ``y_block``.

    Raises ``ValueError`` when that overflows (``noise`` or ``bias`` near the
    largest float64): the data would hold ``inf``.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        y_block += bias
        if noise > 0:
            y_block += noise * rng.standard_normal(y_block.shape[0])
    if not np.isfinite(y_block).all():
        raise ValueError(f"noise={noise} and bias={bias} are too large: y overflowed "
                         f"to a non-finite value (keep |bias| + 40 * noise well below "
                         f"1e308)")


def make_regression(n_samples: int, n_features: int, *, noise: float = 0.0,
                    bias: float = 0.0,
                    seed: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random linear regression problem ``y = X @ w_true + bias + noise * e``.

    ``X`` and ``e`` have independent standard normal entries, and ``w_true``
    standard normal entries.

    Parameters
    ----------
    n_samples : int
        Number of rows, at least 1.
    n_features : int
        Number of columns, at least 1.
    noise : float, default 0.0
        Standard deviation of the Gaussian noise added to ``y``; >= 0.
    bias : float, default 0.0
        Intercept of the true model.
    seed : int, SeedSequence or None, default None
        Same seed, same data. A SeedSequence is not advanced (passing the
        same object twice gives the same data twice).

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), float64, C-contiguous
        The samples.
    y : ndarray of shape (n_samples,)
        The targets, ``X @ w_true + bias`` plus the noise.
    w_true : ndarray of shape (n_features,)
        The weights ``y`` was made with.

    Raises
    ------
    TypeError, ValueError
        Bad arguments; ``noise`` or ``bias`` so large that ``y`` overflows.
    MemoryError
        ``X`` and ``y`` (``8 * n_samples * (n_features + 1)`` bytes) do not
        fit: more than this machine's physical memory, or more than the
        process can allocate. Raised at once, naming ``n_samples`` and
        ``n_features``.

    See Also
    --------
    make_regression_npy : The same data written to ``.npy`` files in chunks,
        for data larger than memory.
    """
    n_samples, n_features, noise, bias, root = _validation.check_regression(
        n_samples, n_features, noise, bias, seed)
    with _validation.allocating(8 * (n_samples * n_features + n_samples + n_features),
                                _sizes(n_samples, n_features), "X, y and w_true"):
        w_true, block_seeds = _weights_and_block_seeds(root, n_samples, n_features)
        X = np.empty((n_samples, n_features))
        y = np.empty(n_samples)
    for block, block_seed in enumerate(block_seeds):
        rows = slice(block * BLOCK_ROWS, min((block + 1) * BLOCK_ROWS, n_samples))
        rng = np.random.default_rng(block_seed)
        rng.standard_normal(out=X[rows])
        np.matmul(X[rows], w_true, out=y[rows])
        _finish_targets(y[rows], bias, noise, rng)
    return X, y, w_true


def _create_npy(path: str, shape: tuple[int, ...]) -> int:
    """Create a float64 C-order ``.npy`` file of ``shape`` with its disk space
    reserved; return the byte offset of its data."""
    # open_memmap writes the header and sizes the (sparse) file; the mapping
    # itself is only virtual and is dropped at once.
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=shape)
    offset = int(array.offset)
    del array
    size = offset + 8 * int(np.prod(shape, dtype=np.int64))
    if hasattr(os, "posix_fallocate") and size > offset:
        # Reserve the blocks now, so that a disk without room for the data
        # fails here with OSError (ENOSPC), before minutes of writing.
        fd = os.open(path, os.O_RDWR)
        try:
            os.posix_fallocate(fd, 0, size)
        except OSError as exc:
            if exc.errno not in _FALLOCATE_UNSUPPORTED:
                raise
        finally:
            os.close(fd)
    return offset


def _window(path: str, offset: int, mode: Literal["r", "r+"],
            shape: tuple[int, ...]) -> np.memmap:
    """Map only ``shape`` float64 values of ``path`` starting at byte ``offset``."""
    return np.memmap(path, dtype=np.float64, mode=mode, offset=offset, shape=shape)


def make_regression_npy(path_X: str | os.PathLike, path_y: str | os.PathLike,
                        n_samples: int, n_features: int, *, noise: float = 0.0,
                        bias: float = 0.0, seed: Any = None,
                        chunk_rows: int | None = None) -> np.ndarray:
    """Write :func:`make_regression`'s data to two ``.npy`` files, in chunks.

    For data larger than memory: ``X`` and ``y`` go straight to disk, a few
    rows at a time, and never exist in memory as a whole. Read them back with
    ``numpy.load(path, mmap_mode="r")`` and pass the memory maps to
    :func:`gdcore.fit` or :func:`gdcore.value_and_grad`, which use them as
    they are (no copy).

    The files hold exactly the arrays ``make_regression(n_samples, n_features,
    noise=noise, bias=bias, seed=seed)`` returns, bit for bit, whatever
    ``chunk_rows`` is: the rows are generated in fixed blocks of
    :data:`~gdcore._data.BLOCK_ROWS` (65,536) rows, each from its own child of
    the seed, and ``chunk_rows`` only decides how many rows are written at a
    time.

    Memory: ``X`` is generated into a buffer of ``chunk_rows`` rows (at most
    one block) and written to the file from there, so the process holds
    O(``chunk_rows * n_features``) of it. The
    targets of a block are computed from the whole block (one matrix-vector
    product over its rows, as :func:`make_regression` does: that is what makes
    the bits equal), through a read-only map of the block's rows in the file
    just written: up to ``65536 * n_features * 8`` bytes of page cache, which
    the operating system can drop at any time. Plus ``y`` of one block (512 KiB)
    and ``w_true``.

    Parameters
    ----------
    path_X, path_y : str or os.PathLike
        Files to create or replace; two different files. Each is written as
        a temporary file beside it and renamed onto it once both are
        complete and flushed to disk, so at every instant each holds its old
        complete content or its new complete content (a call that fails or
        is interrupted never deletes or truncates a file that was there).
        ``X`` is written as a float64 C-order array of shape
        (n_samples, n_features), ``y`` as float64 of shape (n_samples,).
    n_samples : int
        Number of rows, at least 1.
    n_features : int
        Number of columns, at least 1.
    noise : float, default 0.0
        Standard deviation of the Gaussian noise added to ``y``; >= 0.
    bias : float, default 0.0
        Intercept of the true model.
    seed : int, SeedSequence or None, default None
        Same seed, same data (and the same as :func:`make_regression`'s).
    chunk_rows : int or None, default None
        Rows of ``X`` written per step, at least 1. None: as many as fit in
        64 MiB (at least one row).

    Returns
    -------
    ndarray of shape (n_features,)
        ``w_true``, the weights ``y`` was made with.

    Raises
    ------
    TypeError, ValueError
        Bad arguments (as :func:`make_regression`, plus the paths and
        ``chunk_rows``; the same file given twice, through links too), before
        any file is created. ``noise`` or ``bias`` so large that ``y``
        overflows is found while writing.
    MemoryError
        ``w_true`` and one buffer of ``X`` (``chunk_rows`` rows) do not fit in
        memory; raised at once, naming the sizes.
    OSError
        A destination that cannot be written (an existing directory, a
        missing or unwritable folder: checked before any work), or the disk
        has no room for the files (``ENOSPC``: their size is compared with
        the free space first, naming ``n_samples`` and ``n_features``, and
        the space is reserved up front where the file system allows it). On
        any error the destinations are left as they were and the temporary
        files are removed.
    """
    path_X = _validation.check_path(path_X, "path_X")
    path_y = _validation.check_path(path_y, "path_y")
    n_samples, n_features, noise, bias, root = _validation.check_regression(
        n_samples, n_features, noise, bias, seed)
    if chunk_rows is None:
        chunk_rows = max(1, DEFAULT_CHUNK_BYTES // (8 * n_features))
    else:
        chunk_rows = _validation.check_int(chunk_rows, "chunk_rows", minimum=1)
    _validation.check_destinations([("path_X", path_X), ("path_y", path_y)])
    buffer_rows = min(chunk_rows, BLOCK_ROWS, n_samples)
    block_rows = min(BLOCK_ROWS, n_samples)
    # w_true, the buffer of X and a block of y; the files' room on disk
    with _validation.allocating(8 * (n_features + buffer_rows * n_features + block_rows),
                                _sizes(n_samples, n_features, chunk_rows),
                                "w_true and the buffer of X"):
        w_true, block_seeds = _weights_and_block_seeds(root, n_samples, n_features)
        buffer = np.empty((buffer_rows, n_features))
    _check_room([(path_X, _NPY_HEADER + 8 * n_samples * n_features),
                 (path_y, _NPY_HEADER + 8 * n_samples)], _sizes(n_samples, n_features))

    def write(temporaries: list[str]) -> None:
        _write_files(temporaries[0], temporaries[1], n_samples, n_features, w_true,
                     block_seeds, buffer, noise, bias)

    # Both files are written as temporaries beside their destinations and
    # renamed onto them only when both are complete and on disk.
    write_all_atomically([path_X, path_y], write)
    return w_true


def _sizes(n_samples: int, n_features: int, chunk_rows: int | None = None) -> str:
    """The arguments that choose a size, for messages."""
    chunk = "" if chunk_rows is None else f" and chunk_rows={chunk_rows}"
    return f"n_samples={n_samples}, n_features={n_features}{chunk}"


#: Bytes of a .npy header (the format pads it to a multiple of 64; 128 is
#: what a float64 array of up to two dimensions takes).
_NPY_HEADER = 128


def _check_room(files: list[tuple[str, int]], what: str) -> None:
    """``OSError`` (``ENOSPC``) naming ``what`` when the files' sizes do not
    fit in the free space of their file systems (the old files stay until
    the new ones are complete, so all of it is needed)."""
    if not hasattr(os, "statvfs"):
        return
    needed: dict[int, list] = {}
    for path, nbytes in files:
        folder = os.path.dirname(os.path.realpath(path))
        entry = needed.setdefault(os.stat(folder).st_dev, [folder, 0])
        entry[1] += nbytes
    for folder, nbytes in needed.values():
        info = os.statvfs(folder)
        free = info.f_bavail * info.f_frsize
        if nbytes > free:
            raise OSError(errno.ENOSPC, f"{what}: {_validation.format_bytes(nbytes)} of "
                                        f".npy files, more than the "
                                        f"{_validation.format_bytes(free)} free on the file "
                                        f"system of {folder!r}")


def _write_files(path_X: str, path_y: str, n_samples: int, n_features: int,
                 w_true: np.ndarray, block_seeds: Iterator, buffer: np.ndarray,
                 noise: float, bias: float) -> None:
    """Write the X and y of ``make_regression`` to the (new, empty) files
    ``path_X`` and ``path_y``, block by block."""
    offset_X = _create_npy(path_X, (n_samples, n_features))
    offset_y = _create_npy(path_y, (n_samples,))
    with open(path_X, "r+b") as file_X, open(path_y, "r+b") as file_y:
        for block, block_seed in enumerate(block_seeds):
            first = block * BLOCK_ROWS
            stop = min(first + BLOCK_ROWS, n_samples)
            rng = np.random.default_rng(block_seed)
            _write_block_rows(file_X, path_X, offset_X, first, stop, buffer, rng)
            block_X = _window(path_X, offset_X + first * 8 * n_features, "r",
                              (stop - first, n_features))
            y_block = np.empty(stop - first)
            np.matmul(block_X, w_true, out=y_block)
            del block_X
            _finish_targets(y_block, bias, noise, rng)
            file_y.seek(offset_y + first * 8)
            file_y.write(y_block.data.cast("B"))


def _write_block_rows(file_X: Any, path_X: str, offset_X: int, first: int, stop: int,
                      buffer: np.ndarray, rng: np.random.Generator) -> None:
    """Rows ``first..stop-1`` (one block) of X, drawn from the block's
    generator a buffer at a time and written to ``file_X``: the generator's
    normal stream is sequential, so pieces in row order draw the block's
    values."""
    file_X.seek(offset_X + first * 8 * buffer.shape[1])
    for start in range(first, stop, buffer.shape[0]):
        chunk = buffer[:min(buffer.shape[0], stop - start)]
        rng.standard_normal(out=chunk)
        file_X.write(chunk.data.cast("B"))
    file_X.flush()
