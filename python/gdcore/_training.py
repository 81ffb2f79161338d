"""The training loop shared by every backend.

A backend's :class:`~gdcore._engines.Trainer` draws each epoch's sample
order and runs a range of steps of one epoch over it, updating the training
state in place. Everything around it lives here once: the per-epoch
learning rate, history, validation, early stopping, callbacks, feedback, and
what happens when the loss or the parameters stop being finite.

The loop keeps no copy of the state beyond what a failure needs: at the start
of each epoch the state's buffers and step count (O(parameters)), from which
a diverged epoch is replayed up to its last finite step or retried at half the
rate; the epoch's sample order is drawn once and reused by both.
"""

from __future__ import annotations

import copy
import math
import time
import warnings

import numpy as np

from ._engines import Trainer, TrainerFactory
from ._feedback import Progress
from ._options import Config
from ._results import DivergenceError, FitResult
from ._state import GRAD_SUM, Data, TrainState

#: ``on_divergence="halve"`` halves the rate at most this many times in a run.
MAX_HALVINGS = 30


def _finite(params: np.ndarray) -> bool:
    return bool(np.isfinite(params).all())


def train(backend: TrainerFactory, data: Data, config: Config, state: TrainState, *,
          copied: tuple[str, ...] = ()) -> FitResult:
    """Run ``config.epochs`` more epochs from ``state`` (updated in place).

    ``config`` holds the resolved batch size, thread count and shuffle block.
    """
    trainer = backend.trainer(data, config)
    n_train = data.n_train
    steps_per_epoch = trainer.steps_per_epoch
    chunk = config.callback_every or steps_per_epoch
    history: dict[str, list[float]] = {"loss": [], "grad_norm": [], "lr": []}
    if data.val_rows is not None:
        history["val_loss"] = []
    progress = Progress(epochs=config.epochs, n_train=n_train, verbose=config.verbose,
                        progress=config.progress)
    halvings = 0
    start_step = state.global_step

    def result(reason: str) -> FitResult:
        progress.close()
        return _result(backend, data, config, state, history, reason,
                       state.global_step - start_step, steps_per_epoch, copied)

    for _ in range(config.epochs):
        order = trainer.epoch_order(state)
        state.buffers[GRAD_SUM] = 0.0
        snapshot = state.buffers.copy(), state.global_step
        while True:                                   # the epoch, retried by "halve"
            epoch_started = time.perf_counter()
            assert state.schedule_state is not None
            lr = config.schedule.epoch_lr(config.lr, state.epoch, state.schedule_state)
            lr *= state.lr_scale
            loss_sum, done, chunk_loss = 0.0, 0, math.nan
            failure = None
            stop_requested = False
            while done < steps_per_epoch:
                stop = min(done + chunk, steps_per_epoch)
                steps, part_loss, nonfinite = trainer.run(
                    state.buffers, order, lr, state.global_step, done, stop)
                done += steps
                state.global_step += steps
                loss_sum += part_loss
                chunk_loss = part_loss / steps if steps else math.nan
                if nonfinite or not _finite(state.params):
                    failure = (done, nonfinite)
                    break
                if (config.callback is not None and config.callback_every
                        and done < steps_per_epoch
                        and _call_back(config, state, data, history, step=done, loss=None,
                                       batch_loss=chunk_loss)):
                    stop_requested = True
                    break
            if failure is None:
                break
            step = _last_finite(trainer, order, lr, snapshot, state, *failure)
            message = (f"training diverged in epoch {state.epoch}, step {step}: the loss or "
                       f"the parameters stopped being finite (lr={lr:g} is probably too "
                       f"large for this data; gdcore.max_stable_lr(X) estimates the "
                       f"largest stable full-batch rate)")
            # A retry with a smaller rate helps unless the epoch's very first
            # loss was already non-finite: that one does not depend on the rate.
            hopeless = step == 0 and failure[1] and failure[0] == 0
            if config.on_divergence == "halve" and halvings < MAX_HALVINGS and not hopeless:
                halvings += 1
                state.lr_scale *= 0.5
                state.buffers[...] = snapshot[0]
                state.global_step = snapshot[1]
                warnings.warn(f"{message}; retrying the epoch with lr={lr / 2:g}",
                              RuntimeWarning, stacklevel=3)
                continue
            if config.on_divergence == "stop":
                return result("diverged")
            progress.close()
            raise DivergenceError(
                message + "; the error's w and b hold the last finite parameters",
                **data.split(state.params), epoch=state.epoch,
                step=step, history=np.array(history["loss"]))
        if stop_requested:
            return result("callback")

        # The epoch ran to its end.
        loss = loss_sum / steps_per_epoch
        with np.errstate(over="ignore"):
            grad_norm = float(np.linalg.norm(state.buffers[GRAD_SUM])) / steps_per_epoch
        history["loss"].append(loss)
        history["grad_norm"].append(grad_norm)
        history["lr"].append(lr)
        if data.val_rows is not None:
            history["val_loss"].append(trainer.subset_loss(data.val_rows, state.params))
        config.schedule.end_epoch(loss, state.schedule_state)
        state.epoch += 1
        progress.epoch_done(state.epoch - 1, loss, grad_norm, lr,
                            time.perf_counter() - epoch_started)
        if config.callback is not None and _call_back(config, state, data, history,
                                                      step=None, loss=loss,
                                                      batch_loss=chunk_loss):
            return result("callback")
        if _converged(config, state, history):
            return result(f"tol ({config.stop_on})")
    return result("max_epochs")


