"""The ``train`` and ``demo`` commands of ``python -m gdcore`` (and ``gdcore``).

``train`` fits a linear model to a synthetic problem or to data in ``.npy`` /
``.csv`` files with any option of :func:`gdcore.fit`, prints a summary, and
writes the parameters and the history to a JSON or ``.npz`` file and the loss
curve to a picture. ``demo`` lists and runs the walk-throughs of
:mod:`gdcore.demos`.

Every failure a user can cause (a missing or malformed file, a bad option, a
training run that diverges) ends with one line on standard error, naming what
was wrong, and a non-zero exit status: 2 for bad input, 1 for a run that
failed (divergence, backends disagreeing).
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import __version__
from ._api import fit, value_and_grad
from ._data import make_regression
from ._results import DivergenceError

COMMANDS = ("train", "demo")

#: Parameters of gdcore.fit that have no command-line option, and why.
NOT_ON_COMMAND_LINE = {
    "X": "the data options give it",
    "y": "the data options give it",
    "callback": "a Python function",
    "callback_every": "goes with callback",
    "warm_start": "a Python object from an earlier run",
}

DATA_SUFFIXES = (".npy", ".csv")
OUTPUT_SUFFIXES = (".json", ".npz")


class CommandError(Exception):
    """A problem with the command line or its files: reported in one line, exit 2."""


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (and a pointer to --help)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def program_name() -> str:
    """``gdcore`` when run as the console script, else ``python -m gdcore``."""
    return "gdcore" if Path(sys.argv[0]).name == "gdcore" else "python -m gdcore"


# ---------------------------------------------------------------------------
# Argument types
# ---------------------------------------------------------------------------

def _int_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text.replace("_", ""))
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer; got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}; got {text}")
        return value
    parse.__name__ = "integer"
    return parse


def _number(text: str) -> float:
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number; got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number; got {text}")
    return value


_number.__name__ = "number"


def _schedule(text: str) -> Any:
    """``NAME`` or ``NAME:key=value,...`` -> a gdcore.schedules.Schedule."""
    from . import schedules

    name, _, arguments = text.partition(":")
    try:
        default = schedules.check_schedule(name)
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not arguments:
        return default
    known = [f.name for f in dataclasses.fields(default)]
    options: dict[str, float | int] = {}
    for item in arguments.split(","):
        key, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not key:
            raise argparse.ArgumentTypeError(
                f"schedule arguments must be key=value pairs separated by commas; got "
                f"{item!r} in {text!r}")
        if key not in known:
            raise argparse.ArgumentTypeError(
                f"schedule {name!r} takes the arguments {', '.join(known) or 'none'}; "
                f"got {key!r} in {text!r}")
        try:
            options[key] = int(value)
        except ValueError:
            options[key] = _number(value)
    try:
        return type(default)(**options)
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None


_schedule.__name__ = "schedule"


def _shuffle_block(text: str) -> int | str | None:
    """``auto``, ``none`` or a number of rows >= 1."""
    if text.lower() in ("auto", "none"):
        return None if text.lower() == "none" else "auto"
    try:
        return _int_at_least(1)(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"must be auto, none or an integer >= 1; got "
                                         f"{text!r}") from None


_shuffle_block.__name__ = "shuffle block"


# ---------------------------------------------------------------------------
# The train command's options
# ---------------------------------------------------------------------------

#: gdcore.fit parameter -> (flags, argparse keywords). Only those that the
#: installed gdcore.fit accepts are offered.
FIT_OPTIONS: dict[str, tuple[tuple[str, ...], dict]] = {
    "method": (("--method",), dict(choices=("batch", "sgd", "minibatch"),
                                   help="batch, sgd (one update per sample) or minibatch")),
    "batch_size": (("--batch-size",), dict(type=_int_at_least(1), metavar="N",
                                           help="samples per mini-batch")),
    "lr": (("--lr",), dict(type=_number, metavar="RATE", help="learning rate")),
    "epochs": (("--epochs",), dict(type=_int_at_least(0), metavar="N",
                                   help="passes over the data")),
    "w0": (("--w0",), dict(metavar="W", help="initial weights: comma-separated numbers "
                                             "or a .npy/.csv file (default zeros)")),
    "b0": (("--b0",), dict(type=_number, metavar="B", help="initial intercept")),
    "fit_intercept": (("--no-intercept",), dict(action="store_false",
                                                help="keep b at --b0 instead of learning it")),
    "loss": (("--loss",), dict(choices=("mse", "half_mse"),
                               help="mse = mean(r**2), half_mse = 0.5 * mean(r**2)")),
    "shuffle": (("--no-shuffle",), dict(action="store_false",
                                        help="visit samples in order, not in a fresh "
                                             "random order each epoch")),
    "seed": (("--seed",), dict(type=_int_at_least(0), metavar="N",
                               help="seed of the shuffling (and of a validation split)")),
    "backend": (("--backend",), dict(choices=("cython", "reference"),
                                     help="reference is plain Python: small data only")),
    "n_threads": (("--threads",), dict(type=_int_at_least(1), metavar="N",
                                       help="threads of the full-data gradient")),
    "momentum": (("--momentum",), dict(type=_number, metavar="MU",
                                       help="momentum factor (PyTorch convention)")),
    "nesterov": (("--nesterov",), dict(action="store_true", help="Nesterov momentum")),
    "dampening": (("--dampening",), dict(type=_number, metavar="D",
                                         help="momentum dampening, in [0, 1]")),
    "weight_decay": (("--weight-decay",), dict(type=_number, metavar="L2",
                                               help="L2 penalty weight_decay/2 * |w|^2")),
    "l1": (("--l1",), dict(type=_number, metavar="L1", help="L1 penalty l1 * |w|_1")),
    "decay_bias": (("--decay-bias",), dict(action="store_true",
                                           help="apply the penalties to b too")),
    "schedule": (("--schedule",), dict(type=_schedule, metavar="NAME[:K=V,...]",
                                       help="learning-rate schedule: constant, "
                                            "invscaling, exponential, step or plateau, "
                                            "e.g. step:step_size=5,gamma=0.5")),
    "average": (("--average",), dict(type=_int_at_least(0), nargs="?", const=True,
                                     metavar="STEP", help="averaged SGD (from global "
                                                          "step STEP, default the first)")),
    "sample_weight": (("--sample-weight",), dict(metavar="FILE",
                                                 help="per-sample weights, .npy or .csv")),
    "tol": (("--tol",), dict(type=_number, metavar="TOL",
                             help="early stopping tolerance (default off)")),
    "stop_on": (("--stop-on",), dict(choices=("loss", "grad_norm", "validation"),
                                     help="what early stopping watches")),
    "n_iter_no_change": (("--n-iter-no-change",), dict(type=_int_at_least(1), metavar="N",
                                                       help="epochs without improvement "
                                                            "before stopping")),
    "validation_fraction": (("--validation-fraction",),
                            dict(type=_number, metavar="F",
                                 help="hold out this fraction of the rows")),
    "on_divergence": (("--on-divergence",), dict(choices=("raise", "stop", "halve"),
                                                 help="what to do when the loss blows up")),
    "check_lr": (("--check-lr",), dict(action="store_true",
                                       help="warn when lr is above the stable limit")),
    "verbose": (("--verbose",), dict(type=_int_at_least(0), metavar="N", nargs="?",
                                     const=1, help="print a line per epoch")),
    "progress": (("--progress",), dict(action="store_true",
                                       help="show a progress bar (needs tqdm)")),
    "copy": (("--no-copy",), dict(action="store_false",
                                  help="refuse to convert X or y to float64 C order (an "
                                       "error instead of a copy)")),
    "shuffle_block": (("--shuffle-block",), dict(type=_shuffle_block, metavar="ROWS",
                                                 help="shuffle in blocks of ROWS rows: "
                                                      "auto (blocks for memory-mapped .npy "
                                                      "files), none, or a number")),
}

TRAIN_EXAMPLES = """\
examples:
  {prog} train                                    # synthetic 10,000 x 10, default fit options
  {prog} train -n 100000 -d 20 --method sgd --lr 0.001 --epochs 3
  {prog} train --X X.npy --y y.npy --method batch --lr 0.4 --epochs 50 -o model.json
  {prog} train --data table.csv --target price --plot loss.png -o model.npz
  {prog} train --data table.csv --target -1 --no-intercept --loss half_mse

