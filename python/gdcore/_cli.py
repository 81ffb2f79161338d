"""The ``train``, ``predict`` and ``demo`` commands of ``python -m gdcore`` (and ``gdcore``).

``train`` fits a linear model to a synthetic problem or to data in ``.npy`` /
``.csv`` files with any option of :func:`gdcore.fit` (its flags come from the
option table, ``_options.py``), prints a summary, and writes the parameters
and the history to a JSON or ``.npz`` file and the loss curve to a picture.
``demo`` lists and runs the walk-throughs of the tutorials gdcore grew from:
the scripts of the repository's ``examples/`` folder, installed with the
package.

Every failure a user can cause (a missing or malformed file, a bad option, a
training run that diverges) ends with one line on standard error, naming what
was wrong, and a non-zero exit status: 2 for bad input, 1 for a run that
failed (divergence).
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import runpy
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import _io, _options
from ._api import fit, value_and_grad
from ._api import predict as gdcore_predict
from ._io import CommandError
from ._results import DivergenceError

COMMANDS = ("train", "predict", "demo")


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (and a pointer to --help)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def program_name() -> str:
    """``gdcore`` when run as the console script, else ``python -m gdcore``."""
    return "gdcore" if Path(sys.argv[0]).name == "gdcore" else "python -m gdcore"


def positive_integer(text: str) -> int:
    """An integer >= 1 (argparse type)."""
    value = _options.integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1; got {text}")
    return value


def non_negative_integer(text: str) -> int:
    """An integer >= 0 (argparse type)."""
    value = _options.integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0; got {text}")
    return value


positive_integer.__name__ = "integer"
non_negative_integer.__name__ = "integer"


# ---------------------------------------------------------------------------
# The train command
# ---------------------------------------------------------------------------

TRAIN_EXAMPLES = """\
examples:
  {prog} train                                    # synthetic 10,000 x 10, default fit options
  {prog} train -n 100000 -d 20 --method sgd --lr 0.001 --epochs 3
  {prog} train --X X.npy --y y.npy --method batch --lr 0.4 --epochs 50 -o model.json
  {prog} train --data table.csv --target price --plot loss.png -o model.npz
  {prog} train --data table.csv --target -1 --no-intercept --loss half_mse
  {prog} predict --model model.json --data new.csv -o predictions.csv

