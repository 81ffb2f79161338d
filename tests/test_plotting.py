"""gdcore.plotting: the figures hold the right arrays, files are written, bad
arguments are refused, and a missing matplotlib gives a clear error."""

from __future__ import annotations

import sys

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

import gdcore  # noqa: E402
from gdcore import plotting  # noqa: E402

X3 = np.arange(-1.0, 5.0)
Y3 = 2 * X3 - 1


def _line(ax, label):
    matches = [line for line in ax.get_lines() if line.get_label() == label]
    assert len(matches) == 1, [line.get_label() for line in ax.get_lines()]
    return matches[0]


def _is_png(path):
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _is_svg(path):
    return b"<svg" in path.read_bytes()[:2000]


@pytest.fixture(scope="module")
def noisy_points():
    rng = np.random.default_rng(0)
    x = rng.random(100)
    return x, 2 * x + 3 + 0.5 * rng.standard_normal(100)


# ---------------------------------------------------------------------------
# plot_loss_curve
# ---------------------------------------------------------------------------

def test_loss_curve_per_epoch_with_moving_average(tmp_path):
    history = np.array([8.0, 4.0, 2.0, 1.5, 1.0])
    fig = plotting.plot_loss_curve(history, smoothing=0.5, save=tmp_path / "loss.png")
    ax = fig.axes[0]
    raw = _line(ax, "loss per epoch")
    np.testing.assert_array_equal(raw.get_xdata(), np.arange(5))
    np.testing.assert_array_equal(raw.get_ydata(), history)
    smooth = _line(ax, "moving average (smoothing 0.5)")
    np.testing.assert_allclose(smooth.get_ydata(), [8.0, 6.0, 4.0, 2.75, 1.875], rtol=1e-15)
    assert ax.get_yscale() == "linear"
    assert _is_png(tmp_path / "loss.png")


def test_loss_curve_per_step_from_a_descent_path(tmp_path):
    X, y, _ = gdcore.make_regression(200, 3, noise=0.5, seed=1)
    path = gdcore.descent_path(X, y, method="minibatch", batch_size=20, lr=0.05, epochs=4,
                               seed=0)
    fig = plotting.plot_loss_curve(path, smoothing=0.8, log_scale=True,
                                   title="t", save=tmp_path / "loss.svg")
    ax = fig.axes[0]
    steps = _line(ax, "loss per step")
    np.testing.assert_array_equal(steps.get_ydata(), path.step_loss)
    np.testing.assert_allclose(steps.get_xdata(), np.arange(40) / 10)
    np.testing.assert_array_equal(_line(ax, "moving average (smoothing 0.8)").get_ydata(),
                                  gdcore.ewma(path.step_loss, 0.8))
    epochs = _line(ax, "loss per epoch")
    np.testing.assert_array_equal(epochs.get_ydata(), path.history)
    np.testing.assert_allclose(epochs.get_xdata(), np.arange(4) + 0.45)   # mid-epoch
    assert ax.get_yscale() == "log" and ax.get_title() == "t"
    assert _is_svg(tmp_path / "loss.svg")


def test_loss_curve_takes_a_fit_result_and_draws_into_given_axes():
    from matplotlib.figure import Figure

    result = gdcore.fit(X3, Y3, method="batch", lr=0.01, epochs=7, w0=[8.0], b0=-1.0,
                        fit_intercept=False)
    fig = Figure()
    ax = fig.add_subplot()
    assert plotting.plot_loss_curve(result, ax=ax) is fig
    np.testing.assert_array_equal(_line(ax, "loss per epoch").get_ydata(), result.history)
    assert _line(ax, "loss per epoch").get_ydata()[0] == 186.0


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(history=[]), ValueError, "history must be a non-empty 1-D array"),
    (dict(history=[[1.0, 2.0]]), ValueError, "history must be a non-empty 1-D array"),
    (dict(history=[1.0, 2.0], step_loss=[1.0, 2.0, 3.0]), ValueError,
     "step_loss must hold the same number of steps for each of the 2 epochs; got 3"),
    (dict(history=[1.0, 2.0], step_loss=[]), ValueError, "step_loss must be a non-empty"),
    (dict(history=[1.0], smoothing=1.0), ValueError, r"smoothing must be in \[0, 1\)"),
    (dict(history=[1.0], log_scale="yes"), TypeError, "log_scale must be True or False"),
    (dict(history=[1.0], save="loss.jpg"), ValueError, "save must name a .png, .svg, .pdf"),
    (dict(history=[1.0], save=3), TypeError, "save must be a file name"),
    (dict(history="abc"), TypeError, "history must be a real numeric array-like"),
])
def test_loss_curve_bad_arguments(kwargs, error, message):
    history = kwargs.pop("history")
    with pytest.raises(error, match=message):
        plotting.plot_loss_curve(history, **kwargs)


