"""``python -m gdcore``: the command-line demo runs, helps, and refuses bad options."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _run(tmp_path, *args):
    # Run from an empty directory so nothing but the installed package is imported.
    return subprocess.run([sys.executable, "-m", "gdcore", *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)


def test_small_run_prints_a_table_of_the_three_methods(tmp_path):
    """A small run exits 0 and prints one table row per method."""
    done = _run(tmp_path, "-n", "2000", "-d", "5", "--epochs", "2")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["method"])
    rows = [line.split()[0] for line in lines[header + 1:] if line.strip()
            and not set(line.strip()) <= {"-"}]
    assert rows == ["batch", "sgd", "minibatch"]
    assert "diverged" not in done.stdout


def test_single_method_and_reference_backend(tmp_path):
    done = _run(tmp_path, "-n", "300", "-d", "3", "--epochs", "1", "--method", "sgd",
                "--backend", "reference", "--no-shuffle")
    assert done.returncode == 0, done.stderr
    assert "sgd" in done.stdout
    assert "minibatch" not in done.stdout


def test_divergence_is_reported_with_nonzero_status(tmp_path):
    done = _run(tmp_path, "-n", "500", "-d", "3", "--epochs", "50", "--method", "batch",
                "--lr", "1000")
    assert done.returncode != 0
    assert "diverged" in done.stdout


def test_help(tmp_path):
    done = _run(tmp_path, "--help")
    assert done.returncode == 0
    assert "usage" in done.stdout.lower()
    assert "--epochs" in done.stdout and "--batch-size" in done.stdout


@pytest.mark.parametrize("args", [["--no-such-option"], ["-n", "0"], ["-n", "many"],
                                  ["--method", "newton"], ["--epochs", "-1"],
                                  ["--loss", "mae"]])
def test_bad_option_exits_nonzero(tmp_path, args):
    done = _run(tmp_path, *args)
    assert done.returncode != 0
    assert done.stderr.strip()


# Every bad value of the timing command is one line and exit 2, before the
# data are made (it used to print a traceback, exit 1).
TIMING_BAD = [
    (["--lr", "-1"], "--lr: lr must be a positive number; got -1.0"),
    (["--lr", "nan"], "argument --lr: must be a finite number; got nan"),
    (["--lr", "inf"], "argument --lr: must be a finite number; got inf"),
    (["--noise", "-1"], "--noise: noise must be >= 0"),
    (["--noise", "nan"], "argument --noise: must be a finite number"),
    (["--threads", "5000"], "--threads: n_threads must be an integer in [1, 1024]; got 5000"),
    (["--epochs", "10" * 12], "--epochs: epochs must be an integer in [0, "),
    (["-n", "many"], "argument -n/--n-samples: must be an integer; got 'many'"),
    (["--batch-size", "0"], "argument --batch-size: must be an integer >= 1; got 0"),
    (["-n", "1000000000000"], "-n/--n-samples 1000000000000 and -d/--n-features 100: "
                              "808 TB of memory needed"),
]


@pytest.mark.parametrize("args,message", TIMING_BAD, ids=[" ".join(a) for a, _ in TIMING_BAD])
def test_timing_command_bad_values_are_one_line(capsys, monkeypatch, args, message):
    from gdcore import __main__ as command_line

    if args[0] != "-n":
        monkeypatch.setattr(command_line._io, "synthetic",
                            lambda *a: pytest.fail("made the data"))
    try:
        status = command_line.main(args)
    except SystemExit as exc:                       # argparse's own errors
        status = exc.code
    captured = capsys.readouterr()
    assert status == 2 and captured.out == ""
    assert captured.err.startswith("python -m gdcore: error: ")
    assert message in captured.err
    assert len(captured.err.strip().splitlines()) == 1


def test_timing_command_without_the_compiled_kernels_is_one_line(capsys, monkeypatch):
    from gdcore import __main__ as command_line
    from gdcore import _dispatch

    def missing():
        raise ImportError("gdcore's compiled kernels are not built")

    monkeypatch.setattr(_dispatch, "require", missing)
    assert command_line.main(["-n", "10", "-d", "2"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "compiled kernels are not built" in captured.err
