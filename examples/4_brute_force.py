"""Tutorial 4: loss over grids of w and (w, b); three methods; noisy curve

The brute-force way to find the best w: evaluate the loss at every value of a
grid and take the smallest. gdcore.loss_grid does that for many candidates in
one call (a compiled kernel that reads the data once per block of candidates).

1. A grid of w (tutorial 3's data, b = -1): the minimum is at w = 2, loss 0.
2. A grid of (w, b) (tutorial 2's 100 points, y = 2x + 3): minimum at (2, 3).
   Then, with noise on y, batch, SGD and mini-batch gradient descent go down
   that landscape from far along its valley: batch slides down the valley
   floor; SGD zigzags across it, because each sample pulls its own way;
   mini-batch does a little of both.
3. Mini-batch SGD (batch 32) on a larger synthetic problem, 5 epochs: the loss
   of every step is noisy; its exponentially weighted moving average and the
   per-epoch means fall smoothly to the noise floor.

Run:  python examples/4_brute_force.py [DIR]
(with DIR, also save the pictures there as PNG files; needs matplotlib)
"""

import sys
from pathlib import Path

import numpy as np

import gdcore

print("Walk-through 4: the brute-force way, then three methods on the landscape, then "
      "a noisy loss curve")

# --- 1. A grid of w values --------------------------------------------------------
x3 = np.arange(-1.0, 5.0)
y3 = 2 * x3 - 1
w_grid = np.arange(-20, 61) / 10.0       # -2 .. 6 in steps of 0.1
w_loss = gdcore.loss_grid(x3, y3, w_grid, -1.0)

print()
print(f"1. Tutorial 3's data (y = 2x - 1, b = -1): the loss at {w_grid.size} values "
      f"of w from -2 to 6, one call of gdcore.loss_grid")
print(f"{'w':>6}  {'loss':>10}")
for i in range(0, w_grid.size, 10):      # every tenth: w = -2, -1, ..., 6
    print(f"{w_grid[i]:>6g}  {w_loss[i]:>10.4f}")
print(f"smallest loss on the grid: {w_loss.min():.6g} at w = {w_grid[np.argmin(w_loss)]:g}")

# --- 2. A grid of (w, b), and three ways down it ----------------------------------
x = np.random.default_rng(0).random(100)
y = 2 * x + 3
ws = np.arange(0, 41) / 10.0             # 0 .. 4
bs = np.arange(0, 61) / 10.0             # 0 .. 6
surface = gdcore.loss_surface(x, y, ws, bs, loss="half_mse")   # surface[i, j]: (ws[i], bs[j])
i, j = np.unravel_index(np.argmin(surface), surface.shape)

print()
print(f"2. Tutorial 2's 100 points (y = 2x + 3): the half_mse loss on a "
      f"{ws.size} x {bs.size} grid of (w, b), one call of gdcore.loss_surface")
print(f"smallest loss on the grid: {surface[i, j]:.3g} at (w, b) = ({ws[i]:g}, {bs[j]:g})")

# The same x with noise on y, so that the samples disagree, as real data do.
# (A new generator with the same seed draws the same 100 x first.)
noise = 0.5
rng = np.random.default_rng(0)
x_noisy = rng.random(100)
y_noisy = 2 * x_noisy + 3 + noise * rng.standard_normal(100)
# the bottom of its landscape, by least squares
w_min, b_min = np.linalg.lstsq(np.column_stack([x_noisy, np.ones(100)]), y_noisy,
                               rcond=None)[0]
w0, b0 = -1.0, 6.0                       # far along the landscape's valley

print()
print(f"the same x with noise on y (y = 2x + 3 + {noise} * N(0, 1)): its "
      f"minimum is at (w, b) = ({w_min:.5f}, {b_min:.5f}) (least squares);")
print(f"three ways down its landscape from (w, b) = ({w0:g}, {b0:g}):")
print(f"{'method':>9}  {'lr':>4}  {'steps':>5}  {'final w':>9}  {'final b':>9}  "
      f"{'path length':>11}  {'straightness':>12}")