Data: .npy files are memory-mapped (a float64 X is never copied); .csv files
are comma-separated (--delimiter), with an optional header row of column
names. Without --X/--y or --data a synthetic problem is made
(gdcore.make_regression). The output holds w, b, history and the other fields
of gdcore.fit's result, the options and the data's description.
"""


def fit_parameters() -> list[str]:
    """Names of gdcore.fit's keyword parameters."""
    return [name for name, p in inspect.signature(fit).parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY]


def build_train_parser(prog: str) -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=f"{prog} train",
        usage=f"{prog} train [--X FILE --y FILE | --data FILE [--target COLUMN]] "
              f"[fit options]\n{' ' * (len(prog) + 13)}[-o OUT.json|OUT.npz] [--plot "
              f"LOSS.png] [-h]",
        description="Train y ~ X @ w + b by gradient descent (gdcore.fit) on a synthetic "
                    "problem or on your data, and save the parameters and loss history.",
        epilog=TRAIN_EXAMPLES.format(prog=prog),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    data = parser.add_argument_group("data (files, or else a synthetic problem)")
    data.add_argument("--X", dest="X_file", metavar="FILE",
                      help="features, (n_samples, n_features) or (n_samples,): .npy or .csv")
    data.add_argument("--y", dest="y_file", metavar="FILE",
                      help="targets (n_samples,), or (n_samples, k) for k outputs")
    data.add_argument("--data", dest="data_file", metavar="FILE",
                      help="one table holding the features and the target column")
    data.add_argument("--target", default="-1", metavar="COLUMN",
                      help="target column of --data: a header name or an index "
                           "(default -1, the last)")
    data.add_argument("--delimiter", default=",", metavar="CHAR",
                      help="column separator of .csv files (default ','; 'tab' or '\\t' "
                           "for tabs)")
    data.add_argument("-n", "--n-samples", type=_int_at_least(1), default=10_000,
                      help="synthetic samples (default 10,000)")
    data.add_argument("-d", "--n-features", type=_int_at_least(1), default=10,
                      help="synthetic features (default 10)")
    data.add_argument("--noise", type=_number, default=0.1,
                      help="synthetic noise standard deviation (default 0.1)")
    data.add_argument("--bias", type=_number, default=0.5,
                      help="synthetic true intercept (default 0.5)")
    data.add_argument("--data-seed", type=_int_at_least(0), default=0,
                      help="seed of the synthetic data (default 0)")

    training = parser.add_argument_group("training (the options of gdcore.fit; defaults "
                                         "are fit's)")
    accepted = set(fit_parameters())
    for name, (flags, options) in FIT_OPTIONS.items():
        if name in accepted:
            training.add_argument(*flags, dest=f"fit_{name}", default=argparse.SUPPRESS,
                                  **options)

    output = parser.add_argument_group("output")
    output.add_argument("-o", "--output", metavar="FILE",
                        help="write w, b, history, options to a .json or .npz file")
    output.add_argument("--plot", metavar="FILE",
                        help="save the loss curve to a .png, .svg or .pdf (needs matplotlib)")
    output.add_argument("--smoothing", type=_number, default=0.9,
                        help="smoothing factor of the plotted moving average (default 0.9)")
    output.add_argument("--log-scale", action="store_true",
                        help="logarithmic loss axis in the plot")
    output.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    return parser


