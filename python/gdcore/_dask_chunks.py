"""The row chunks of a Dask run, and what runs on the workers, chunk by chunk.

:class:`Chunks` holds the non-empty row chunks of ``X``, ``y`` (and of the
normalised sample weights) as Dask delayeds, with each chunk's training and
held-out rows. The functions below it are the tasks: they receive one chunk
where it lives and hand it to gdcore's compiled kernels; only O(parameters)
numbers travel.

Sums over all rows are added in a fixed tree (:func:`tree_sum`: groups of
:data:`TREE_FANIN` consecutive chunks, each group added in chunk order, then
the groups' sums the same way), so the bits depend on the chunking only,
never on where or when a task ran. When ``X`` is persisted on a
``distributed`` cluster, one task per worker thread runs all the chunks it
holds (``Chunks.groups``: the scheduler's cost per task is the fixed cost
of an epoch) and the client adds the per-chunk sums in that tree
(:func:`add_as_tree`); otherwise each chunk is a task and the tree's levels
are tasks on the workers, the last level (at most :data:`TREE_FANIN`
vectors) reaching the client in the same round trip.

Imported by :mod:`gdcore.dask` only (it needs Dask).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dask
import numpy as np

from . import _api, _dispatch
from ._options import Config

#: Chunk sums added per reduction task (a tree of this fan-in: with up to
#: TREE_FANIN chunks, one task adds them all in chunk order).
TREE_FANIN = 8


@dataclass
class Part:
    """One non-empty row chunk: its delayeds and where its rows are."""

    X: Any                          # delayed (rows, d)
    y: Any                          # delayed (rows,) or (rows, k)
    weights: Any                    # delayed (rows,) normalised weights, or None
    start: int                      # global index of its first row
    rows: int
    train: np.ndarray | None        # its training rows (local indices), None: all
    val: np.ndarray | None          # its held-out rows (local indices), None: none

    @property
    def n_train(self) -> int:
        return self.rows if self.train is None else int(self.train.shape[0])


class Chunks:
    """The non-empty row chunks of ``X``, ``y`` and the weights, in order."""

    def __init__(self, X: Any, y: Any, weights: Any = None,
                 val_rows: np.ndarray | None = None) -> None:
        x_parts = X.to_delayed().ravel()
        y_parts = y.to_delayed().ravel()
        w_parts = ([None] * len(x_parts) if weights is None
                   else list(weights.to_delayed().ravel()))
        self.parts: list[Part] = []
        start = 0
        for x_part, y_part, w_part, rows in zip(x_parts, y_parts, w_parts, X.chunks[0],
                                                strict=True):
            rows = int(rows)
            if rows > 0:    # a zero-row chunk holds nothing to learn from
                train = val = None
                if val_rows is not None:
                    lo, hi = np.searchsorted(val_rows, [start, start + rows])
                    if hi > lo:
                        val = (val_rows[lo:hi] - start).astype(np.intp)
                        mask = np.ones(rows, dtype=bool)
                        mask[val] = False
                        train = np.flatnonzero(mask).astype(np.intp)
                self.parts.append(Part(x_part, y_part, w_part, start, rows, train, val))
            start += rows
        self.n_samples = int(X.shape[0])
        self.n_features = int(X.shape[1])
        self.n_train = sum(part.n_train for part in self.parts)
        self.groups = _groups(X, self.parts)

    def sums(self, params: np.ndarray, n_threads: int, targets: bool = True) -> np.ndarray:
        """``[S, R(k), G(k*d)]`` over the training rows (weighted), reduced on
        the workers in the fixed tree of :func:`tree_sum`. ``targets=False``:
        targets 0 and no weights (the power iteration of ``max_stable_lr``)."""
        if self.groups is not None:
            tasks = [dask.delayed(_group_sums, pure=False)(
                         [self.parts[c].X for c in group],
                         [self.parts[c].y if targets else None for c in group],
                         [self.parts[c].weights if targets else None for c in group],
                         Opaque([self.parts[c].train if targets else None for c in group],
                                params, n_threads))
                     for group in self.groups]
            return add_as_tree(in_chunk_order(self.groups, dask.compute(*tasks)))
        tasks = [dask.delayed(_chunk_sums, pure=False)(
                     part.X, part.y if targets else None, part.weights if targets else None,
                     Opaque(part.train if targets else None, params, n_threads))
                 for part in self.parts]
        return add_in_order(*dask.compute(*tree_levels(tasks)))

    def held_out_loss(self, params: np.ndarray, loss_factor: float) -> float:
        """The loss over the held-out rows of every chunk (their mean)."""
        tasks = [dask.delayed(_chunk_loss_sum, pure=False)(
                     part.X, part.y, Opaque(part.val, params, loss_factor))
                 for part in self.parts if part.val is not None]
        n_val = sum(int(part.val.shape[0]) for part in self.parts if part.val is not None)
        return float(dask.compute(tree_sum(tasks))[0]) / n_val

    def raise_if_nonfinite(self) -> None:
        """``ValueError`` naming the first non-finite value of ``X``, else of ``y``."""
        tasks = [dask.delayed(_first_nonfinite, pure=False)(part.X, part.y)
                 for part in self.parts]
        found = dask.compute(*tasks)
        for name in ("X", "y"):
            for part, hits in zip(self.parts, found, strict=True):
                if name in hits:
                    position, value = hits[name]
                    row = part.start + position[0]
                    where = (row if name == "y" and len(position) == 1
                             else (row, *position[1:]))
                    raise ValueError(f"{name} must contain only finite values; got "
                                     f"{value} at index {where}")


def _groups(X: Any, parts: list[Part]) -> list[list[int]] | None:
    """The chunks (indices into ``parts``) each worker thread holds, in chunk
    order, when ``X`` is persisted on a ``distributed`` cluster (one task per
    group then does the work of many); None otherwise (a task per chunk)."""
    try:
        from distributed import default_client, futures_of, wait
        client = default_client()
    except (ImportError, ValueError):
        return None
    futures = futures_of(X)
    if not futures or dask.config.get("scheduler", None) not in (None, "dask.distributed",
                                                                 "distributed"):
        return None
    wait(futures)
    where = client.who_has(futures)
    holders = [where.get(part.X.key) for part in parts]
    if not all(holders):
        return None
    threads = client.nthreads()
    slots: dict[tuple[str, int], list[int]] = {}
    seen: dict[str, int] = {}
    for c, holder in enumerate(holders):
        address = sorted(holder)[0]
        k = seen.get(address, 0)
        seen[address] = k + 1
        slots.setdefault((address, k % max(1, threads.get(address, 1))), []).append(c)
    return [slots[key] for key in sorted(slots)]


def in_chunk_order(groups: list[list[int]], results: Any) -> list:
    """The per-chunk results of group tasks, back in chunk order."""
    ordered: list = [None] * sum(len(group) for group in groups)
    for group, values in zip(groups, results, strict=True):
        for c, value in zip(group, values, strict=True):
            ordered[c] = value
    return ordered


def add_as_tree(items: list) -> Any:
    """The sum :func:`tree_sum` computes (the same additions in the same
    order, so the same bits), done here."""
    level = list(items)
    while len(level) > TREE_FANIN:
        level = [add_in_order(*level[i:i + TREE_FANIN])
                 for i in range(0, len(level), TREE_FANIN)]
    return add_in_order(*level)


def tree_sum(tasks: list) -> Any:
    """The sum of delayed arrays (or numbers), as one delayed: groups of
    :data:`TREE_FANIN` consecutive items added in order, level by level, each
    addition a task of its own (on a cluster: on a worker)."""
    level = tree_levels(tasks)
    return level[0] if len(level) == 1 else dask.delayed(add_in_order, pure=False)(*level)


def tree_levels(tasks: list) -> list:
    """The levels of :func:`tree_sum` up to the last one, which holds at most
    :data:`TREE_FANIN` items (left for the caller to add in order: computed
    together, they reach the client in one round trip, one hop sooner than
    through one more task)."""
    level = list(tasks)
    while len(level) > TREE_FANIN:
        level = [dask.delayed(add_in_order, pure=False)(*level[i:i + TREE_FANIN])
                 for i in range(0, len(level), TREE_FANIN)]
    return level


def add_in_order(*parts: Any) -> Any:
    """``parts[0] + parts[1] + ...``, left to right, into a new array."""
    total = np.array(parts[0], dtype=np.float64, copy=True)
    for part in parts[1:]:
        total += part
    return total


class Opaque:
    """The plain arguments of a task in a box Dask does not look into.

    Dask walks every argument of a delayed call for collections it must
    compute (into tuples, dicts and dataclasses such as ``Config``) and, for
    pure calls, hashes it: for a task per chunk per round that was most of
    the client's time. Boxed, the arguments travel as they are (pickled with
    the task); the tasks are made with ``pure=False``, so nothing is hashed.
    """

    __slots__ = ("values",)

    def __init__(self, *values: Any) -> None:
        self.values = values


# ---------------------------------------------------------------------------
# What runs on the workers, one chunk at a time
# ---------------------------------------------------------------------------

def as_arrays(X: Any, y: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """A chunk as the kernels take it: float64 C-order ``X`` and (rows, k) ``Y``."""
    X = np.asarray(X, dtype=np.float64, order="C")
    if y is None:
        return X, None
    y = np.asarray(y, dtype=np.float64, order="C")
    return X, y.reshape(y.shape[0], -1)


def _chunk_sums(X: Any, y: Any, weights: Any, box: Opaque) -> np.ndarray:
    """``[S, R(k), G(k*d)]`` of one chunk's training rows (``box``: the rows
    ``train``, ``params``, ``n_threads``): the compiled kernel's raw sums
    (``full_sums``), so chunks add up without any rescaling (held-out rows
    enter with weight 0). A non-finite value in the chunk makes them
    non-finite."""
    train, params, n_threads = box.values
    X, Y = as_arrays(X, y)
    k = 1 if Y is None else Y.shape[1]
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    if train is not None:
        mask = np.zeros(X.shape[0])
        mask[train] = 1.0
        w = mask if w is None else mask * w
    out = np.empty(1 + k + k * X.shape[1])
    _dispatch.require().full_sums(X, Y, w, params, out, _dispatch.threads(n_threads))
    return out


def _group_sums(xs: list, ys: list, ws: list, box: Opaque) -> list[np.ndarray]:
    """:func:`_chunk_sums` of several chunks, one after the other."""
    trains, params, n_threads = box.values
    return [_chunk_sums(X, y, w, Opaque(train, params, n_threads))
            for X, y, w, train in zip(xs, ys, ws, trains, strict=True)]


def _chunk_loss_sum(X: Any, y: Any, box: Opaque) -> float:
    """The sum of the losses of the rows ``rows`` of one chunk (``box``: ``rows``,
    ``params``, ``loss_factor``)."""
    rows, params, loss_factor = box.values
    X, Y = as_arrays(X, y)
    assert Y is not None
    return _dispatch.require().subset_loss(X, Y, rows, params, loss_factor) * rows.shape[0]


def _first_nonfinite(X: Any, y: Any) -> dict:
    """``{name: (index, value)}`` of the first non-finite value of a chunk's X and y."""
    hits = {}
    for name, array in (("X", np.asarray(X)), ("y", np.asarray(y))):
        bad = ~np.isfinite(array)
        if bad.any():
            position = tuple(int(i) for i in np.argwhere(bad)[0])
            hits[name] = (position, float(array[position]))
    return hits


