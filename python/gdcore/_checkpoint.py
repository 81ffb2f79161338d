"""Checkpoints: a training run that survives a kill.

``fit(..., checkpoint=path)`` saves the whole state of the run to ``path``
-- the parameters and the optimiser's buffers, the generator, the schedule,
early stopping, the held-out rows, the history, and, within an epoch, how far
the epoch got -- at most every ``checkpoint_seconds`` and when the run ends.
A ``fit`` that finds the file resumes from it and ends with the bits of a run
that was never interrupted. Each save goes through
:func:`gdcore._files.write_atomically`, so the file is always a whole
checkpoint (the previous one until the new one is complete).

A checkpoint carries a fingerprint of what decides the run's numbers: the
options (those that only change how the run is watched -- ``verbose``,
``progress``, ``callback``, ``n_threads``, ``check_lr``, ``copy``, ``epochs``
and the checkpoint's own -- are left out), ``w0``, ``b0``, the sample weights
and a warm start's state, the data's shapes and dtypes and 64 of its rows. A
file whose fingerprint differs is refused (``ValueError`` naming
``checkpoint``) and left as it is.

The file is a NumPy ``.npz`` archive (no pickles): the arrays, and one JSON
document for everything else.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._files import write_atomically
from ._options import Config
from ._state import TrainState

#: The format a checkpoint file declares; another one is refused.
FORMAT = "gdcore-checkpoint-1"

#: Options that change how a run is watched, not its numbers.
NOT_IN_FINGERPRINT = ("epochs", "n_threads", "check_lr", "callback", "callback_every",
                      "verbose", "progress", "copy", "checkpoint", "checkpoint_seconds")

#: Rows of X and y that go into the fingerprint.
SAMPLED_ROWS = 64


@dataclass
class EpochProgress:
    """How far an epoch got: what resuming in the middle of it needs."""

    rng_state: Any                  # the generator before the epoch's order was drawn
    start_buffers: np.ndarray       # the state's buffers at the epoch's start
    start_step: int                 # the global step at the epoch's start
    start_l1_total: float           # the state's l1_total at the epoch's start
    done: int                       # steps of the epoch applied
    loss_sum: float                 # the trainer's loss accumulator after them


@dataclass
class Saved:
    """A run as a checkpoint holds it."""

    state: TrainState
    history: dict[str, Any]         # per epoch: loss, grad_norm, lr, ... (sequences)
    start_step: int                 # global step at the start of the run
    halvings: int                   # on_divergence="halve" retries so far
    finished: str | None = None     # the stop reason of a run that ended
    epoch: EpochProgress | None = None


def _digest(*parts: Any) -> str:
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            digest.update(repr((part.dtype.str, part.shape)).encode())
            digest.update(np.ascontiguousarray(part).tobytes())
        else:
            digest.update(repr(part).encode())
    return digest.hexdigest()


def _seed_repr(seed: Any) -> Any:
    if isinstance(seed, np.random.Generator):
        return ("Generator", seed.bit_generator.state)
    if isinstance(seed, np.random.SeedSequence):
        return ("SeedSequence", seed.entropy, seed.spawn_key, seed.n_children_spawned)
    return seed


def fingerprint(config: Config, X: np.ndarray, y: np.ndarray, sample_weight: Any,
                start: TrainState) -> str:
    """What decides a run's numbers, as one string (see the module docstring):
    the options, the data's shapes and sampled rows, the sample weights as
    given and the state the run starts from (w0 and b0, or a warm start)."""
    options = {name: repr(getattr(config, name)) for name in config.__dataclass_fields__
               if name not in NOT_IN_FINGERPRINT}
    options["seed"] = repr(_seed_repr(config.seed))
    rows = np.unique(np.linspace(0, X.shape[0] - 1, SAMPLED_ROWS).astype(np.intp))
    return _digest(sorted(options.items()), X.shape, X.dtype.str, y.shape, y.dtype.str,
                   np.asarray(X[rows]), np.asarray(y[rows]),
                   "no weights" if sample_weight is None else np.asarray(sample_weight),
                   start.buffers, start.global_step, start.epoch)


class Checkpoint:
    """The checkpoint file of one run: load it, and save to it now and then."""

    def __init__(self, path: str | os.PathLike, seconds: float, fingerprint: str) -> None:
        self.path = Path(path)
        self.seconds = seconds
        self.fingerprint = fingerprint
        self._saved_at = time.monotonic()

    def load(self) -> Saved | None:
        """The saved run, or None when there is no file yet.

        Raises
        ------
        ValueError
            The file is not a gdcore checkpoint, is damaged, or was saved by a
            run with other options or data (named ``checkpoint``).
        """
        if not self.path.exists():
            return None
        try:
            with np.load(self.path, allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
            meta = json.loads(str(arrays.pop("meta")))
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
            raise ValueError(f"checkpoint {str(self.path)!r} is not a gdcore checkpoint "
                             f"or is damaged ({exc}); move it away to start afresh") from None
        if meta.get("format") != FORMAT:
            raise ValueError(f"checkpoint {str(self.path)!r} is not a {FORMAT} file; move "
                             f"it away to start afresh")
        if meta["fingerprint"] != self.fingerprint:
            raise ValueError(f"checkpoint {str(self.path)!r} was saved by a run with other "
                             f"options or other data; it is left as it is (pass another "
                             f"checkpoint file, or remove this one to start afresh)")
        return _unpack(meta, arrays)

    def due(self) -> bool:
        """Has ``seconds`` passed since the last save (or the start)?"""
        return time.monotonic() - self._saved_at >= self.seconds

    def save(self, saved: Saved) -> None:
        """Write ``saved`` to the file, atomically."""
        meta, packed = _pack(saved)
        meta.update(format=FORMAT, fingerprint=self.fingerprint)
        arrays: dict[str, Any] = {**packed, "meta": np.asarray(json.dumps(meta))}

        def write(path: str) -> None:
            with open(path, "wb") as handle:
                np.savez(handle, **arrays)

        write_atomically(self.path, write)
        self._saved_at = time.monotonic()


def _plain(value: Any) -> Any:
    """A generator's state as JSON holds it (arrays as lists)."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _float(value: float) -> Any:
    """A float JSON can hold (inf and nan as strings)."""
    return value if math.isfinite(value) else repr(value)