# ---------------------------------------------------------------------------
# Reading data
# ---------------------------------------------------------------------------

def _check_suffix(path: str, allowed: tuple[str, ...], what: str) -> Path:
    suffix = Path(path).suffix.lower()
    if suffix not in allowed:
        kinds = ", ".join(allowed[:-1]) + " or " + allowed[-1]
        raise CommandError(f"{what} must be a {kinds} file; got {path!r}")
    return Path(path)


def _read_csv(path: Path, delimiter: str, what: str) -> tuple[np.ndarray, list[str] | None]:
    """A 2-D float array and the header's column names (None without a header)."""
    try:
        with open(path, newline="") as handle:
            first = next((line for line in handle if line.strip()), None)
    except UnicodeDecodeError:
        raise CommandError(f"cannot read {what} file {str(path)!r}: not a text file")
    if first is None:
        raise CommandError(f"{what} file {str(path)!r} is empty")
    fields = [field.strip() for field in first.rstrip("\r\n").split(delimiter)]
    try:
        [float(field) for field in fields]
        header = None
    except ValueError:
        header = fields
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = np.loadtxt(path, delimiter=delimiter, skiprows=1 if header else 0,
                               ndmin=2, dtype=np.float64)
    except ValueError as exc:
        raise CommandError(f"cannot read {what} file {str(path)!r}: {exc}") from None
    if table.size == 0:
        raise CommandError(f"{what} file {str(path)!r} holds no rows of numbers")
    return table, header


