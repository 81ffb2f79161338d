"""Tutorial 2: one update by hand (half_mse), then 15 epochs on 100 points

One sample (x, y) = (1.5, 0.8), the model y_hat = w * x + b with w = 0.8 and
b = 0.2, and the loss half_mse: L = 0.5 * (w * x + b - y)**2.

By hand: the residual is r = 0.8 * 1.5 + 0.2 - 0.8 = 0.6, so L = 0.18,
dL/dw = r * x = 0.9 and dL/db = r = 0.6. One step with lr = 0.1 gives
w = 0.8 - 0.1 * 0.9 = 0.71 and b = 0.2 - 0.1 * 0.6 = 0.14; then r = 0.405
and the loss has fallen to 0.5 * 0.405**2 = 0.0820125.

Then 100 points x ~ U[0, 1), y = 2x + 3, and 15 full-batch epochs from
w = b = 0: w and b head for 2 and 3.

Run:  python examples/2_one_step_by_hand.py [DIR]
(with DIR, also save the pictures there as PNG files; needs matplotlib)
"""

import sys
from pathlib import Path

import numpy as np

import gdcore

# --- One update, by hand ----------------------------------------------------------
x0, y0 = 1.5, 0.8
w0, b0, lr = 0.8, 0.2, 0.1

print("Walk-through 2: one update by hand, then 15 epochs on 100 points of y = 2x + 3")
print(f"one sample (x, y) = ({x0}, {y0}); w = {w0}, b = {b0}; "
      f"loss half_mse = 0.5 * (w x + b - y)**2; lr = {lr}")
r = w0 * x0 + b0 - y0
print(f"prediction w x + b = {w0 * x0 + b0:.10g}, residual r = {r:.10g}")

# gdcore's loss and gradient at (w, b): X is a 1 x 1 matrix, w a vector of one weight
loss, grad_w, grad_b = gdcore.value_and_grad([[x0]], [y0], [w0], b0, loss="half_mse")
print(f"loss before       0.5 * r**2 = {loss:.10g}")
print(f"dL/dw             r * x      = {grad_w[0]:.10g}")
print(f"dL/db             r          = {grad_b:.10g}")

# the update: one epoch of full-batch gradient descent on the one sample
step = gdcore.fit([[x0]], [y0], method="batch", lr=lr, epochs=1, w0=[w0], b0=b0,
                  loss="half_mse")
w1, b1 = step.w[0], step.b
print(f"new w             {w0} - {lr} * {grad_w[0]:.10g} = {w1:.10g}")
print(f"new b             {b0} - {lr} * {grad_b:.10g} = {b1:.10g}")
after = gdcore.value_and_grad([[x0]], [y0], step.w, step.b, loss="half_mse")[0]
print(f"loss after        0.5 * ({w1:.10g} * {x0} + {b1:.10g} - {y0})**2 = {after:.10g}")

# --- 15 epochs on 100 points of y = 2x + 3 ----------------------------------------
x = np.random.default_rng(0).random(100)        # x ~ U[0, 1)
y = 2 * x + 3
path = gdcore.descent_path(x, y, method="batch", lr=lr, epochs=15, loss="half_mse")

print()
print(f"100 points x ~ U[0, 1) (numpy default_rng(0)), y = 2x + 3; "
      f"w = b = 0; half_mse; lr = {lr}; 15 full-batch epochs")
print(f"{'epoch':>5}  {'w':>10}  {'b':>10}  {'loss':>12}")
for k in range(15):
    # history[k]: the loss at the (w, b) epoch k started from; w[k + 1], b[k + 1]: after it
    print(f"{k + 1:>5}  {path.w[k + 1, 0]:>10.6f}  {path.b[k + 1]:>10.6f}  "
          f"{path.history[k]:>12.6g}")
final = gdcore.value_and_grad(x, y, path.w[-1], path.b[-1], loss="half_mse")[0]
print(f"loss after 15 epochs: {final:.6g} (the true parameters are w = 2, b = 3)")

# --- The plain-Python reference backend: the same arithmetic, in for loops --------
check = gdcore.fit(x, y, method="batch", lr=lr, epochs=15, loss="half_mse",
                   backend="reference")
print()
print(f'the plain-Python reference backend (backend="reference") ends at the same place: '
      f"w = {check.w[0]:.6f}, b = {check.b:.6f}")

if len(sys.argv) > 1:                    # a directory: save the pictures there
    from gdcore.plotting import plot_landscape_2d, plot_loss_curve

    plot_dir = Path(sys.argv[1])
    plot_dir.mkdir(parents=True, exist_ok=True)
    target = plot_dir / "by-hand-landscape.png"
    plot_landscape_2d(x, y, np.linspace(-0.5, 4.5, 201), np.linspace(-0.5, 5.0, 221),
                      paths={"full batch, 15 epochs": path},
                      title="y = 2x + 3: 15 full-batch steps on the (w, b) landscape",
                      save=target)
    print(f"saved {target}")
    target = plot_dir / "by-hand-loss.png"
    plot_loss_curve(path, smoothing=0.5, log_scale=True,
                    title="y = 2x + 3: loss per epoch", save=target)
    print(f"saved {target}")