Data: .npy files are memory-mapped (a float64 X is never copied); .csv files
are comma-separated (--delimiter), with an optional header row of column
names (--header / --no-header; by default a first row none of whose cells is
a number is a header); empty cells and NA are missing values, which training
refuses. Without --X/--y or --data a synthetic problem is made
(gdcore.make_regression). The output (the model file) holds w, b, history and
the other fields of gdcore.fit's result, every training option (as given, or
its default), the data's description, the names of the features (the .csv
header's, else x0, x1, ...) and of the target, and gdcore's version;
`{prog} predict --model FILE` predicts with it.
"""


def add_csv_arguments(group: Any) -> None:
    """``--delimiter`` and ``--header``/``--no-header``: how .csv files are read."""
    group.add_argument("--delimiter", default=",", metavar="CHAR",
                       help="column separator of .csv files (default ','; 'tab' or '\\t' "
                            "for tabs)")
    header = group.add_mutually_exclusive_group()
    header.add_argument("--header", dest="header", action="store_const", const=True,
                        default=None, help="the first row of the .csv files names the "
                                           "columns")
    header.add_argument("--no-header", dest="header", action="store_const", const=False,
                        help="the first row of the .csv files is data (default: it is a "
                             "header only when none of its cells is a number and the next "
                             "row's cells all are)")


def delimiter(args: argparse.Namespace) -> str:
    """``--delimiter``, with ``tab`` or ``\\t`` spelled as a tab."""
    return "\t" if args.delimiter in ("\\t", "tab") else args.delimiter


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
    add_csv_arguments(data)
    data.add_argument("-n", "--n-samples", type=positive_integer, default=10_000,
                      help="synthetic samples (default 10,000)")
    data.add_argument("-d", "--n-features", type=positive_integer, default=10,
                      help="synthetic features (default 10)")
    data.add_argument("--noise", type=_options.number, default=0.1,
                      help="synthetic noise standard deviation (default 0.1)")
    data.add_argument("--bias", type=_options.number, default=0.5,
                      help="synthetic true intercept (default 0.5)")
    data.add_argument("--data-seed", type=non_negative_integer, default=0,
                      help="seed of the synthetic data (default 0)")

    training = parser.add_argument_group("training (the options of gdcore.fit; defaults "
                                         "are fit's)")
    for record in _options.OPTIONS + _options.DATA_ARGUMENTS:
        if record.flag is not None:
            keywords = dict(record.cli)
            if record.choices is not None:
                keywords["choices"] = record.choices
            training.add_argument(record.flag, dest=f"fit_{record.name}",
                                  default=argparse.SUPPRESS, help=record.help, **keywords)

    output = parser.add_argument_group("output")
    output.add_argument("-o", "--output", metavar="FILE",
                        help="write w, b, history, options to a .json or .npz file")
    output.add_argument("--plot", metavar="FILE",
                        help="save the loss curve to a .png, .svg or .pdf (needs matplotlib)")
    output.add_argument("--smoothing", type=_options.number, default=0.9,
                        help="smoothing factor of the plotted moving average (default 0.9)")
    output.add_argument("--log-scale", action="store_true",
                        help="logarithmic loss axis in the plot")
    output.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    return parser


def _fit_options(args: argparse.Namespace) -> dict:
    """The fit keywords given on the command line (files read)."""
    options = {name[4:]: value for name, value in vars(args).items()
               if name.startswith("fit_")}
    if "w0" in options:
        options["w0"] = _io.parse_w0(options["w0"], args.delimiter, args.header)
    if "sample_weight" in options:
        options["sample_weight"] = _io.read_vector(options["sample_weight"],
                                                   "--sample-weight", args.delimiter,
                                                   args.header)
    return options


def _summary(values: np.ndarray, limit: int = 8) -> str:
    shown = ", ".join(f"{v:.6g}" for v in values[:limit])
    more = f", ... ({values.size} in all)" if values.size > limit else ""
    return f"[{shown}{more}]"


def train(argv: Sequence[str], prog: str) -> int:
    args = build_train_parser(prog).parse_args(argv)
    output = (_io.check_writable(args.output, _io.OUTPUT_SUFFIXES, "--output")
              if args.output is not None else None)
    plot = None
    if args.plot is not None:
        from .plotting import SAVE_SUFFIXES, _figure_class

        plot = _io.check_writable(args.plot, SAVE_SUFFIXES, "--plot")
        # a bad combination of flags first: the same error with or without matplotlib
        if getattr(args, "fit_epochs", None) == 0:
            raise CommandError("--plot needs at least one epoch of history (--epochs 0 "
                               "trains nothing)")
        _figure_class()             # matplotlib missing: say so before training
    # every output writable, none of them another output or an input file
    files = {"--X": args.X_file, "--y": args.y_file, "--data": args.data_file,
             "--w0": _io.file_argument(getattr(args, "fit_w0", None)),
             "--sample-weight": getattr(args, "fit_sample_weight", None)}
    _io.check_outputs([(flag, path) for flag, path in (("--output", args.output),
                                                       ("--plot", args.plot))
                       if path is not None],
                      [(flag, path) for flag, path in files.items() if path])
    if not 0.0 <= args.smoothing < 1.0:
        raise CommandError(f"--smoothing must be in [0, 1); got {args.smoothing}")
    args.delimiter = delimiter(args)
    X, y, data, w_true = _io.load_data(args)
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
        record = _io.result_record(result, options, data, final_loss, seconds, w_true)
        _io.write_output(output, record)
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
            raise CommandError(f"--plot: cannot write {args.plot!r}: "
                               f"{exc.strerror or exc}") from None
        say(f"wrote {plot}")
    return 0


# ---------------------------------------------------------------------------
# The predict command
# ---------------------------------------------------------------------------

PREDICT_EXAMPLES = """\
examples:
  {prog} train --data houses.csv --target price -o model.json
  {prog} predict --model model.json --data new_houses.csv              # to the terminal
  {prog} predict --model model.json --data new_houses.csv -o predictions.csv