def _read_npy(path: Path, what: str) -> np.ndarray:
    try:
        with open(path, "rb") as handle:
            magic = handle.read(6)
    except OSError as exc:
        raise CommandError(f"cannot read {what} file {str(path)!r}: "
                           f"{exc.strerror or exc}") from None
    if magic != b"\x93NUMPY":
        raise CommandError(f"{what} file {str(path)!r} is not a .npy file (numpy.save "
                           f"writes them)")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Python objects" in str(exc):
            raise CommandError(f"cannot read {what} file {str(path)!r}: it holds Python "
                               f"objects, not numbers") from None
        raise CommandError(f"cannot read {what} file {str(path)!r}: {exc}") from None
    except (OSError, EOFError) as exc:
        raise CommandError(f"cannot read {what} file {str(path)!r}: "
                           f"{getattr(exc, 'strerror', None) or exc}") from None
    if array.dtype.kind not in "biuf":
        raise CommandError(f"{what} file {str(path)!r} must hold real numbers; got dtype "
                           f"{array.dtype}")
    return array


def read_array(path: str, what: str, delimiter: str = ",") -> tuple[np.ndarray,
                                                                      list[str] | None]:
    """Load a .npy or .csv file: the array and a .csv header (or None)."""
    file = _check_suffix(path, DATA_SUFFIXES, f"{what} file")
    if not file.exists():
        raise CommandError(f"{what} file {path!r} does not exist")
    if file.is_dir():
        raise CommandError(f"{what} file {path!r} is a directory")
    if file.suffix.lower() == ".npy":
        return _read_npy(file, what), None
    return _read_csv(file, delimiter, what)


def _as_vector(array: np.ndarray, path: str, what: str) -> np.ndarray:
    if array.ndim == 2 and array.shape[1] == 1:
        return array[:, 0]
    if array.ndim != 1:
        raise CommandError(f"{what} file {path!r} must hold one column of numbers; got "
                           f"shape {array.shape}")
    return array


def _target_column(target: str, header: list[str] | None, n_columns: int,
                   path: str) -> int:
    if header is not None and target in header:
        return header.index(target)
    try:
        index = int(target)
    except ValueError:
        names = f"; its columns are {', '.join(header)}" if header else " (it has no header)"
        raise CommandError(f"--target {target!r} is not a column of {path!r}{names}") from None
    if not -n_columns <= index < n_columns:
        raise CommandError(f"--target {index} is out of range for {path!r}, which has "
                           f"{n_columns} columns")
    return index % n_columns


