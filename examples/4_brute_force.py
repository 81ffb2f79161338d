"""Tutorial 4: the loss landscape by brute force, and noisy loss curves.

The brute-force way to find the best w: evaluate the loss at every value of a
grid and take the smallest. gdcore.loss_grid does that for many candidates in
one call (a compiled kernel that reads the data once per block of candidates).

1. A grid of w (tutorial 3's data, b = -1): the minimum is at w = 2.
2. A grid of (w, b) (tutorial 2's 100 points, y = 2x + 3): minimum at (2, 3).
3. Mini-batch SGD on a larger synthetic problem: the loss of each step is
   noisy; an exponentially weighted moving average shows the trend.

Run:  python examples/4_brute_force.py  (add a directory to save the pictures)
"""

import sys

import numpy as np

import gdcore

# --- 1. A grid of w values ---------------------------------------------------------
x = np.arange(-1.0, 5.0)
y = 2 * x - 1
w_grid = np.arange(-20, 61) / 10.0       # -2 .. 6 in steps of 0.1
losses = gdcore.loss_grid(x, y, w_grid, -1.0)
best = np.argmin(losses)
print(f"grid of w: best w = {w_grid[best]:g}, loss = {losses[best]:.6g}")

# --- 2. A grid of (w, b) -----------------------------------------------------------
x = np.random.default_rng(0).random(100)
y = 2 * x + 3
ws = np.arange(0, 41) / 10.0             # 0 .. 4
bs = np.arange(0, 61) / 10.0             # 0 .. 6
surface = gdcore.loss_surface(x, y, ws, bs, loss="half_mse")   # surface[i, j] at (ws[i], bs[j])
i, j = np.unravel_index(np.argmin(surface), surface.shape)
print(f"grid of (w, b): best w = {ws[i]:g}, b = {bs[j]:g}, loss = {surface[i, j]:.3g}")
same = np.array_equal(surface, gdcore.reference.loss_grid(
    x, y, np.repeat(ws, bs.size), np.tile(bs, ws.size), loss="half_mse").reshape(surface.shape))
print(f"reference backend, same surface: {same}")

# --- 3. Mini-batch SGD: raw and smoothed loss curves -------------------------------
X, y, w_true = gdcore.make_regression(20_000, 10, noise=0.5, bias=1.0, seed=0)
path = gdcore.descent_path(X, y, method="minibatch", batch_size=32, lr=0.002, epochs=5,
                           seed=0)
smoothed = gdcore.ewma(path.step_loss, 0.98)
steps = path.steps_per_epoch
for epoch in range(5):
    raw = path.step_loss[epoch * steps:(epoch + 1) * steps]
    print(f"epoch {epoch + 1}  mean loss = {path.history[epoch]:.5f}  "
          f"smoothed = {smoothed[(epoch + 1) * steps - 1]:.5f}  "
          f"raw steps from {raw.min():.5f} to {raw.max():.5f}")
result = gdcore.fit(X, y, method="minibatch", batch_size=32, lr=0.002, epochs=5, seed=0)
print(f"gdcore.fit ends at the same w: {np.array_equal(result.w, path.w[-1])}")
print(f"|w - w_true| = {np.linalg.norm(result.w - w_true):.4f}")

if len(sys.argv) > 1:                    # a directory: save the pictures there
    from pathlib import Path

    from gdcore.plotting import plot_loss_curve

    target = Path(sys.argv[1]) / "4_brute_force_loss.png"
    plot_loss_curve(path, smoothing=0.98, log_scale=True, save=target)
    print(f"saved {target}")
