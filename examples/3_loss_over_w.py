"""Tutorial 3: w from 8, b held at -1: the loss curve over w and the steps

xs = [-1, 0, 1, 2, 3, 4], ys = 2x - 1. The bias is held at b = -1 (the true
value), so only w is learned, from w = 8, with lr = 0.01 and the loss mse.

With b = -1 the residual is (w - 2) * x, so the loss is a parabola in w:
L(w) = mean(x**2) * (w - 2)**2 = 31/6 * (w - 2)**2, which is 186 at w = 8.
Its slope is 31/3 * (w - 2), so every step multiplies w - 2 by
1 - 0.01 * 31/3 = 0.896667: w slides down the parabola toward 2.

Run:  python examples/3_loss_over_w.py [DIR]
(with DIR, also save the picture there as a PNG file; needs matplotlib)
"""

import sys
from pathlib import Path

import numpy as np

import gdcore

x = np.arange(-1.0, 5.0)                 # [-1, 0, 1, 2, 3, 4]
y = 2 * x - 1
lr, steps, w0, b = 0.01, 50, 8.0, -1.0

print("Walk-through 3: w from 8 with b held at -1, on y = 2x - 1")
print(f"data: x = {x.tolist()}, y = {y.tolist()}; loss mse; lr = {lr}; "
      f"{steps} full-batch steps; b stays at {b}")

# 50 full-batch steps of w; fit_intercept=False keeps b at b0 = -1
path = gdcore.descent_path(x, y, method="batch", lr=lr, epochs=steps, w0=[w0], b0=b,
                           fit_intercept=False, loss="mse")
print(f"{'step':>4}  {'loss':>12}  {'w':>10}    (loss at the w before the step, "
      f"w after it)")
for k in range(steps):
    print(f"{k + 1:>4}  {path.history[k]:>12.6f}  {path.w[k + 1, 0]:>10.6f}")

# The loss curve over w, the brute-force way: one call of loss_grid evaluates
# the loss at all 161 values of w (with b = -1).
w_grid = np.arange(-40, 121) / 10.0      # -4 .. 12 in steps of 0.1
curve = gdcore.loss_grid(x, y, w_grid, b)
best = np.argmin(curve)
print()
print(f"the loss curve over w (b = {b}), {w_grid.size} values from {w_grid[0]:g} to "
      f"{w_grid[-1]:g}: minimum {curve[best]:.6g} at w = {w_grid[best]:g}; "
      f"loss at w = 8: {curve[w_grid == 8.0][0]:.6g}")

# Every point of the path lies on that curve: the loss at each w the steps
# visited (the last one included) is the loss each step printed.
on_curve = gdcore.loss_grid(x, y, path.w[:, 0], b)
gap = np.max(np.abs(on_curve[:-1] - path.history) / path.history)
print(f"each step's (w, loss) lies on that curve: largest relative gap {gap:.2g}")
ratio = (path.w[1, 0] - 2.0) / (path.w[0, 0] - 2.0)
print(f"each step multiplies w - 2 by {ratio:.6f} (= 1 - lr * 31/3): w slides down "
      f"the parabola from {w0:g} to {path.w[-1, 0]:.6f}")

# --- The plain-Python reference backend: the same arithmetic, in for loops --------
check = gdcore.loss_grid(x, y, w_grid, b, backend="reference")
print()
print(f'the plain-Python reference backend (backend="reference") draws the same curve: '
      f"minimum {check.min():.6g} at w = {w_grid[np.argmin(check)]:g}, "
      f"loss at w = 8: {check[w_grid == 8.0][0]:.6g}")

if len(sys.argv) > 1:                    # a directory: save the picture there
    from gdcore.plotting import plot_landscape_1d

    plot_dir = Path(sys.argv[1])
    plot_dir.mkdir(parents=True, exist_ok=True)
    target = plot_dir / "loss-over-w.png"
    plot_landscape_1d(x, y, w_grid, b=b, paths={f"{steps} steps from w = 8": path},
                      title="y = 2x - 1, b = -1: the loss over w and the path of the steps",
                      save=target)
    print(f"saved {target}")
