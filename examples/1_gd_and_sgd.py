"""Tutorial 1: full-batch GD, then per-sample SGD, on y = 2x; predict x = 4

One weight and no bias: the model is y_hat = w * x and the loss is the mean
squared error, L(w) = mean((w * x - y)**2), whose gradient is
dL/dw = mean(2 * (w * x - y) * x).

Full-batch gradient descent takes one step per epoch, with the gradient over
all three samples. Per-sample SGD takes one step per sample, in order, with
that sample's gradient 2 * (w * x_i - y_i) * x_i. Both learn w = 2, so both
predict about 8 for x = 4 (4 before training).

Run:  python examples/1_gd_and_sgd.py [DIR]
(with DIR, also save the pictures there as PNG files; needs matplotlib)
"""

import sys
from pathlib import Path

import numpy as np

import gdcore

x = np.array([1.0, 2.0, 3.0])
y = 2 * x
w0, lr, epochs = 1.0, 0.01, 100

print("Walk-through 1: full-batch gradient descent, then per-sample SGD, on y = 2x")
print(f"data: x = {x.tolist()}, y = {y.tolist()}; model y_hat = w * x (no bias); "
      f"loss mse = mean((w x - y)**2)")
print(f"w starts at {w0}, lr = {lr}, {epochs} epochs")
print(f"prediction for x = 4 before training: {gdcore.predict([4.0], [w0])[0]:.6f}")


# --- Full-batch gradient descent --------------------------------------------------
# descent_path trains exactly as gdcore.fit does and keeps every step:
# path.w[t] is w before step t, path.w[t + 1] after it; history[k] is the loss
# of epoch k (for full batch: the loss at the w the epoch started from).
options = dict(lr=lr, epochs=epochs, w0=[w0], fit_intercept=False, loss="mse", shuffle=False)
batch = gdcore.descent_path(x, y, method="batch", **options)

print()
print("Full-batch gradient descent: one update per epoch, gradient over all 3 samples")
print(f"{'epoch':>5}  {'w':>10}  {'loss':>12}")
for k in range(epochs):
    if k < 3 or (k + 1) % 10 == 0:          # epochs 1, 2, 3, 10, 20, ..., 100
        print(f"{k + 1:>5}  {batch.w[k + 1, 0]:>10.6f}  {batch.history[k]:>12.6g}")
predict_batch = gdcore.predict([4.0], batch.w[-1])[0]
print(f"prediction for x = 4 after full-batch training: {predict_batch:.6f}")

# --- Per-sample SGD ---------------------------------------------------------------
# shuffle=False: the samples come in order, 1, 2, 3, 1, 2, 3, ...; step t
# uses sample t % 3, and step_loss[t] is that sample's loss before its update.
sgd = gdcore.descent_path(x, y, method="sgd", **options)

print()
print("Per-sample SGD: one update per sample, samples in order; "
      "gradient dL/dw = 2 (w x - y) x at the w before the update")
print(f"{'epoch':>5}  {'sample':>6}  {'x':>4}  {'y':>4}  {'gradient':>12}  "
      f"{'w':>10}  {'loss':>12}")
for t in range(sgd.n_steps):
    k, i = divmod(t, 3)                     # epoch k, sample i
    if k < 3 or (k + 1) % 10 == 0:
        # the gradient of this one sample's loss, at the w before the update
        _, grad_w, _ = gdcore.value_and_grad(x[i:i + 1], y[i:i + 1], sgd.w[t], 0.0,
                                             loss="mse")
        print(f"{k + 1:>5}  {i + 1:>6}  {x[i]:>4g}  {y[i]:>4g}  {grad_w[0]:>12.6g}  "
              f"{sgd.w[t + 1, 0]:>10.6f}  {sgd.step_loss[t]:>12.6g}")
predict_sgd = gdcore.predict([4.0], sgd.w[-1])[0]
print(f"prediction for x = 4 after SGD training: {predict_sgd:.6f}")

# --- The plain-Python reference backend: the same arithmetic, in for loops --------
reference_batch = gdcore.fit(x, y, method="batch", backend="reference", **options)
reference_sgd = gdcore.fit(x, y, method="sgd", backend="reference", **options)
print()
print('the same training with the plain-Python reference backend (backend="reference"):')
print(f"  full batch: w = {reference_batch.w[0]:.12f}   "
      f"(compiled kernels: {batch.w[-1, 0]:.12f})")
print(f"  SGD:        w = {reference_sgd.w[0]:.12f}   "
      f"(compiled kernels: {sgd.w[-1, 0]:.12f})")

if len(sys.argv) > 1:                    # a directory: save the pictures there
    from gdcore.plotting import plot_landscape_1d, plot_loss_curve

    plot_dir = Path(sys.argv[1])
    plot_dir.mkdir(parents=True, exist_ok=True)
    target = plot_dir / "gd-sgd-landscape.png"
    plot_landscape_1d(x, y, np.linspace(0.8, 2.2, 141), b=0.0,
                      paths={"full batch": batch, "per-sample SGD": sgd},
                      title="y = 2x: the loss over w and the steps of each method",
                      save=target)
    print(f"saved {target}")
    target = plot_dir / "gd-sgd-loss.png"
    plot_loss_curve(sgd, smoothing=0.9, log_scale=True,
                    title="per-sample SGD on y = 2x: loss per step and per epoch",
                    save=target)
    print(f"saved {target}")
