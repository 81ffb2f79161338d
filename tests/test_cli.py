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
