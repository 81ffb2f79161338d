"""The training loop shared by both backends.

A backend ("engine") runs a range of steps of one epoch over a given sample
order, updating the parameters and the optimiser state in place. Everything
around it lives here once: the sample order, the per-epoch learning rate,
history, validation, early stopping, callbacks, progress, and what happens
when the loss or the parameters stop being finite.
"""

from __future__ import annotations

import copy
import math
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np

from ._dispatch import kernels as _kernels
from ._results import DivergenceError, FitResult, TrainState
from ._validation import raise_if_nonfinite_input
from .schedules import Schedule


class Engine(Protocol):
    """What the training loop needs from a backend."""

    name: str

    def prepare(self, X: np.ndarray, y: np.ndarray) -> Any:
        """Turn the validated arrays into whatever ``run_epoch`` reads."""

    def subset_loss(self, data: Any, rows: np.ndarray, params: np.ndarray,
                    loss_factor: float) -> float:
        """Mean loss over ``rows`` at ``params`` (w, then b)."""

    def run_epoch(self, data: Any, order: np.ndarray | None, weights: np.ndarray | None,
                  params: np.ndarray, velocity: np.ndarray | None,
                  average: np.ndarray | None, grad_sum: np.ndarray, rule: dict,
                  global_step: int, first_step: int,
                  stop_step: int) -> tuple[int, float, bool]:
        """Run steps ``first_step .. stop_step - 1`` of an epoch, in place.

        Returns ``(steps, loss_sum, nonfinite)``: updates applied, the sum of
        their batch losses (each before its update), and whether the run
        stopped at a batch whose loss was not finite (that update not applied).
        """


@dataclass
class Config:
    """Validated options of one training run (see ``gdcore.fit``)."""

    method: str
    batch_size: int                      # resolved: n_train for batch, 1 for sgd
    lr: float
    epochs: int
    loss_factor: float
    fit_intercept: bool
    shuffle: bool
    n_threads: int
    schedule: Schedule
    shuffle_block: int | None = None     # rows per block of a block-wise shuffle
    momentum: float = 0.0
    dampening: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    l1: float = 0.0
    decay_bias: bool = False
    average_from: int = -1
    tol: float | None = None
    stop_on: str = "loss"
    n_iter_no_change: int = 5
    on_divergence: str = "raise"
    max_halvings: int = 30
    callback: Callable[[dict], Any] | None = None
    callback_every: int | None = None
    verbose: int = 0
    progress: bool = False


@dataclass
class Data:
    """The arrays a run trains on, validated."""

    X: np.ndarray
    y: np.ndarray
    weights: np.ndarray | None = None          # normalised to mean 1 over train_rows
    train_rows: np.ndarray | None = None       # None: every row
    val_rows: np.ndarray | None = None         # held-out rows, or None

    @property
    def n_train(self) -> int:
        return self.X.shape[0] if self.train_rows is None else self.train_rows.shape[0]

    def split(self, params: np.ndarray) -> dict[str, Any]:
        """Copies of ``w`` and ``b`` out of the flat parameter vector: a vector
        and a float for a 1-D y, W (n_features, k) and b (k,) for k outputs."""
        d = self.X.shape[1]
        if self.y.ndim == 1:
            return {"w": params[:d].copy(), "b": float(params[d])}
        k = self.y.shape[1]
        return {"w": params[:d * k].reshape(d, k).copy(), "b": params[d * k:].copy()}


def _finite(params: np.ndarray) -> bool:
    return bool(np.isfinite(params).all())


def new_state(params: np.ndarray, config: Config, seed: Any) -> TrainState:
    """The state before the first epoch: ``params`` = w0 followed by b0."""
    return TrainState(
        params=params,
        velocity=np.zeros_like(params) if config.momentum != 0.0 else None,
        average=params.copy() if config.average_from >= 0 else None,
        global_step=0,
        epoch=0,
        rng=np.random.default_rng(seed) if config.shuffle else None,
        schedule_state=config.schedule.initial_state(config.lr),
        lr_scale=1.0,
        best_score=math.inf,
        no_improvement=0,
    )


def resume_state(previous: Any, config: Config, params_size: int, seed: Any) -> TrainState:
    """A copy of a previous run's state (``FitResult`` or ``TrainState``),
    completed with what this run's options need and that run did not keep."""
    source = previous.state if isinstance(previous, FitResult) else previous
    if not isinstance(source, TrainState):
        raise TypeError(f"warm_start must be a FitResult or a TrainState; got "
                        f"{type(previous).__name__}")
    if source.params.shape != (params_size,):
        raise ValueError(f"warm_start holds {source.params.shape[0]} parameters; this X and "
                         f"y need {params_size} (features + 1 intercept, per output)")
    state = copy.deepcopy(source)
    if config.momentum != 0.0 and state.velocity is None:
        state.velocity = np.zeros_like(state.params)
    if config.average_from >= 0 and state.average is None:
        state.average = state.params.copy()
    if config.shuffle and state.rng is None:
        state.rng = np.random.default_rng(seed)
    if not state.schedule_state:
        state.schedule_state = config.schedule.initial_state(config.lr)
    return state