methods = {
    "batch": dict(method="batch", lr=0.5, epochs=150),       # 150 steps of all 100 samples
    "sgd": dict(method="sgd", lr=0.2, epochs=3),              # 300 steps of one sample
    "minibatch": dict(method="minibatch", batch_size=10, lr=0.5, epochs=15),  # 150 of 10
}
paths = {}
for name, options in methods.items():
    path = gdcore.descent_path(x_noisy, y_noisy, loss="half_mse", w0=[w0], b0=b0, seed=0,
                               **options)
    paths[name] = path
    # the path as points (w, b); its length is the sum of the lengths of the steps
    points = np.column_stack([path.w[:, 0], path.b])
    length = np.linalg.norm(np.diff(points, axis=0), axis=1).sum()
    straightness = np.linalg.norm(points[-1] - points[0]) / length
    print(f"{name:>9}  {options['lr']:>4g}  {path.n_steps:>5}  {path.w[-1, 0]:>9.5f}  "
          f"{path.b[-1]:>9.5f}  {length:>11.4f}  {straightness:>12.3f}")
print("(straightness = distance from start to end / length of the path; 1 is a "
      "straight line: SGD zigzags, batch does not)")

# --- 3. Mini-batch SGD: raw and smoothed loss curves ------------------------------
n_samples, smoothing, epochs = 20_000, 0.98, 5
X, y_big, w_true = gdcore.make_regression(n_samples, 10, noise=0.5, bias=1.0, seed=0)
options = dict(method="minibatch", batch_size=32, lr=0.002, epochs=epochs, seed=0)
minibatch = gdcore.descent_path(X, y_big, **options)
smoothed = gdcore.ewma(minibatch.step_loss, smoothing)
per = minibatch.steps_per_epoch

print()
print(f"3. Mini-batch SGD on a synthetic problem: {n_samples:,} x 10, noise 0.5, "
      f"batch 32, lr {options['lr']:g}, {epochs} epochs ({per} steps each), shuffled")
print(f"{'epoch':>5}  {'mean loss':>10}  {'smoothed':>10}  {'last step':>10}  "
      f"{'step min':>10}  {'step max':>10}")
for k in range(epochs):
    steps = minibatch.step_loss[k * per:(k + 1) * per]      # the losses of epoch k's steps
    print(f"{k + 1:>5}  {minibatch.history[k]:>10.5f}  {smoothed[(k + 1) * per - 1]:>10.5f}  "
          f"{steps[-1]:>10.5f}  {steps.min():>10.5f}  {steps.max():>10.5f}")
print(f"(smoothed: exponentially weighted moving average of the step losses, "
      f"smoothing {smoothing:g}; the noise floor is noise**2 = 0.25)")
# descent_path is gdcore.fit with a record of every step: fit ends at the same w
fitted = gdcore.fit(X, y_big, **options)
print(f"|w - w_true| = {np.linalg.norm(minibatch.w[-1] - w_true):.4f}; gdcore.fit with "
      f"the same options ends at the same w: {np.array_equal(fitted.w, minibatch.w[-1])}")

# --- The plain-Python reference backend: the same arithmetic, in for loops --------
check = gdcore.loss_surface(x, y, ws, bs, loss="half_mse", backend="reference")
i, j = np.unravel_index(np.argmin(check), check.shape)
print()
print(f'the plain-Python reference backend (backend="reference") finds the same (w, b) '
      f"grid minimum: {check[i, j]:.3g} at ({ws[i]:g}, {bs[j]:g})")

if len(sys.argv) > 1:                    # a directory: save the pictures there
    from gdcore.plotting import plot_landscape_2d, plot_loss_curve

    plot_dir = Path(sys.argv[1])
    plot_dir.mkdir(parents=True, exist_ok=True)
    target = plot_dir / "landscape-methods.png"
    labels = {"batch": "full batch", "sgd": "per-sample SGD", "minibatch": "mini-batch (10)"}
    plot_landscape_2d(x_noisy, y_noisy, np.linspace(-1.5, 4.5, 241), np.linspace(0.5, 6.5, 241),
                      paths={labels[name]: path for name, path in paths.items()},
                      title="y = 2x + 3 + noise, 100 points: the (w, b) loss landscape "
                            "and three ways down it", save=target, dpi=100)
    print(f"saved {target}")
    target = plot_dir / "loss-curve.png"
    plot_loss_curve(minibatch, smoothing=smoothing, log_scale=True,
                    title=f"mini-batch SGD (batch 32) on {n_samples:,} x 10: loss "
                          f"per step, smoothed, and per epoch", save=target)
    print(f"saved {target}")
