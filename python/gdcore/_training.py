"""The training loop shared by every backend.

A backend's :class:`~gdcore._engines.Trainer` draws each epoch's sample
order and runs a range of steps of one epoch over it, updating the training
state in place. Everything around it lives here once: the per-epoch
learning rate, history, validation, early stopping, callbacks, feedback,
checkpoints, and what happens when the loss or the parameters stop being
finite.

The loop keeps no copy of the state beyond what a failure needs: at the start
of each epoch the state's buffers and step count (O(parameters)), from which
a diverged epoch is replayed up to its last finite step or retried at half the
rate; the epoch's sample order is drawn once and reused by both. With a
checkpoint, an epoch runs in slices and the run is saved between slices when
``checkpoint_seconds`` have passed, and when it ends; a run started from a
checkpoint resumes where it was saved, in the middle of an epoch if need be,
with the same bits as a run that was never interrupted. (Nothing is saved on
Ctrl-C: the signal can arrive between two updates of the run's counters, and
the last periodic save is a consistent one.)
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from typing import Any

import numpy as np

from ._checkpoint import Checkpoint, EpochProgress, Saved
from ._engines import TrainerFactory, vector_norm
from ._feedback import Progress
from ._options import Config
from ._results import ConvergenceWarning, DivergenceError, FitResult
from ._state import GRAD_SUM, Data, TrainState
from ._validation import warn_from_caller

#: ``on_divergence="halve"`` halves the rate at most this many times in a run.
MAX_HALVINGS = 30

#: Whole epochs run in compiled calls of at most this many epochs, each call
#: with its own arrays of losses and gradient norms: a run asked for 10**12
#: epochs that meets its tol early allocates 16 MB, not terabytes. (A call
#: of this many epochs takes 30 ms or more even at 3 x 1.)
MAX_BLOCK_EPOCHS = 1 << 20

#: With a checkpoint, an epoch runs in this many slices (at least), saved between.
CHECKPOINT_SLICES = 16

#: With a progress bar, an epoch runs in slices of about this many seconds, so
#: that the bar moves within epochs (it redraws at most every
#: ``_feedback.REFRESH_SECONDS``).
PROGRESS_SECONDS = 0.1


class Column:
    """A run's record of one quantity per epoch: a float64 array that grows
    (by appending one epoch, or a block of them at once), without a Python
    float per epoch."""

    __slots__ = ("_data", "_size")

    def __init__(self, values: Any = ()) -> None:
        values = np.asarray(values, dtype=np.float64)
        self._data = np.empty(max(16, 2 * values.shape[0]))
        self._data[:values.shape[0]] = values
        self._size = values.shape[0]

    def _room(self, extra: int) -> None:
        if self._size + extra > self._data.shape[0]:
            data = np.empty(max(2 * self._data.shape[0], self._size + extra))
            data[:self._size] = self._data[:self._size]
            self._data = data

    def append(self, value: float) -> None:
        self._room(1)
        self._data[self._size] = value
        self._size += 1

    def extend(self, values: np.ndarray) -> None:
        self._room(values.shape[0])
        self._data[self._size:self._size + values.shape[0]] = values
        self._size += values.shape[0]

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, index: int) -> float:
        return float(self._data[:self._size][index])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return np.array(self._data[:self._size], dtype=dtype)


def _finite(params: np.ndarray) -> bool:
    return bool(np.isfinite(params).all())


def train(backend: TrainerFactory, data: Data, config: Config, state: TrainState, *,
          copied: tuple[str, ...] = (), checkpoint: Checkpoint | None = None,
          saved: Saved | None = None) -> FitResult:
    """Run ``config.epochs`` epochs from ``state`` (updated in place).

    ``config`` holds the resolved batch size, thread count and shuffle block.
    With ``checkpoint``, the run saves to it as it goes; ``saved`` is what the
    checkpoint held when the run started (``state`` is then its state).
    """
    return _Run(backend, data, config, state, copied, checkpoint, saved).run()


class _Run:
    """One call of :func:`train`: its state, history and feedback."""

    def __init__(self, backend: TrainerFactory, data: Data, config: Config,
                 state: TrainState, copied: tuple[str, ...],
                 checkpoint: Checkpoint | None, saved: Saved | None) -> None:
        self.backend, self.data, self.config, self.copied = backend, data, config, copied
        self.trainer = backend.trainer(data, config)
        self.steps_per_epoch = self.trainer.steps_per_epoch
        self.checkpoint = checkpoint
        self.chunk_loss = math.nan          # mean batch loss of the last slice
        if saved is not None:
            self.history = {name: Column(values) for name, values in saved.history.items()}
            self.start_step = saved.start_step
            self.halvings, self.finished, self.resume = (saved.halvings, saved.finished,
                                                         saved.epoch)
        else:
            self.history = {"loss": Column(), "grad_norm": Column(), "lr": Column()}
            if data.val_rows is not None:
                self.history["val_loss"] = Column()
            self.start_step, self.halvings = state.global_step, 0
            self.finished, self.resume = None, None
        self.state = state
        self.chunk = config.callback_every or (
            -(-self.steps_per_epoch // CHECKPOINT_SLICES) if checkpoint is not None
            else self.steps_per_epoch)
        resumed_steps = 0 if self.resume is None else self.resume.done
        self.progress = Progress(epochs=config.epochs, n_train=data.n_train,
                                 verbose=config.verbose, progress=config.progress,
                                 epochs_done=len(self.history["loss"]),
                                 samples_done=self._samples(resumed_steps))
        # with a bar: steps per call, sized to take about PROGRESS_SECONDS
        self.bar_steps = 16
        self.epoch: EpochProgress | None = None     # the epoch in progress
        # whole epochs in one compiled call when nothing in Python needs to run
        # between them (see _epoch_block)
        self.fast = (getattr(self.trainer, "runs_epochs", False) and config.callback is None
                     and not config.verbose and not self.progress.shown
                     and checkpoint is None and data.val_rows is None
                     and not config.restore_best and config.schedule.steady_epochs(0) > 0)

    # -- the run -------------------------------------------------------------

    def run(self) -> FitResult:
        try:
            # a run that ran out of epochs goes on when it is given more
            reason = (self.finished if self.finished not in (None, "max_epochs")
                      else self._epochs())
        finally:
            self.progress.close()
        self.epoch = None
        self.finished = reason
        self._save()
        config = self.config
        if reason == "max_epochs" and config.tol is not None and config.epochs > 0:
            warn_from_caller(
                f"training used all {config.epochs} epochs without meeting tol={config.tol:g} "
                f"(stop_on={config.stop_on!r}): the result may not have converged; give more "
                f"epochs, a larger lr or a larger tol", ConvergenceWarning)
        return self._result(reason)

    def _epochs(self) -> str:
        """Epochs until the run stops; returns why it stopped."""
        while len(self.history["loss"]) < self.config.epochs:
            if self.fast and self.resume is None:
                reason, failed = self._epoch_block()
                if reason is not None:
                    return reason
                if not failed:
                    continue
            reason = self._one_epoch()
            if reason is not None:
                return reason
        return "max_epochs"

    def _epoch_block(self) -> tuple[str | None, bool]:
        """Run the epochs that share one rate in one compiled call
        (``Trainer.run_epochs``): the same bits as :meth:`_one_epoch` run
        once per epoch, without Python between epochs. Returns the stop
        reason (or None) and whether the next epoch failed, which
        :meth:`_one_epoch` then runs (and handles) itself."""
        config, state, history = self.config, self.state, self.history
        assert state.schedule_state is not None
        epochs = min(config.epochs - len(history["loss"]),
                     config.schedule.steady_epochs(state.epoch), MAX_BLOCK_EPOCHS)
        if epochs <= 0:
            return None, True
        lr = config.schedule.epoch_lr(config.rate, state.epoch, state.schedule_state)
        lr *= state.lr_scale
        stop_on = 0 if config.tol is None else {"loss": 1, "grad_norm": 2}[config.stop_on]
        done, failed, losses, grad_norms, converged = self.trainer.run_epochs(  # type: ignore[attr-defined]
            state, epochs, lr, (stop_on, config.tol or 0.0, config.n_iter_no_change))
        history["loss"].extend(losses)
        history["grad_norm"].extend(grad_norms)
        history["lr"].extend(np.full(done, lr))
        state.epoch += done
        if converged:
            return f"tol ({config.stop_on})", False
        return None, failed

    def _one_epoch(self) -> str | None:
        """Run an epoch (or the rest of one, when resuming); None to go on."""
        config, state = self.config, self.state
        if self.resume is not None:
            progress, self.resume = self.resume, None
            if progress.rng_state is not None:
                assert state.rng is not None
                state.rng.bit_generator.state = progress.rng_state
            order = self.trainer.epoch_order(state)
        else:
            rng_state = state.rng.bit_generator.state if state.rng is not None else None
            order = self.trainer.epoch_order(state)
            state.buffers[GRAD_SUM] = 0.0
            progress = EpochProgress(rng_state, state.buffers.copy(), state.global_step,
                                     state.l1_total, 0, 0.0)
        self.epoch = progress
        while True:                                   # the epoch, retried by "halve"
            epoch_started = time.perf_counter()
            assert state.schedule_state is not None
            lr = config.schedule.epoch_lr(config.rate, state.epoch, state.schedule_state)
            lr *= state.lr_scale
            outcome = self._steps(order, lr)
            if outcome in ("ended", "callback"):
                break
            reason = self._diverged(order, lr, *outcome)
            if reason is not None:
                return reason
        if outcome == "callback":
            return "callback"
        return self._end_epoch(lr, epoch_started)

    def _steps(self, order: np.ndarray | None, lr: float) -> str | tuple[int, bool]:
        """The steps of the epoch from ``self.epoch.done`` on, in chunks:
        "ended", "callback" (asked to stop), or the failure (done, nonfinite)."""
        config, state, epoch = self.config, self.state, self.epoch
        assert epoch is not None
        steps_per_epoch = self.steps_per_epoch
        while epoch.done < steps_per_epoch:
            stop = min(epoch.done + self._chunk(), steps_per_epoch)
            started = time.perf_counter()
            steps, epoch.loss_sum, part, nonfinite = self.trainer.run(
                state, order, lr, epoch.done, stop, epoch.loss_sum)
            self._sized(steps, time.perf_counter() - started)
            self.progress.advance(self._samples(epoch.done + steps) -
                                  self._samples(epoch.done), part, steps)
            epoch.done += steps
            state.global_step += steps
            self.chunk_loss = part / steps if steps else math.nan
            if nonfinite or not _finite(state.params):
                return epoch.done, nonfinite
            if epoch.done < steps_per_epoch:
                if (config.callback is not None and config.callback_every
                        and self._call_back(step=epoch.done, loss=None)):
                    return "callback"
                if self.checkpoint is not None and self.checkpoint.due():
                    self._save()
        return "ended"

    def _chunk(self) -> int:
        """Steps of the next call of the trainer: ``callback_every``, or a
        sixteenth of an epoch with a checkpoint, or the whole epoch; with a
        progress bar (and no ``callback_every``), at most about
        ``PROGRESS_SECONDS`` of work, so that the bar moves within epochs.
        (How an epoch is sliced never changes its numbers.)"""
        if not self.progress.shown or self.config.callback_every:
            return self.chunk
        return min(self.chunk, self.bar_steps)

    def _sized(self, steps: int, seconds: float) -> None:
        """Size the next slice from this one: about ``PROGRESS_SECONDS``,
        growing at most fourfold from one slice to the next."""
        if self.progress.shown and steps:
            wanted = int(PROGRESS_SECONDS * steps / max(seconds, 1e-9))
            self.bar_steps = max(1, min(4 * steps, wanted))

    def _samples(self, steps: int) -> int:
        """Training samples visited by the first ``steps`` steps of an epoch."""
        return min(steps * self.config.batch_size, self.data.n_train)

    def _diverged(self, order: np.ndarray | None, lr: float, done: int,
                  nonfinite: bool) -> str | None:
        """Deal with an epoch that failed: retry it ("halve": returns None),
        stop ("stop": returns "diverged"), or raise DivergenceError."""
        config, state, epoch = self.config, self.state, self.epoch
        assert epoch is not None
        step = self._last_finite(order, lr, done, nonfinite)
        at_start = state.global_step == self.start_step and nonfinite
        if at_start:
            message = ("the loss is not finite at the initial parameters (X, y, w0 or b0 "
                       "are too large for float64 arithmetic: scale them down)")
        else:
            message = (f"training diverged in epoch {state.epoch}, step {step}: the loss "
                       f"or the parameters stopped being finite (lr={lr:g} is probably "
                       f"too large for this data: let gdcore choose it with lr='auto' "
                       f"(--lr auto)"
                       + ("" if config.standardize else
                          ", and standardize=True (--standardize) puts features of "
                          "different scales on one scale")
                       + ")")
        # A retry with a smaller rate helps unless the epoch's very first loss
        # was already non-finite: that one does not depend on the rate.
        hopeless = step == 0 and nonfinite and done == 0
        if config.on_divergence == "halve" and self.halvings < MAX_HALVINGS \
                and not hopeless:
            self.halvings += 1
            self.progress.advance(-self._samples(done), 0.0, 0)    # the epoch again
            state.lr_scale *= 0.5
            _rewind(state, epoch)
            epoch.done, epoch.loss_sum = 0, 0.0
            warnings.warn(f"{message}; retrying the epoch with lr={lr / 2:g}",
                          RuntimeWarning, stacklevel=8)     # the line that called fit
            return None
        if config.on_divergence == "stop":
            return "diverged"
        raise DivergenceError(
            message + "; the error's w and b hold the last finite parameters",
            **self.data.split(state.params), epoch=state.epoch, step=step,
            history=np.array(self.history["loss"]))

    def _last_finite(self, order: np.ndarray | None, lr: float, done: int,
                     nonfinite: bool) -> int:
        """Put the last finite parameters into the state; return the failing step.

        The kernel stops *before* a batch whose loss is not finite, so if the
        parameters in force are finite they are the last finite ones.
        Otherwise the update of the step before overflowed: the epoch is
        replayed from its start up to just before that step (deterministic,
        so the replay lands on exactly the parameters that step started from).
        """
        state, epoch = self.state, self.epoch
        assert epoch is not None
        if nonfinite:
            # A non-finite input looks like divergence from inside the loop;
            # this is the only place that pays for a full finiteness check.
            self.trainer.raise_if_bad_input()
            if _finite(state.params):
                return done
        step = done - 1
        _rewind(state, epoch)
        steps, _, _, _ = self.trainer.run(state, order, lr, 0, step, 0.0)
        state.global_step += steps
        return step

    def _end_epoch(self, lr: float, epoch_started: float) -> str | None:
        """Record a completed epoch; the stop reason, or None to go on."""
        config, state, history, epoch = self.config, self.state, self.history, self.epoch
        assert epoch is not None
        loss = self.trainer.loss_total(epoch.loss_sum) / self.steps_per_epoch
        grad_norm = vector_norm(state.buffers[GRAD_SUM]) / self.steps_per_epoch
        if self.data.val_rows is not None:
            val_loss = self.trainer.subset_loss(self.data.val_rows,
                                                self.data.in_data_units(state.params))
            if not math.isfinite(val_loss):
                self.trainer.raise_if_bad_input()
                raise DivergenceError(
                    f"the loss on the held-out rows stopped being finite in epoch "
                    f"{state.epoch} (the parameters are too large for them: lr={lr:g} "
                    f"is probably too large); the error's w and b hold the parameters",
                    **self.data.split(state.params), epoch=state.epoch,
                    step=self.steps_per_epoch, history=np.array(history["loss"]))
            history["val_loss"].append(val_loss)
        history["loss"].append(loss)
        history["grad_norm"].append(grad_norm)
        history["lr"].append(lr)
        if config.restore_best:
            self._keep_if_best(loss, history["val_loss"][-1] if "val_loss" in history
                               else math.nan)
        assert state.schedule_state is not None
        config.schedule.end_epoch(loss, state.schedule_state)
        state.epoch += 1
        self.epoch = None
        self.progress.epoch_done(state.epoch - 1, loss, grad_norm, lr,
                                 time.perf_counter() - epoch_started)
        if config.callback is not None and self._call_back(step=None, loss=loss):
            return "callback"
        if _converged(config, state, history):
            return f"tol ({config.stop_on})"
        if self.checkpoint is not None and self.checkpoint.due():
            self._save()
        return None

    def _returned_params(self) -> np.ndarray:
        """What the run returns if it stops now: the parameters, or with
        ``average`` (once its first step is past) their running mean."""
        state = self.state
        averaging = state.global_step > self.config.average_from >= 0
        return state.average if averaging else state.params

    def _keep_if_best(self, loss: float, val_loss: float) -> None:
        """``restore_best``: keep this epoch's result when its monitored loss
        is the lowest so far (the earliest epoch wins a tie)."""
        state = self.state
        monitored = val_loss if self.config.stop_on == "validation" else loss
        best = state.best_val_loss if self.config.stop_on == "validation" else state.best_loss
        if state.best_epoch is None or monitored < best or math.isnan(best):
            state.best_epoch = state.epoch
            state.best_loss, state.best_val_loss = loss, val_loss
            state.best_params = self._returned_params().copy()

    # -- around the loop ------------------------------------------------------

    def _save(self) -> None:
        if self.checkpoint is not None:
            self.checkpoint.save(Saved(state=self.state, history=self.history,
                                       start_step=self.start_step, halvings=self.halvings,
                                       finished=self.finished, epoch=self.epoch))

    def _call_back(self, *, step: int | None, loss: float | None) -> bool:
        """Call the user's callback; True when it asks to stop."""
        config, state = self.config, self.state
        assert config.callback is not None
        info = {"epoch": state.epoch if step is not None else state.epoch - 1,
                "step": step, "global_step": state.global_step,
                **self.data.split(state.params), "loss": loss,
                "batch_loss": self.chunk_loss, "history": _history_arrays(self.history)}
        answer = config.callback(info)
        return isinstance(answer, (bool, np.bool_)) and bool(answer)

    def _result(self, stop_reason: str) -> FitResult:
        config, state = self.config, self.state
        arrays = _history_arrays(self.history)
        params = self._returned_params()
        best: dict = {}
        if config.restore_best and state.best_epoch is not None:
            assert state.best_params is not None
            params = state.best_params
            best = dict(best_epoch=state.best_epoch, best_loss=state.best_loss,
                        best_val_loss=(None if math.isnan(state.best_val_loss)
                                       else state.best_val_loss))
        return FitResult(
            **self.data.split(params), history=arrays["loss"],
            epochs_run=len(arrays["loss"]), n_steps=state.global_step - self.start_step,
            batch_size=config.batch_size, steps_per_epoch=self.steps_per_epoch,
            method=config.method, backend=self.backend.name,
            grad_norm=arrays["grad_norm"], lr_history=arrays["lr"],
            val_loss=arrays.get("val_loss"), stop_reason=stop_reason, copied=self.copied,
            state=copy.deepcopy(state), lr=config.rate, **best)


def _rewind(state: TrainState, epoch: EpochProgress) -> None:
    """Put ``state`` back where it was when ``epoch`` started."""
    state.buffers[...] = epoch.start_buffers
    state.global_step = epoch.start_step
    state.l1_total = epoch.start_l1_total


def _converged(config: Config, state: TrainState, history: dict) -> bool:
    """Early stopping: has the monitored quantity stopped improving?"""
    if config.tol is None:
        return False
    if config.stop_on == "grad_norm":
        return bool(history["grad_norm"][-1] <= config.tol)
    score = history["val_loss" if config.stop_on == "validation" else "loss"][-1]
    if score > state.best_score - config.tol:
        state.no_improvement += 1
    else:
        state.no_improvement = 0
    state.best_score = min(state.best_score, score)
    return state.no_improvement >= config.n_iter_no_change


def _history_arrays(history: dict) -> dict[str, np.ndarray]:
    return {name: np.array(values) for name, values in history.items()}
