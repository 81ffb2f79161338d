"""``python -m gdcore predict``: a model file of ``train -o`` applied to new
samples, columns matched by name; ``python -m gdcore --version``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import gdcore
from gdcore import __main__ as command_line
from gdcore import _options


def _run(capsys, *args):
    """Run a command in this process: (exit status, stdout, stderr)."""
    try:
        status = command_line.main([*map(str, args)])
    except SystemExit as exc:          # argparse errors, --help, --version
        status = exc.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _one_line_error(status, stderr, *words):
    assert status == 2
    assert stderr.count("\n") == 1 and "Traceback" not in stderr, stderr
    assert stderr.startswith("python -m gdcore predict: error: "), stderr
    for word in words:
        assert word in stderr, stderr


def _csv(path, table, header=None):
    np.savetxt(path, table, delimiter=",", header=",".join(header) if header else "",
               comments="", fmt="%.17g")


@pytest.fixture
def houses(tmp_path, capsys):
    """A table with a header (features size, age, rooms; target price) and a
    model trained on it by the command line."""
    X, y, _ = gdcore.make_regression(200, 3, noise=0.1, bias=2.0, seed=5)
    _csv(tmp_path / "houses.csv", np.c_[X[:, 0], y, X[:, 1:]], ["size", "price", "age", "rooms"])
    model = tmp_path / "model.json"
    status, _, stderr = _run(capsys, "train", "--data",
                             tmp_path / "houses.csv", "--target", "price", "--method",
                             "batch", "--lr", "0.3", "--epochs", "100", "-q", "-o", model)
    assert status == 0, stderr
    record = json.loads(model.read_text())
    return X, y, record


def _expected(record, X):
    return X @ np.asarray(record["w"]) + record["b"]


def test_the_model_file_records_names_options_and_version(houses):
    _, _, record = houses
    assert record["format"] == "gdcore-model-1"
    assert record["gdcore_version"] == gdcore.__version__
    assert record["feature_names"] == ["size", "age", "rooms"]
    assert record["feature_names_from_header"] is True
    assert record["target_name"] == "price"
    # every option of the table, so options added later appear without code
    assert list(record["options"]) == [option.name for option in _options.OPTIONS]
    assert record["options"]["lr"] == 0.3 and record["options"]["restore_best"] is False


def test_predict_matches_columns_by_name(tmp_path, capsys, houses):
    X, _, record = houses
    _csv(tmp_path / "new.csv", X[:7, [2, 0, 1]], ["rooms", "size", "age"])
    status, stdout, stderr = _run(capsys, "predict", "--model", tmp_path / "model.json",
                                  "--data", tmp_path / "new.csv")
    assert status == 0, stderr
    printed = np.array([float(line) for line in stdout.splitlines()])
    np.testing.assert_array_equal(printed, _expected(record, X[:7]))
    # to a file: a header naming the target, the same numbers
    out = tmp_path / "pred.csv"
    status, stdout, _ = _run(capsys, "predict", "--model", tmp_path / "model.json", "--data",
                             tmp_path / "new.csv", "-o", out)
    assert status == 0
    assert stdout == f"wrote {out}: 7 predictions of price from 3 features\n"
    lines = out.read_text().splitlines()
    assert lines[0] == "price"
    np.testing.assert_array_equal([float(v) for v in lines[1:]], printed)
    # the training table itself (its target column is ignored)
    status, stdout, _ = _run(capsys, "predict", "--model", tmp_path / "model.json",
                             "--data", tmp_path / "houses.csv", "-o", tmp_path / "all.npy")
    assert status == 0
    np.testing.assert_allclose(np.load(tmp_path / "all.npy"), _expected(record, X),
                               rtol=1e-14)


@pytest.mark.parametrize("header, words", [
    (["rooms", "size"], ["lacks the model's feature column(s) age"]),
    (["rooms", "size", "age", "floors"], ["has column(s) floors the model was not trained on"]),
    (["rooms", "size", "size"], ["names the column(s) size twice"]),
])
def test_columns_that_do_not_match_are_one_line(tmp_path, capsys, houses, header, words):
    X, _, _ = houses
    table = np.c_[X[:4], X[:4, :1]][:, :len(header)]
    _csv(tmp_path / "new.csv", table, header)
    status, _, stderr = _run(capsys, "predict", "--model", tmp_path / "model.json",
                             "--data", tmp_path / "new.csv", "-o", tmp_path / "p.csv")
    _one_line_error(status, stderr, "--data file", *words)
    assert not (tmp_path / "p.csv").exists()


def test_without_names_columns_go_by_position(tmp_path, capsys):
    """A model trained from .npy files has x0.. names: the data must have its
    number of columns (a model trained with --data may also get the table with
    its target column, which is dropped)."""
    X, y, _ = gdcore.make_regression(100, 2, seed=1)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    assert _run(capsys, "train", "--X", tmp_path / "X.npy", "--y", tmp_path / "y.npy",
                "-q", "-o", tmp_path / "m.npz")[0] == 0
    saved = np.load(tmp_path / "m.npz")
    meta = json.loads(str(saved["meta"]))
    assert meta["feature_names"] == ["x0", "x1"]
    status, stdout, _ = _run(capsys, "predict", "--model", tmp_path / "m.npz", "--data",
                             tmp_path / "X.npy")
    assert status == 0
    np.testing.assert_array_equal([float(v) for v in stdout.split()],
                                  X @ saved["w"] + saved["b"])
    np.save(tmp_path / "wide.npy", np.c_[X, X])
    status, _, stderr = _run(capsys, "predict", "--model", tmp_path / "m.npz", "--data",
                             tmp_path / "wide.npy")
    _one_line_error(status, stderr, "has 4 column(s); the model has 2 feature(s) (x0, x1)")
    # trained on a header-less table with --data: the same table predicts
    _csv(tmp_path / "table.csv", np.c_[X[:, 0], y, X[:, 1]])
    assert _run(capsys, "train", "--data", tmp_path / "table.csv", "--target", "1", "-q",
                "-o", tmp_path / "t.json")[0] == 0
    record = json.loads((tmp_path / "t.json").read_text())
    status, stdout, _ = _run(capsys, "predict", "--model", tmp_path / "t.json", "--data",
                             tmp_path / "table.csv")
    assert status == 0
    np.testing.assert_allclose([float(v) for v in stdout.split()], _expected(record, X),
                               rtol=1e-14)


def test_several_outputs(tmp_path, capsys):
    X, y, _ = gdcore.make_regression(80, 2, seed=2)
    np.save(tmp_path / "X.npy", X)
    _csv(tmp_path / "Y.csv", np.c_[y, -y], ["up", "down"])
    assert _run(capsys, "train", "--X", tmp_path / "X.npy", "--y", tmp_path / "Y.csv", "-q",
                "-o", tmp_path / "m.json")[0] == 0
    status, _, stderr = _run(capsys, "predict", "--model", tmp_path / "m.json", "--data",
                             tmp_path / "X.npy", "-o", tmp_path / "p.csv")
    assert status == 0, stderr
    lines = (tmp_path / "p.csv").read_text().splitlines()
    assert lines[0] == "up,down" and len(lines) == 81
    record = json.loads((tmp_path / "m.json").read_text())
    np.testing.assert_array_equal([[float(v) for v in line.split(",")] for line in lines[1:]],
                                  _expected(record, X))


@pytest.mark.parametrize("content, words", [
    (None, ["--model file", "does not exist"]),
    ("{not json", ["cannot read --model file"]),
    ('{"a": 1}', ["is not a model file of gdcore train -o"]),
    ('{"w": [1, "x"], "b": 0}', ["its w and b are not numbers"]),
    ('{"w": [1, 2], "b": [0, 1]}', ["are not the finite parameters of a linear model"]),
    ('{"w": [1, null], "b": 0}', ["not the finite parameters"]),
])
def test_bad_model_files_are_one_line(tmp_path, capsys, content, words):
    model = tmp_path / "model.json"
    if content is not None:
        model.write_text(content)
    np.save(tmp_path / "X.npy", np.ones((3, 2)))
    status, _, stderr = _run(capsys, "predict", "--model", model, "--data", tmp_path / "X.npy")
    _one_line_error(status, stderr, *words)


def test_bad_data_and_outputs_are_one_line(tmp_path, capsys, houses):
    X, _, _ = houses
    model = tmp_path / "model.json"
    _csv(tmp_path / "nan.csv", np.c_[X[:3, 0], [1.0, np.nan, 2.0], X[:3, 2]],
         ["size", "age", "rooms"])
    cases = [
        (["--data", tmp_path / "nan.csv"], ["--data file", "finite"]),
        (["--data", tmp_path / "missing.csv"], ["does not exist"]),
        (["--data", tmp_path / "houses.csv", "-o", tmp_path / "p.txt"], [".csv or .npy"]),
        (["--data", tmp_path / "houses.csv", "-o", tmp_path / "houses.csv"],
         ["two different files"]),
        (["--data", tmp_path / "houses.csv", "-o", tmp_path / "no" / "p.csv"],
         ["does not exist"]),
    ]
    for args, words in cases:
        status, _, stderr = _run(capsys, "predict", "--model", model, *args)
        _one_line_error(status, stderr, *words)
    status, _, stderr = _run(capsys, "predict", "--data", tmp_path / "houses.csv")
    assert status == 2 and "--model" in stderr and stderr.count("\n") == 1


def test_the_output_is_replaced_whole(tmp_path, capsys, houses):
    out = tmp_path / "p.csv"
    out.write_text("old\n")
    status, _, _ = _run(capsys, "predict", "--model", tmp_path / "model.json", "--data",
                        tmp_path / "houses.csv", "-o", out)
    assert status == 0
    assert out.read_text().splitlines()[0] == "price"
    assert sorted(os.listdir(tmp_path)) == ["houses.csv", "model.json", "p.csv"]


def test_version(capsys):
    status, stdout, _ = _run(capsys, "--version")
    assert status == 0 and stdout == f"gdcore {gdcore.__version__}\n"
    done = subprocess.run([sys.executable, "-m", "gdcore", "--version"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and done.stdout == f"gdcore {gdcore.__version__}\n"
