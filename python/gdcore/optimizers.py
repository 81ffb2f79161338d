"""Optimizers: how a step turns the gradient into a change of the parameters.

``fit(optimizer=...)`` takes one of these objects or its name (``"sgd"``,
``"adam"``, ``"adamw"``, ``"adagrad"``, ``"rmsprop"``) for the defaults. Each
is PyTorch's rule of the same name with the same hyper-parameters, in
float64; ``g`` is the step's gradient (``weight_decay * p`` added, except for
AdamW), ``lr`` the step's rate (schedules apply), ``s = t + 1`` the step
counter (``t`` the global 0-based step) and every operation is per parameter:

==========================  ===============================================================
optimizer                   step
==========================  ===============================================================
``SGD(momentum, ...)``      ``v = momentum v + (1 - dampening) g`` (``v = g`` at ``t = 0``);
                            ``p -= lr v`` (Nesterov: ``p -= lr (g + momentum v)``)
``Adam(betas, eps)``        ``m = b1 m + (1 - b1) g``; ``v = b2 v + (1 - b2) g^2``;
                            ``p -= lr / (1 - b1^s) m / (sqrt(v / (1 - b2^s)) + eps)``
                            (``amsgrad``: the largest ``v`` so far instead of ``v``)
``AdamW(betas, eps)``       ``p *= 1 - lr weight_decay``, then Adam without the decay in ``g``
``Adagrad(eps, ...)``       ``S += g^2``; ``p -= lr / (1 + t lr_decay) g / (sqrt(S) + eps)``
                            (``S`` starts at ``initial_accumulator_value``)
``RMSprop(alpha, eps)``     ``S = alpha S + (1 - alpha) g^2``; ``D = sqrt(S) + eps``
                            (``centered``: ``D = sqrt(S - a^2) + eps`` with the mean
                            gradient ``a = alpha a + (1 - alpha) g``); ``p -= lr g / D``,
                            or with ``fit``'s ``momentum``: ``v = momentum v + g / D``,
                            ``p -= lr v``
==========================  ===============================================================

(Adam's denominator is computed as PyTorch does, ``sqrt(v) / sqrt(1 - b2^s) +
eps``.) The optimizer's buffers live beside the parameters in the training
state, so a warm start or a checkpoint continues them exactly.
``momentum``, ``dampening`` and ``nesterov`` are also options of ``fit``
itself: they apply to ``"sgd"`` (and ``momentum`` to ``"rmsprop"``, as in
PyTorch); giving them both there and in ``SGD(...)`` with different values is
an error.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from . import _validation

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "Adagrad", "RMSprop"]


class Optimizer:
    """Base class of the optimizers (see the module's table)."""

    #: the rule the compiled kernels and the reference backend run
    kind: ClassVar[str] = "sgd"

    def rule_numbers(self) -> dict[str, Any]:
        """What the update rule reads: ``kind`` and the hyper-parameters."""
        return {"kind": self.kind}

    def initial_square_avg(self) -> float:
        """The starting value of the squares' buffer (Adagrad's accumulator)."""
        return 0.0


@dataclass(frozen=True)
class SGD(Optimizer):
    """Stochastic gradient descent with PyTorch-style momentum (the default).

    Parameters
    ----------
    momentum : float, default 0.0
        Momentum factor, >= 0.
    dampening : float, default 0.0
        Momentum dampening, in [0, 1].
    nesterov : bool, default False
        Nesterov momentum (needs ``momentum > 0`` and ``dampening = 0``).
    """

    kind: ClassVar[str] = "sgd"
    momentum: float = 0.0
    dampening: float = 0.0
    nesterov: bool = False

    def __post_init__(self) -> None:
        _set(self, "momentum", _validation.check_non_negative(self.momentum, "momentum"))
        _set(self, "dampening", _validation.check_unit_interval(self.dampening, "dampening"))
        _set(self, "nesterov", _validation.check_bool(self.nesterov, "nesterov"))


@dataclass(frozen=True)
class Adam(Optimizer):
    """Adam (Kingma and Ba), as ``torch.optim.Adam``.

    Parameters
    ----------
    betas : (float, float), default (0.9, 0.999)
        Decay rates of the gradient's and the squared gradient's running
        averages, each in [0, 1).
    eps : float, default 1e-8
        Added to the denominator, >= 0.
    amsgrad : bool, default False
        Use the largest second-moment average so far (AMSGrad).
    """

    kind: ClassVar[str] = "adam"
    #: whether the weight decay is decoupled from the gradient (AdamW)
    decoupled: ClassVar[bool] = False
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    amsgrad: bool = False

    def __post_init__(self) -> None:
        _set(self, "betas", _betas(self.betas))
        _set(self, "eps", _validation.check_non_negative(self.eps, "eps"))
        _set(self, "amsgrad", _validation.check_bool(self.amsgrad, "amsgrad"))

    def rule_numbers(self) -> dict[str, Any]:
        return {"kind": self.kind, "beta1": self.betas[0], "beta2": self.betas[1],
                "eps": self.eps, "amsgrad": self.amsgrad, "decoupled": self.decoupled}


@dataclass(frozen=True)
class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter).

    As ``torch.optim.AdamW``: ``fit``'s ``weight_decay`` (default 0, not
    PyTorch's 0.01) shrinks the parameters by ``1 - lr * weight_decay``
    before each step instead of entering the gradient.

    Parameters
    ----------
    betas : (float, float), default (0.9, 0.999)
        As :class:`Adam`.
    eps : float, default 1e-8
        As :class:`Adam`.
    amsgrad : bool, default False
        As :class:`Adam`.
    """

    decoupled: ClassVar[bool] = True


@dataclass(frozen=True)
class Adagrad(Optimizer):
    """Adagrad (Duchi, Hazan and Singer), as ``torch.optim.Adagrad``.

    Parameters
    ----------
    eps : float, default 1e-10
        Added to the denominator, >= 0.
    initial_accumulator_value : float, default 0.0
        Starting value of the sum of squared gradients, >= 0.
    lr_decay : float, default 0.0
        The rate of step ``t`` is ``lr / (1 + t * lr_decay)``, >= 0.
    """

    kind: ClassVar[str] = "adagrad"
    eps: float = 1e-10
    initial_accumulator_value: float = 0.0
    lr_decay: float = 0.0

    def __post_init__(self) -> None:
        _set(self, "eps", _validation.check_non_negative(self.eps, "eps"))
        _set(self, "initial_accumulator_value", _validation.check_non_negative(
            self.initial_accumulator_value, "initial_accumulator_value"))
        _set(self, "lr_decay", _validation.check_non_negative(self.lr_decay, "lr_decay"))

    def rule_numbers(self) -> dict[str, Any]:
        return {"kind": self.kind, "eps": self.eps, "lr_decay": self.lr_decay}

    def initial_square_avg(self) -> float:
        return self.initial_accumulator_value


@dataclass(frozen=True)
class RMSprop(Optimizer):
    """RMSprop (Hinton), as ``torch.optim.RMSprop``.

    ``fit``'s ``momentum`` is its momentum.

    Parameters
    ----------
    alpha : float, default 0.99
        Decay rate of the squared gradient's running average, in [0, 1].
    eps : float, default 1e-8
        Added to the denominator, >= 0.
    centered : bool, default False
        Divide by the running variance of the gradient instead of its raw
        second moment.
    """

    kind: ClassVar[str] = "rmsprop"
    alpha: float = 0.99
    eps: float = 1e-8
    centered: bool = False

    def __post_init__(self) -> None:
        _set(self, "alpha", _validation.check_unit_interval(self.alpha, "alpha"))
        _set(self, "eps", _validation.check_non_negative(self.eps, "eps"))
        _set(self, "centered", _validation.check_bool(self.centered, "centered"))

    def rule_numbers(self) -> dict[str, Any]:
        return {"kind": self.kind, "alpha": self.alpha, "eps": self.eps,
                "centered": self.centered}


#: name -> optimizer class
BY_NAME: dict[str, type[Optimizer]] = {"sgd": SGD, "adam": Adam, "adamw": AdamW,
                                       "adagrad": Adagrad, "rmsprop": RMSprop}


def name_of(optimizer: Optimizer) -> str:
    """The name ``fit`` knows ``optimizer``'s class by (``"adamw"`` for AdamW)."""
    return next(name for name, cls in BY_NAME.items() if type(optimizer) is cls)


def check_optimizer(optimizer: Any, name: str = "optimizer") -> Optimizer:
    """An Optimizer from an instance or a name; raise naming ``name``."""
    if isinstance(optimizer, Optimizer) and type(optimizer) in BY_NAME.values():
        return optimizer
    return BY_NAME[_validation.check_choice(optimizer, name, tuple(BY_NAME))]()


def fields(optimizer: Optimizer) -> dict[str, Any]:
    """The hyper-parameters of ``optimizer``, by name."""
    return {f.name: getattr(optimizer, f.name)
            for f in dataclasses.fields(optimizer)}  # type: ignore[arg-type]


def _set(optimizer: Optimizer, name: str, value: Any) -> None:
    object.__setattr__(optimizer, name, value)


def _betas(betas: Any) -> tuple[float, float]:
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"betas must be a pair of numbers in [0, 1); got "
                        f"{_validation.describe(betas)}")
    pair = tuple(_validation.check_real(b, "betas") for b in betas)
    if not all(0.0 <= b < 1.0 for b in pair):
        raise ValueError(f"betas must be in [0, 1); got {pair}")
    return pair[0], pair[1]
