"""Every training option of gdcore, declared once.

:class:`Config` is the option table: one field per option of
:func:`gdcore.fit`, each declared with :func:`option` -- its default, its
check, a one-line help text, and its command-line flag. Everything else is
derived from it:

* the validated configuration of a run: ``Config(**options)`` checks every
  value as it is built (a ``Config`` cannot hold an unchecked value) and then
  the rules that involve several options (:meth:`Config.__post_init__`);
* ``LinearRegressor``'s parameters, which are the options marked
  ``estimator=True`` (it passes them to ``fit``, which checks them);
* the flags and help of ``python -m gdcore train`` (``_cli.py``);
* the options table of ``docs/options.md`` (:func:`markdown_table`).

The arguments of ``fit`` that can only be checked against the data (``w0``,
``b0``, ``sample_weight``, ``warm_start``) are declared in
:data:`DATA_ARGUMENTS` with the same record and no check; ``_validation``
checks them once ``X`` and ``y`` are known.

``fit`` and ``LinearRegressor.__init__`` keep explicit keyword signatures
(users and their editors need them); ``tests/test_options.py`` checks that
the signatures, their docstrings, the table and the command line agree.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import _validation
from .optimizers import SGD, Optimizer, RMSprop, check_optimizer, name_of
from .schedules import Schedule, check_schedule

METHODS = ("batch", "sgd", "minibatch")
BACKENDS = ("cython", "reference")
#: loss name -> loss factor ``a``: the loss is ``a * mean(r**2)``.
LOSS_FACTORS = {"mse": 1.0, "half_mse": 0.5}
STOP_ON = ("loss", "grad_norm", "validation")
ON_DIVERGENCE = ("raise", "stop", "halve")
L1_METHODS = ("subgradient", "proximal", "cumulative")
#: The ``stop_on`` values ``restore_best`` works with (a loss to pick the best epoch by).
RESTORE_BEST_STOP_ON = ("loss", "validation")
#: ``validation_fraction`` when ``stop_on="validation"`` and none is given.
DEFAULT_VALIDATION_FRACTION = 0.1


# ---------------------------------------------------------------------------
# Reading options from text (the command line)
# ---------------------------------------------------------------------------

def integer(text: str) -> int:
    """An integer, ``_`` allowed between digits (``1_000_000``)."""
    try:
        return int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer; got {text!r}") from None


def number(text: str) -> float:
    """A finite number (ranges are checked by the option's own check)."""
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number; got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number; got {text}")
    return value


def rate(text: str) -> float | str:
    """A learning rate: ``auto`` or a finite number."""
    return "auto" if text.strip().lower() == "auto" else number(text)


def _value_text(text: str) -> Any:
    """One value of a ``key=value`` argument: true/false, an integer, a number,
    or numbers separated by ``/`` (a tuple)."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if "/" in text:
        return tuple(_value_text(part) for part in text.split("/"))
    try:
        return int(text)
    except ValueError:
        return number(text)


def _spec_text(text: str, what: str, check: Callable[[Any, str], Any]) -> Any:
    """``NAME`` or ``NAME:key=value,...`` -> the object ``check(NAME)`` makes,
    with those arguments (a schedule, an optimizer)."""
    name, _, arguments = text.partition(":")
    try:
        default = check(name, what)
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not arguments:
        return default
    known = [f.name for f in dataclasses.fields(default)]
    values: dict[str, Any] = {}
    for item in arguments.split(","):
        key, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not key:
            raise argparse.ArgumentTypeError(
                f"{what} arguments must be key=value pairs separated by commas; got "
                f"{item!r} in {text!r}")
        if key not in known:
            raise argparse.ArgumentTypeError(
                f"{what} {name!r} takes the arguments {', '.join(known) or 'none'}; "
                f"got {key!r} in {text!r}")
        values[key] = _value_text(value)
    try:
        return type(default)(**values)
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None


def schedule_text(text: str) -> Schedule:
    """``NAME`` or ``NAME:key=value,...`` -> a :class:`gdcore.schedules.Schedule`."""
    return _spec_text(text, "schedule", check_schedule)


def optimizer_text(text: str) -> Optimizer:
    """``NAME`` or ``NAME:key=value,...`` -> a :class:`gdcore.optimizers.Optimizer`
    (``adam:betas=0.9/0.999,eps=1e-8,amsgrad=true``)."""
    return _spec_text(text, "optimizer", check_optimizer)


def shuffle_block_text(text: str) -> int | str | None:
    """``auto``, ``none`` or a number of rows."""
    if text.lower() in ("auto", "none"):
        return None if text.lower() == "none" else "auto"
    try:
        return integer(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"must be auto, none or an integer >= 1; got "
                                         f"{text!r}") from None


integer.__name__ = "integer"            # how argparse names the type in errors
number.__name__ = "number"
schedule_text.__name__ = "schedule"
optimizer_text.__name__ = "optimizer"
shuffle_block_text.__name__ = "shuffle block"


# ---------------------------------------------------------------------------
# The record of one option
# ---------------------------------------------------------------------------

Check = Callable[[Any, str], Any]


@dataclass(frozen=True)
class Option:
    """One option of :func:`gdcore.fit`: everything gdcore needs to know about it.

    Attributes
    ----------
    name : str
        The keyword of ``fit`` (and of ``LinearRegressor`` when ``estimator``).
    default : Any
        The default as the user writes it (``"constant"``, not the schedule
        object it stands for).
    help : str
        One line, for ``--help`` and the docs table.
    check : callable or None
        ``check(value, name)`` returns the value to use or raises
        ``TypeError``/``ValueError`` naming ``name``; None for the arguments
        that are checked against the data.
    choices : tuple of str or None
        The allowed values of a choice option (its check and its flag use them).
    flag : str or None
        The command-line flag of ``python -m gdcore train``; None: not on the
        command line, ``why_not_on_cli`` says why.
    cli : mapping
        argparse keywords of the flag beyond ``help``: ``type``, ``action``,
        ``metavar``, ``nargs``, ``const``.
    estimator : bool
        Also a parameter of ``LinearRegressor``.
    """

    name: str
    default: Any
    help: str
    check: Check | None
    choices: tuple[str, ...] | None = None
    flag: str | None = None
    cli: Mapping[str, Any] = field(default_factory=dict)
    estimator: bool = True
    why_not_on_cli: str = ""


def option(default: Any, help: str, check: Check | None = None, *,
           choices: tuple[str, ...] | None = None, flag: str | None = None,
           estimator: bool = True, why_not_on_cli: str = "", **cli: Any) -> Any:
    """A field of :class:`Config`: the option's default and its record.

    ``choices`` makes the check a choice among them; ``**cli`` are the
    argparse keywords of ``flag``.
    """
    if choices is not None:
        check = functools.partial(_validation.check_choice, choices=choices)
    record = Option("", default, help, check, choices, flag, cli, estimator, why_not_on_cli)
    return field(default=default, metadata={"option": record})


def _optional(check: Check) -> Check:
    """``check``, or None passes as None."""
    def checked(value: Any, name: str) -> Any:
        return None if value is None else check(value, name)
    return checked


def _at_least(minimum: int, maximum: int | None = None) -> Check:
    return functools.partial(_validation.check_int, minimum=minimum, maximum=maximum)


# ---------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Config:
    """The validated options of one training run: the option table.

    Every field is one option of :func:`gdcore.fit`, with its meaning there.
    Building a ``Config`` checks every value (each option's check, then the
    rules between options), so a ``Config`` always holds checked values, some
    in a normalised form (``schedule`` is a ``Schedule`` object). A few
    properties derive what the kernels read: ``loss_factor``, ``power`` and
    ``average_from``.
    """

    method: str = option(
        "minibatch", "samples per update: all (batch), one (sgd) or batch_size (minibatch)",
        choices=METHODS, flag="--method")
    batch_size: int = option(
        32, "samples per mini-batch (minibatch only)", _at_least(1),
        flag="--batch-size", type=integer, metavar="N")
    lr: float | str = option(
        0.01, "learning rate, or auto: 1/L for batch (L the loss's largest curvature), "
        "1/(2 L(B)) for batch size B (Gower et al., 2019)", _validation.check_lr,
        flag="--lr", type=rate, metavar="RATE")
    epochs: int = option(
        10, "passes over the data", _at_least(0, _validation.MAX_COUNT),
        flag="--epochs", type=integer, metavar="N")
    fit_intercept: bool = option(
        True, "learn the intercept b (else b stays at b0)", _validation.check_bool,
        flag="--no-intercept", action="store_false")
    loss: str = option(
        "mse", "mse = mean(r**2), half_mse = 0.5 * mean(r**2)",
        choices=tuple(LOSS_FACTORS), flag="--loss")
    shuffle: bool = option(
        True, "visit the samples in a fresh random order every epoch",
        _validation.check_bool, flag="--no-shuffle", action="store_false")
    seed: Any = option(
        None, "seed of the shuffling and of the validation split", _validation.check_seed,
        flag="--seed", type=integer, metavar="N")
    backend: str = option(
        "cython", "compiled kernels, or the plain-Python reference path (small data only)",
        choices=BACKENDS, flag="--backend")
    n_threads: int | None = option(
        None, "threads of the full-data gradient (default: all cores)",
        _optional(_at_least(1, _validation.MAX_THREADS)),
        flag="--threads", type=integer, metavar="N")
    momentum: float = option(
        0.0, "momentum factor (PyTorch's convention)", _validation.check_non_negative,
        flag="--momentum", type=number, metavar="MU")
    nesterov: bool = option(
        False, "Nesterov momentum", _validation.check_bool,
        flag="--nesterov", action="store_true")
    dampening: float = option(
        0.0, "momentum dampening, in [0, 1]", _validation.check_unit_interval,
        flag="--dampening", type=number, metavar="D")
    weight_decay: float = option(
        0.0, "L2 penalty weight_decay/2 * |w|^2", _validation.check_non_negative,
        flag="--weight-decay", type=number, metavar="L2")
    l1: float = option(
        0.0, "L1 penalty l1 * |w|_1", _validation.check_non_negative,
        flag="--l1", type=number, metavar="L1")
    decay_bias: bool = option(
        False, "apply the penalties to the intercept too", _validation.check_bool,
        flag="--decay-bias", action="store_true")
    schedule: Schedule = option(
        "constant", "learning-rate schedule: constant, invscaling, exponential, step or "
        "plateau, e.g. step:step_size=5,gamma=0.5", check_schedule,
        flag="--schedule", type=schedule_text, metavar="NAME[:K=V,...]")
    average: bool | int = option(
        False, "averaged SGD: return the mean of the iterates (from global step STEP)",
        _validation.check_average, flag="--average", type=integer, nargs="?", const=True,
        metavar="STEP")
    tol: float | None = option(
        None, "early stopping tolerance (default: off)",
        _optional(_validation.check_non_negative), flag="--tol", type=number, metavar="TOL")
    stop_on: str = option(
        "loss", "what early stopping watches", choices=STOP_ON, flag="--stop-on")
    n_iter_no_change: int = option(
        5, "epochs without improvement before stopping", _at_least(1),
        flag="--n-iter-no-change", type=integer, metavar="N")
    validation_fraction: float | None = option(
        None, "hold out this fraction of the rows and record their loss",
        _optional(_validation.check_fraction), flag="--validation-fraction", type=number,
        metavar="F")
    on_divergence: str = option(
        "raise", "what to do when the loss blows up", choices=ON_DIVERGENCE,
        flag="--on-divergence")
    check_lr: bool = option(
        False, "warn when lr is above the largest stable full-batch rate",
        _validation.check_bool, flag="--check-lr", action="store_true")
    callback: Callable[[dict], Any] | None = option(
        None, "called after each epoch (and every callback_every steps)",
        _optional(_validation.check_callable), estimator=False,
        why_not_on_cli="a Python function")
    callback_every: int | None = option(
        None, "also call back every this many steps", _optional(_at_least(1)),
        estimator=False, why_not_on_cli="goes with callback")
    verbose: int = option(
        0, "print a line per epoch", _at_least(0), flag="--verbose", type=integer,
        nargs="?", const=1, metavar="N")
    progress: bool = option(
        False, "show a progress bar (needs tqdm)", _validation.check_bool,
        flag="--progress", action="store_true")
    copy: bool = option(
        True, "convert X or y to float64 C order when needed (else raise)",
        _validation.check_bool, estimator=False, flag="--no-copy", action="store_false")
    shuffle_block: int | str | None = option(
        "auto", "shuffle in blocks of this many rows: auto (blocks for memory-mapped "
        "X), none, or a number", _validation.check_shuffle_block, estimator=False,
        flag="--shuffle-block", type=shuffle_block_text, metavar="ROWS")
    checkpoint: str | None = option(
        None, "save the run to this file as it goes, and resume from it when it exists",
        _optional(_validation.check_path), estimator=False, flag="--checkpoint",
        metavar="FILE")
    checkpoint_seconds: float = option(
        10.0, "save the checkpoint at most this often (and when the run ends)",
        functools.partial(_validation.check_real, positive=True), estimator=False,
        flag="--checkpoint-seconds", type=number, metavar="S")
    optimizer: Optimizer = option(
        "sgd", "update rule: sgd, adam, adamw, adagrad or rmsprop (PyTorch's), e.g. "
        "adam:betas=0.9/0.999,eps=1e-8", check_optimizer, flag="--optimizer",
        type=optimizer_text, metavar="NAME[:K=V,...]")
    l1_method: str = option(
        "subgradient", "how l1 is applied: l1 * sign(w) in the gradient, soft-thresholding "
        "after each step (proximal), or the cumulative penalty of scikit-learn's "
        "SGDRegressor", choices=L1_METHODS, flag="--l1-method")
    standardize: bool = option(
        False, "train on (x - mean) / std per feature, formed as each row is read (no "
        "copy of X); results in the units of X", _validation.check_bool,
        flag="--standardize", action="store_true")
    restore_best: bool = option(
        False, "return the parameters of the epoch whose monitored loss (stop_on: loss or "
        "validation) was lowest", _validation.check_bool, flag="--restore-best",
        action="store_true")

    def __post_init__(self) -> None:
        for record in OPTIONS:
            assert record.check is not None
            object.__setattr__(self, record.name,
                               record.check(getattr(self, record.name), record.name))
        self._merge_optimizer()
        if self.nesterov and (self.momentum == 0.0 or self.dampening != 0.0):
            raise ValueError(f"nesterov=True needs momentum > 0 and dampening = 0; got "
                             f"momentum={self.momentum}, dampening={self.dampening}")
        if self.lr == "auto" and not isinstance(self.optimizer, SGD):
            raise ValueError(f"lr='auto' is the rate of plain or momentum gradient descent "
                             f"(optimizer='sgd'); give optimizer="
                             f"{name_of(self.optimizer)!r} a number")
        if self.restore_best and self.stop_on not in RESTORE_BEST_STOP_ON:
            raise ValueError(f"restore_best=True needs stop_on='loss' or 'validation' (the "
                             f"loss it picks the best epoch by); got "
                             f"stop_on={self.stop_on!r}")
        if self.validation_fraction is None and self.stop_on == "validation":
            object.__setattr__(self, "validation_fraction", DEFAULT_VALIDATION_FRACTION)

    def _merge_optimizer(self) -> None:
        """``momentum``, ``dampening`` and ``nesterov`` are options of ``fit``
        and fields of ``SGD``: merge them (given twice with different values
        is an error); the other optimizers refuse those they do not have."""
        optimizer = self.optimizer
        names = ("momentum", "dampening", "nesterov")
        if isinstance(optimizer, SGD):
            defaults = SGD()
            merged = {}
            for name in names:
                given, inside = getattr(self, name), getattr(optimizer, name)
                default = getattr(defaults, name)
                if given != default and inside != default and given != inside:
                    raise ValueError(f"{name} is given twice: {name}={given!r} and "
                                     f"optimizer={optimizer!r}; give it once")
                merged[name] = inside if inside != default else given
                object.__setattr__(self, name, merged[name])
            object.__setattr__(self, "optimizer", SGD(**merged))
            return
        allowed = ("momentum",) if isinstance(optimizer, RMSprop) else ()
        for name in names:
            value = getattr(self, name)
            if name not in allowed and value != getattr(SGD(), name):
                users = "optimizer='sgd' and 'rmsprop'" if name == "momentum" else \
                    "optimizer='sgd'"
                raise ValueError(f"{name} applies to {users} only (as in PyTorch); got "
                                 f"{name}={value!r} with optimizer={name_of(optimizer)!r}")

    @property
    def rate(self) -> float:
        """``lr`` as a number (``fit`` replaces ``lr="auto"`` by the run's rate
        before training starts)."""
        if isinstance(self.lr, str):
            raise AssertionError("lr='auto' is resolved before training")
        return self.lr

    @property
    def loss_factor(self) -> float:
        """``a`` in ``L = a * mean(r**2)``: 1 for mse, 0.5 for half_mse."""
        return LOSS_FACTORS[self.loss]

    @property
    def power(self) -> float:
        """Exponent of the schedule's per-step decay ``1 / (t + 1)**power`` (0: none)."""
        return self.schedule.power

    @property
    def average_from(self) -> int:
        """First averaged global step, or -1: no averaging."""
        return _validation.first_averaged_step(self.average)


def _records() -> tuple[Option, ...]:
    return tuple(dataclasses.replace(f.metadata["option"], name=f.name)
                 for f in dataclasses.fields(Config))


#: The options of the table, in the order of ``fit``'s signature.
OPTIONS: tuple[Option, ...] = _records()

#: The arguments of ``fit`` that are checked against the data.
DATA_ARGUMENTS: tuple[Option, ...] = (
    Option("w0", None, "initial weights: comma-separated numbers or a .npy/.csv file "
           "(default zeros)", None, flag="--w0", cli={"metavar": "W"}, estimator=False),
    Option("b0", 0.0, "initial intercept", None, flag="--b0",
           cli={"type": number, "metavar": "B"}, estimator=False),
    Option("sample_weight", None, "per-sample weights, a .npy or .csv file", None,
           flag="--sample-weight", cli={"metavar": "FILE"}, estimator=False),
    Option("warm_start", None, "continue from an earlier run's state", None,
           estimator=False, why_not_on_cli="a Python object from an earlier run"),
)

#: Every keyword argument of ``fit``, by name.
ALL: dict[str, Option] = {record.name: record for record in OPTIONS + DATA_ARGUMENTS}


def loss_factor(loss: Any) -> float:
    """The loss factor ``a`` of a loss name (``ValueError`` naming ``loss``)."""
    return LOSS_FACTORS[_validation.check_choice(loss, "loss", LOSS_FACTORS)]


def from_arguments(arguments: Mapping[str, Any]) -> Config:
    """The ``Config`` of the table's options among ``arguments`` (others ignored)."""
    return Config(**{record.name: arguments[record.name] for record in OPTIONS
                     if record.name in arguments})


def markdown_table() -> str:
    """The options table of ``docs/options.md``, generated from :class:`Config`."""
    lines = [
        "# Training options",
        "",
        "Generated from the option table (`python/gdcore/_options.py`); do not edit",
        "by hand. Regenerate with",
        "`python -c \"from gdcore._options import markdown_table as t; print(t(), end='')\" "
        "> docs/options.md`.",
        "Every option is a keyword of `gdcore.fit`; those marked in the",
        "`LinearRegressor` column are also parameters of the estimator.",
        "",
        "| option | default | meaning | command line | `LinearRegressor` |",
        "|---|---|---|---|---|",
    ]
    for record in OPTIONS + DATA_ARGUMENTS:
        flag = f"`{record.flag}`" if record.flag else f"no ({record.why_not_on_cli})"
        choices = f" (one of {', '.join(record.choices)})" if record.choices else ""
        lines.append(f"| `{record.name}` | `{record.default!r}` | {record.help}{choices} | "
                     f"{flag} | {'yes' if record.estimator else 'no'} |")
    return "\n".join(lines) + "\n"