The model's features are found in the --data file by name when the file has a
header and the model was trained on named columns (their order does not
matter; the target column may be there too and is ignored; any other column
is an error), else by position: the file must have the model's number of
features (or one more, the target's column, for a model trained with --data).
The predictions are written one row per sample, under a header naming the
target (.csv), or as an array (.npy); without -o they are printed.
"""


def build_predict_parser(prog: str) -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=f"{prog} predict",
        description="Predict with a model saved by train -o (a .json or .npz file) on the "
                    "samples of a .csv or .npy file.",
        epilog=PREDICT_EXAMPLES.format(prog=prog),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, metavar="FILE",
                        help="the model: a .json or .npz file written by train -o")
    parser.add_argument("--data", required=True, metavar="FILE",
                        help="the samples: a .csv (with or without a header) or .npy file")
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="write the predictions to a .csv or .npy file (default: print "
                             "them)")
    add_csv_arguments(parser)
    return parser


def predict(argv: Sequence[str], prog: str) -> int:
    args = build_predict_parser(prog).parse_args(argv)
    output = (_io.check_writable(args.output, _io.PREDICTION_SUFFIXES, "--output")
              if args.output is not None else None)
    if args.output is not None:
        _io.check_outputs([("--output", args.output)],
                          [("--model", args.model), ("--data", args.data)])
    args.delimiter = delimiter(args)
    model = _io.read_model(args.model)
    table, header = _io.read_array(args.data, "--data", args.delimiter, args.header)
    X = _io.model_features(model, table, header, args.data)
    try:
        predictions = gdcore_predict(X, model.w, model.b)
    except ValueError as exc:
        raise CommandError(f"--data file {args.data!r}: {exc}") from None
    k = 1 if model.w.ndim == 1 else model.w.shape[1]
    target = model.target_name
    if isinstance(target, list) and len(target) == k and all(isinstance(t, str)
                                                             for t in target):
        names = list(target)
    elif isinstance(target, str) and k == 1:
        names = [target]
    else:
        names = ["prediction"] if k == 1 else [f"prediction{i}" for i in range(k)]
    if output is None:
        rows = predictions.reshape(predictions.shape[0], -1)
        sys.stdout.write("".join(",".join(repr(float(v)) for v in row) + "\n"
                                 for row in rows))
        return 0
    _io.write_predictions(output, predictions, names)
    print(f"wrote {output}: {predictions.shape[0]:,} predictions of {', '.join(names)} "
          f"from {len(model.feature_names)} features")
    return 0


DEMO_EXAMPLES = """\
examples:
  {prog} demo                          # list the walk-throughs
  {prog} demo gd-sgd                   # run walk-through 1 (or: {prog} demo 1)
  {prog} demo brute-force --plot-dir pictures   # also save its pictures (needs matplotlib)
"""

#: walk-through name -> its script in examples/
DEMOS = {"gd-sgd": "1_gd_and_sgd.py", "by-hand": "2_one_step_by_hand.py",
         "loss-over-w": "3_loss_over_w.py", "brute-force": "4_brute_force.py"}


def examples_dir() -> Path:
    """Where the example scripts are: installed with the package (setup.py
    copies them in), or in the ``examples/`` folder of a source checkout."""
    here = Path(__file__).resolve().parent
    for folder in (here / "examples", here.parent.parent / "examples"):
        if (folder / DEMOS["gd-sgd"]).is_file():
            return folder
    raise CommandError("the walk-throughs (gdcore's examples/ scripts) are not installed "
                       "with this copy of gdcore")


def _title(script: Path) -> str:
    """The first line of a script's docstring, after ``Tutorial N:``."""
    docstring = ast.get_docstring(ast.parse(script.read_text(encoding="utf-8"))) or ""
    return docstring.split("\n", 1)[0].split(": ", 1)[-1]


def build_demo_parser(prog: str) -> argparse.ArgumentParser:
    folder = examples_dir()
    names = "\n".join(f"  {number}  {name:<12} {_title(folder / script)}"
                      for number, (name, script) in enumerate(DEMOS.items(), start=1))
    parser = OneLineParser(
        prog=f"{prog} demo",
        description="Run the walk-throughs of the four tutorials gdcore grew from (the "
                    "scripts of gdcore's examples/ folder): each prints the tutorial's "
                    "numbers, computed by gdcore.\n\nwalk-throughs:\n" + names,
        epilog=DEMO_EXAMPLES.format(prog=prog),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", nargs="?", metavar="NAME",
                        help="walk-through to run, by name or number (none: list them)")
    parser.add_argument("--plot-dir", metavar="DIR",
                        help="save the walk-through's pictures (PNG) in DIR")
    return parser


def demo(argv: Sequence[str], prog: str) -> int:
    parser = build_demo_parser(prog)
    args = parser.parse_args(argv)
    folder = examples_dir()
    if args.name is None:
        print("walk-throughs of the tutorials gdcore grew from:")
        for number, (name, file) in enumerate(DEMOS.items(), start=1):
            print(f"  {number}  {name:<12} {_title(folder / file)}")
        print(f"run one with: {prog} demo NAME   (NAME or its number)")
        return 0
    names = list(DEMOS)
    name = names[int(args.name) - 1] if args.name in {str(i + 1) for i in range(len(names))} \
        else args.name
    if name not in DEMOS:
        raise CommandError(f"no walk-through called {args.name!r}; choose one of "
                           f"{', '.join(names)} (or 1 to {len(names)})")
    script = folder / DEMOS[name]
    if args.plot_dir is not None:
        from .plotting import _figure_class

        _figure_class()             # matplotlib missing: say so before any work
        if os.path.exists(args.plot_dir) and not os.path.isdir(args.plot_dir):
            raise CommandError(f"--plot-dir {args.plot_dir!r} exists and is not a directory")
        try:
            Path(args.plot_dir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CommandError(f"--plot-dir: cannot create {args.plot_dir!r}: "
                               f"{exc.strerror or exc}") from None
        if not os.access(args.plot_dir, os.W_OK | os.X_OK):
            raise CommandError(f"--plot-dir {args.plot_dir!r} is not writable")
    saved = sys.argv
    sys.argv = [str(script)] + ([args.plot_dir] if args.plot_dir is not None else [])
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = saved
    return 0


#: What a command reports in one line with exit status 2: bad input of
#: every kind (a file, a value, a size the machine cannot hold, a missing
#: optional dependency).
BAD_INPUT = (CommandError, TypeError, ValueError, ImportError, OSError, MemoryError)

#: The flags of ``train`` for the arguments of gdcore.fit, by name.
TRAIN_FLAGS = {record.name: record.flag for record in _options.ALL.values() if record.flag}


def one_line(exc: BaseException, flags: dict[str, str]) -> str:
    """The message of ``exc`` on one line; an error of a gdcore function,
    which names its argument first, is prefixed with that argument's flag."""
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror and \
        exc.filename is None and str(exc).startswith("[Errno") else str(exc)
    message = " ".join(text.split()) or type(exc).__name__
    flag = flags.get(re.match(r"\w*", message).group())  # type: ignore[union-attr]
    if not isinstance(exc, CommandError) and flag and not message.startswith(flag):
        message = f"{flag}: {message}"
    return message


def stop_quietly_on_broken_pipe() -> int:
    """The reader went away (``... | head``): stop quietly, as cat would."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 1


def one_line_warnings(prefix: str) -> None:
    """Show every warning as one line on standard error, ``PREFIX: warning:
    MESSAGE`` (no source line); call inside ``warnings.catch_warnings()``."""
    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: Any = None, line: str | None = None) -> None:
        text = " ".join(str(message).split())
        print(f"{prefix}: warning: {text}", file=sys.stderr)
    warnings.showwarning = show


def main(argv: Sequence[str]) -> int:
    """Run ``argv[0]`` (``train``, ``predict`` or ``demo``) with the rest of ``argv``."""
    prog = program_name()
    command, rest = argv[0], list(argv[1:])
    try:
        with warnings.catch_warnings():
            one_line_warnings(f"{prog} {command}")
            return {"train": train, "predict": predict, "demo": demo}[command](rest, prog)
    except DivergenceError as exc:
        print(f"{prog} {command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # Ctrl-C: the kernels stop within milliseconds; every file is whole
        print(f"{prog} {command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return stop_quietly_on_broken_pipe()
    except BAD_INPUT as exc:
        print(f"{prog} {command}: error: {one_line(exc, TRAIN_FLAGS)}", file=sys.stderr)
        return 2


__all__ = ["BAD_INPUT", "COMMANDS", "main", "one_line"]
