"""The walk-throughs: the scripts in examples/, run directly and by
``python -m gdcore demo``.

What they print is checked against the tutorials' numbers worked out by hand
(README), and the computations they make are run with both backends here,
which must agree to ``rtol=1e-9``: the scripts themselves only print.
"""

from __future__ import annotations

import ast
import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gdcore

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

#: walk-through name -> its script, in the order of their numbers
SCRIPTS = {"gd-sgd": "1_gd_and_sgd.py", "by-hand": "2_one_step_by_hand.py",
           "loss-over-w": "3_loss_over_w.py", "brute-force": "4_brute_force.py"}

#: the pictures each script saves when given a directory
PICTURES = {"gd-sgd": ["gd-sgd-landscape.png", "gd-sgd-loss.png"],
            "by-hand": ["by-hand-landscape.png", "by-hand-loss.png"],
            "loss-over-w": ["loss-over-w.png"],
            "brute-force": ["landscape-methods.png", "loss-curve.png"]}

Q1 = 1 - 0.28 / 3                 # tutorial 1, full batch: w - 2 shrinks by Q1 per epoch
P1 = 0.98 * 0.92 * 0.82           # tutorial 1, SGD: w - 2 shrinks by P1 per epoch
Q3 = 1 - 0.31 / 3                 # tutorial 3: w - 2 shrinks by Q3 per step

NUMBER = r"[-+]?\d+\.?\d*(?:[eE][-+]?\d+)?"


def _run(args, cwd):
    """Run ``python ARGS`` in ``cwd``; returns the finished process."""
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def _numbers(text):
    return [float(v) for v in re.findall(NUMBER, text)]


def _rows(text, pattern):
    """Lines matching ``pattern`` (a regex), as lists of the numbers they hold."""
    return [_numbers(line) for line in text.splitlines() if re.match(pattern, line)]


def _value(text, label):
    """The number right after ``label`` in ``text``."""
    match = re.search(re.escape(label) + r"\s*(" + NUMBER + ")", text)
    assert match, f"{label!r} not printed"
    return float(match.group(1))


@pytest.fixture(scope="module")
def printed(tmp_path_factory):
    """``printed(name)``: what the walk-through's script prints (run once, no pictures)."""
    cwd = tmp_path_factory.mktemp("examples")
    outputs = {}

    def run(name):
        if name not in outputs:
            done = _run([str(EXAMPLES / SCRIPTS[name])], cwd)
            assert done.returncode == 0, done.stderr
            assert done.stderr == ""
            outputs[name] = done.stdout
        return outputs[name]

    return run


# ---------------------------------------------------------------------------
# What the scripts print: the tutorials' numbers
# ---------------------------------------------------------------------------

