"""The four tutorials gdcore grew from, as walk-throughs you can run.

``python -m gdcore demo`` lists them and ``python -m gdcore demo NAME`` runs
one; from Python, ``gdcore.demos.run("gd-sgd")``. Each walk-through prints what
its tutorial printed, computed by gdcore with the compiled kernels, runs the
same computation with the plain-Python reference backend and reports how far
the two are apart (they must agree to ``rtol=1e-9``; they usually give the
same bits), and returns its numbers in a dict. With ``plot_dir`` (and
matplotlib) it also saves its pictures there.

The same walk-throughs, written as plain top-to-bottom scripts, are in the
repository's ``examples/`` directory.

1. ``gd-sgd``: full-batch gradient descent, then per-sample SGD, on y = 2x.
2. ``by-hand``: one update worked by hand, then 15 epochs on 100 points.
3. ``loss-over-w``: w from 8 with b held at -1; the loss curve over w and the
   path the steps took.
4. ``brute-force``: the loss over a grid of w, and of (w, b); batch, SGD and
   mini-batch on that landscape; mini-batch SGD on a larger problem with the
   raw and the smoothed loss curve.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TextIO

import numpy as np

from . import _validation
from ._api import fit, predict, value_and_grad
from ._data import make_regression
from .landscape import (DescentPath, descent_path, ewma, loss_grid, loss_surface,
                        max_relative_difference)

BACKENDS = ("cython", "reference")

#: The backends must agree to this relative tolerance (DESIGN.md).
RTOL = 1e-9


class BackendDisagreement(AssertionError):
    """The compiled and the reference backend gave different numbers."""


@dataclass(frozen=True)
class Demo:
    """One walk-through: ``run(out=..., plot_dir=..., every=...)`` -> its numbers."""

    name: str
    number: int
    title: str
    run: Callable[..., dict]


def _printer(out: TextIO | None) -> Callable[..., None]:
    stream = sys.stdout if out is None else out

    def say(*parts: Any) -> None:
        print(*parts, file=stream)
    return say


def _shown(epoch: int, epochs: int, every: int) -> bool:
    """Print epoch ``epoch`` (1-based) of ``epochs``: the first three, every
    ``every``-th and the last."""
    return epoch <= 3 or epoch % every == 0 or epoch == epochs


def _check_plot_dir(plot_dir: Any) -> Path | None:
    if plot_dir is None:
        return None
    if not isinstance(plot_dir, (str, os.PathLike)):
        raise TypeError(f"plot_dir must be a directory name (str or os.PathLike) or None; "
                        f"got {type(plot_dir).__name__}")
    from . import plotting

    plotting._figure_class()        # fail before any work when matplotlib is missing
    path = Path(plot_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


class _Agreement:
    """Collects (compiled, reference) pairs and checks them against each other."""

    def __init__(self) -> None:
        self.worst = 0.0
        self.count = 0

    def add(self, compiled: Any, reference: Any) -> None:
        compiled = np.asarray(compiled, dtype=np.float64)
        self.worst = max(self.worst, max_relative_difference(compiled, reference))
        self.count += compiled.size

    def add_paths(self, compiled: DescentPath, reference: DescentPath) -> None:
        for field in ("w", "b", "step_loss", "history"):
            self.add(getattr(compiled, field), getattr(reference, field))

    def report(self, say: Callable[..., None]) -> float:
        if self.worst > RTOL:
            raise BackendDisagreement(
                f"the cython and reference backends differ by {self.worst:.3g} (relative) "
                f"over {self.count} numbers; they must agree to {RTOL:g}")
        say(f"both backends agree: cython and reference differ by at most "
            f"{self.worst:.2g} (relative) over {self.count} numbers")
        return self.worst


def _common(out: TextIO | None, plot_dir: Any, every: Any) -> tuple:
    every = _validation.check_int(every, "every", minimum=1)
    return _printer(out), _check_plot_dir(plot_dir), every, _Agreement()


# ---------------------------------------------------------------------------
# 1. Full-batch gradient descent, then per-sample SGD, on y = 2x
# ---------------------------------------------------------------------------

def gd_sgd(*, out: TextIO | None = None, plot_dir: str | os.PathLike | None = None,
           every: int = 10) -> dict:
    """Walk-through 1: one weight, no bias, x = [1, 2, 3], y = 2x.

    w starts at 1.0, lr = 0.01, 100 epochs of ``mse``: full-batch gradient
    descent (one update per epoch), then per-sample SGD in order (one update
    per sample, printing each sample's gradient ``dL/dw = 2 (w x - y) x``).
    Both predict about 8 for x = 4, from 4 before training.

    Parameters
    ----------
    out : text stream or None
        Where to print (None: standard output).
    plot_dir : str, os.PathLike or None
        Save the pictures here (needs matplotlib).
    every : int, default 10
        Print the first three epochs, every ``every``-th and the last.

    Returns
    -------
    dict
        ``x``, ``y``, ``predict_before``, ``batch`` and ``sgd`` (DescentPaths),
        ``sgd_gradients`` (one per step), ``predict_batch``, ``predict_sgd``,
        ``max_relative_difference`` (between the backends).
    """
    say, plot_dir, every, agreement = _common(out, plot_dir, every)
    x = np.array([1.0, 2.0, 3.0])
    y = 2 * x
    w0, lr, epochs = 1.0, 0.01, 100
    options = dict(lr=lr, epochs=epochs, w0=[w0], fit_intercept=False, loss="mse",
                   shuffle=False)
    runs = {backend: {method: descent_path(x, y, method=method, backend=backend, **options)
                      for method in ("batch", "sgd")} for backend in BACKENDS}
    gradients = {}
    for backend in BACKENDS:
        sgd_path = runs[backend]["sgd"]
        gradients[backend] = np.array([
            value_and_grad(x[t % 3:t % 3 + 1], y[t % 3:t % 3 + 1], sgd_path.w[t], 0.0,
                           loss="mse", backend=backend)[1][0]
            for t in range(sgd_path.n_steps)])
    for method in ("batch", "sgd"):
        agreement.add_paths(runs["cython"][method], runs["reference"][method])
    agreement.add(gradients["cython"], gradients["reference"])
    batch, sgd = runs["cython"]["batch"], runs["cython"]["sgd"]

    say("Walk-through 1: full-batch gradient descent, then per-sample SGD, on y = 2x")
    say(f"data: x = {x.tolist()}, y = {y.tolist()}; model y_hat = w * x (no bias); "
        f"loss mse = mean((w x - y)**2)")
    say(f"w starts at {w0}, lr = {lr}, {epochs} epochs")
    before = float(predict([4.0], [w0])[0])
    say(f"prediction for x = 4 before training: {before:.6f}")
    say("")
    say("Full-batch gradient descent: one update per epoch, gradient over all 3 samples")
    say(f"{'epoch':>5}  {'w':>10}  {'loss':>12}")
    for k in range(epochs):
        if _shown(k + 1, epochs, every):
            say(f"{k + 1:>5}  {batch.w[k + 1, 0]:>10.6f}  {batch.history[k]:>12.6g}")
    predict_batch = float(predict([4.0], batch.w[-1])[0])
    say(f"prediction for x = 4 after full-batch training: {predict_batch:.6f}")
    say("")
    say("Per-sample SGD: one update per sample, samples in order; "
        "gradient dL/dw = 2 (w x - y) x at the w before the update")
    say(f"{'epoch':>5}  {'sample':>6}  {'x':>4}  {'y':>4}  {'gradient':>12}  "
        f"{'w':>10}  {'loss':>12}")
    for t in range(sgd.n_steps):
        epoch, i = divmod(t, 3)
        if _shown(epoch + 1, epochs, every):
            say(f"{epoch + 1:>5}  {i + 1:>6}  {x[i]:>4g}  {y[i]:>4g}  "
                f"{gradients['cython'][t]:>12.6g}  {sgd.w[t + 1, 0]:>10.6f}  "
                f"{sgd.step_loss[t]:>12.6g}")
    predict_sgd = float(predict([4.0], sgd.w[-1])[0])
    say(f"prediction for x = 4 after SGD training: {predict_sgd:.6f}")
    say("")
    worst = agreement.report(say)

    if plot_dir is not None:
        from .plotting import plot_landscape_1d, plot_loss_curve

        path = plot_dir / "gd-sgd-landscape.png"
        plot_landscape_1d(x, y, np.linspace(0.8, 2.2, 141), b=0.0,
                          paths={"full batch": batch, "per-sample SGD": sgd},
                          title="y = 2x: the loss over w and the steps of each method",
                          save=path)
        say(f"saved {path}")
        path = plot_dir / "gd-sgd-loss.png"
        plot_loss_curve(sgd, smoothing=0.9, log_scale=True,
                        title="per-sample SGD on y = 2x: loss per step and per epoch",
                        save=path)
        say(f"saved {path}")
    return dict(x=x, y=y, predict_before=before, batch=batch, sgd=sgd,
                sgd_gradients=gradients["cython"], predict_batch=predict_batch,
                predict_sgd=predict_sgd, max_relative_difference=worst)


# ---------------------------------------------------------------------------
# 2. One update by hand, then 15 epochs on 100 points
# ---------------------------------------------------------------------------

def by_hand(*, out: TextIO | None = None, plot_dir: str | os.PathLike | None = None,
            every: int = 1, seed: int = 0) -> dict:
    """Walk-through 2: one update you can check by hand, then 100 points.

    One sample (x, y) = (1.5, 0.8), w = 0.8, b = 0.2, ``half_mse``, lr = 0.1:
    r = 0.6, loss 0.18, gradients 0.9 and 0.6, then w = 0.71, b = 0.14 and the
    loss 0.0820125. Then 100 points x ~ U[0, 1) (``default_rng(seed)``),
    y = 2x + 3, 15 full-batch epochs from w = b = 0.

    Parameters
    ----------
    out, plot_dir, every
        As in :func:`gd_sgd` (``every`` defaults to 1: all 15 epochs).
    seed : int, default 0
        Seed of the 100 points.

    Returns
    -------
    dict
        ``loss_before``, ``grad_w``, ``grad_b``, ``w``, ``b``, ``loss_after``
        (the one update), ``x``, ``y``, ``path`` (the 15 epochs),
        ``max_relative_difference``.
    """
    say, plot_dir, every, agreement = _common(out, plot_dir, every)
    seed = _validation.check_int(seed, "seed", minimum=0)
    x0, y0, w0, b0, lr = 1.5, 0.8, 0.8, 0.2, 0.1
    numbers = {}
    for backend in BACKENDS:
        loss, grad_w, grad_b = value_and_grad([[x0]], [y0], [w0], b0, loss="half_mse",
                                              backend=backend)
        step = fit([[x0]], [y0], method="batch", lr=lr, epochs=1, w0=[w0], b0=b0,
                   loss="half_mse", backend=backend)
        after = value_and_grad([[x0]], [y0], step.w, step.b, loss="half_mse",
                               backend=backend)[0]
        numbers[backend] = np.array([loss, grad_w[0], grad_b, step.w[0], step.b, after])
    agreement.add(numbers["cython"], numbers["reference"])
    loss, grad_w, grad_b, w1, b1, after = numbers["cython"].tolist()

    x = np.random.default_rng(seed).random(100)
    y = 2 * x + 3
    paths = {backend: descent_path(x, y, method="batch", lr=lr, epochs=15, loss="half_mse",
                                   backend=backend) for backend in BACKENDS}
    agreement.add_paths(paths["cython"], paths["reference"])
    path = paths["cython"]

    say("Walk-through 2: one update by hand, then 15 epochs on 100 points of y = 2x + 3")
    say(f"one sample (x, y) = ({x0}, {y0}); w = {w0}, b = {b0}; "
        f"loss half_mse = 0.5 * (w x + b - y)**2; lr = {lr}")
    r = w0 * x0 + b0 - y0
    say(f"prediction w x + b = {w0 * x0 + b0:.10g}, residual r = {r:.10g}")
    say(f"loss before       0.5 * r**2 = {loss:.10g}")
    say(f"dL/dw             r * x      = {grad_w:.10g}")
    say(f"dL/db             r          = {grad_b:.10g}")
    say(f"new w             {w0} - {lr} * {grad_w:.10g} = {w1:.10g}")
    say(f"new b             {b0} - {lr} * {grad_b:.10g} = {b1:.10g}")
    say(f"loss after        0.5 * ({w1:.10g} * {x0} + {b1:.10g} - {y0})**2 = {after:.10g}")
    say("")
    say(f"100 points x ~ U[0, 1) (numpy default_rng({seed})), y = 2x + 3; "
        f"w = b = 0; half_mse; lr = {lr}; 15 full-batch epochs")
    say(f"{'epoch':>5}  {'w':>10}  {'b':>10}  {'loss':>12}")
    for k in range(15):
        if _shown(k + 1, 15, every):
            say(f"{k + 1:>5}  {path.w[k + 1, 0]:>10.6f}  {path.b[k + 1]:>10.6f}  "
                f"{path.history[k]:>12.6g}")
    final = value_and_grad(x, y, path.w[-1], path.b[-1], loss="half_mse")[0]
    say(f"loss after 15 epochs: {final:.6g} (the true parameters are w = 2, b = 3)")
    say("")
    worst = agreement.report(say)

    if plot_dir is not None:
        from .plotting import plot_landscape_2d, plot_loss_curve

        target = plot_dir / "by-hand-landscape.png"
        plot_landscape_2d(x, y, np.linspace(-0.5, 4.5, 201), np.linspace(-0.5, 5.0, 221),
                          paths={"full batch, 15 epochs": path},
                          title="y = 2x + 3: 15 full-batch steps on the (w, b) landscape",
                          save=target)
        say(f"saved {target}")
        target = plot_dir / "by-hand-loss.png"
        plot_loss_curve(path, smoothing=0.5, log_scale=True,
                        title="y = 2x + 3: loss per epoch", save=target)
        say(f"saved {target}")
    return dict(loss_before=loss, grad_w=grad_w, grad_b=grad_b, w=w1, b=b1,
                loss_after=after, x=x, y=y, path=path, max_relative_difference=worst)


# ---------------------------------------------------------------------------
# 3. The loss curve over w, and the path of the steps
# ---------------------------------------------------------------------------

def loss_over_w(*, out: TextIO | None = None, plot_dir: str | os.PathLike | None = None,
                every: int = 1) -> dict:
    """Walk-through 3: w from 8, b held at -1, on y = 2x - 1.

    xs = [-1, 0, 1, 2, 3, 4], 50 full-batch steps of ``mse`` with lr = 0.01,
    printing the loss and w at each step (the loss is 186 at w = 8). The loss
    over w is the parabola ``31/6 (w - 2)**2``; every step shrinks ``w - 2``
    by the factor ``1 - 0.01 * 31/3``, sliding down it.

    Parameters
    ----------
    out, plot_dir, every
        As in :func:`gd_sgd` (``every`` defaults to 1: all 50 steps).

    Returns
    -------
    dict
        ``x``, ``y``, ``path``, ``w_grid`` and ``curve`` (the loss over w at
        b = -1), ``path_losses`` (the curve at each w of the path), ``ratio``
        (``(w_1 - 2) / (w_0 - 2)``), ``max_relative_difference``.
    """
    say, plot_dir, every, agreement = _common(out, plot_dir, every)
    x = np.arange(-1.0, 5.0)
    y = 2 * x - 1
    lr, steps, w0, b = 0.01, 50, 8.0, -1.0
    w_grid = np.arange(-40, 121) / 10.0          # -4 .. 12 in steps of 0.1
    results = {}
    for backend in BACKENDS:
        path = descent_path(x, y, method="batch", lr=lr, epochs=steps, w0=[w0], b0=b,
                            fit_intercept=False, loss="mse", backend=backend)
        curve = loss_grid(x, y, w_grid, b, backend=backend)
        on_curve = loss_grid(x, y, path.w[:, 0], b, backend=backend)
        results[backend] = (path, curve, on_curve)
    agreement.add_paths(results["cython"][0], results["reference"][0])
    agreement.add(results["cython"][1], results["reference"][1])
    agreement.add(results["cython"][2], results["reference"][2])
    path, curve, on_curve = results["cython"]

    say("Walk-through 3: w from 8 with b held at -1, on y = 2x - 1")
    say(f"data: x = {x.tolist()}, y = {y.tolist()}; loss mse; lr = {lr}; "
        f"{steps} full-batch steps; b stays at {b}")
    say(f"{'step':>4}  {'loss':>12}  {'w':>10}    (loss at the w before the step, "
        f"w after it)")
    for k in range(steps):
        if _shown(k + 1, steps, every):
            say(f"{k + 1:>4}  {path.history[k]:>12.6f}  {path.w[k + 1, 0]:>10.6f}")
    best = int(np.argmin(curve))
    say("")
    say(f"the loss curve over w (b = {b}), {w_grid.size} values from {w_grid[0]:g} to "
        f"{w_grid[-1]:g}: minimum {curve[best]:.6g} at w = {w_grid[best]:g}; "
        f"loss at w = 8: {curve[np.flatnonzero(w_grid == 8.0)[0]]:.6g}")
    gap = max_relative_difference(on_curve[:-1], path.history)
    say(f"each step's (w, loss) lies on that curve: largest relative gap {gap:.2g}")
    ratio = (path.w[1, 0] - 2.0) / (path.w[0, 0] - 2.0)
    say(f"each step multiplies w - 2 by {ratio:.6f} (= 1 - lr * 31/3): w slides down "
        f"the parabola from {w0:g} to {path.w[-1, 0]:.6f}")
    say("")
    worst = agreement.report(say)

    if plot_dir is not None:
        from .plotting import plot_landscape_1d

        target = plot_dir / "loss-over-w.png"
        plot_landscape_1d(x, y, w_grid, b=b, paths={f"{steps} steps from w = 8": path},
                          title="y = 2x - 1, b = -1: the loss over w and the path of "
                                "the steps", save=target)
        say(f"saved {target}")
    return dict(x=x, y=y, path=path, w_grid=w_grid, curve=curve, path_losses=on_curve,
                ratio=ratio, max_relative_difference=worst)


# ---------------------------------------------------------------------------
# 4. The brute-force way, three methods on a landscape, a noisy loss curve
# ---------------------------------------------------------------------------

#: The three methods on the noisy 100 points (half_mse), from (w, b) = (-1, 6),
#: far along the landscape's valley: batch slides down its floor, SGD zigzags
#: across it, mini-batch does a little of both.
METHODS_ON_LANDSCAPE = {
    "batch": dict(method="batch", lr=0.5, epochs=150),
    "sgd": dict(method="sgd", lr=0.2, epochs=3),
    "minibatch": dict(method="minibatch", batch_size=10, lr=0.5, epochs=15),
}
LANDSCAPE_START = (-1.0, 6.0)
LANDSCAPE_NOISE = 0.5


def brute_force(*, out: TextIO | None = None, plot_dir: str | os.PathLike | None = None,
                every: int = 1, smoothing: float = 0.98, n_samples: int = 20_000,
                seed: int = 0) -> dict:
    """Walk-through 4: loss landscapes by brute force, and noisy loss curves.

    1. The loss over a grid of w (tutorial 3's data, b = -1): the grid's
       minimum is w = 2, loss 0.
    2. The loss over a grid of (w, b) (tutorial 2's 100 points): minimum at
       (2, 3). Then, with noise on y, batch, SGD and mini-batch descend that
       landscape from far along its valley; SGD's path zigzags (each sample
       pulls its own way), batch's does not.
    3. Mini-batch SGD (batch 32) on a larger synthetic problem, 5 epochs: the
       loss of every step is noisy; its moving average and the per-epoch
       means fall smoothly.

    Parameters
    ----------
    out, plot_dir, every
        As in :func:`gd_sgd` (``every`` applies to the epochs of part 3).
    smoothing : float, default 0.98
        Smoothing factor of the moving average of the step losses.
    n_samples : int, default 20000
        Size of the synthetic problem of part 3 (10 features).
    seed : int, default 0
        Seed of the 100 points, the synthetic problem and the shuffling.

    Returns
    -------
    dict
        ``w_grid``, ``w_losses``, ``best_w`` (part 1); ``x``, ``y``,
        ``ws``, ``bs``, ``surface``, ``best_wb``; ``x_noisy``, ``y_noisy``,
        ``least_squares`` (their minimum), ``paths`` (method -> DescentPath),
        ``path_length`` and ``straightness`` (method -> float) (part 2);
        ``minibatch`` (DescentPath of part 3), ``smoothed``, ``w_true``,
        ``fit_w`` (gdcore.fit's answer for the same run), and
        ``max_relative_difference``.
    """
    say, plot_dir, every, agreement = _common(out, plot_dir, every)
    smoothing = _validation.check_real(smoothing, "smoothing")
    n_samples = _validation.check_int(n_samples, "n_samples", minimum=32)
    seed = _validation.check_int(seed, "seed", minimum=0)
    say("Walk-through 4: the brute-force way, then three methods on the landscape, then "
        "a noisy loss curve")

    # Part 1: a grid of w values.
    x3 = np.arange(-1.0, 5.0)
    y3 = 2 * x3 - 1
    w_grid = np.arange(-20, 61) / 10.0            # -2 .. 6 in steps of 0.1
    w_losses = {backend: loss_grid(x3, y3, w_grid, -1.0, backend=backend)
                for backend in BACKENDS}
    agreement.add(w_losses["cython"], w_losses["reference"])
    w_loss = w_losses["cython"]
    best_w = float(w_grid[np.argmin(w_loss)])
    say("")
    say(f"1. Tutorial 3's data (y = 2x - 1, b = -1): the loss at {w_grid.size} values "
        f"of w from -2 to 6, one call of gdcore.loss_grid")
    say(f"{'w':>6}  {'loss':>10}")
    for i in range(0, w_grid.size, 10):
        say(f"{w_grid[i]:>6g}  {w_loss[i]:>10.4f}")
    say(f"smallest loss on the grid: {w_loss.min():.6g} at w = {best_w:g}")

    # Part 2: a grid of (w, b), and three methods on it.
    x = np.random.default_rng(seed).random(100)
    y = 2 * x + 3
    ws = np.arange(0, 41) / 10.0                  # 0 .. 4
    bs = np.arange(0, 61) / 10.0                  # 0 .. 6
    surfaces = {backend: loss_surface(x, y, ws, bs, loss="half_mse", backend=backend)
                for backend in BACKENDS}
    agreement.add(surfaces["cython"], surfaces["reference"])
    surface = surfaces["cython"]
    i, j = np.unravel_index(int(np.argmin(surface)), surface.shape)
    best_wb = (float(ws[i]), float(bs[j]))
    say("")
    say(f"2. Tutorial 2's 100 points (y = 2x + 3): the half_mse loss on a "
        f"{ws.size} x {bs.size} grid of (w, b), one call of gdcore.loss_surface")
    say(f"smallest loss on the grid: {surface[i, j]:.3g} at (w, b) = "
        f"({best_wb[0]:g}, {best_wb[1]:g})")
    # The same x with noise on y (the next 100 draws of the same generator),
    # so that the samples disagree, as real data do.
    rng = np.random.default_rng(seed)
    x_noisy = rng.random(100)
    y_noisy = 2 * x_noisy + 3 + LANDSCAPE_NOISE * rng.standard_normal(100)
    w_min, b_min = np.linalg.lstsq(np.column_stack([x_noisy, np.ones(100)]), y_noisy,
                                   rcond=None)[0]
    w0, b0 = LANDSCAPE_START
    say("")
    say(f"the same x with noise on y (y = 2x + 3 + {LANDSCAPE_NOISE} * N(0, 1)): its "
        f"minimum is at (w, b) = ({w_min:.5f}, {b_min:.5f}) (least squares);")
    say(f"three ways down its landscape from (w, b) = ({w0:g}, {b0:g}):")
    say(f"{'method':>9}  {'lr':>4}  {'steps':>5}  {'final w':>9}  {'final b':>9}  "
        f"{'path length':>11}  {'straightness':>12}")
    paths, lengths, straightness = {}, {}, {}
    for name, options in METHODS_ON_LANDSCAPE.items():
        both = {backend: descent_path(x_noisy, y_noisy, loss="half_mse", w0=[w0], b0=b0,
                                      seed=seed, backend=backend, **options)
                for backend in BACKENDS}
        agreement.add_paths(both["cython"], both["reference"])
        path = paths[name] = both["cython"]
        points = np.column_stack([path.w[:, 0], path.b])
        lengths[name] = float(np.linalg.norm(np.diff(points, axis=0), axis=1).sum())
        straightness[name] = float(np.linalg.norm(points[-1] - points[0]) / lengths[name])
        say(f"{name:>9}  {options['lr']:>4g}  {path.n_steps:>5}  {path.w[-1, 0]:>9.5f}  "
            f"{path.b[-1]:>9.5f}  {lengths[name]:>11.4f}  {straightness[name]:>12.3f}")
    say("(straightness = distance from start to end / length of the path; 1 is a "
        "straight line: SGD zigzags, batch does not)")

    # Part 3: mini-batch SGD on a larger problem, raw and smoothed loss per step.
    X, y_big, w_true = make_regression(n_samples, 10, noise=0.5, bias=1.0, seed=seed)
    options = dict(method="minibatch", batch_size=32, lr=0.002, epochs=5, seed=seed)
    big = {backend: descent_path(X, y_big, backend=backend, **options)
           for backend in BACKENDS}
    agreement.add_paths(big["cython"], big["reference"])
    minibatch = big["cython"]
    fitted = fit(X, y_big, **options)
    agreement.add(minibatch.w[-1], fitted.w)
    smoothed = ewma(minibatch.step_loss, smoothing)
    per = minibatch.steps_per_epoch
    say("")
    say(f"3. Mini-batch SGD on a synthetic problem: {n_samples:,} x 10, noise 0.5, "
        f"batch 32, lr {options['lr']:g}, {options['epochs']} epochs ({per} steps each), shuffled")
    say(f"{'epoch':>5}  {'mean loss':>10}  {'smoothed':>10}  {'last step':>10}  "
        f"{'step min':>10}  {'step max':>10}")
    for e in range(options["epochs"]):
        if _shown(e + 1, options["epochs"], every):
            steps = minibatch.step_loss[e * per:(e + 1) * per]
            say(f"{e + 1:>5}  {minibatch.history[e]:>10.5f}  "
                f"{smoothed[(e + 1) * per - 1]:>10.5f}  {steps[-1]:>10.5f}  "
                f"{steps.min():>10.5f}  {steps.max():>10.5f}")
    say(f"(smoothed: exponentially weighted moving average of the step losses, "
        f"smoothing {smoothing:g}; the noise floor is noise**2 = 0.25)")
    say(f"|w - w_true| = {np.linalg.norm(minibatch.w[-1] - w_true):.4f}; gdcore.fit with "
        f"the same options ends at the same w (largest relative difference "
        f"{max_relative_difference(minibatch.w[-1], fitted.w):.2g})")
    say("")
    worst = agreement.report(say)

    if plot_dir is not None:
        from .plotting import plot_landscape_2d, plot_loss_curve

        target = plot_dir / "landscape-methods.png"
        labels = {"batch": "full batch", "sgd": "per-sample SGD",
                  "minibatch": "mini-batch (10)"}
        plot_landscape_2d(x_noisy, y_noisy, np.linspace(-1.5, 4.5, 241),
                          np.linspace(0.5, 6.5, 241),
                          paths={labels[name]: path for name, path in paths.items()},
                          title="y = 2x + 3 + noise, 100 points: the (w, b) loss landscape "
                                "and three ways down it", save=target, dpi=100)
        say(f"saved {target}")
        target = plot_dir / "loss-curve.png"
        plot_loss_curve(minibatch, smoothing=smoothing, log_scale=True,
                        title=f"mini-batch SGD (batch 32) on {n_samples:,} x 10: loss "
                              f"per step, smoothed, and per epoch", save=target)
        say(f"saved {target}")
    return dict(w_grid=w_grid, w_losses=w_loss, best_w=best_w, x=x, y=y, ws=ws, bs=bs,
                surface=surface, best_wb=best_wb, x_noisy=x_noisy, y_noisy=y_noisy,
                least_squares=(float(w_min), float(b_min)), paths=paths, path_length=lengths,
                straightness=straightness, minibatch=minibatch, smoothed=smoothed,
                w_true=w_true, fit_w=fitted.w, max_relative_difference=worst)


DEMOS: dict[str, Demo] = {
    demo.name: demo for demo in (
        Demo("gd-sgd", 1, "full-batch GD, then per-sample SGD, on y = 2x; predict x = 4",
             gd_sgd),
        Demo("by-hand", 2, "one update by hand (half_mse), then 15 epochs on 100 points",
             by_hand),
        Demo("loss-over-w", 3, "w from 8, b held at -1: the loss curve over w and the steps",
             loss_over_w),
        Demo("brute-force", 4, "loss over grids of w and (w, b); three methods; noisy curve",
             brute_force),
    )
}


def find(name: Any) -> Demo:
    """The walk-through called ``name`` (or numbered ``name``: "1" .. "4")."""
    if isinstance(name, str):
        if name in DEMOS:
            return DEMOS[name]
        for demo in DEMOS.values():
            if name == str(demo.number):
                return demo
    choices = ", ".join(f"{d.number} or {d.name!r}" for d in DEMOS.values())
    raise ValueError(f"name must be one of the walk-throughs ({choices}); got {name!r}")


def list_demos(out: TextIO | None = None) -> None:
    """Print the walk-throughs, one per line."""
    say = _printer(out)
    say("walk-throughs of the tutorials gdcore grew from:")
    for demo in DEMOS.values():
        say(f"  {demo.number}  {demo.name:<12} {demo.title}")


def run(name: str, *, out: TextIO | None = None,
        plot_dir: str | os.PathLike | None = None, **options: Any) -> dict:
    """Run the walk-through ``name`` (a name or its number) and return its numbers.

    Parameters
    ----------
    name : str
        ``"gd-sgd"``, ``"by-hand"``, ``"loss-over-w"``, ``"brute-force"``, or
        ``"1"`` .. ``"4"``.
    out : text stream or None
        Where to print (None: standard output).
    plot_dir : str, os.PathLike or None
        Save the walk-through's pictures (PNG) in this directory, created if
        needed (needs matplotlib).
    **options
        Passed to the walk-through's function (``every``, ...).

    Returns
    -------
    dict
        The walk-through's numbers (see its function).

    Raises
    ------
    ValueError
        Unknown ``name``; bad options.
    ImportError
        ``plot_dir`` given without matplotlib.
    BackendDisagreement
        The two backends gave different numbers (a bug).
    """
    return find(name).run(out=out, plot_dir=plot_dir, **options)


__all__ = ["BackendDisagreement", "DEMOS", "Demo", "brute_force", "by_hand", "find",
           "gd_sgd", "list_demos", "loss_over_w", "run"]
