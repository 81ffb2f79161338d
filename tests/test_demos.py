"""The walk-throughs (gdcore.demos, ``python -m gdcore demo``) and the scripts
in examples/: their numbers are the tutorials' hand-derived ones."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gdcore
from gdcore import demos

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

Q1 = 1 - 0.28 / 3                 # tutorial 1, full batch: w - 2 shrinks by Q1 per epoch
P1 = 0.98 * 0.92 * 0.82           # tutorial 1, SGD: w - 2 shrinks by P1 per epoch
Q3 = 1 - 0.31 / 3                 # tutorial 3: w - 2 shrinks by Q3 per step


def _run(name, **options):
    out = io.StringIO()
    numbers = demos.run(name, out=out, **options)
    return numbers, out.getvalue()


def _numbers(text):
    return [float(v) for v in re.findall(r"[-+]?\d+\.?\d*(?:[eE][-+]?\d+)?", text)]


def _rows(text, pattern):
    """Lines matching ``pattern`` (a regex), as lists of the numbers they hold."""
    return [_numbers(line) for line in text.splitlines() if re.match(pattern, line)]


# ---------------------------------------------------------------------------
# The walk-throughs, from Python
# ---------------------------------------------------------------------------

def test_gd_sgd_numbers():
    """Tutorial 1 by hand. Full batch: dL/dw = (28/3)(w - 2), so w_k = 2 - Q1**k
    and the loss before epoch k is (14/3) Q1**(2k). SGD in order: sample i
    multiplies w - 2 by 1 - 0.02 x_i**2, and its gradient is 2 (w x_i - y_i) x_i:
    -2 for the first sample at w = 1, then -7.84 at w = 1.02."""
    numbers, text = _run("gd-sgd", every=1)
    batch, sgd = numbers["batch"], numbers["sgd"]
    np.testing.assert_allclose(batch.w[:, 0], 2 - Q1 ** np.arange(101), rtol=1e-13)
    np.testing.assert_allclose(batch.history, 14 / 3 * Q1 ** (2 * np.arange(100)),
                               rtol=1e-11)
    assert sgd.w[-1, 0] == pytest.approx(2 - P1 ** 100, abs=1e-14)
    x = np.array([1.0, 2.0, 3.0])
    i = np.arange(300) % 3
    np.testing.assert_allclose(numbers["sgd_gradients"],
                               2 * (sgd.w[:-1, 0] * x[i] - 2 * x[i]) * x[i], rtol=1e-12)
    assert numbers["sgd_gradients"][:2].tolist() == pytest.approx([-2.0, -7.84], rel=1e-14)
    assert numbers["predict_before"] == 4.0
    assert numbers["predict_batch"] == pytest.approx(4 * (2 - Q1 ** 100), rel=1e-13)
    assert numbers["predict_batch"] == pytest.approx(8.0, abs=1e-3)
    assert numbers["predict_sgd"] == pytest.approx(8.0, abs=1e-9)
    assert numbers["max_relative_difference"] <= 1e-9

    # what it printed: one full-batch row per epoch, three SGD rows per epoch
    batch_rows = _rows(text, r"^\s+\d+\s+\d\.\d{6}\s+\S+$")
    assert len(batch_rows) == 100
    assert batch_rows[0] == pytest.approx([1, 1.093333, 4.66667], rel=1e-6)
    sgd_rows = _rows(text, r"^\s+\d+\s+\d\s+\d\s+\d\s+")
    assert len(sgd_rows) == 300
    assert sgd_rows[0] == pytest.approx([1, 1, 1, 2, -2, 1.02, 1], rel=1e-6)
    assert sgd_rows[1] == pytest.approx([1, 2, 2, 4, -7.84, 1.0984, 3.8416], rel=1e-6)
    assert "prediction for x = 4 before training: 4.000000" in text
    assert "prediction for x = 4 after SGD training: 8.000000" in text
    assert "both backends agree" in text


def test_gd_sgd_prints_every_tenth_epoch_by_default():
    _, text = _run("1")
    epochs = [int(row[0]) for row in _rows(text, r"^\s+\d+\s+\d\.\d{6}\s+\S+$")]
    assert epochs == [1, 2, 3, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]


def test_by_hand_numbers(numpy_fit):
    """r = 0.6: loss 0.18, gradients 0.9 and 0.6, w = 0.71, b = 0.14, loss 0.0820125;
    then 15 full-batch epochs on 100 points as the NumPy replay computes them."""
    numbers, text = _run("by-hand")
    assert numbers["loss_before"] == pytest.approx(0.18, rel=1e-14)
    assert numbers["grad_w"] == pytest.approx(0.9, rel=1e-14)
    assert numbers["grad_b"] == pytest.approx(0.6, rel=1e-14)
    assert numbers["w"] == pytest.approx(0.71, rel=1e-14)
    assert numbers["b"] == pytest.approx(0.14, rel=1e-13)
    assert numbers["loss_after"] == pytest.approx(0.0820125, rel=1e-12)
    for line in ["0.5 * r**2 = 0.18", "r * x      = 0.9", "r          = 0.6",
                 "= 0.71", "= 0.14", "= 0.0820125"]:
        assert line in text
    path = numbers["path"]
    np.testing.assert_array_equal(numbers["x"], np.random.default_rng(0).random(100))
    w, b, history = numpy_fit(numbers["x"], numbers["y"], lr=0.1, epochs=15,
                              batch_size=100, loss="half_mse")
    np.testing.assert_allclose(path.w[-1], w, rtol=1e-12)
    assert path.b[-1] == pytest.approx(b, rel=1e-12)
    np.testing.assert_allclose(path.history, history, rtol=1e-12)
    rows = _rows(text, r"^\s+\d+\s+\d\.\d{6}\s+\d\.\d{6}\s+")
    assert len(rows) == 15
    np.testing.assert_allclose([row[3] for row in rows], history, rtol=1e-5)
    assert numbers["max_relative_difference"] <= 1e-9


def test_loss_over_w_numbers():
    """Loss 186 at w = 8; w_k = 2 + 6 Q3**k; loss before step k = 186 Q3**(2k);
    the curve over w is 31/6 (w - 2)**2 and the path lies on it."""
    numbers, text = _run("loss-over-w")
    path = numbers["path"]
    np.testing.assert_allclose(path.w[:, 0], 2 + 6 * Q3 ** np.arange(51), rtol=1e-13)
    np.testing.assert_allclose(path.history, 186 * Q3 ** (2 * np.arange(50)), rtol=1e-11)
    assert np.all(path.b == -1.0)
    np.testing.assert_allclose(numbers["curve"], 31 / 6 * (numbers["w_grid"] - 2) ** 2,
                               rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(numbers["path_losses"], 31 / 6 * (path.w[:, 0] - 2) ** 2,
                               rtol=1e-11)
    assert numbers["ratio"] == pytest.approx(Q3, rel=1e-13)
    rows = _rows(text, r"^\s+\d+\s+\d+\.\d{6}\s+\d\.\d{6}$")
    assert len(rows) == 50
    assert rows[0] == [1, 186.0, 7.38]
    assert "minimum 0 at w = 2; loss at w = 8: 186" in text
    assert "multiplies w - 2 by 0.896667" in text


def test_brute_force_numbers():
    numbers, text = _run("brute-force")
    # 1. grid of w: the parabola's minimum
    assert numbers["best_w"] == 2.0
    np.testing.assert_allclose(numbers["w_losses"], 31 / 6 * (numbers["w_grid"] - 2) ** 2,
                               rtol=1e-13, atol=1e-13)
    # 2. grid of (w, b) on the noiseless points: exactly (2, 3)
    assert numbers["best_wb"] == (2.0, 3.0)
    assert numbers["surface"].min() == 0.0
    # ... and three methods on the noisy landscape: all end near the least-squares
    # minimum; batch goes nearly straight, SGD zigzags, mini-batch in between
    w_min, b_min = numbers["least_squares"]
    A = np.column_stack([numbers["x_noisy"], np.ones(100)])
    np.testing.assert_allclose([w_min, b_min],
                               np.linalg.solve(A.T @ A, A.T @ numbers["y_noisy"]), rtol=1e-10)
    for name, path in numbers["paths"].items():
        assert abs(path.w[-1, 0] - w_min) < 0.15 and abs(path.b[-1] - b_min) < 0.1, name
    straight = numbers["straightness"]
    assert straight["sgd"] < straight["minibatch"] < straight["batch"]
    assert straight["batch"] > 0.8 and straight["sgd"] < 0.3
    # 3. mini-batch on the synthetic problem: the path ends at fit's answer and
    # the smoothed curve is the EWMA of the step losses
    run = numbers["minibatch"]
    np.testing.assert_array_equal(run.w[-1], numbers["fit_w"])
    np.testing.assert_array_equal(numbers["smoothed"], gdcore.ewma(run.step_loss, 0.98))
    assert run.history[0] > 4 * run.history[-1]
    assert 0.2 < run.history[-1] < 0.3                   # the noise floor, 0.5**2
    assert np.linalg.norm(run.w[-1] - numbers["w_true"]) < 0.1
    assert "smallest loss on the grid: 0 at w = 2" in text
    assert "smallest loss on the grid: 0 at (w, b) = (2, 3)" in text
    assert numbers["max_relative_difference"] <= 1e-9


def test_demo_pictures_are_saved(tmp_path):
    pytest.importorskip("matplotlib")
    _, text = _run("loss-over-w", plot_dir=tmp_path / "pics")
    picture = tmp_path / "pics" / "loss-over-w.png"
    assert picture.read_bytes()[:4] == b"\x89PNG"
    assert f"saved {picture}" in text


def test_backend_disagreement_is_an_error(monkeypatch):
    """The agreement check can fail: with a negative tolerance nothing agrees."""
    monkeypatch.setattr(demos, "RTOL", -1.0)
    with pytest.raises(demos.BackendDisagreement, match="must agree"):
        _run("by-hand")


@pytest.mark.parametrize("call, error, message", [
    (lambda: demos.run("nope"), ValueError, "name must be one of the walk-throughs"),
    (lambda: demos.run(3), ValueError, "name must be one of the walk-throughs"),
    (lambda: demos.run("1", every=0), ValueError, "every must be an integer >= 1"),
    (lambda: demos.run("1", plot_dir=3), TypeError, "plot_dir must be a directory name"),
    (lambda: demos.run("2", seed=-1), ValueError, "seed must be an integer >= 0"),
    (lambda: demos.run("4", smoothing=1.5), ValueError, r"smoothing must be in \[0, 1\)"),
    (lambda: demos.run("4", n_samples=5), ValueError, "n_samples must be an integer >= 32"),
])
def test_bad_demo_arguments(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_find_and_list():
    assert demos.find("1").name == "gd-sgd" and demos.find("brute-force").number == 4
    out = io.StringIO()
    demos.list_demos(out)
    for name in ("gd-sgd", "by-hand", "loss-over-w", "brute-force"):
        assert name in out.getvalue()


# ---------------------------------------------------------------------------
# The walk-throughs, from the command line
# ---------------------------------------------------------------------------

def _cli(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "gdcore", *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)


def test_cli_lists_and_runs_a_demo(tmp_path):
    listing = _cli(tmp_path, "demo")
    assert listing.returncode == 0, listing.stderr
    assert all(name in listing.stdout for name in demos.DEMOS)
    done = _cli(tmp_path, "demo", "by-hand", "--every", "5")
    assert done.returncode == 0, done.stderr
    assert "= 0.0820125" in done.stdout and "both backends agree" in done.stdout
    epochs = [int(row[0]) for row in _rows(done.stdout, r"^\s+\d+\s+\d\.\d{6}\s+\d\.")]
    assert epochs == [1, 2, 3, 5, 10, 15]


def test_cli_demo_saves_pictures(tmp_path):
    pytest.importorskip("matplotlib")
    done = _cli(tmp_path, "demo", "3", "--plot-dir", "pictures")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "pictures" / "loss-over-w.png").stat().st_size > 1000


def test_cli_demo_without_matplotlib_is_one_line(tmp_path, monkeypatch, capsys):
    from gdcore.__main__ import main

    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    assert main(["demo", "3", "--plot-dir", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == ("python -m gdcore demo: error: gdcore.plotting needs matplotlib: "
                           "pip install 'gdcore[plot]' (or pip install matplotlib)")


@pytest.mark.parametrize("args, message", [
    (["demo", "nope"], "no walk-through called 'nope'"),
    (["demo", "1", "--every", "0"], "--every: must be an integer >= 1"),
    (["demo", "1", "2"], "unrecognized arguments: 2"),
])
def test_cli_bad_demo_is_one_line(tmp_path, args, message):
    done = _cli(tmp_path, *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


# ---------------------------------------------------------------------------
# The scripts in examples/
# ---------------------------------------------------------------------------

def _example(tmp_path, name, *args):
    done = subprocess.run([sys.executable, str(EXAMPLES / name), *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _value(text, label):
    """The number after ``label`` in ``text``."""
    match = re.search(re.escape(label) + r"\s*([-+]?\d+\.?\d*(?:[eE][-+]?\d+)?)", text)
    assert match, label
    return float(match.group(1))


def test_example_1(tmp_path):
    text = _example(tmp_path, "1_gd_and_sgd.py")
    assert _value(text, "before training:") == 4.0
    batch = _rows(text, r"^epoch\s+\d+\s+w = ")
    assert [row[0] for row in batch] == [1, 2, 3, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    for epoch, w, loss in batch:
        assert w == pytest.approx(2 - Q1 ** epoch, abs=1e-6)
        assert loss == pytest.approx(14 / 3 * Q1 ** (2 * (epoch - 1)), rel=1e-5)
    sgd = _rows(text, r"^epoch\s+\d+\s+sample")
    assert sgd[0] == pytest.approx([1, 1, 1, -2, 1.02, 1], rel=1e-9)
    assert sgd[1] == pytest.approx([1, 2, 2, -7.84, 1.0984, 3.8416], rel=1e-9)
    assert _value(text, "batch: prediction for x = 4 after training:") == pytest.approx(
        4 * (2 - Q1 ** 100), abs=1e-6)
    assert _value(text, "sgd: prediction for x = 4 after training:") == pytest.approx(8.0,
                                                                                     abs=1e-6)
    assert text.count("same: True") == 2


def test_example_2(tmp_path):
    text = _example(tmp_path, "2_one_step_by_hand.py")
    assert _value(text, "loss before =") == 0.18
    assert _value(text, "dL/dw =") == 0.9
    assert _value(text, "dL/db =") == 0.6
    assert _value(text, "new w =") == 0.71
    assert _value(text, "new b =") == 0.14
    assert _value(text, "loss after =") == 0.0820125
    assert "reference backend: w = 0.71, b = 0.14" in text
    rows = _rows(text, r"^epoch\s+\d+\s+w = ")
    assert len(rows) == 15
    losses = [row[3] for row in rows]
    assert all(a > b for a, b in zip(losses, losses[1:]))
    assert f"w = {rows[-1][1]:.6f}, b = {rows[-1][2]:.6f}" in text   # reference agrees


def test_example_3(tmp_path):
    text = _example(tmp_path, "3_loss_over_w.py")
    rows = _rows(text, r"^step\s+\d+")
    assert len(rows) == 50
    for step, loss, w in rows:
        assert loss == pytest.approx(186 * Q3 ** (2 * (step - 1)), rel=1e-6, abs=1e-6)
        assert w == pytest.approx(2 + 6 * Q3 ** step, abs=1e-6)
    assert "curve: minimum 0 at w = 2" in text
    assert _value(text, "curve: loss at w = 8 is") == 186
    assert "path on the curve: True" in text
    assert _value(text, "ratio (w1 - 2) / (w0 - 2) =") == pytest.approx(Q3, abs=1e-6)
    assert "reference backend, same curve: True" in text


def test_example_4(tmp_path):
    pytest.importorskip("matplotlib")
    text = _example(tmp_path, "4_brute_force.py", str(tmp_path))
    assert "grid of w: best w = 2, loss = 0" in text
    assert "grid of (w, b): best w = 2, b = 3, loss = 0" in text
    assert "reference backend, same surface: True" in text
    rows = _rows(text, r"^epoch \d")
    assert len(rows) == 5
    assert rows[0][1] > 4 * rows[-1][1] and 0.2 < rows[-1][1] < 0.3
    assert "gdcore.fit ends at the same w: True" in text
    assert (tmp_path / "4_brute_force_loss.png").stat().st_size > 1000