def load_data(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, dict,
                                                 np.ndarray | None]:
    """X, y, a description of the data, and w_true for a synthetic problem."""
    files = (args.X_file, args.y_file)
    if args.data_file is not None and any(files):
        raise CommandError("give either --data or --X and --y, not both")
    if args.data_file is not None:
        table, header = read_array(args.data_file, "--data", args.delimiter)
        if table.ndim != 2 or table.shape[1] < 2:
            raise CommandError(f"--data file {args.data_file!r} must be a table with at "
                               f"least two columns (features and target); got shape "
                               f"{table.shape}")
        column = _target_column(args.target, header, table.shape[1], args.data_file)
        X = np.delete(table, column, axis=1)
        y = np.array(table[:, column], dtype=np.float64)
        info = dict(source="file", data=args.data_file, target_column=column,
                    target_name=header[column] if header else None)
        return X, y, info, None
    if any(files):
        if not all(files):
            missing = "--y" if args.y_file is None else "--X"
            raise CommandError(f"{missing} is missing: give both --X and --y (or --data)")
        X, _ = read_array(args.X_file, "--X", args.delimiter)
        y, _ = read_array(args.y_file, "--y", args.delimiter)
        if not (y.ndim == 2 and y.shape[1] > 1):        # k > 1 columns: k outputs
            y = _as_vector(y, args.y_file, "--y")
        if X.ndim == 0:
            raise CommandError(f"--X file {args.X_file!r} holds a single number, not a "
                               f"table")
        if X.shape[0] != y.shape[0]:
            raise CommandError(f"--X and --y must have the same number of samples; got "
                               f"{X.shape[0]} in {args.X_file!r} and {y.shape[0]} in "
                               f"{args.y_file!r}")
        return X, y, dict(source="files", X=args.X_file, y=args.y_file), None
    X, y, w_true = make_regression(args.n_samples, args.n_features, noise=args.noise,
                                   bias=args.bias, seed=args.data_seed)
    info = dict(source="synthetic", noise=args.noise, bias=args.bias, seed=args.data_seed)
    return X, y, info, w_true


def _fit_options(args: argparse.Namespace) -> dict:
    options = {name[4:]: value for name, value in vars(args).items()
               if name.startswith("fit_")}
    if "w0" in options:
        text = options["w0"]
        if Path(text).suffix.lower() in DATA_SUFFIXES:
            w0, _ = read_array(text, "--w0", args.delimiter)
            options["w0"] = _as_vector(w0, text, "--w0")
        else:
            try:
                options["w0"] = [float(v) for v in text.split(",")]
            except ValueError:
                raise CommandError(f"--w0 must be comma-separated numbers or a .npy/.csv "
                                   f"file; got {text!r}") from None
    if "sample_weight" in options:
        path = options["sample_weight"]
        weights, _ = read_array(path, "--sample-weight", args.delimiter)
        options["sample_weight"] = _as_vector(weights, path, "--sample-weight")
    return options


# ---------------------------------------------------------------------------
# Writing results
# ---------------------------------------------------------------------------

def _plain(value: Any) -> Any:
    """JSON-friendly copy: arrays to lists, non-finite floats to None."""
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return repr(value)


def result_record(result: Any, options: dict, data: dict, final_loss: float,
                  seconds: float, w_true: np.ndarray | None) -> dict:
    """Everything the output file holds."""
    record = {}
    for field in dataclasses.fields(result):
        if field.name != "state":
            record[field.name] = getattr(result, field.name)
    record.update(final_loss=final_loss, seconds=seconds, options=options, data=data,
                  gdcore_version=__version__)
    if w_true is not None:
        record["w_true"] = w_true
    return record