def _rule(config: Config, lr: float) -> dict:
    return dict(lr=lr, batch_size=config.batch_size, loss_factor=config.loss_factor,
                fit_intercept=config.fit_intercept, power=config.schedule.power,
                l2=config.weight_decay, l1=config.l1, decay_bias=config.decay_bias,
                momentum=config.momentum, dampening=config.dampening,
                nesterov=config.nesterov, average_from=config.average_from,
                n_threads=config.n_threads)


def _epoch_order(data: Data, state: TrainState, config: Config,
                 buffer: np.ndarray | None) -> np.ndarray | None:
    """Rows of this epoch in visiting order (None: 0..n-1).

    With shuffling, the order is ``rng.permutation`` of the training rows, a
    fresh one every epoch, drawn into ``buffer`` (one index array for the
    whole run: ``rng.shuffle`` of a fresh copy of the rows is exactly what
    ``rng.permutation`` does), or a block-wise shuffle (``shuffle_block``).
    The full-batch gradient does not depend on the order, so none is drawn
    for it.
    """
    if buffer is None:
        return data.train_rows
    rows = data.train_rows
    if config.shuffle_block is None:
        if rows is None:
            _kernels.fill_range(buffer)
        else:
            np.copyto(buffer, rows)
        state.rng.shuffle(buffer)
        return buffer
    # Block-wise: the blocks of `shuffle_block` consecutive (training) rows
    # are visited in a random order and the rows of each block in a random
    # order, so a memory-mapped X is read one contiguous stretch of the file at
    # a time. Drawn from the same rng: the blocks' order, then each block.
    size = config.shuffle_block
    n_blocks = -(-buffer.shape[0] // size)
    at = 0
    for b in state.rng.permutation(n_blocks):
        start, stop = b * size, min((b + 1) * size, buffer.shape[0])
        block = (np.arange(start, stop, dtype=np.intp) if rows is None
                 else rows[start:stop].copy())
        state.rng.shuffle(block)
        buffer[at:at + block.shape[0]] = block
        at += block.shape[0]
    return buffer


class _Progress:
    """Per-epoch feedback: tqdm bar (``progress=True``) and/or printed lines."""

    def __init__(self, config: Config, n_train: int) -> None:
        self.verbose = config.verbose
        self.n_train = n_train
        self.bar = None
        if config.progress:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                raise ImportError("progress=True needs tqdm: pip install tqdm "
                                  "(or pip install 'gdcore[progress]')") from None
            self.bar = tqdm(total=config.epochs, unit="epoch", desc="gdcore")

    def epoch_done(self, epoch: int, loss: float, grad_norm: float, lr: float,
                   seconds: float) -> None:
        rate = self.n_train / seconds if seconds > 0 else math.inf
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.6g}", samples_per_s=f"{rate:.3g}")
            self.bar.update(1)
        if self.verbose:
            print(f"epoch {epoch}: loss {loss:.10g}, |grad| {grad_norm:.4g}, lr {lr:.4g}, "
                  f"{rate:.3g} samples/s", file=sys.stdout)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def train(engine: Engine, data: Data, config: Config, state: TrainState, *,
          copied: tuple[str, ...] = ()) -> FitResult:
    """Run ``config.epochs`` more epochs from ``state`` (updated in place)."""
    prepared = engine.prepare(data.X, data.y)
    n_train = data.n_train
    steps_per_epoch = -(-n_train // config.batch_size)
    chunk = config.callback_every or steps_per_epoch
    history: dict[str, list[float]] = {"loss": [], "grad_norm": [], "lr": []}
    if data.val_rows is not None:
        history["val_loss"] = []
    progress = _Progress(config, n_train)
    halvings = 0
    start_step = state.global_step
    shuffled = state.rng is not None and config.batch_size < n_train
    buffer = np.empty(n_train, dtype=np.intp) if shuffled else None

    def result(reason: str) -> FitResult:
        progress.close()
        return _result(engine, data, config, state, history, reason,
                       state.global_step - start_step, copied)

    run = 0
    while run < config.epochs:
        epoch_started = time.perf_counter()
        lr = config.schedule.epoch_lr(config.lr, state.epoch, state.schedule_state)
        lr *= state.lr_scale
        rule = _rule(config, lr)
        # taken before the order is drawn, so a retry draws the same order
        snapshot = copy.deepcopy(state)
        order = _epoch_order(data, state, config, buffer)
        grad_sum = np.zeros_like(state.params)
        loss_sum = 0.0
        done = 0
        failure = None
        stop_requested = False
        while done < steps_per_epoch:
            stop = min(done + chunk, steps_per_epoch)
            steps, part_loss, nonfinite = engine.run_epoch(
                prepared, order, data.weights, state.params, state.velocity, state.average,
                grad_sum, rule, state.global_step, done, stop)
            done += steps
            state.global_step += steps
            loss_sum += part_loss
            if nonfinite or not _finite(state.params):
                failure = (done, nonfinite)
                break
            if config.callback is not None and config.callback_every and done < steps_per_epoch:
                if _call_back(config, state, data, history, step=done, loss=None):
                    stop_requested = True
                    break
        if failure is not None:
            step = _last_finite(engine, prepared, data, order, rule, snapshot, state, *failure)
            message = (f"training diverged in epoch {state.epoch}, step {step}: the loss or "
                       f"the parameters stopped being finite (lr={lr:g} is probably too "
                       f"large for this data; gdcore.max_stable_lr(X) estimates the "
                       f"largest stable full-batch rate)")
            # A retry with a smaller rate helps unless the epoch's very first
            # loss was already non-finite: that one does not depend on the rate.
            hopeless = step == 0 and failure[1] and failure[0] == 0
            if config.on_divergence == "halve" and halvings < config.max_halvings \
                    and not hopeless:
                halvings += 1
                snapshot.lr_scale *= 0.5
                state.__dict__.update(snapshot.__dict__)
                warnings.warn(f"{message}; retrying the epoch with lr={lr / 2:g}",
                              RuntimeWarning, stacklevel=3)
                continue
            if config.on_divergence == "stop":
                return result("diverged")
            progress.close()
            arrays = _history_arrays(history)
            raise DivergenceError(
                message + "; the error's w and b hold the last finite parameters",
                **data.split(state.params), epoch=state.epoch,
                step=step, history=arrays["loss"])
        if stop_requested:
            return result("callback")

        # The epoch ran to its end.
        loss = loss_sum / steps_per_epoch
        with np.errstate(over="ignore"):
            grad_norm = float(np.linalg.norm(grad_sum)) / steps_per_epoch
        history["loss"].append(loss)
        history["grad_norm"].append(grad_norm)
        history["lr"].append(lr)
        if data.val_rows is not None:
            history["val_loss"].append(engine.subset_loss(
                prepared, data.val_rows, state.params, config.loss_factor))
        config.schedule.end_epoch(loss, state.schedule_state)
        state.epoch += 1
        run += 1
        progress.epoch_done(state.epoch - 1, loss, grad_norm, lr,
                            time.perf_counter() - epoch_started)
        if _converged(config, state, history):
            return result(f"tol ({config.stop_on})")
        if config.callback is not None and _call_back(config, state, data, history,
                                                      step=None, loss=loss):
            return result("callback")
    return result("max_epochs")


def _last_finite(engine, prepared, data, order, rule, snapshot, state, done, nonfinite) -> int:
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
        raise_if_nonfinite_input(data.X, data.y)
        if _finite(state.params):
            return done
    step = done - 1
    state.__dict__.update(copy.deepcopy(snapshot).__dict__)
    grad_sum = np.zeros_like(state.params)
    steps, _, _ = engine.run_epoch(prepared, order, data.weights, state.params,
                                   state.velocity, state.average, grad_sum, rule,
                                   state.global_step, 0, step)
    state.global_step += steps
    return step


def _converged(config: Config, state: TrainState, history: dict) -> bool:
    """Early stopping: has the monitored quantity stopped improving?"""
    if config.tol is None:
        return False
    if config.stop_on == "grad_norm":
        return history["grad_norm"][-1] <= config.tol
    score = history["val_loss" if config.stop_on == "validation" else "loss"][-1]
    if score > state.best_score - config.tol:
        state.no_improvement += 1
    else:
        state.no_improvement = 0
    state.best_score = min(state.best_score, score)
    return state.no_improvement >= config.n_iter_no_change


def _call_back(config: Config, state: TrainState, data: Data, history: dict, *,
               step: int | None, loss: float | None) -> bool:
    """Call the user's callback; True when it asks to stop."""
    info = {"epoch": state.epoch if step is not None else state.epoch - 1,
            "step": step, "global_step": state.global_step,
            **data.split(state.params), "loss": loss,
            "history": _history_arrays(history)}
    answer = config.callback(info)
    return isinstance(answer, (bool, np.bool_)) and bool(answer)


def _history_arrays(history: dict) -> dict[str, np.ndarray]:
    return {name: np.array(values) for name, values in history.items()}


def _result(engine: Engine, data: Data, config: Config, state: TrainState, history: dict,
            stop_reason: str, n_steps: int, copied: tuple[str, ...]) -> FitResult:
    arrays = _history_arrays(history)
    averaging = state.average is not None and state.global_step > config.average_from >= 0
    params = state.average if averaging else state.params
    return FitResult(
        **data.split(params), history=arrays["loss"],
        epochs_run=len(arrays["loss"]), n_steps=n_steps,
        batch_size=config.batch_size, method=config.method, backend=engine.name,
        grad_norm=arrays["grad_norm"], lr_history=arrays["lr"],
        val_loss=arrays.get("val_loss"), stop_reason=stop_reason, copied=copied,
        state=copy.deepcopy(state))