def test_gd_sgd_prints_the_tutorial(printed):
    """Full batch: dL/dw = (28/3)(w - 2), so w after epoch k is 2 - Q1**k and the
    loss of epoch k is (14/3) Q1**(2(k-1)). SGD in order: with e = w - 2 before
    sample x, the gradient is 2 e x**2, the loss (e x)**2 and the update
    multiplies e by 1 - 0.02 x**2; from w = 1, the first gradients are -2 and -7.84."""
    text = printed("gd-sgd")
    assert "prediction for x = 4 before training: 4.000000" in text
    batch = _rows(text, r"^\s+\d+\s+\d\.\d{6}\s+\S+$")
    assert [row[0] for row in batch] == [1, 2, 3, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    for epoch, w, loss in batch:
        assert w == pytest.approx(2 - Q1 ** epoch, abs=1e-6)
        assert loss == pytest.approx(14 / 3 * Q1 ** (2 * (epoch - 1)), rel=1e-5)
    assert _value(text, "after full-batch training:") == pytest.approx(4 * (2 - Q1 ** 100),
                                                                       abs=1e-6)

    sgd = _rows(text, r"^\s+\d+\s+\d\s+\d\s+\d\s+")
    assert [row[:2] for row in sgd] == [[epoch, i] for epoch in
                                        [1, 2, 3, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
                                        for i in (1, 2, 3)]
    assert sgd[0] == pytest.approx([1, 1, 1, 2, -2, 1.02, 1], rel=1e-9)
    assert sgd[1] == pytest.approx([1, 2, 2, 4, -7.84, 1.0984, 3.8416], rel=1e-9)
    shrink = {1: 0.98, 2: 0.92, 3: 0.82}
    for epoch, i, x, y, gradient, w, loss in sgd:
        assert y == 2 * x == 2 * i
        e = -(P1 ** (epoch - 1)) * np.prod([shrink[j] for j in range(1, int(i))])
        assert gradient == pytest.approx(2 * e * x ** 2, rel=1e-5, abs=1e-12)
        assert loss == pytest.approx((e * x) ** 2, rel=1e-5, abs=1e-20)
        assert w == pytest.approx(2 + e * shrink[i], abs=1e-6)
    assert "prediction for x = 4 after SGD training: 8.000000" in text

    reference = _rows(text, r"^\s+(full batch|SGD):\s+w = ")
    assert reference[0][0] == reference[0][1] == pytest.approx(2 - Q1 ** 100, rel=1e-11)
    assert reference[1][0] == reference[1][1] == pytest.approx(2.0, rel=1e-11)


def test_by_hand_prints_the_tutorial(printed):
    """r = 0.6: loss 0.18, gradients 0.9 and 0.6, w = 0.71, b = 0.14, loss 0.0820125;
    then 15 full-batch epochs on 100 points, as a NumPy loop computes them."""
    text = printed("by-hand")
    assert "prediction w x + b = 1.4, residual r = 0.6" in text
    assert _value(text, "0.5 * r**2 =") == 0.18
    assert _value(text, "r * x      =") == 0.9
    assert _value(text, "r          =") == 0.6
    assert "new w             0.8 - 0.1 * 0.9 = 0.71" in text
    assert "new b             0.2 - 0.1 * 0.6 = 0.14" in text
    assert "0.5 * (0.71 * 1.5 + 0.14 - 0.8)**2 = 0.0820125" in text

    x = np.random.default_rng(0).random(100)
    y = 2 * x + 3
    w = b = 0.0
    expected = []
    for epoch in range(1, 16):         # half_mse: dL/dw = mean(r x), dL/db = mean(r)
        r = w * x + b - y
        w, b = w - 0.1 * np.mean(r * x), b - 0.1 * np.mean(r)
        expected.append([epoch, w, b, 0.5 * np.mean(r ** 2)])
    rows = _rows(text, r"^\s+\d+\s+\d\.\d{6}\s+\d\.\d{6}\s+")
    assert len(rows) == 15
    for row, want in zip(rows, expected, strict=True):
        assert row == pytest.approx(want, rel=1e-5, abs=1e-6)
    final = 0.5 * np.mean((w * x + b - y) ** 2)
    assert _value(text, "loss after 15 epochs:") == pytest.approx(final, rel=1e-5)
    assert f"ends at the same place: w = {w:.6f}, b = {b:.6f}" in text


def test_loss_over_w_prints_the_tutorial(printed):
    """Loss 186 at w = 8; w after step k is 2 + 6 Q3**k and the loss printed at
    step k is 186 Q3**(2(k-1)); the curve over w is 31/6 (w - 2)**2."""
    text = printed("loss-over-w")
    rows = _rows(text, r"^\s+\d+\s+\d+\.\d{6}\s+\d\.\d{6}$")
    assert [row[0] for row in rows] == list(range(1, 51))
    assert rows[0] == [1, 186.0, 7.38]
    for step, loss, w in rows:
        assert loss == pytest.approx(186 * Q3 ** (2 * (step - 1)), rel=1e-6, abs=1e-6)
        assert w == pytest.approx(2 + 6 * Q3 ** step, abs=1e-6)
    assert "161 values from -4 to 12: minimum 0 at w = 2; loss at w = 8: 186" in text
    assert _value(text, "largest relative gap") < 1e-12
    assert "each step multiplies w - 2 by 0.896667" in text
    assert _value(text, "the parabola from 8 to") == pytest.approx(2 + 6 * Q3 ** 50, abs=1e-6)
    assert "draws the same curve: minimum 0 at w = 2, loss at w = 8: 186" in text


def test_brute_force_prints_the_tutorial(printed):
    text = printed("brute-force")
    # 1. the grid of w: the parabola 31/6 (w - 2)**2, every tenth value printed
    rows = _rows(text, r"^\s+-?\d+\s+\d+\.\d{4}$")
    assert [row[0] for row in rows] == list(range(-2, 7))
    for w, loss in rows:
        assert loss == pytest.approx(31 / 6 * (w - 2) ** 2, abs=1e-4)
    assert "smallest loss on the grid: 0 at w = 2" in text

    # 2. the grid of (w, b) on the noiseless points: exactly (2, 3) ...
    assert "41 x 61 grid of (w, b)" in text
    assert "smallest loss on the grid: 0 at (w, b) = (2, 3)" in text
    assert "grid minimum: 0 at (2, 3)" in text
    # ... and three methods on the noisy landscape: all end near its least-squares
    # minimum; batch goes nearly straight, SGD zigzags, mini-batch in between
    rng = np.random.default_rng(0)
    x = rng.random(100)
    y = 2 * x + 3 + 0.5 * rng.standard_normal(100)
    A = np.column_stack([x, np.ones(100)])
    w_min, b_min = np.linalg.solve(A.T @ A, A.T @ y)
    least_squares = re.search(r"its minimum is at \(w, b\) = \((\S+), (\S+)\)", text)
    assert least_squares, "least-squares minimum not printed"
    assert [float(v) for v in least_squares.groups()] == pytest.approx([w_min, b_min],
                                                                       abs=1e-5)
    methods = {line.split()[0]: _numbers(line) for line in text.splitlines()
               if re.match(r"^\s*(batch|sgd|minibatch)\s+\d", line)}
    assert list(methods) == ["batch", "sgd", "minibatch"]
    assert [methods[name][:2] for name in methods] == [[0.5, 150], [0.2, 300], [0.5, 150]]
    straightness = {}
    for name, (_, _, w, b, length, straight) in methods.items():
        assert abs(w - w_min) < 0.15 and abs(b - b_min) < 0.1, name
        # no path is shorter than the straight line from (-1, 6) to its end
        assert length >= np.hypot(w + 1, b - 6) - 1e-3, name
        straightness[name] = straight
    assert straightness["sgd"] < straightness["minibatch"] < straightness["batch"] <= 1
    assert straightness["batch"] > 0.8 and straightness["sgd"] < 0.3

    # 3. mini-batch SGD on 20,000 x 10: noisy steps, falling to the noise floor 0.25
    epochs = _rows(text, r"^\s+\d\s+\d+\.\d{5}\s+")
    assert [row[0] for row in epochs] == [1, 2, 3, 4, 5]
    for _, mean, smoothed, last, low, high in epochs:
        assert low <= last <= high and low < mean < high and low < smoothed < high
    assert epochs[0][1] > 4 * epochs[-1][1] and 0.2 < epochs[-1][1] < 0.3
    assert "(625 steps each)" in text
    assert _value(text, "|w - w_true| =") < 0.1
    assert "gdcore.fit with the same options ends at the same w: True" in text


# ---------------------------------------------------------------------------
# Pictures
# ---------------------------------------------------------------------------

def _assert_pngs(folder, names):
    from matplotlib.image import imread

    for name in names:
        picture = folder / name
        assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        height, width, _ = imread(picture).shape
        assert height > 200 and width > 200, name


@pytest.mark.parametrize("name", ["gd-sgd", "by-hand", "loss-over-w"])
def test_script_saves_its_pictures(printed, tmp_path, name):
    """Given a directory (made if missing), a script saves its pictures there and
    prints the same as without, and where it saved them."""
    pytest.importorskip("matplotlib")
    folder = tmp_path / "new" / "pictures"
    done = _run([str(EXAMPLES / SCRIPTS[name]), str(folder)], tmp_path)
    assert done.returncode == 0, done.stderr
    saved = "".join(f"saved {folder / picture}\n" for picture in PICTURES[name])
    assert done.stdout == printed(name) + saved
    assert sorted(path.name for path in folder.iterdir()) == sorted(PICTURES[name])
    _assert_pngs(folder, PICTURES[name])


# ---------------------------------------------------------------------------
# python -m gdcore demo
# ---------------------------------------------------------------------------

def test_demo_lists_the_walk_throughs(tmp_path):
    """One line per script: its number, its name and its docstring's title."""
    done = _run(["-m", "gdcore", "demo"], tmp_path)
    assert done.returncode == 0, done.stderr
    listed = [line.split(None, 2) for line in done.stdout.splitlines()
              if re.match(r"^\s+\d\s", line)]
    expected = []
    for number, (name, script) in enumerate(SCRIPTS.items(), start=1):
        first_line = ast.get_docstring(ast.parse((EXAMPLES / script).read_text())).split("\n")[0]
        prefix = f"Tutorial {number}: "
        assert first_line.startswith(prefix), script
        expected.append([str(number), name, first_line.removeprefix(prefix)])
    assert listed == expected
    assert "run one with: python -m gdcore demo NAME" in done.stdout


@pytest.mark.parametrize("name", ["1", "gd-sgd"])
def test_demo_runs_the_script(printed, tmp_path, name):
    done = _run(["-m", "gdcore", "demo", name], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout == printed("gd-sgd")


def test_demo_brute_force_saves_the_readme_pictures(printed, tmp_path):
    """The README's pictures: ``demo brute-force --plot-dir docs/images``."""
    pytest.importorskip("matplotlib")
    done = _run(["-m", "gdcore", "demo", "brute-force", "--plot-dir", "docs/images"],
                tmp_path)
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "docs" / "images"
    assert done.stdout == printed("brute-force") + "".join(
        f"saved {Path('docs/images') / picture}\n" for picture in PICTURES["brute-force"])
    _assert_pngs(folder, PICTURES["brute-force"])


@pytest.mark.parametrize("args, message", [
    (["nope"], "python -m gdcore demo: error: no walk-through called 'nope'; choose one of "
               "gd-sgd, by-hand, loss-over-w, brute-force (or 1 to 4)"),
    (["5"], "no walk-through called '5'"),
    (["1", "2"], "unrecognized arguments: 2"),
])
def test_demo_bad_name_is_one_line(tmp_path, args, message):
    done = _run(["-m", "gdcore", "demo", *args], tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and message in done.stderr


def test_demo_without_matplotlib_is_one_line(tmp_path, monkeypatch, capsys):
    """--plot-dir without matplotlib fails before the script runs."""
    from gdcore.__main__ import main

    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    assert main(["demo", "3", "--plot-dir", str(tmp_path / "p")]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == ("python -m gdcore demo: error: gdcore.plotting needs matplotlib: "
                   "pip install 'gdcore[plot]' (or pip install matplotlib)\n")
    assert not (tmp_path / "p").exists()


# ---------------------------------------------------------------------------
# The walk-throughs' computations give the same numbers with both backends
# ---------------------------------------------------------------------------

def _numbers_of(result):
    """A walk-through's computation as one flat tuple of arrays: a DescentPath
    gives its w, b, step_loss and history, a tuple those of its items."""
    if isinstance(result, gdcore.DescentPath):
        return (result.w, result.b, result.step_loss, result.history)
    if isinstance(result, tuple):
        return tuple(part for item in result for part in _numbers_of(item))
    return (result,)


@pytest.fixture
def backends_agree(assert_agree):
    """``backends_agree(compute)``: ``compute(backend)`` gives the same numbers
    with both backends: conftest's ``assert_agree`` with its ``rtol`` (1e-9) and
    no absolute tolerance, since the walk-throughs' numbers run down to 1e-26
    (tutorial 1's SGD losses) and must agree there too."""

    def check(compute):
        assert_agree(_numbers_of(compute("cython")), _numbers_of(compute("reference")),
                     atol=0.0)

    return check


def test_backends_agree_on_gd_sgd(backends_agree):
    x = np.array([1.0, 2.0, 3.0])
    y = 2 * x
    options = dict(lr=0.01, epochs=100, w0=[1.0], fit_intercept=False, loss="mse",
                   shuffle=False)

    def compute(backend):
        batch = gdcore.descent_path(x, y, method="batch", backend=backend, **options)
        sgd = gdcore.descent_path(x, y, method="sgd", backend=backend, **options)
        # each SGD step's gradient, on its sample at the w before the step
        gradients = [gdcore.value_and_grad(x[t % 3:t % 3 + 1], y[t % 3:t % 3 + 1],
                                           sgd.w[t], 0.0, backend=backend)[1]
                     for t in range(sgd.n_steps)]
        predictions = [gdcore.predict([4.0], path.w[-1], backend=backend)
                       for path in (batch, sgd)]
        assert batch.backend == sgd.backend == backend
        return batch, sgd, np.concatenate(gradients), np.concatenate(predictions)

    backends_agree(compute)


def test_backends_agree_on_by_hand(backends_agree):
    x = np.random.default_rng(0).random(100)
    y = 2 * x + 3

    def compute(backend):
        before = gdcore.value_and_grad([[1.5]], [0.8], [0.8], 0.2, loss="half_mse",
                                       backend=backend)
        step = gdcore.fit([[1.5]], [0.8], method="batch", lr=0.1, epochs=1, w0=[0.8],
                          b0=0.2, loss="half_mse", backend=backend)
        after = gdcore.value_and_grad([[1.5]], [0.8], step.w, step.b, loss="half_mse",
                                      backend=backend)
        path = gdcore.descent_path(x, y, method="batch", lr=0.1, epochs=15,
                                   loss="half_mse", backend=backend)
        assert step.backend == path.backend == backend
        return before, step.w, step.b, step.history, after, path

    backends_agree(compute)


def test_backends_agree_on_loss_over_w(backends_agree):
    x = np.arange(-1.0, 5.0)
    y = 2 * x - 1
    w_grid = np.arange(-40, 121) / 10.0

    def compute(backend):
        path = gdcore.descent_path(x, y, method="batch", lr=0.01, epochs=50, w0=[8.0],
                                   b0=-1.0, fit_intercept=False, loss="mse", backend=backend)
        curve = gdcore.loss_grid(x, y, w_grid, -1.0, backend=backend)
        on_curve = gdcore.loss_grid(x, y, path.w[:, 0], -1.0, backend=backend)
        assert path.backend == backend
        return path, curve, on_curve

    backends_agree(compute)


def test_backends_agree_on_brute_force_grids(backends_agree):
    x3 = np.arange(-1.0, 5.0)
    x = np.random.default_rng(0).random(100)

    def compute(backend):
        return (gdcore.loss_grid(x3, 2 * x3 - 1, np.arange(-20, 61) / 10.0, -1.0,
                                 backend=backend),
                gdcore.loss_surface(x, 2 * x + 3, np.arange(0, 41) / 10.0,
                                    np.arange(0, 61) / 10.0, loss="half_mse",
                                    backend=backend))

    backends_agree(compute)


@pytest.mark.parametrize("options", [
    dict(method="batch", lr=0.5, epochs=150),
    dict(method="sgd", lr=0.2, epochs=3),
    dict(method="minibatch", batch_size=10, lr=0.5, epochs=15),
], ids=["batch", "sgd", "minibatch"])
def test_backends_agree_on_brute_force_methods(backends_agree, options):
    rng = np.random.default_rng(0)
    x = rng.random(100)
    y = 2 * x + 3 + 0.5 * rng.standard_normal(100)
    backends_agree(lambda backend: gdcore.descent_path(
        x, y, loss="half_mse", w0=[-1.0], b0=6.0, seed=0, backend=backend, **options))


def test_backends_agree_on_brute_force_noisy_curve(backends_agree):
    X, y, _ = gdcore.make_regression(20_000, 10, noise=0.5, bias=1.0, seed=0)
    backends_agree(lambda backend: gdcore.descent_path(
        X, y, method="minibatch", batch_size=32, lr=0.002, epochs=5, seed=0,
        backend=backend))


def test_backend_disagreement_fails(backends_agree):
    """The agreement check can fail: one step loss 1e-8 off (relative) is caught."""
    path = gdcore.descent_path([1.0, 2.0, 3.0], [2.0, 4.0, 6.0], method="sgd", lr=0.01,
                               epochs=2, shuffle=False)
    off = dataclasses.replace(path, step_loss=path.step_loss * np.r_[1.0, 1.0, 1 + 1e-8,
                                                                     1.0, 1.0, 1.0])
    backends_agree(lambda backend: path)
    with pytest.raises(AssertionError):
        backends_agree(lambda backend: path if backend == "cython" else off)


@pytest.mark.parametrize("make,message", [
    (lambda d: (d / "file").write_text("x") and d / "file",
     "--plot-dir '{d}/file' exists and is not a directory"),
    (lambda d: (d / "file").write_text("x") and d / "file" / "sub",
     "--plot-dir: cannot create '{d}/file/sub': Not a directory"),
])
def test_demo_plot_dir_that_cannot_be_used_is_one_line(tmp_path, capsys, make, message):
    pytest.importorskip("matplotlib")
    from gdcore.__main__ import main

    plot_dir = make(tmp_path)
    assert main(["demo", "3", "--plot-dir", str(plot_dir)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1
    assert message.format(d=tmp_path) in err