def write_output(path: Path, record: dict) -> None:
    try:
        if path.suffix.lower() == ".json":
            with open(path, "w") as handle:
                json.dump(_plain(record), handle, indent=2, allow_nan=False)
                handle.write("\n")
        else:
            arrays = {}
            meta = {}
            for key, value in record.items():
                if isinstance(value, np.ndarray):
                    arrays[key] = value
                elif isinstance(value, (float, int, np.floating, np.integer)) and \
                        not isinstance(value, bool):
                    arrays[key] = np.asarray(value)
                else:
                    meta[key] = value
            arrays["meta"] = np.asarray(json.dumps(_plain(meta)))
            with open(path, "wb") as handle:
                np.savez(handle, **arrays)
    except OSError as exc:
        raise CommandError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None


def _check_writable(path: str, allowed: tuple[str, ...], what: str) -> Path:
    file = _check_suffix(path, allowed, what)
    parent = file.parent if str(file.parent) else Path(".")
    if not parent.is_dir():
        raise CommandError(f"cannot write {path!r}: directory {str(parent)!r} does not exist")
    return file


# ---------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------

def _summary(values: np.ndarray, limit: int = 8) -> str:
    shown = ", ".join(f"{v:.6g}" for v in values[:limit])
    more = f", ... ({values.size} in all)" if values.size > limit else ""
    return f"[{shown}{more}]"


def train(argv: Sequence[str], prog: str) -> int:
    args = build_train_parser(prog).parse_args(argv)
    output = (_check_writable(args.output, OUTPUT_SUFFIXES, "--output")
              if args.output else None)
    plot = None
    if args.plot:
        from .plotting import SAVE_SUFFIXES, _figure_class

        plot = _check_writable(args.plot, SAVE_SUFFIXES, "--plot")
        _figure_class()             # matplotlib missing: say so before training
    if not 0.0 <= args.smoothing < 1.0:
        raise CommandError(f"--smoothing must be in [0, 1); got {args.smoothing}")
    if plot is not None and getattr(args, "fit_epochs", None) == 0:
        raise CommandError("--plot needs at least one epoch of history (--epochs 0 "
                           "trains nothing)")
    if args.delimiter in ("\\t", "tab"):
        args.delimiter = "\t"
    X, y, data, w_true = load_data(args)
    options = _fit_options(args)
    say = (lambda *a: None) if args.quiet else print

    shape = X.shape if X.ndim == 2 else (X.shape[0], 1)
    described = {"synthetic": f"synthetic (gdcore.make_regression, noise {args.noise}, "
                              f"bias {args.bias}, seed {args.data_seed})",
                 "files": f"{args.X_file} and {args.y_file}",
                 "file": f"{args.data_file}, target column {data.get('target_column')}"
                         + (f" ({data['target_name']})" if data.get("target_name") else "")}
    say(f"data: {shape[0]:,} samples x {shape[1]} features, {described[data['source']]}")
    data.update(n_samples=int(shape[0]), n_features=int(shape[1]))

    started = time.perf_counter()
    result = fit(X, y, **options)
    seconds = time.perf_counter() - started
    loss_name = options.get("loss", "mse")
    final_loss = value_and_grad(X, y, result.w, result.b, loss=loss_name)[0]
    say(f"trained: method {result.method}, batch {result.batch_size}, "
        f"{result.epochs_run} epochs ({result.n_steps:,} steps), backend {result.backend}, "
        f"{seconds:.3g} s")
    if result.history.size:
        say(f"loss per epoch: {_summary(result.history)}")
    say(f"final loss ({loss_name}) on all the data: {final_loss:.6g}")
    say(f"w = {_summary(np.ravel(result.w))}")
    say(f"b = {_summary(np.ravel(result.b)) if np.ndim(result.b) else f'{result.b:.6g}'}")
    if w_true is not None:
        say(f"|w - w_true| = {np.linalg.norm(result.w - w_true):.4g}")

    if output is not None:
        record = result_record(result, options, data, final_loss, seconds, w_true)
        write_output(output, record)
        say(f"wrote {output}")
    if plot is not None:
        from .plotting import plot_loss_curve

        if result.history.size == 0:
            raise CommandError("--plot needs at least one epoch of history (--epochs 0 "
                               "trains nothing)")
        try:
            plot_loss_curve(result.history, smoothing=args.smoothing,
                            log_scale=args.log_scale,
                            title=f"{result.method} gradient descent: loss per epoch",
                            save=plot)
        except OSError as exc:
            raise CommandError(f"cannot write {args.plot!r}: {exc}") from None
        say(f"wrote {plot}")
    return 0


