"""``python -m gdcore train``: data from .npy / .csv files or a synthetic
problem, every gdcore.fit option, JSON / .npz output, --plot, and one-line
errors with a non-zero exit for bad files and options."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import gdcore
from gdcore import __main__ as command_line
from gdcore import _options


def _train(capsys, *args):
    """Run ``train`` in this process: (exit status, stdout, stderr)."""
    try:
        status = command_line.main(["train", *map(str, args)])
    except SystemExit as exc:          # argparse errors and --help
        status = exc.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _subprocess(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "gdcore", *map(str, args)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def data(tmp_path):
    """A small problem saved every way train reads it."""
    X, y, w_true = gdcore.make_regression(300, 3, noise=0.1, bias=0.5, seed=1)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    np.savetxt(tmp_path / "X.csv", X, delimiter=",")
    np.savetxt(tmp_path / "y_column.csv", y[:, None], delimiter=",")
    np.savetxt(tmp_path / "table.csv", np.column_stack([X[:, 0], y, X[:, 1:]]),
               delimiter=",", header="a,price,b,c", comments="")
    np.savetxt(tmp_path / "table_semicolon.csv", np.column_stack([X, y]), delimiter=";")
    return X, y, w_true


def _defaults():
    """Every option of the table with its default, as a model file holds it."""
    return {record.name: record.default for record in _options.OPTIONS}


def _json(path):
    with open(path) as handle:
        return json.load(handle)


# ---------------------------------------------------------------------------
# Reading data, training, writing results
# ---------------------------------------------------------------------------

def test_npy_files_to_json_match_fit(tmp_path, capsys, data):
    X, y, _ = data
    out = tmp_path / "model.json"
    status, stdout, stderr = _train(capsys, "--X", tmp_path / "X.npy", "--y",
                                    tmp_path / "y.npy", "--method", "batch", "--lr", "0.4",
                                    "--epochs", "20", "-o", out)
    assert status == 0, stderr
    expected = gdcore.fit(X, y, method="batch", lr=0.4, epochs=20)
    record = _json(out)
    assert record["w"] == expected.w.tolist() and record["b"] == expected.b
    assert record["history"] == expected.history.tolist()
    assert record["epochs_run"] == 20 and record["method"] == "batch"
    # every option of the table: as given, or its default
    assert record["options"] == {**_defaults(), "method": "batch", "lr": 0.4, "epochs": 20}
    assert record["gdcore_version"] == gdcore.__version__
    assert record["feature_names"] == ["x0", "x1", "x2"]
    assert record["feature_names_from_header"] is False
    assert record["data"]["n_samples"] == 300 and record["data"]["n_features"] == 3
    assert record["final_loss"] == pytest.approx(
        gdcore.value_and_grad(X, y, expected.w, expected.b)[0], rel=1e-15)
    assert "300 samples x 3 features" in stdout and f"wrote {out}" in stdout


def test_csv_table_with_named_target_to_npz(tmp_path, capsys, data):
    X, y, _ = data
    out = tmp_path / "model.npz"
    status, stdout, stderr = _train(capsys, "--data", tmp_path / "table.csv", "--target",
                                    "price", "--epochs", "3", "--seed", "2", "-o", out)
    assert status == 0, stderr
    expected = gdcore.fit(np.loadtxt(tmp_path / "X.csv", delimiter=","),
                          np.loadtxt(tmp_path / "y_column.csv"), epochs=3, seed=2)
    saved = np.load(out)
    np.testing.assert_allclose(saved["w"], expected.w, rtol=1e-12)
    assert float(saved["b"]) == pytest.approx(expected.b, rel=1e-12)
    np.testing.assert_allclose(saved["history"], expected.history, rtol=1e-12)
    meta = json.loads(str(saved["meta"]))
    assert meta["data"]["target_name"] == "price" and meta["data"]["target_column"] == 1
    assert meta["options"] == {**_defaults(), "epochs": 3, "seed": 2}
    assert meta["feature_names"] == ["a", "b", "c"] and meta["target_name"] == "price"
    assert meta["feature_names_from_header"] is True
    assert "target column 1 (price)" in stdout


def test_csv_files_target_index_delimiter_and_column_vector(tmp_path, capsys, data):
    X, y, _ = data
    options = ["--method", "sgd", "--lr", "0.01", "--epochs", "2", "--no-shuffle"]
    out1, out2 = tmp_path / "a.json", tmp_path / "b.json"
    assert _train(capsys, "--X", tmp_path / "X.csv", "--y", tmp_path / "y_column.csv",
                  *options, "-o", out1)[0] == 0
    assert _train(capsys, "--data", tmp_path / "table_semicolon.csv", "--delimiter", ";",
                  "--target", "3", *options, "-o", out2)[0] == 0
    expected = gdcore.fit(X, y, method="sgd", lr=0.01, epochs=2, shuffle=False)
    np.savetxt(tmp_path / "table_tabs.csv", np.column_stack([X, y]), delimiter="\t")
    out3 = tmp_path / "c.json"
    assert _train(capsys, "--data", tmp_path / "table_tabs.csv", "--delimiter", "\\t",
                  *options, "-o", out3)[0] == 0
    for out in (out1, out2, out3):
        np.testing.assert_allclose(_json(out)["w"], expected.w, rtol=1e-12)


def test_several_outputs(tmp_path, capsys, data):
    """A --y file with k columns trains k outputs at once, as gdcore.fit does."""
    X, y, _ = data
    Y = np.column_stack([y, 2 * y - 1])
    np.save(tmp_path / "Y.npy", Y)
    out = tmp_path / "m.json"
    status, stdout, stderr = _train(capsys, "--X", tmp_path / "X.npy", "--y",
                                    tmp_path / "Y.npy", "--method", "batch", "--lr", "0.4",
                                    "--epochs", "10", "-o", out)
    assert status == 0, stderr
    expected = gdcore.fit(X, Y, method="batch", lr=0.4, epochs=10)
    record = _json(out)
    np.testing.assert_array_equal(record["w"], expected.w)
    np.testing.assert_array_equal(record["b"], expected.b)
    assert np.shape(record["w"]) == (3, 2)


def test_one_feature_npy(tmp_path, capsys):
    x = np.arange(-1.0, 5.0)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", 2 * x - 1)
    out = tmp_path / "m.json"
    status, stdout, _ = _train(capsys, "--X", tmp_path / "x.npy", "--y", tmp_path / "y.npy",
                               "--method", "batch", "--lr", "0.01", "--epochs", "50",
                               "--w0", "8", "--b0", "-1", "--no-intercept", "-o", out)
    assert status == 0
    record = _json(out)
    q = 1 - 0.31 / 3                        # tutorial 3: w_50 = 2 + 6 q**50, b stays -1
    assert record["w"][0] == pytest.approx(2 + 6 * q ** 50, rel=1e-13)
    assert record["b"] == -1.0
    assert record["history"][0] == 186.0
    assert "6 samples x 1 features" in stdout


def test_synthetic_problem_and_every_common_option(tmp_path, capsys):
    out = tmp_path / "m.json"
    status, stdout, stderr = _train(
        capsys, "-n", "400", "-d", "4", "--noise", "0.2", "--bias", "1.5", "--data-seed", "3",
        "--method", "minibatch", "--batch-size", "16", "--lr", "0.05", "--epochs", "4",
        "--w0", "0.1,0.2,0.3,0.4", "--b0", "0.5", "--loss", "half_mse", "--seed", "9",
        "--backend", "reference", "--threads", "1", "-o", out)
    assert status == 0, stderr
    X, y, w_true = gdcore.make_regression(400, 4, noise=0.2, bias=1.5, seed=3)
    expected = gdcore.fit(X, y, method="minibatch", batch_size=16, lr=0.05, epochs=4,
                          w0=[0.1, 0.2, 0.3, 0.4], b0=0.5, loss="half_mse", seed=9,
                          backend="reference", n_threads=1)
    record = _json(out)
    assert record["w"] == expected.w.tolist() and record["b"] == expected.b
    assert record["backend"] == "reference" and record["batch_size"] == 16
    np.testing.assert_allclose(record["w_true"], w_true)
    assert "|w - w_true|" in stdout


def test_training_options_of_the_new_fit_reach_fit(tmp_path, capsys, data):
    """Momentum, penalties, schedule, averaging, sample weights, early stopping,
    validation split: the same result as gdcore.fit with those keywords."""
    X, y, _ = data
    weights = np.linspace(0.5, 1.5, 300)
    np.save(tmp_path / "weights.npy", weights)
    out = tmp_path / "m.json"
    status, _, stderr = _train(
        capsys, "--X", tmp_path / "X.npy", "--y", tmp_path / "y.npy", "--epochs", "6",
        "--lr", "0.02", "--momentum", "0.5", "--weight-decay", "0.01", "--l1", "0.001",
        "--schedule", "step:step_size=2,gamma=0.5", "--average", "--sample-weight",
        tmp_path / "weights.npy", "--tol", "1e-9", "--validation-fraction", "0.2",
        "--on-divergence", "stop", "--seed", "4", "-o", out)
    assert status == 0, stderr
    expected = gdcore.fit(X, y, epochs=6, lr=0.02, momentum=0.5, weight_decay=0.01,
                          l1=0.001, schedule=gdcore.schedules.StepDecay(step_size=2,
                                                                        gamma=0.5),
                          average=True, sample_weight=weights, tol=1e-9,
                          validation_fraction=0.2, on_divergence="stop", seed=4)
    record = _json(out)
    np.testing.assert_array_equal(record["w"], expected.w)
    np.testing.assert_array_equal(record["val_loss"], expected.val_loss)
    assert record["options"]["schedule"] == "StepDecay(step_size=2, gamma=0.5)"


def test_copy_and_shuffle_block_reach_fit(tmp_path, capsys, data):
    X, y, _ = data
    out = tmp_path / "m.json"
    status, _, stderr = _train(capsys, "--X", tmp_path / "X.npy", "--y", tmp_path / "y.npy",
                               "--epochs", "2", "--seed", "5", "--shuffle-block", "7",
                               "--no-copy", "-o", out)
    assert status == 0, stderr
    expected = gdcore.fit(X, y, epochs=2, seed=5, shuffle_block=7, copy=False)
    np.testing.assert_array_equal(_json(out)["w"], expected.w)
    np.save(tmp_path / "X16.npy", X.astype(np.float16))    # float32 is read as it is
    status, _, stderr = _train(capsys, "--X", tmp_path / "X16.npy", "--y",
                               tmp_path / "y.npy", "--no-copy")
    assert status == 2 and "X" in stderr and len(stderr.strip().splitlines()) == 1


def test_help_shows_the_fit_options_and_the_rest(capsys):
    """--help lists the flag of every fit keyword that has one (with its help
    line), the examples, the data and the output options."""
    status, stdout, _ = _train(capsys, "--help")
    assert status == 0
    for record in _options.OPTIONS + _options.DATA_ARGUMENTS:
        if record.flag is not None:
            assert record.flag in stdout, record.name
            assert " ".join(record.help.split()[:4]) in " ".join(stdout.split()), record.name
    assert "examples:" in stdout and "--plot" in stdout and "--output" in stdout
    assert "--data" in stdout and "--target" in stdout


def test_plot_writes_the_loss_curve(tmp_path, capsys, data):
    pytest.importorskip("matplotlib")
    for name in ("loss.png", "loss.svg"):
        status, stdout, stderr = _train(capsys, "--X", tmp_path / "X.npy", "--y",
                                        tmp_path / "y.npy", "--epochs", "5", "--plot",
                                        tmp_path / name, "--smoothing", "0.5",
                                        "--log-scale")
        assert status == 0, stderr
        assert (tmp_path / name).stat().st_size > 1000
        assert f"wrote {tmp_path / name}" in stdout


def test_plot_without_matplotlib_fails_before_training(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    status, stdout, stderr = _train(capsys, "-n", "50", "--plot", tmp_path / "loss.png")
    assert status == 2 and stdout == ""
    assert "needs matplotlib: pip install 'gdcore[plot]'" in stderr
    assert not (tmp_path / "loss.png").exists()


def test_plot_with_no_epochs_is_refused_with_or_without_matplotlib(tmp_path, capsys,
                                                                   monkeypatch):
    # the flags' own error first, not "needs matplotlib" where matplotlib is missing
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    status, stdout, stderr = _train(capsys, "-n", "50", "--epochs", "0", "--plot",
                                    tmp_path / "loss.png")
    assert status == 2 and stdout == ""
    assert stderr == ("python -m gdcore train: error: --plot needs at least one epoch of "
                      "history (--epochs 0 trains nothing)\n")
    assert not (tmp_path / "loss.png").exists()


def test_quiet_prints_nothing(tmp_path, capsys):
    status, stdout, _ = _train(capsys, "-n", "50", "-d", "2", "--epochs", "1", "-q")
    assert status == 0 and stdout == ""


# ---------------------------------------------------------------------------
# Bad files and bad options: one line, non-zero exit, no traceback
# ---------------------------------------------------------------------------

@pytest.fixture
def bad_files(tmp_path):
    (tmp_path / "garbage.npy").write_bytes(b"not an array")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(tmp_path / "strings.npy", np.array(["a", "b"]))
    (tmp_path / "bad.csv").write_text("1,2,3\n4,x,6\n")
    (tmp_path / "empty.csv").write_text("\n\n")
    (tmp_path / "header_only.csv").write_text("a,b,c\n")
    (tmp_path / "one_column.csv").write_text("1\n2\n3\n")
    np.save(tmp_path / "X.npy", np.ones((5, 2)))
    np.save(tmp_path / "y.npy", np.ones(5))
    np.save(tmp_path / "y4.npy", np.ones(4))
    np.save(tmp_path / "cube.npy", np.ones((5, 2, 2)))
    np.save(tmp_path / "X_nan.npy", np.array([[1.0, 2.0], [np.nan, 1.0], [0, 0], [1, 1],
                                              [2, 2]]))
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00\x81")
    np.save(tmp_path / "long.npy", np.arange(1000.0))
    good = (tmp_path / "long.npy").read_bytes()
    # a header whose shape is unbalanced: NumPy's parser raised tokenize.TokenError
    (tmp_path / "bad_header.npy").write_bytes(good.replace(b"(1000,)", b"(10(0,)"))
    (tmp_path / "bad_version.npy").write_bytes(good[:6] + b"\x09\x00" + good[8:])
    (tmp_path / "cut_header.npy").write_bytes(good[:40])
    (tmp_path / "truncated.npy").write_bytes(good[:128 + 800])
    (tmp_path / "folder.npy").mkdir()
    return tmp_path


BAD = [
    (["--X", "missing.npy", "--y", "y.npy"], "--X file 'missing.npy' does not exist"),
    (["--X", "garbage.npy", "--y", "y.npy"], "--X file 'garbage.npy' is not a .npy file"),
    (["--X", "objects.npy", "--y", "y.npy"], "it holds Python objects, not numbers"),
    (["--X", "strings.npy", "--y", "y.npy"], "must hold real numbers; got dtype <U1"),
    (["--X", "folder.npy", "--y", "y.npy"], "--X file 'folder.npy' is a directory"),
    (["--X", "X.txt", "--y", "y.npy"], "--X file must be a .npy or .csv file; got 'X.txt'"),
    (["--X", "bad_header.npy", "--y", "y.npy"], "--X file 'bad_header.npy' is damaged: its ."
                                                "npy header cannot be read (TokenError"),
    (["--X", "bad_version.npy", "--y", "y.npy"], "--X file 'bad_version.npy' is damaged"),
    (["--X", "X.npy", "--y", "cut_header.npy"], "--y file 'cut_header.npy' is damaged"),
    (["--X", "truncated.npy", "--y", "y.npy"], "--X file 'truncated.npy' is truncated: its "
                                               "header promises 1000 float64 values (8,128 "
                                               "bytes), the file has 928 bytes"),
    (["--data", "bad.csv"], "could not convert string 'x' to float64"),
    (["--data", "empty.csv"], "--data file 'empty.csv' is empty"),
    (["--data", "header_only.csv"], "holds no rows of numbers"),
    (["--data", "binary.csv"], "not a text file"),
    (["--data", "one_column.csv"], "must be a table with at least two columns"),
    (["--data", "X.npy", "--target", "price"], "--target 'price' is not a column of "
                                               "'X.npy' (it has no header)"),
    (["--data", "X.npy", "--target", "5"], "--target 5 is out of range"),
    (["--data", "X.npy", "--X", "X.npy"], "give either --data or --X and --y, not both"),
    (["--X", "X.npy"], "--y is missing"),
    (["--y", "y.npy"], "--X is missing"),
    (["--X", "X.npy", "--y", "cube.npy"], "--y file 'cube.npy' must hold one column of "
                                          "numbers; got shape (5, 2, 2)"),
    (["--X", "X.npy", "--y", "y.npy", "--w0", "X.npy"], "--w0 file 'X.npy' must hold one "
                                                        "column of numbers"),
    (["--X", "X.npy", "--y", "y4.npy"], "--X and --y must have the same number of samples; "
                                        "got 5 in 'X.npy' and 4 in 'y4.npy'"),
    (["--X", "X_nan.npy", "--y", "y.npy"], "X must contain only finite values"),
    (["--lr", "-1"], "--lr: lr must be a positive number; got -1.0"),
    (["--lr", "abc"], "argument --lr: must be a number; got 'abc'"),
    (["--lr", "inf"], "argument --lr: must be a finite number"),
    # ranges are fit's checks, said about the flag
    (["--epochs", "-2"], "--epochs: epochs must be an integer in [0, "),
    (["--batch-size", "0"], "--batch-size: batch_size must be an integer >= 1; got 0"),
    (["--epochs", "two"], "argument --epochs: must be an integer; got 'two'"),
    (["--threads", "0"], "--threads: n_threads must be an integer in [1, "),
    (["--method", "newton"], "argument --method: invalid choice"),
    (["--w0", "1,2"], r"--w0: w0 must have shape (10,)"),
    (["--w0", "a,b"], "--w0 must be comma-separated numbers or a .npy/.csv file"),
    (["--w0", "w.npy"], "--w0 file 'w.npy' does not exist"),
    (["-o", "out.txt"], "--output must be a .json or .npz file; got 'out.txt'"),
    (["-o", ""], "--output must be a .json or .npz file; got ''"),
    (["--plot", ""], "--plot must be a .png, .svg or .pdf file; got ''"),
    (["-o", "nowhere/out.json"], "cannot write 'nowhere/out.json': directory 'nowhere' "
                                 "does not exist"),
    (["--plot", "loss.jpg"], "--plot must be a .png, .svg or .pdf file"),
    (["--plot", "loss.png", "--epochs", "0"], "--plot needs at least one epoch"),
    (["--smoothing", "1"], r"--smoothing must be in [0, 1)"),
    (["--no-such-option"], "unrecognized arguments: --no-such-option"),
    (["-n", "0"], "argument -n/--n-samples: must be an integer >= 1"),
]


@pytest.mark.parametrize("args, message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line(bad_files, capsys, monkeypatch, args, message):
    monkeypatch.chdir(bad_files)
    status, stdout, stderr = _train(capsys, *args, "-n", "30")
    assert status == 2
    assert message in stderr
    assert stderr.startswith("python -m gdcore train: error: ")
    assert len(stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args, message", [
    (["--schedule", "bogus"], "schedule must be one of"),
    (["--schedule", "step:zz=1"], "schedule 'step' takes the arguments"),
    (["--schedule", "step:step_size"], "schedule arguments must be key=value pairs"),
    (["--schedule", "step:step_size=0.5"], "step_size must be an integer"),
    (["--momentum", "-1"], "--momentum: momentum must be >= 0"),
    (["--validation-fraction", "2"], "--validation-fraction: validation_fraction must be"),
    (["--sample-weight", "nope.npy"], "--sample-weight file 'nope.npy' does not exist"),
    (["--shuffle-block", "0"], "--shuffle-block: shuffle_block must be an integer >= 1"),
    (["--shuffle-block", "big"], "argument --shuffle-block: must be auto, none or an integer"),
])
def test_bad_extended_options(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    status, _, stderr = _train(capsys, *args, "-n", "30")
    assert status == 2 and message in stderr
    assert len(stderr.strip().splitlines()) == 1


def test_divergence_exits_1_in_one_line(capsys):
    status, _, stderr = _train(capsys, "-n", "100", "-d", "3", "--method", "batch", "--lr",
                               "1e6", "--epochs", "200")
    assert status == 1
    assert "training diverged" in stderr and len(stderr.strip().splitlines()) == 1


def test_end_to_end_console_process(tmp_path, data):
    """A real process: good run exits 0, a bad file exits 2 without a traceback."""
    done = _subprocess(tmp_path, "train", "--X", "X.npy", "--y", "y.npy", "--epochs", "2",
                       "-o", "m.json")
    assert done.returncode == 0, done.stderr
    assert len(_json(tmp_path / "m.json")["w"]) == 3
    bad = _subprocess(tmp_path, "train", "--X", "X.npy", "--y", "nope.csv")
    assert bad.returncode == 2
    assert bad.stderr.strip() == ("python -m gdcore train: error: --y file 'nope.csv' does "
                                  "not exist")


def test_main_help_lists_the_commands(tmp_path):
    done = _subprocess(tmp_path, "--help")
    assert done.returncode == 0
    for text in ("train", "demo", "--n-samples", "examples:"):
        assert text in done.stdout


def test_main_job_still_runs_with_its_options(capsys):
    assert command_line.main(["-n", "2000", "-d", "5", "--epochs", "1", "--method",
                              "batch"]) == 0
    assert "batch" in capsys.readouterr().out


# ---------------------------------------------------------------------------
# .csv files: a header only when unambiguous, never a numeric-looking row
# dropped; empty cells and NA are data (NaN), refused by fit naming X or y
# ---------------------------------------------------------------------------

def _table(tmp_path, name, first_row, rows=20, bom=False):
    """A 3-column table (x1, x2, target): ``first_row`` then ``rows`` rows."""
    X, y, _ = gdcore.make_regression(rows, 2, noise=0.1, seed=3)
    lines = [first_row] + [",".join(map(repr, map(float, (a, b, c))))
                           for (a, b), c in zip(X, y, strict=True)]
    text = "\n".join(lines) + "\n"
    (tmp_path / name).write_text(("\ufeff" if bom else "") + text, encoding="utf-8")
    return tmp_path / name


@pytest.mark.parametrize("first_row,where", [
    ("1.5,,2.5", "X must contain only finite values (no NaN or inf); got nan at index (0, 1)"),
    ("NA,0.5,2.5", "X must contain only finite values (no NaN or inf); got nan at index (0, 0)"),
    ("nan,0.5,2.5", "X must contain only finite values (no NaN or inf); got nan at index "
                    "(0, 0)"),
    ("1.5,0.5,", "y must contain only finite values (no NaN or inf); got nan at index 0"),
    ("1.5,0.5,N/A", "y must contain only finite values"),
])
def test_a_first_row_with_missing_values_is_data_not_a_header(tmp_path, capsys, first_row,
                                                              where):
    """It used to be taken for a header and silently dropped."""
    path = _table(tmp_path, "t.csv", first_row)
    status, stdout, stderr = _train(capsys, "--data", path, "--epochs", "1")
    assert status == 2, stdout
    assert where in stderr and len(stderr.strip().splitlines()) == 1
    assert "21 samples x 2 features" in stdout          # the row was kept


def test_missing_values_later_in_the_file_are_nan_too(tmp_path, capsys):
    path = _table(tmp_path, "t.csv", "a,b,target")
    lines = path.read_text().splitlines()
    lines[5] = "0.1,NA,0.3"
    path.write_text("\n".join(lines) + "\n")
    status, stdout, stderr = _train(capsys, "--data", path, "--target", "target")
    assert status == 2 and "X must contain only finite values" in stderr
    assert "got nan at index (4, 1)" in stderr and "20 samples" in stdout


def test_a_byte_order_mark_is_not_a_header(tmp_path, capsys):
    """A UTF-8 BOM before a numeric first row made it a header (dropped)."""
    path = _table(tmp_path, "t.csv", "1.5,0.5,2.0", bom=True)
    status, stdout, stderr = _train(capsys, "--data", path, "--epochs", "1")
    assert status == 0, stderr
    assert "21 samples x 2 features" in stdout
    named = _table(tmp_path, "named.csv", "a,b,price", bom=True)
    status, stdout, stderr = _train(capsys, "--data", named, "--target", "price",
                                    "--epochs", "1")
    assert status == 0, stderr
    assert "target column 2 (price)" in stdout and "20 samples" in stdout


def test_header_flags_say_what_the_first_row_is(tmp_path, capsys):
    numeric_names = _table(tmp_path, "years.csv", "2019,2020,2021")
    status, stdout, stderr = _train(capsys, "--data", numeric_names, "--header", "--target",
                                    "2021", "--epochs", "1")
    assert status == 0, stderr
    assert "20 samples" in stdout and "(2021)" in stdout
    status, stdout, _ = _train(capsys, "--data", numeric_names, "--epochs", "1")
    assert status == 0 and "21 samples" in stdout        # looks numeric: data
    named = _table(tmp_path, "named.csv", "a,b,c")
    status, _, stderr = _train(capsys, "--data", named, "--no-header")
    assert status == 2 and len(stderr.strip().splitlines()) == 1
    assert ("could not convert string 'a' to float64 at line 1, column 1; if the first "
            "row names the columns, pass --header") in stderr
    status, _, stderr = _train(capsys, "--data", named, "--header", "--no-header")
    assert status == 2 and "not allowed with argument" in stderr


@pytest.mark.parametrize("text,message", [
    ("a,b\nc,d\n1,2\n", "could not convert string 'a' to float64 at line 1, column 1; if "
                        "the first row names the columns, pass --header"),
    ("a,b,c\n1,2,3\n4,5\n", "line 3 has 2 column(s), line 2 has 3"),
    ("1,2,3\n4,x,6\n", "could not convert string 'x' to float64 at line 2, column 2"),
    ("a,b,c\n\n1,2,3\n4,5,zz\n", "could not convert string 'zz' to float64 at line 4, "
                                 "column 3"),
])
def test_malformed_tables_say_where(tmp_path, capsys, text, message):
    (tmp_path / "t.csv").write_text(text)
    status, _, stderr = _train(capsys, "--data", tmp_path / "t.csv")
    assert status == 2 and len(stderr.strip().splitlines()) == 1
    assert message in stderr


def test_header_like_rows_quotes_and_blank_lines(tmp_path, capsys, data):
    X, y, _ = data
    body = "\n".join(f'"{float(a)!r}",{float(b)!r},{float(c)!r},{float(t)!r}'
                     for (a, b, c), t in zip(X, y, strict=True))
    # a pandas index column has an empty header cell; blank lines are skipped
    (tmp_path / "t.csv").write_text("\n\n,b,c,target\n" + body + "\n\n")
    out = tmp_path / "m.json"
    status, stdout, stderr = _train(capsys, "--data", tmp_path / "t.csv", "--target", "target",
                                    "--method", "batch", "--lr", "0.4", "--epochs", "5",
                                    "-o", out)
    assert status == 0, stderr
    expected = gdcore.fit(X, y, method="batch", lr=0.4, epochs=5)
    np.testing.assert_array_equal(_json(out)["w"], expected.w)


def test_header_flag_reaches_every_csv_file(tmp_path, capsys, data):
    X, y, _ = data
    np.savetxt(tmp_path / "X.csv", X, delimiter=",", header="1,2,3", comments="")
    np.savetxt(tmp_path / "y.csv", y, delimiter=",", header="0", comments="")
    np.savetxt(tmp_path / "w.csv", np.zeros(3), delimiter=",", header="0", comments="")
    np.savetxt(tmp_path / "s.csv", np.ones(300), delimiter=",", header="1", comments="")
    status, stdout, stderr = _train(capsys, "--X", tmp_path / "X.csv", "--y",
                                    tmp_path / "y.csv", "--w0", tmp_path / "w.csv",
                                    "--sample-weight", tmp_path / "s.csv", "--header",
                                    "--epochs", "1")
    assert status == 0, stderr
    assert "300 samples x 3 features" in stdout


def test_delimiter_must_be_one_character(tmp_path, capsys, data):
    status, _, stderr = _train(capsys, "--data", tmp_path / "table.csv", "--delimiter", ";;")
    assert status == 2 and "--delimiter must be one character" in stderr


def test_convergence_warning_is_one_line(tmp_path, capsys, data):
    """tol set and the epochs run out: one line on stderr, the run still succeeds."""
    status, stdout, stderr = _train(capsys, "--X", tmp_path / "X.npy", "--y",
                                    tmp_path / "y.npy", "--epochs", "2", "--tol", "1e-12")
    assert status == 0
    assert stderr == ("python -m gdcore train: warning: training used all 2 epochs without "
                      "meeting tol=1e-12 (stop_on='loss'): the result may not have "
                      "converged; give more epochs, a larger lr or a larger tol\n")
    assert "trained:" in stdout


def test_restore_best_flag_comes_from_the_table(tmp_path, capsys, data):
    out = tmp_path / "model.json"
    status, _, stderr = _train(capsys, "--X", tmp_path / "X.npy", "--y", tmp_path / "y.npy",
                               "--method", "sgd", "--lr", "0.05", "--epochs", "4",
                               "--stop-on", "validation", "--restore-best", "--seed", "3",
                               "-o", out)
    assert status == 0, stderr
    record = _json(out)
    X, y, _ = data
    result = gdcore.fit(X, y, method="sgd", lr=0.05, epochs=4, stop_on="validation",
                        restore_best=True, seed=3)
    assert record["best_epoch"] == result.best_epoch
    np.testing.assert_array_equal(record["w"], result.w)
    status, _, stderr = _train(capsys, "--restore-best", "--stop-on", "grad_norm")
    assert status == 2
    assert stderr.count("\n") == 1 and "--restore-best" in stderr
