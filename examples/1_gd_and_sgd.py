"""Tutorial 1: full-batch gradient descent, then per-sample SGD, on y = 2x.

One weight and no bias: the model is y_hat = w * x and the loss is the mean
squared error, L(w) = mean((w * x - y)**2). Its gradient is
dL/dw = mean(2 * (w * x - y) * x).

Full-batch gradient descent takes one step per epoch, with the gradient over
all three samples. Per-sample SGD takes one step per sample, with that
sample's gradient 2 * (w * x_i - y_i) * x_i. Both learn w = 2, so both
predict about 8 for x = 4.

Run:  python examples/1_gd_and_sgd.py  (add a directory to save a picture)
"""

import sys

import numpy as np

import gdcore

x = np.array([1.0, 2.0, 3.0])
y = np.array([2.0, 4.0, 6.0])          # y = 2x
w0 = 1.0
lr = 0.01
epochs = 100

print(f"prediction for x = 4 before training: {gdcore.predict([4.0], [w0])[0]:.6f}")

# --- Full-batch gradient descent --------------------------------------------
# descent_path trains exactly as gdcore.fit does and keeps every step.
batch = gdcore.descent_path(x, y, method="batch", lr=lr, epochs=epochs, w0=[w0],
                            fit_intercept=False, loss="mse", shuffle=False)

print("full-batch gradient descent")
for epoch in range(epochs):
    if epoch < 3 or (epoch + 1) % 10 == 0:
        # history[epoch] is the loss at the w the epoch started from;
        # w[epoch + 1] is the w after the epoch's one update.
        print(f"epoch {epoch + 1:3d}  w = {batch.w[epoch + 1, 0]:.6f}  "
              f"loss = {batch.history[epoch]:.6g}")
print(f"batch: prediction for x = 4 after training: "
      f"{gdcore.predict([4.0], batch.w[-1])[0]:.6f}")

# --- Per-sample SGD ------------------------------------------------------------
sgd = gdcore.descent_path(x, y, method="sgd", lr=lr, epochs=epochs, w0=[w0],
                          fit_intercept=False, loss="mse", shuffle=False)

print("per-sample SGD")
for step in range(sgd.n_steps):
    epoch, i = divmod(step, 3)            # samples in order: 0, 1, 2, 0, 1, 2, ...
    if epoch < 2 or epoch == epochs - 1:
        w_before = sgd.w[step]
        # the gradient of this one sample's loss, at the w before the update
        loss, grad_w, _ = gdcore.value_and_grad(x[i:i + 1], y[i:i + 1], w_before, 0.0)
        print(f"epoch {epoch + 1:3d}  sample {i + 1}  x = {x[i]:g}  gradient = "
              f"{grad_w[0]:.6g}  w = {sgd.w[step + 1, 0]:.6f}  loss = {loss:.6g}")
print(f"sgd: prediction for x = 4 after training: "
      f"{gdcore.predict([4.0], sgd.w[-1])[0]:.6f}")

# --- The plain-Python reference backend gives the same numbers ----------------
for name, path in (("batch", batch), ("sgd", sgd)):
    check = gdcore.fit(x, y, method=name, lr=lr, epochs=epochs, w0=[w0],
                       fit_intercept=False, loss="mse", shuffle=False, backend="reference")
    same = np.allclose(check.w, path.w[-1], rtol=1e-9, atol=0)
    print(f"reference backend, {name}: w = {check.w[0]:.12f}  same: {same}")

if len(sys.argv) > 1:                    # a directory: save the picture there
    from pathlib import Path

    from gdcore.plotting import plot_landscape_1d

    target = Path(sys.argv[1]) / "1_gd_and_sgd.png"
    plot_landscape_1d(x, y, np.linspace(0.8, 2.2, 141),
                      paths={"full batch": batch, "per-sample SGD": sgd}, save=target)
    print(f"saved {target}")