def _last_finite(trainer: Trainer, order: np.ndarray | None, lr: float,
                 snapshot: tuple[np.ndarray, int], state: TrainState, done: int,
                 nonfinite: bool) -> int:
    """Put the last finite parameters into ``state``; return the failing step.

    The kernel stops *before* a batch whose loss is not finite, so if the
    parameters in force are finite they are the last finite ones. Otherwise
    the update of the step before overflowed: the epoch is replayed from its
    start up to just before that step (deterministic, so the replay lands on
    exactly the parameters that step started from).
    """
    if nonfinite:
        # A non-finite input looks like divergence from inside the loop;
        # this is the only place that pays for a full finiteness check.
        trainer.raise_if_bad_input()
        if _finite(state.params):
            return done
    step = done - 1
    state.buffers[...] = snapshot[0]
    state.global_step = snapshot[1]
    steps, _, _ = trainer.run(state.buffers, order, lr, state.global_step, 0, step)
    state.global_step += steps
    return step


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


def _call_back(config: Config, state: TrainState, data: Data, history: dict, *,
               step: int | None, loss: float | None, batch_loss: float) -> bool:
    """Call the user's callback; True when it asks to stop."""
    assert config.callback is not None
    info = {"epoch": state.epoch if step is not None else state.epoch - 1,
            "step": step, "global_step": state.global_step,
            **data.split(state.params), "loss": loss, "batch_loss": batch_loss,
            "history": _history_arrays(history)}
    answer = config.callback(info)
    return isinstance(answer, (bool, np.bool_)) and bool(answer)


def _history_arrays(history: dict) -> dict[str, np.ndarray]:
    return {name: np.array(values) for name, values in history.items()}


def _result(backend: TrainerFactory, data: Data, config: Config, state: TrainState, history: dict,
            stop_reason: str, n_steps: int, steps_per_epoch: int,
            copied: tuple[str, ...]) -> FitResult:
    arrays = _history_arrays(history)
    averaging = state.global_step > config.average_from >= 0
    params = state.average if averaging else state.params
    return FitResult(
        **data.split(params), history=arrays["loss"],
        epochs_run=len(arrays["loss"]), n_steps=n_steps,
        batch_size=config.batch_size, steps_per_epoch=steps_per_epoch,
        method=config.method, backend=backend.name,
        grad_norm=arrays["grad_norm"], lr_history=arrays["lr"],
        val_loss=arrays.get("val_loss"), stop_reason=stop_reason, copied=copied,
        state=copy.deepcopy(state))