DEMO_EXAMPLES = """\
examples:
  {prog} demo                          # list the walk-throughs
  {prog} demo gd-sgd                   # run walk-through 1 (or: {prog} demo 1)
  {prog} demo loss-over-w --every 10   # print every 10th step
  {prog} demo brute-force --plot-dir pictures   # also save its pictures (needs matplotlib)
"""


def build_demo_parser(prog: str) -> argparse.ArgumentParser:
    from .demos import DEMOS

    names = "\n".join(f"  {d.number}  {d.name:<12} {d.title}" for d in DEMOS.values())
    parser = OneLineParser(
        prog=f"{prog} demo",
        description="Run the walk-throughs of the four tutorials gdcore grew from: each "
                    "prints the tutorial's numbers, computed by gdcore, and checks that "
                    "the compiled and the reference backend agree.\n\nwalk-throughs:\n"
                    + names,
        epilog=DEMO_EXAMPLES.format(prog=prog),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", nargs="?", metavar="NAME",
                        help="walk-through to run, by name or number (none: list them)")
    parser.add_argument("--every", type=_int_at_least(1), default=None, metavar="N",
                        help="print the first three epochs/steps, every N-th and the last "
                             "(default: each walk-through's own)")
    parser.add_argument("--plot-dir", metavar="DIR",
                        help="save the walk-through's pictures (PNG) in DIR")
    return parser


def demo(argv: Sequence[str], prog: str) -> int:
    from . import demos

    args = build_demo_parser(prog).parse_args(argv)
    if args.name is None:
        demos.list_demos()
        print(f"run one with: {prog} demo NAME   (NAME or its number)")
        return 0
    try:
        walk_through = demos.find(args.name)
    except ValueError:
        names = ", ".join(d.name for d in demos.DEMOS.values())
        raise CommandError(f"no walk-through called {args.name!r}; choose one of {names} "
                           f"(or 1 to {len(demos.DEMOS)})") from None
    options = {} if args.every is None else {"every": args.every}
    try:
        walk_through.run(plot_dir=args.plot_dir, **options)
    except demos.BackendDisagreement as exc:
        print(f"{prog} demo: error: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str]) -> int:
    """Run ``argv[0]`` (``train`` or ``demo``) with the rest of ``argv``."""
    prog = program_name()
    command, rest = argv[0], list(argv[1:])
    try:
        return {"train": train, "demo": demo}[command](rest, prog)
    except DivergenceError as exc:
        print(f"{prog} {command}: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (`... | head`): stop quietly, as cat would.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (CommandError, TypeError, ValueError, ImportError, OSError) as exc:
        message = " ".join(str(exc).split())
        # gdcore.fit names its parameter; say which option that is.
        name = message.split(" ", 1)[0]
        if not isinstance(exc, CommandError) and name in FIT_OPTIONS:
            message = f"{FIT_OPTIONS[name][0][0]}: {message}"
        print(f"{prog} {command}: error: {message}", file=sys.stderr)
        return 2


__all__ = ["COMMANDS", "FIT_OPTIONS", "NOT_ON_COMMAND_LINE", "main"]