# ---------------------------------------------------------------------------
# plot_landscape_1d
# ---------------------------------------------------------------------------

def test_landscape_1d_curve_and_path(tmp_path):
    """Tutorial 3: the curve is 31/6 (w - 2)**2 and the path's points lie on it."""
    ws = np.arange(-40, 121) / 10.0
    path = gdcore.descent_path(X3, Y3, method="batch", lr=0.01, epochs=50, w0=[8.0],
                               b0=-1.0, fit_intercept=False)
    fig = plotting.plot_landscape_1d(X3, Y3, ws, b=-1.0, paths={"steps": path},
                                     save=tmp_path / "w.png")
    ax = fig.axes[0]
    curve = _line(ax, "loss(w), b = -1")
    np.testing.assert_array_equal(curve.get_xdata(), ws)
    np.testing.assert_array_equal(curve.get_ydata(), gdcore.loss_grid(X3, Y3, ws, -1.0))
    np.testing.assert_allclose(curve.get_ydata(), 31 / 6 * (ws - 2) ** 2, rtol=1e-12,
                               atol=1e-12)
    steps = _line(ax, "steps")
    np.testing.assert_array_equal(steps.get_xdata(), path.w[:, 0])
    np.testing.assert_allclose(steps.get_ydata()[:-1], path.history, rtol=1e-13)
    assert steps.get_ydata()[0] == 186.0
    assert ax.get_xlabel() == "w" and ax.get_ylabel() == "loss (mse)"
    assert _is_png(tmp_path / "w.png")


def test_landscape_1d_takes_the_paths_loss_and_one_path():
    x = np.array([1.0, 2.0, 3.0])
    path = gdcore.descent_path(x, 2 * x, method="sgd", lr=0.01, epochs=2, w0=[1.0],
                               fit_intercept=False, loss="half_mse", shuffle=False)
    fig = plotting.plot_landscape_1d(x, 2 * x, [0.5, 1.0, 2.0], paths=path, log_scale=True)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "loss (half_mse)" and ax.get_yscale() == "log"
    np.testing.assert_allclose(_line(ax, "loss(w), b = 0").get_ydata(),
                               [0.5 * 1.5 ** 2 * 14 / 3, 0.5 * 14 / 3, 0.0], rtol=1e-14)
    assert _line(ax, "sgd").get_xdata().shape == (7,)


def test_landscape_bad_arguments():
    X2 = np.ones((6, 2))
    path_mse = gdcore.descent_path(X3, Y3, epochs=1, shuffle=False)
    path_half = gdcore.descent_path(X3, Y3, epochs=1, shuffle=False, loss="half_mse")
    path_2d = gdcore.descent_path(X2, Y3, epochs=1, shuffle=False)
    with pytest.raises(ValueError, match="plot_landscape_1d draws one-weight problems: X "
                                         "must have one feature; got 2"):
        plotting.plot_landscape_1d(X2, Y3, [1.0])
    with pytest.raises(ValueError, match="w_values must be a non-empty 1-D array"):
        plotting.plot_landscape_1d(X3, Y3, [])
    with pytest.raises(TypeError, match="paths must be a DescentPath, a mapping"):
        plotting.plot_landscape_1d(X3, Y3, [1.0], paths=[path_mse])
    with pytest.raises(TypeError, match=r"paths\['a'\] must be a DescentPath"):
        plotting.plot_landscape_1d(X3, Y3, [1.0], paths={"a": np.ones(3)})
    with pytest.raises(ValueError, match="the paths were trained on different losses"):
        plotting.plot_landscape_1d(X3, Y3, [1.0], paths={"a": path_mse, "b": path_half})
    with pytest.raises(ValueError, match="path 'a' has 2 weights per step"):
        plotting.plot_landscape_1d(X3, Y3, [1.0], paths={"a": path_2d})
    with pytest.raises(ValueError, match="loss must be one of"):
        plotting.plot_landscape_1d(X3, Y3, [1.0], loss="mae")
    with pytest.raises(ValueError, match="b must be finite"):
        plotting.plot_landscape_1d(X3, Y3, [1.0], b=np.inf)
    with pytest.raises(ValueError, match="plot_landscape_2d draws one-weight problems"):
        plotting.plot_landscape_2d(X2, Y3, [1.0], [1.0])
    with pytest.raises(ValueError, match="levels must be an integer >= 2"):
        plotting.plot_landscape_2d(X3, Y3, [1.0, 2.0], [1.0, 2.0], levels=1)
    with pytest.raises(ValueError, match="save must name a"):
        plotting.plot_landscape_2d(X3, Y3, [1.0, 2.0], [1.0, 2.0], save="a.gif")
    with pytest.raises(ValueError, match="b_values must be a non-empty 1-D array"):
        plotting.plot_landscape_2d(X3, Y3, [1.0, 2.0], [])


