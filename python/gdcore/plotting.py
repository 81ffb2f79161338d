"""Pictures of gradient descent: loss curves and loss landscapes.

Needs matplotlib (``pip install "gdcore[plot]"``); the rest of gdcore does
not, and importing this module without it works: the error comes, with the
command that fixes it, when a function is called.

Every function returns the :class:`matplotlib.figure.Figure` it drew (made
without pyplot, so no global figure is left open; in a notebook it displays
itself) and, given ``save="name.png"`` (or ``.svg``, ``.pdf``), writes it to
that file: a file that is always the old or the new complete picture
(``gdcore._files.write_atomically``), checked before anything is drawn. The
landscapes come from :func:`gdcore.loss_grid`, the compiled kernel that
evaluates the loss at many parameter vectors in one pass over ``X`` per block
of candidates, and the paths from :func:`gdcore.descent_path`.

- :func:`plot_loss_curve`: loss per epoch (and per step, when recorded) with
  an exponentially weighted moving average over it.
- :func:`plot_landscape_1d`: the loss of a one-weight problem as a function of
  ``w``, with the points the steps visited.
- :func:`plot_landscape_2d`: the ``(w, b)`` landscape as colours and contour
  lines, with one or more paths: batch, SGD and mini-batch side by side show
  why SGD zigzags and batch gradient descent does not.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from . import _options, _validation
from ._files import write_atomically
from .landscape import DescentPath, ewma, loss_grid, loss_surface

#: File types ``save`` may name.
SAVE_SUFFIXES = (".png", ".svg", ".pdf")

PathsArg = DescentPath | Mapping[str, DescentPath] | None

#: Colours of the paths drawn on one panel of a (w, b) landscape.
_PATH_COLOURS = ("tab:red", "tab:orange", "magenta", "cyan")


def _figure_class() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("gdcore.plotting needs matplotlib: pip install 'gdcore[plot]' "
                          "(or pip install matplotlib)") from None
    return Figure


def _check_save(save: Any) -> Path | None:
    if save is None:
        return None
    if not isinstance(save, (str, os.PathLike)):
        raise TypeError(f"save must be a file name (str or os.PathLike) or None; got "
                        f"{type(save).__name__}")
    path = Path(save)
    if path.suffix.lower() not in SAVE_SUFFIXES:
        raise ValueError(f"save must name a {', '.join(SAVE_SUFFIXES)} file; got "
                         f"{str(save)!r}")
    # before drawing: a directory, a missing or unwritable folder
    _validation.check_destinations([("save", os.fsdecode(path))])
    return path


def _finish(fig: Any, save: Path | None, dpi: int) -> Any:
    if save is not None:
        kind = save.suffix.lower()[1:]
        # a temporary file beside ``save``, renamed onto it once complete
        write_atomically(save, lambda temporary: fig.savefig(temporary, dpi=dpi, format=kind,
                                                             bbox_inches="tight"))
    return fig


def _new_axes(ax: Any, size: tuple[float, float]) -> tuple[Any, Any]:
    if ax is None:
        fig = _figure_class()(figsize=size, layout="constrained")
        return fig, fig.add_subplot()
    _figure_class()         # the same error when matplotlib is missing
    return ax.figure, ax


def plot_loss_curve(history: Any, *, step_loss: Any = None, smoothing: float = 0.9,
                    log_scale: bool = False, title: str | None = None, ax: Any = None,
                    save: str | os.PathLike | None = None, dpi: int = 120) -> Any:
    """Loss per epoch, and per step when recorded, with a smoothed curve over it.

    Without ``step_loss``: the loss of each epoch at ``x = epoch`` (0, 1, ...)
    and its exponentially weighted moving average (:func:`gdcore.ewma`). With
    it: every step's batch loss at ``x = step / steps_per_epoch`` (thin), the
    moving average of those (bold) and each epoch's mean at the middle of its
    steps (dots).

    Parameters
    ----------
    history : array-like of shape (epochs,), FitResult or DescentPath
        The loss per epoch (``result.history``). A :class:`DescentPath` also
        supplies ``step_loss`` unless it is given.
    step_loss : array-like of shape (epochs * steps_per_epoch,) or None
        Loss of every step (``DescentPath.step_loss``).
    smoothing : float, default 0.9
        Weight of the past in the moving average, in ``[0, 1)``.
    log_scale : bool, default False
        Logarithmic loss axis.
    title : str or None
        Title of the figure.
    ax : matplotlib Axes or None
        Draw into this Axes (of your figure) instead of a new figure.
    save : str, os.PathLike or None
        Write the figure to this .png, .svg or .pdf file (checked before
        drawing; the file is replaced only by a complete picture).
    dpi : int, default 120
        Resolution of a saved PNG.

    Returns
    -------
    matplotlib.figure.Figure
        Its lines are labelled ``"loss per epoch"``, ``"loss per step"`` and
        ``"moving average (smoothing ...)"``.

    Raises
    ------
    TypeError, ValueError
        Empty or non-1-D curves, a ``step_loss`` whose length is not a multiple
        of the number of epochs, ``smoothing`` outside ``[0, 1)``, a bad
        ``save`` name.
    OSError
        ``save`` is a directory or in a missing or unwritable folder (raised
        before drawing), or writing it failed (an existing file is kept).
    ImportError
        matplotlib is not installed.
    """
    if step_loss is None and isinstance(history, DescentPath):
        step_loss = history.step_loss
    if hasattr(history, "history"):
        history = history.history
    epochs = _validation.check_vector(history, "history", " of losses")
    log_scale = _validation.check_bool(log_scale, "log_scale")
    save_path = _check_save(save)
    steps = None
    per_epoch = 1
    if step_loss is not None:
        steps = _validation.check_vector(step_loss, "step_loss", " of losses")
        per_epoch, extra = divmod(steps.shape[0], epochs.shape[0])
        if extra or per_epoch == 0:
            raise ValueError(f"step_loss must hold the same number of steps for each of "
                             f"the {epochs.shape[0]} epochs; got {steps.shape[0]} steps")
    smoothed = ewma(steps if steps is not None else epochs, smoothing)

    fig, ax = _new_axes(ax, (7.0, 4.0))
    label = f"moving average (smoothing {smoothing:g})"
    epoch_x = np.arange(epochs.shape[0]) + (per_epoch - 1) / (2 * per_epoch)
    if steps is not None:
        step_x = np.arange(steps.shape[0]) / per_epoch
        ax.plot(step_x, steps, color="tab:blue", alpha=0.35, linewidth=0.8,
                label="loss per step")
        ax.plot(step_x, smoothed, color="tab:blue", linewidth=2.0, label=label)
        ax.plot(epoch_x, epochs, "o", color="tab:orange", markersize=4,
                label="loss per epoch")
    else:
        ax.plot(epoch_x, epochs, "o-", color="tab:blue", alpha=0.5, markersize=3,
                linewidth=1.0, label="loss per epoch")
        ax.plot(epoch_x, smoothed, color="tab:orange", linewidth=2.0, label=label)
    if log_scale:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.grid(True, alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    return _finish(fig, save_path, dpi)


def _path_items(paths: Any) -> list[tuple[str, DescentPath]]:
    """Normalise ``paths`` (None, a DescentPath or a mapping) to (label, path) pairs."""
    if paths is None:
        return []
    if isinstance(paths, DescentPath):
        return [(paths.method, paths)]
    if isinstance(paths, Mapping):
        items = list(paths.items())
        for label, path in items:
            if not isinstance(path, DescentPath):
                raise TypeError(f"paths[{label!r}] must be a DescentPath (from "
                                f"gdcore.descent_path); got {type(path).__name__}")
        return [(str(label), path) for label, path in items]
    raise TypeError(f"paths must be a DescentPath, a mapping of labels to DescentPaths, "
                    f"or None; got {type(paths).__name__}")


def _resolve_loss(loss: Any, items: list[tuple[str, DescentPath]]) -> str:
    if loss is not None:
        _options.loss_factor(loss)
        return loss
    names = {path.loss for _, path in items}
    if len(names) > 1:
        raise ValueError(f"the paths were trained on different losses ({sorted(names)}); "
                         f"pass loss= to choose the landscape's")
    return names.pop() if names else "mse"


def _one_feature(X: Any, y: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    X, y = _validation.check_one_output(X, y, what)
    if X.shape[1] != 1:
        raise ValueError(f"{what} draws one-weight problems: X must have one feature; "
                         f"got {X.shape[1]}")
    return X, y


def _check_path_features(items: list[tuple[str, DescentPath]]) -> None:
    for label, path in items:
        if path.w.ndim != 2 or path.w.shape[1] != 1:
            raise ValueError(f"path {label!r} has {path.w.shape[-1]} weights per step; a "
                             f"one-weight landscape needs 1")


def plot_landscape_1d(X: Any, y: Any, w_values: Any, *, b: float = 0.0,
                      paths: PathsArg = None, loss: str | None = None,
                      log_scale: bool = False, title: str | None = None, ax: Any = None,
                      save: str | os.PathLike | None = None, dpi: int = 120,
                      backend: str = "cython", n_threads: int | None = None) -> Any:
    """The loss of a one-weight problem over ``w``, with the path the steps took.

    Parameters
    ----------
    X : array-like of shape (n_samples,) or (n_samples, 1)
        The samples of a one-feature problem.
    y : array-like of shape (n_samples,)
        Their targets.
    w_values : array-like of shape (n_w,)
        Where to evaluate the loss (finite values; sorted for a clean curve).
    b : float, default 0.0
        The intercept held fixed along the curve.
    paths : DescentPath, mapping of label to DescentPath, or None
        Paths from :func:`gdcore.descent_path` on the same data. Each step's
        point is drawn at ``(w_t, loss(w_t, b_t))``: on the curve when the
        intercept is held at ``b`` (``fit_intercept=False``).
    loss : {"mse", "half_mse"} or None
        None: the paths' loss (``"mse"`` without paths).
    log_scale : bool, default False
        Logarithmic loss axis.
    title : str or None
        Title of the figure.
    ax : matplotlib Axes or None
        Draw into this Axes (of your figure) instead of a new figure.
    save : str, os.PathLike or None
        Write the figure to this .png, .svg or .pdf file (checked before
        drawing; the file is replaced only by a complete picture).
    dpi : int, default 120
        Resolution of a saved PNG.
    backend, n_threads : str, int or None
        As in :func:`gdcore.loss_grid`, which computes the curve and the points.

    Returns
    -------
    matplotlib.figure.Figure
        The curve is the line labelled ``"loss(w), b = ..."``; each path is the
        line labelled with its label.

    Raises
    ------
    TypeError, ValueError
        Bad data or grid (as :func:`gdcore.loss_grid`), ``X`` with more than
        one feature, bad ``paths``, paths on different losses without
        ``loss``, a bad ``save`` name.
    OSError
        ``save`` is a directory or in a missing or unwritable folder (raised
        before drawing), or writing it failed (an existing file is kept).
    ImportError
        matplotlib is not installed.
    """
    X, y = _one_feature(X, y, "plot_landscape_1d")
    ws = _validation.check_vector(w_values, "w_values")
    b = _validation.check_real(b, "b")
    items = _path_items(paths)
    _check_path_features(items)
    loss = _resolve_loss(loss, items)
    log_scale = _validation.check_bool(log_scale, "log_scale")
    save_path = _check_save(save)
    curve = loss_grid(X, y, ws, b, loss=loss, backend=backend, n_threads=n_threads)
    points = [loss_grid(X, y, path.w[:, 0], path.b, loss=loss, backend=backend,
                        n_threads=n_threads) for _, path in items]

    fig, ax = _new_axes(ax, (7.0, 4.5))
    ax.plot(ws, curve, color="black", linewidth=1.5, label=f"loss(w), b = {b:g}")
    for (label, path), values in zip(items, points, strict=True):
        line, = ax.plot(path.w[:, 0], values, "o-", markersize=3, linewidth=0.8,
                        alpha=0.85, label=label)
        ax.plot(path.w[0, 0], values[0], "s", color=line.get_color(), markersize=7)
        ax.plot(path.w[-1, 0], values[-1], "*", color=line.get_color(), markersize=11)
    if log_scale:
        ax.set_yscale("log")
    ax.set_xlabel("w")
    ax.set_ylabel(f"loss ({loss})")
    ax.grid(True, alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    return _finish(fig, save_path, dpi)


def plot_landscape_2d(X: Any, y: Any, w_values: Any, b_values: Any, *,
                      paths: PathsArg = None, loss: str | None = None, levels: int = 15,
                      side_by_side: bool = True, title: str | None = None,
                      save: str | os.PathLike | None = None, dpi: int = 120,
                      backend: str = "cython", n_threads: int | None = None) -> Any:
    """The ``(w, b)`` loss landscape of a one-weight problem, with descent paths.

    The landscape (:func:`gdcore.loss_surface`) is drawn as colours on a log
    scale with ``levels`` contour lines and a white cross at the grid's
    lowest point; each path as its steps joined by a line, a square at the
    start and a star at the end. With several paths and
    ``side_by_side``, each gets its own panel over the same landscape: batch,
    SGD and mini-batch next to each other.

    Parameters
    ----------
    X : array-like of shape (n_samples,) or (n_samples, 1)
        The samples of a one-feature problem.
    y : array-like of shape (n_samples,)
        Their targets.
    w_values : array-like of shape (n_w,)
        Grid of weights (increasing).
    b_values : array-like of shape (n_b,)
        Grid of intercepts (increasing).
    paths : DescentPath, mapping of label to DescentPath, or None
        Paths from :func:`gdcore.descent_path` on the same data, drawn over
        the contours.
    loss : {"mse", "half_mse"} or None
        None: the paths' loss (``"mse"`` without paths).
    levels : int, default 15
        Number of contour lines.
    side_by_side : bool, default True
        One panel per path; False draws all paths on one panel.
    title : str or None
        Title of the whole figure.
    save : str, os.PathLike or None
        Write the figure to this .png, .svg or .pdf file (checked before
        drawing; the file is replaced only by a complete picture).
    dpi : int, default 120
        Resolution of a saved PNG.
    backend, n_threads : str, int or None
        As in :func:`gdcore.loss_grid`.

    Returns
    -------
    matplotlib.figure.Figure
        Each panel holds the landscape as a ``QuadMesh`` whose array is
        ``loss_surface(...).T`` (rows: b, columns: w) and the paths as lines
        labelled with their labels.

    Raises
    ------
    TypeError, ValueError
        Bad data or grids, ``X`` with more than one feature, bad ``paths``,
        ``levels`` < 2, a bad ``save`` name.
    OSError
        ``save`` is a directory or in a missing or unwritable folder (raised
        before drawing), or writing it failed (an existing file is kept).
    ImportError
        matplotlib is not installed.
    """
    X, y = _one_feature(X, y, "plot_landscape_2d")
    items = _path_items(paths)
    _check_path_features(items)
    loss = _resolve_loss(loss, items)
    levels = _validation.check_int(levels, "levels", minimum=2)
    _validation.check_memory(8 * (levels + 2), f"levels={levels}", "the contour levels")
    side_by_side = _validation.check_bool(side_by_side, "side_by_side")
    save_path = _check_save(save)
    surface = loss_surface(X, y, w_values, b_values, loss=loss, backend=backend,
                           n_threads=n_threads)
    ws = np.asarray(w_values, dtype=np.float64)
    bs = np.asarray(b_values, dtype=np.float64)
    Figure = _figure_class()
    from matplotlib.colors import LogNorm, Normalize

    # Colours and contour levels on a log scale, which shows the valley's
    # shape; a zero loss on the grid is drawn at the floor of the scale.
    high = float(surface.max())
    above = surface[surface > 0.0]
    low = max(float(above.min()), high * 1e-6) if above.size else 0.0
    norm: Normalize
    if 0.0 < low < high:
        norm = LogNorm(vmin=low, vmax=high, clip=True)
        contour_levels = np.geomspace(low, high, levels + 2)[1:-1]
    else:
        norm = Normalize(vmin=float(surface.min()), vmax=high)
        contour_levels = np.linspace(float(surface.min()), high, levels + 2)[1:-1]
    groups = [[item] for item in items] if side_by_side and items else [items]
    fig = Figure(figsize=(4.3 * len(groups) + 1.0, 4.2), layout="constrained")
    axes = fig.subplots(1, len(groups), squeeze=False, sharey=True)[0]
    mesh = None
    lowest = np.unravel_index(int(np.argmin(surface)), surface.shape)
    for ax, group in zip(axes, groups, strict=True):
        mesh = ax.pcolormesh(ws, bs, surface.T, shading="nearest", norm=norm,
                             cmap="viridis", rasterized=True)
        if contour_levels[0] < contour_levels[-1]:
            ax.contour(ws, bs, surface.T, levels=contour_levels, colors="white",
                       linewidths=0.6, alpha=0.6)
        ax.plot(ws[lowest[0]], bs[lowest[1]], "+", color="white", markersize=12,
                markeredgewidth=1.5)
        for k, (label, path) in enumerate(group):
            ax.plot(path.w[:, 0], path.b, "-", color=_PATH_COLOURS[k % len(_PATH_COLOURS)],
                    linewidth=0.9, marker=".", markersize=3, label=label)
            ax.plot(path.w[0, 0], path.b[0], "s", color="white", markeredgecolor="black",
                    markersize=7)
            ax.plot(path.w[-1, 0], path.b[-1], "*", color="yellow",
                    markeredgecolor="black", markersize=12)
            if side_by_side:
                ax.set_title(f"{label}: {path.n_steps} steps")
        ax.set_xlabel("w")
        ax.set_xlim(ws.min(), ws.max())
        ax.set_ylim(bs.min(), bs.max())
    axes[0].set_ylabel("b")
    if not side_by_side and items:
        axes[0].legend()
    fig.colorbar(mesh, ax=list(axes), label=f"loss ({loss})")
    if title:
        fig.suptitle(title)
    return _finish(fig, save_path, dpi)


__all__ = ["SAVE_SUFFIXES", "plot_landscape_1d", "plot_landscape_2d", "plot_loss_curve"]