def chunk_order(part_train: np.ndarray | None, rows: int,
                seed: int | None) -> np.ndarray | None:
    """The rows of one chunk's epoch in visiting order (None: 0..rows-1):
    its training rows, permuted by ``default_rng(seed)`` when ``seed`` is given."""
    if seed is None:
        return part_train
    permutation = np.random.default_rng(seed).permutation(
        rows if part_train is None else part_train.shape[0]).astype(np.intp)
    return permutation if part_train is None else part_train[permutation]


def run_chunk(X: Any, y: Any, weights: Any, train: np.ndarray | None, config: Config,
              seed: int | None, buffers: np.ndarray, l1_total: float, lr: float,
              global_step: int, first: int, stop: int,
              running: float) -> tuple[np.ndarray, int, float, float, bool, float]:
    """Steps ``first .. stop - 1`` of one chunk's epoch from a copy of
    ``buffers``: ``(buffers, steps, running, part, nonfinite, l1_total)``."""
    X, Y = as_arrays(X, y)
    assert Y is not None
    buffers = np.array(buffers, copy=True)
    kernels = _dispatch.require()
    rule = kernels.Rule(config, config.batch_size, _dispatch.threads(config.n_threads or 1))
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    order = chunk_order(train, X.shape[0], seed)
    steps, running, part, nonfinite, l1_total = kernels.run_epoch(
        X, Y, order, w, buffers, rule, lr, global_step, first, stop, running, l1_total)
    return buffers, steps, running, part, nonfinite, l1_total


def run_chunk_task(X: Any, y: Any, weights: Any, box: Opaque) -> tuple:
    """:func:`run_chunk` as a task: its other arguments in ``box``."""
    return run_chunk(X, y, weights, *box.values)


def run_group_task(xs: list, ys: list, ws: list, boxes: Opaque) -> list[tuple]:
    """:func:`run_chunk_task` of several chunks, one after the other."""
    return [run_chunk(X, y, w, *box) for X, y, w, box in
            zip(xs, ys, ws, boxes.values, strict=True)]


def predict_chunk(X: Any, w: np.ndarray, b: Any) -> np.ndarray:
    """``X @ w + b`` of one chunk (``ValueError`` for a non-finite ``X``)."""
    return _api.predict(X, w, b)
