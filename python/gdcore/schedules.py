"""Learning-rate schedules.

A schedule turns the base learning rate ``lr`` into the rate of each step.
``t`` below is the global 0-based step count (updates since training began,
counted across warm starts) and ``e`` the global 0-based epoch count.

========================  ======================================  ========
schedule                  rate                                    changes
========================  ======================================  ========
``Constant()``            ``lr``                                  never
``InverseScaling(p)``     ``lr / (t + 1) ** p``                   per step
``Exponential(gamma)``    ``lr * gamma ** e``                     per epoch
``StepDecay(k, gamma)``   ``lr * gamma ** (e // k)``              per epoch
``Plateau(...)``          ``lr``, divided by ``factor`` whenever  per epoch
                          the epoch loss has not improved by
                          ``threshold`` for ``patience`` epochs
========================  ======================================  ========

``fit(schedule=...)`` takes one of these objects or its name (``"constant"``,
``"invscaling"``, ``"exponential"``, ``"step"``, ``"plateau"``) for the
defaults. Per-step decay runs inside the compiled epoch loop; epoch-level
schedules set the rate of each epoch before it starts. A schedule's state
(the plateau's current rate and counters) is part of the training state, so a
warm-started run continues it exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from . import _validation

#: "as many epochs as there are" (Schedule.steady_epochs)
MANY_EPOCHS = 2 ** 62


class Schedule:
    """Base class: a constant rate. Subclasses override what changes."""

    #: exponent of the per-step decay ``1 / (t + 1) ** power`` (0: none)
    power: float = 0.0

    def initial_state(self, lr: float) -> dict:
        """Mutable state of the schedule when training starts."""
        return {}

    def epoch_lr(self, lr: float, epoch: int, state: dict) -> float:
        """Rate of epoch ``epoch`` (before any per-step decay)."""
        return lr

    def end_epoch(self, loss: float, state: dict) -> None:
        """Update ``state`` with the loss of the epoch that just ended."""

    def steady_epochs(self, epoch: int) -> int:
        """How many epochs from ``epoch`` on share its rate and leave the
        schedule's state alone (the training loop may run them in one
        compiled call); 0 when every epoch's end must be seen."""
        return MANY_EPOCHS


@dataclass(frozen=True)
class Constant(Schedule):
    """``lr`` at every step."""


@dataclass(frozen=True)
class InverseScaling(Schedule):
    """``lr / (t + 1) ** power``, ``t`` the global 0-based step (as
    scikit-learn's ``invscaling``, which counts from 1)."""

    power: float = 0.5

    def __post_init__(self) -> None:
        _validation.check_real(self.power, "power", positive=True)


@dataclass(frozen=True)
class Exponential(Schedule):
    """``lr * gamma ** epoch``."""

    gamma: float = 0.95

    def __post_init__(self) -> None:
        _validation.check_factor(self.gamma, "gamma")

    def epoch_lr(self, lr: float, epoch: int, state: dict) -> float:
        return lr * self.gamma ** epoch

    def steady_epochs(self, epoch: int) -> int:
        return 1


@dataclass(frozen=True)
class StepDecay(Schedule):
    """``lr * gamma ** (epoch // step_size)``: multiply by ``gamma`` every
    ``step_size`` epochs."""

    step_size: int = 10
    gamma: float = 0.5

    def __post_init__(self) -> None:
        _validation.check_int(self.step_size, "step_size", minimum=1)
        _validation.check_factor(self.gamma, "gamma")

    def epoch_lr(self, lr: float, epoch: int, state: dict) -> float:
        return lr * self.gamma ** (epoch // self.step_size)

    def steady_epochs(self, epoch: int) -> int:
        return self.step_size - epoch % self.step_size


@dataclass(frozen=True)
class Plateau(Schedule):
    """Divide the rate by ``factor`` when the epoch loss stops improving.

    After each epoch: if ``loss < best - threshold`` the loss improved
    (``best = loss``); otherwise one more bad epoch is counted, and after
    ``patience`` bad epochs in a row the rate becomes
    ``max(rate / factor, min_lr)`` and the count restarts.
    """

    factor: float = 2.0
    patience: int = 3
    threshold: float = 1e-4
    min_lr: float = 0.0

    def __post_init__(self) -> None:
        factor = _validation.check_real(self.factor, "factor")
        if factor <= 1.0:
            raise ValueError(f"factor must be > 1 (the rate is divided by it); got {factor}")
        _validation.check_int(self.patience, "patience", minimum=1)
        _validation.check_non_negative(self.threshold, "threshold")
        _validation.check_non_negative(self.min_lr, "min_lr")

    def initial_state(self, lr: float) -> dict:
        return {"lr": lr, "best": math.inf, "bad_epochs": 0}

    def epoch_lr(self, lr: float, epoch: int, state: dict) -> float:
        return state["lr"]

    def steady_epochs(self, epoch: int) -> int:
        return 0

    def end_epoch(self, loss: float, state: dict) -> None:
        if loss < state["best"] - self.threshold:
            state["best"] = loss
            state["bad_epochs"] = 0
            return
        state["bad_epochs"] += 1
        if state["bad_epochs"] >= self.patience:
            state["lr"] = max(state["lr"] / self.factor, self.min_lr)
            state["bad_epochs"] = 0


_BY_NAME = {"constant": Constant, "invscaling": InverseScaling, "exponential": Exponential,
            "step": StepDecay, "plateau": Plateau}


def check_schedule(schedule: Any, name: str = "schedule") -> Schedule:
    """Return a Schedule from an instance or a name; raise naming ``name``."""
    if isinstance(schedule, Schedule):
        return schedule
    return _BY_NAME[_validation.check_choice(schedule, name, tuple(_BY_NAME))]()
