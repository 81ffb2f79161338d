"""``python -m gdcore``: train a built-in synthetic regression with each method.

Makes ``y = X @ w_true + bias + noise`` with :func:`gdcore.make_regression`,
trains it with full-batch, per-sample and mini-batch gradient descent, and
prints one line per method: epochs, final full-data loss, distance of the
learned weights to ``w_true``, seconds and samples per second.

Three commands do more (see :mod:`gdcore._cli`): ``python -m gdcore train``
trains on your data (``.npy`` / ``.csv``) or a synthetic problem with any
option of :func:`gdcore.fit` and saves the result (a model file),
``python -m gdcore predict`` predicts with a model file, and ``python -m gdcore demo``
runs the walk-throughs of the tutorials (the scripts of ``examples/``). The
same is installed as the ``gdcore`` command.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import numpy as np

from . import DivergenceError, __version__, _io, _options, _validation, fit, value_and_grad
from ._api import backend_named
from ._cli import (
    BAD_INPUT,
    COMMANDS,
    OneLineParser,
    non_negative_integer,
    one_line,
    positive_integer,
    program_name,
    stop_quietly_on_broken_pipe,
)
from ._cli import main as run_command
from ._dispatch import KERNELS_NAME, OPENMP, max_threads

#: Learning rates that converge on standard-normal features (mse): full-batch
#: steps may be large; a per-sample step must stay below about 1/n_features.
DEFAULT_LR = {"batch": 0.4, "sgd": 0.001, "minibatch": 0.01}

EXAMPLES = """\
commands (each has its own --help):
  train   train on .npy/.csv data or a synthetic problem, with any option of
          gdcore.fit; save w, b and the history (.json/.npz) and the loss curve
  predict predict with a model file of train -o on the samples of a .csv/.npy file
  demo    list, or run, the walk-throughs of the four tutorials

examples:
  {prog}                              # 1,000,000 x 100, all three methods
  {prog} --method sgd --epochs 2      # per-sample SGD only
  {prog} -n 200000 -d 20 --batch-size 256 --lr 0.05
  {prog} demo                         # list the walk-throughs
  {prog} demo gd-sgd                  # full-batch GD, then per-sample SGD, on y = 2x
  {prog} train --X X.npy --y y.npy --method batch --lr 0.4 --epochs 50 -o model.json
  {prog} train --data table.csv --target price --plot loss.png -o model.json
  {prog} predict --model model.json --data new.csv -o predictions.csv
  {prog} --version