# ---------------------------------------------------------------------------
# plot_landscape_2d
# ---------------------------------------------------------------------------

def _three_paths(x, y):
    start = dict(w0=[-1.0], b0=6.0, loss="half_mse", seed=0)
    return {
        "batch": gdcore.descent_path(x, y, method="batch", lr=0.5, epochs=40, **start),
        "sgd": gdcore.descent_path(x, y, method="sgd", lr=0.2, epochs=1, **start),
        "minibatch": gdcore.descent_path(x, y, method="minibatch", batch_size=10, lr=0.5,
                                         epochs=4, **start),
    }


def test_landscape_2d_side_by_side(tmp_path, noisy_points):
    from matplotlib.collections import QuadMesh

    x, y = noisy_points
    ws = np.linspace(-1.5, 4.5, 61)
    bs = np.linspace(0.5, 6.5, 51)
    paths = _three_paths(x, y)
    fig = plotting.plot_landscape_2d(x, y, ws, bs, paths=paths, title="three",
                                     save=tmp_path / "wb.png")
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(panels) == 3
    expected = gdcore.loss_surface(x, y, ws, bs, loss="half_mse")
    for ax, (label, path) in zip(panels, paths.items(), strict=True):
        meshes = [c for c in ax.collections if isinstance(c, QuadMesh)]
        assert len(meshes) == 1
        np.testing.assert_array_equal(np.asarray(meshes[0].get_array()).reshape(51, 61),
                                      expected.T)
        line = _line(ax, label)
        np.testing.assert_array_equal(line.get_xdata(), path.w[:, 0])
        np.testing.assert_array_equal(line.get_ydata(), path.b)
        assert ax.get_title() == f"{label}: {path.n_steps} steps"
    assert fig._suptitle.get_text() == "three"
    assert _is_png(tmp_path / "wb.png")


def test_landscape_2d_one_panel_and_svg(tmp_path, noisy_points):
    x, y = noisy_points
    paths = _three_paths(x, y)
    fig = plotting.plot_landscape_2d(x, y, np.linspace(-1.5, 4.5, 31),
                                     np.linspace(0.5, 6.5, 31), paths=paths,
                                     side_by_side=False, save=tmp_path / "wb.svg")
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(panels) == 1
    assert {line.get_label() for line in panels[0].get_lines()} >= set(paths)
    assert _is_svg(tmp_path / "wb.svg")


def test_landscape_2d_without_paths_and_with_a_zero_on_the_grid():
    """Tutorial 2's noiseless points: the grid holds the exact minimum 0 and the
    colour scale still works (log scale floored above 0)."""
    x = np.random.default_rng(0).random(100)
    ws, bs = np.arange(0, 41) / 10.0, np.arange(0, 61) / 10.0
    fig = plotting.plot_landscape_2d(x, 2 * x + 3, ws, bs, loss="half_mse")
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(panels) == 1
    surface = gdcore.loss_surface(x, 2 * x + 3, ws, bs, loss="half_mse")
    assert surface.min() == 0.0
    mesh = panels[0].collections[0]
    np.testing.assert_array_equal(np.asarray(mesh.get_array()).reshape(61, 41), surface.T)


def test_missing_matplotlib_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"needs matplotlib: pip install 'gdcore\[plot\]'"):
        plotting.plot_loss_curve([1.0, 0.5])
