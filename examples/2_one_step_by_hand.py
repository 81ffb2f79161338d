"""Tutorial 2: one gradient-descent update you can check by hand, then 100 points.

One sample (x, y) = (1.5, 0.8), the model y_hat = w * x + b with w = 0.8 and
b = 0.2, and the loss half_mse: L = 0.5 * (w * x + b - y)**2.

By hand: the residual is r = 0.8 * 1.5 + 0.2 - 0.8 = 0.6, so L = 0.18,
dL/dw = r * x = 0.9 and dL/db = r = 0.6. One step with lr = 0.1 gives
w = 0.8 - 0.1 * 0.9 = 0.71 and b = 0.2 - 0.1 * 0.6 = 0.14; then r = 0.405
and the loss has fallen to 0.5 * 0.405**2 = 0.0820125.

Then 100 points x ~ U[0, 1), y = 2x + 3, and 15 full-batch epochs from
w = b = 0: w and b head for 2 and 3.

Run:  python examples/2_one_step_by_hand.py  (add a directory to save a picture)
"""

import sys

import numpy as np

import gdcore

x, y = [[1.5]], [0.8]
w, b, lr = 0.8, 0.2, 0.1

loss, grad_w, grad_b = gdcore.value_and_grad(x, y, [w], b, loss="half_mse")
print(f"loss before = {loss:.10g}")
print(f"dL/dw = {grad_w[0]:.10g}")
print(f"dL/db = {grad_b:.10g}")

# one update: one epoch of full-batch gradient descent on the one sample
step = gdcore.fit(x, y, method="batch", lr=lr, epochs=1, w0=[w], b0=b, loss="half_mse")
print(f"new w = {step.w[0]:.10g}")
print(f"new b = {step.b:.10g}")
after = gdcore.value_and_grad(x, y, step.w, step.b, loss="half_mse")[0]
print(f"loss after = {after:.10g}")

# the reference backend, plain Python, does the same arithmetic
check = gdcore.fit(x, y, method="batch", lr=lr, epochs=1, w0=[w], b0=b, loss="half_mse",
                   backend="reference")
print(f"reference backend: w = {check.w[0]:.10g}, b = {check.b:.10g}")

# --- 100 points of y = 2x + 3 --------------------------------------------------
points = np.random.default_rng(0).random(100)        # x ~ U[0, 1)
targets = 2 * points + 3
path = gdcore.descent_path(points, targets, method="batch", lr=0.1, epochs=15,
                           loss="half_mse")
for epoch in range(15):
    print(f"epoch {epoch + 1:2d}  w = {path.w[epoch + 1, 0]:.6f}  "
          f"b = {path.b[epoch + 1]:.6f}  loss = {path.history[epoch]:.6f}")

check = gdcore.fit(points, targets, method="batch", lr=0.1, epochs=15, loss="half_mse",
                   backend="reference")
print(f"reference backend after 15 epochs: w = {check.w[0]:.6f}, b = {check.b:.6f}")

if len(sys.argv) > 1:                    # a directory: save the picture there
    from pathlib import Path

    from gdcore.plotting import plot_landscape_2d

    target = Path(sys.argv[1]) / "2_one_step_by_hand.png"
    plot_landscape_2d(points, targets, np.linspace(-0.5, 4.5, 201),
                      np.linspace(-0.5, 5.0, 221), paths={"15 epochs": path}, save=target)
    print(f"saved {target}")