"""


def build_parser() -> argparse.ArgumentParser:
    prog = program_name()
    parser = OneLineParser(
        prog=prog,
        usage=f"{prog} [options]            (the timing table)\n"
              f"       {prog} train [options]      (see {prog} train --help)\n"
              f"       {prog} predict --model FILE --data FILE [-o FILE]\n"
              f"       {prog} demo [NAME]          (see {prog} demo --help)",
        description="Without a command: train a synthetic linear regression by gradient "
                    "descent with each method and print a timing table.",
        epilog=EXAMPLES.format(prog=prog),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"gdcore {__version__}",
                        help="print gdcore's version and exit")
    parser.add_argument("-n", "--n-samples", type=positive_integer, default=1_000_000,
                        help="samples (default 1,000,000)")
    parser.add_argument("-d", "--n-features", type=positive_integer, default=100,
                        help="features (default 100)")
    parser.add_argument("--method", choices=("all", "batch", "sgd", "minibatch"),
                        default="all", help="which method to run (default all)")
    parser.add_argument("--batch-size", type=positive_integer, default=32,
                        help="mini-batch size (default 32)")
    parser.add_argument("--lr", type=_options.number, default=None,
                        help="learning rate (default per method: "
                             + ", ".join(f"{m} {v}" for m, v in DEFAULT_LR.items()) + ")")
    parser.add_argument("--epochs", type=non_negative_integer, default=5,
                        help="epochs per method (default 5)")
    parser.add_argument("--loss", choices=("mse", "half_mse"), default="mse")
    parser.add_argument("--noise", type=_options.number, default=0.1,
                        help="noise standard deviation (default 0.1)")
    parser.add_argument("--seed", type=non_negative_integer, default=0,
                        help="seed of the data and the shuffling (default 0)")
    parser.add_argument("--no-shuffle", action="store_true",
                        help="visit samples in order instead of a fresh permutation")
    parser.add_argument("--backend", choices=("cython", "reference"), default="cython",
                        help="reference is plain Python: use a small -n with it")
    parser.add_argument("--threads", type=positive_integer, default=None,
                        help="threads for the full-data gradient (default all)")
    return parser


#: The flags of the timing table for the arguments its checks name.
FLAGS = {"n_samples": "-n/--n-samples", "n_features": "-d/--n-features",
         "batch_size": "--batch-size", "lr": "--lr", "epochs": "--epochs", "noise": "--noise",
         "seed": "--seed", "n_threads": "--threads", "backend": "--backend", "loss": "--loss"}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the timing table, or the command (``train``, ``demo``) that ``argv`` starts with."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    if arguments and arguments[0] in COMMANDS:
        return run_command(arguments)
    args = build_parser().parse_args(arguments)
    try:
        return timing_table(args)
    except KeyboardInterrupt:
        # Ctrl-C: the kernels and make_regression stop within milliseconds
        print(f"{program_name()}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return stop_quietly_on_broken_pipe()
    except BAD_INPUT as exc:
        print(f"{program_name()}: error: {one_line(exc, FLAGS)}", file=sys.stderr)
        return 2


def timing_table(args: argparse.Namespace) -> int:
    """Make the data, train with each method, print the table. Bad values are
    refused by the checks of make_regression and fit before any work."""
    methods = ("batch", "sgd", "minibatch") if args.method == "all" else (args.method,)
    for method in methods:
        _options.Config(method=method, batch_size=args.batch_size,
                        lr=args.lr if args.lr is not None else DEFAULT_LR[method],
                        epochs=args.epochs, loss=args.loss, shuffle=not args.no_shuffle,
                        seed=args.seed, backend=args.backend, n_threads=args.threads)
    _validation.check_regression(args.n_samples, args.n_features, args.noise, 0.5, args.seed)
    backend_named(args.backend)             # not built: say so before making the data

    started = time.perf_counter()
    X, y, w_true = _io.synthetic(args.n_samples, args.n_features, args.noise, 0.5, args.seed)
    made = time.perf_counter() - started
    print(f"data: {args.n_samples:,} x {args.n_features} float64 "
          f"({X.nbytes / 1e6:,.0f} MB), noise {args.noise}, made in {made:.2f} s; "
          f"backend {args.backend} ({KERNELS_NAME} kernels), OpenMP {'on' if OPENMP else 'off'} "
          f"({args.threads or max_threads()} threads for full batch)")

    header = (f"{'method':<10} {'batch':>7} {'lr':>7} {'epochs':>6} {'final loss':>12} "
              f"{'|w - w_true|':>12} {'seconds':>8} {'samples/s':>11}")
    print(header)
    print("-" * len(header))
    status = 0
    for method in methods:
        lr = args.lr if args.lr is not None else DEFAULT_LR[method]
        batch = {"batch": args.n_samples, "sgd": 1}.get(method, args.batch_size)
        t0 = time.perf_counter()
        try:
            result = fit(X, y, method=method, batch_size=args.batch_size, lr=lr,
                         epochs=args.epochs, loss=args.loss, shuffle=not args.no_shuffle,
                         seed=args.seed, backend=args.backend, n_threads=args.threads)
        except DivergenceError as exc:
            print(f"{method:<10} {batch:>7} {lr:>7g} diverged: {exc}")
            status = 1
            continue
        seconds = time.perf_counter() - t0
        final_loss = value_and_grad(X, y, result.w, result.b, loss=args.loss,
                                    backend=args.backend)[0]
        distance = float(np.linalg.norm(result.w - w_true))
        rate = args.n_samples * args.epochs / seconds if seconds > 0 else float("inf")
        print(f"{method:<10} {min(batch, args.n_samples):>7} {lr:>7g} {args.epochs:>6} "
              f"{final_loss:>12.6g} {distance:>12.4g} {seconds:>8.3f} {rate:>11.3g}")
    return status


if __name__ == "__main__":
    sys.exit(main())