def _pack(saved: Saved) -> tuple[dict, dict[str, np.ndarray]]:
    state = saved.state
    arrays: dict[str, np.ndarray] = {"buffers": state.buffers}
    if state.val_rows is not None:
        arrays["val_rows"] = state.val_rows
    if state.standardize is not None:
        arrays["standardize"] = state.standardize
    if state.best_params is not None:
        arrays["best_params"] = state.best_params
    for name, values in saved.history.items():
        arrays[f"history_{name}"] = np.asarray(values, dtype=np.float64)
    meta: dict[str, Any] = dict(
        n_features=state.n_features, outputs=state.outputs,
        global_step=state.global_step, epoch=state.epoch,
        rng=None if state.rng is None else _plain(state.rng.bit_generator.state),
        schedule_state={k: _float(v) for k, v in (state.schedule_state or {}).items()},
        lr_scale=state.lr_scale, best_score=_float(state.best_score),
        no_improvement=state.no_improvement, n_samples=state.n_samples,
        weight_scale=None if state.weight_scale is None else list(state.weight_scale),
        optimizer=state.optimizer, l1_total=state.l1_total, auto_lr=state.auto_lr,
        best_epoch=state.best_epoch,
        best_loss=_float(state.best_loss), best_val_loss=_float(state.best_val_loss),
        history=list(saved.history), start_step=saved.start_step, halvings=saved.halvings,
        finished=saved.finished, epoch_progress=None)
    if saved.epoch is not None:
        progress = saved.epoch
        arrays["epoch_start_buffers"] = progress.start_buffers
        meta["epoch_progress"] = dict(rng_state=_plain(progress.rng_state),
                                      start_step=progress.start_step,
                                      start_l1_total=progress.start_l1_total,
                                      done=progress.done,
                                      loss_sum=_float(progress.loss_sum))
    return meta, arrays


def _number(value: Any) -> Any:
    return float(value) if isinstance(value, str) else value


def _generator(state: dict | None) -> np.random.Generator | None:
    if state is None:
        return None
    bit_generator = getattr(np.random, state["bit_generator"])()
    bit_generator.state = state
    return np.random.Generator(bit_generator)


def _unpack(meta: dict, arrays: dict[str, np.ndarray]) -> Saved:
    state = TrainState(
        buffers=arrays["buffers"].copy(), n_features=meta["n_features"],
        outputs=meta["outputs"], global_step=meta["global_step"], epoch=meta["epoch"],
        rng=_generator(meta["rng"]),
        schedule_state={k: _number(v) for k, v in meta["schedule_state"].items()},
        lr_scale=meta["lr_scale"], best_score=_number(meta["best_score"]),
        no_improvement=meta["no_improvement"],
        val_rows=arrays.get("val_rows"), n_samples=meta["n_samples"],
        weight_scale=None if meta["weight_scale"] is None else tuple(meta["weight_scale"]),
        optimizer=meta["optimizer"], l1_total=meta["l1_total"],
        standardize=arrays.get("standardize"), auto_lr=meta["auto_lr"],
        best_epoch=meta["best_epoch"], best_loss=_number(meta["best_loss"]),
        best_val_loss=_number(meta["best_val_loss"]),
        best_params=None if "best_params" not in arrays else arrays["best_params"].copy())
    history = {name: arrays[f"history_{name}"].tolist() for name in meta["history"]}
    progress = None
    if meta["epoch_progress"] is not None:
        saved_epoch = meta["epoch_progress"]
        progress = EpochProgress(rng_state=saved_epoch["rng_state"],
                                 start_buffers=arrays["epoch_start_buffers"].copy(),
                                 start_step=saved_epoch["start_step"],
                                 start_l1_total=saved_epoch["start_l1_total"],
                                 done=saved_epoch["done"],
                                 loss_sum=_number(saved_epoch["loss_sum"]))
    return Saved(state=state, history=history, start_step=meta["start_step"],
                 halvings=meta["halvings"], finished=meta["finished"], epoch=progress)


__all__ = ["Checkpoint", "EpochProgress", "Saved", "fingerprint"]
