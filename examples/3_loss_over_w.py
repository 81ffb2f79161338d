"""Tutorial 3: the loss curve over w, and the path the steps take down it.

xs = [-1, 0, 1, 2, 3, 4], ys = 2x - 1. The bias is held at b = -1 (the true
value), so only w is learned, from w = 8, with lr = 0.01 and the loss mse.

With b = -1 the residual is (w - 2) * x, so the loss is a parabola in w:
L(w) = mean(x**2) * (w - 2)**2 = 31/6 * (w - 2)**2, which is 186 at w = 8.
Its slope is 31/3 * (w - 2), so every step multiplies w - 2 by
1 - 0.01 * 31/3 = 0.896667: w slides down the parabola toward 2.

Run:  python examples/3_loss_over_w.py  (add a directory to save the picture)
"""

import sys

import numpy as np

import gdcore

x = np.arange(-1.0, 5.0)                 # [-1, 0, 1, 2, 3, 4]
y = 2 * x - 1

# 50 full-batch steps of w, with b fixed at -1 (fit_intercept=False)
path = gdcore.descent_path(x, y, method="batch", lr=0.01, epochs=50, w0=[8.0], b0=-1.0,
                           fit_intercept=False, loss="mse")
for step in range(50):
    # the loss at the w the step started from, and the w it moved to
    print(f"step {step + 1:2d}  loss = {path.history[step]:.6f}  "
          f"w = {path.w[step + 1, 0]:.6f}")

# the loss curve over w: one call evaluates the loss at all 161 values
w_grid = np.arange(-40, 121) / 10.0      # -4 .. 12 in steps of 0.1
curve = gdcore.loss_grid(x, y, w_grid, -1.0)
print(f"curve: minimum {curve.min():.6g} at w = {w_grid[np.argmin(curve)]:g}")
print(f"curve: loss at w = 8 is {curve[w_grid == 8.0][0]:.6g}")

# every point of the path lies on the curve
on_curve = gdcore.loss_grid(x, y, path.w[:, 0], -1.0)
print(f"path on the curve: {np.allclose(on_curve[:-1], path.history, rtol=1e-12)}")
print(f"ratio (w1 - 2) / (w0 - 2) = {(path.w[1, 0] - 2) / (path.w[0, 0] - 2):.6f}")

check = gdcore.reference.loss_grid(x, y, w_grid, -1.0)
print(f"reference backend, same curve: {np.array_equal(check, curve)}")

if len(sys.argv) > 1:                    # a directory: save the picture there
    from pathlib import Path

    from gdcore.plotting import plot_landscape_1d

    target = Path(sys.argv[1]) / "3_loss_over_w.png"
    plot_landscape_1d(x, y, w_grid, b=-1.0, paths={"50 steps from w = 8": path},
                      save=target)
    print(f"saved {target}")
