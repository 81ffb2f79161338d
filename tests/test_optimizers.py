"""The optimizers (Adam, AdamW, Adagrad, RMSprop) and the L1 methods.

Independent checks, each for every method (per sample, mini-batch with a
ragged last batch, full batch):

* the compiled kernels and the plain-Python reference agree to ``rtol=1e-9``;
* both match ``_numpy_optimizer_fit`` below, PyTorch's documented update of
  each optimizer written out with NumPy vectors (shares no code with gdcore);
* closed forms: the first Adam, Adagrad and RMSprop steps;
* PyTorch's ``torch.optim`` classes themselves (to ``rtol=1e-12``) and
  optax's ``adam``, when installed;
* scikit-learn: proximal full-batch descent reaches ``Lasso``'s and
  ``ElasticNet``'s minimiser (same exact zeros); the cumulative penalty is
  ``SGDRegressor(penalty="l1" | "elasticnet")``'s trajectory.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import gdcore
from gdcore import optimizers

#: name -> (fit options, the same as PyTorch's optimizer class and keywords)
OPTIMIZERS = {
    "adam": (dict(optimizer="adam"), ("Adam", {})),
    "adam-wd": (dict(optimizer="adam", weight_decay=0.1), ("Adam", {"weight_decay": 0.1})),
    "adam-amsgrad": (dict(optimizer=optimizers.Adam(betas=(0.8, 0.95), amsgrad=True)),
                     ("Adam", {"betas": (0.8, 0.95), "amsgrad": True})),
    "adamw": (dict(optimizer="adamw", weight_decay=0.2), ("AdamW", {"weight_decay": 0.2})),
    "adagrad": (dict(optimizer=optimizers.Adagrad(lr_decay=0.05,
                                                  initial_accumulator_value=0.3)),
                ("Adagrad", {"lr_decay": 0.05, "initial_accumulator_value": 0.3})),
    "adagrad-wd": (dict(optimizer="adagrad", weight_decay=0.1),
                   ("Adagrad", {"weight_decay": 0.1})),
    "rmsprop": (dict(optimizer="rmsprop"), ("RMSprop", {})),
    "rmsprop-centered-momentum": (
        dict(optimizer=optimizers.RMSprop(alpha=0.9, centered=True), momentum=0.5,
             weight_decay=0.05),
        ("RMSprop", {"alpha": 0.9, "centered": True, "momentum": 0.5, "weight_decay": 0.05})),
}
METHODS = [("batch", 23), ("sgd", 1), ("minibatch", 7)]   # n = 23: batches 7+7+7+2
W0 = np.array([0.3, -0.2, 0.1])
LR = 0.05


@pytest.fixture(scope="module")
def data():
    X, y, _ = gdcore.make_regression(23, 3, noise=0.5, bias=0.7, seed=5)
    return X, y


# ---------------------------------------------------------------------------
# A NumPy statement of PyTorch's rules
# ---------------------------------------------------------------------------

def _numpy_optimizer_fit(X, Y, *, optimizer, lr, epochs, batch_size, orders=None,
                         w0=None, b0=0.0, weight_decay=0.0, decay_bias=False, momentum=0.0,
                         sample_weight=None):
    """Mini-batch descent with PyTorch's Adam / AdamW / Adagrad / RMSprop
    update (torch.optim's documentation), with NumPy vectors. ``theta`` is
    ``[W; b]`` of shape (d + 1, k); the loss of a batch is ``mean_i s_i
    sum_c r_ic**2``. Returns W, b."""
    X = np.asarray(X, float)
    Y = np.asarray(Y, float).reshape(X.shape[0], -1)
    n, d = X.shape
    k = Y.shape[1]
    s = np.ones(n) if sample_weight is None else np.asarray(sample_weight, float)
    s = s / s.mean()
    theta = np.zeros((d + 1, k))
    if w0 is not None:
        theta[:d] = np.asarray(w0, float).reshape(d, k)
    theta[d] = b0
    decay = np.full((d + 1, 1), weight_decay)
    if not decay_bias:
        decay[d] = 0.0
    opt = optimizers.check_optimizer(optimizer)
    m = np.zeros_like(theta)
    v = np.full_like(theta, opt.initial_square_avg())
    vmax = np.zeros_like(theta)
    a = np.zeros_like(theta)
    buf = np.zeros_like(theta)
    t = 0
    for epoch in range(epochs):
        order = np.arange(n) if orders is None else np.asarray(orders[epoch])
        for start in range(0, n, batch_size):
            rows = order[start:start + batch_size]
            A = np.c_[X[rows], np.ones(len(rows))]
            r = A @ theta - Y[rows]
            g = (2.0 / len(rows)) * (A.T @ (s[rows, None] * r))
            step = t + 1
            if isinstance(opt, optimizers.AdamW):
                theta = theta * (1 - lr * decay)
            else:
                g = g + decay * theta
            if isinstance(opt, optimizers.Adam):
                b1, b2 = opt.betas
                m = b1 * m + (1 - b1) * g
                v = b2 * v + (1 - b2) * g * g
                vmax = np.maximum(vmax, v)
                second = vmax if opt.amsgrad else v
                denominator = np.sqrt(second) / np.sqrt(1 - b2 ** step) + opt.eps
                theta = theta - lr / (1 - b1 ** step) * m / denominator
            elif isinstance(opt, optimizers.Adagrad):
                v = v + g * g
                theta = theta - lr / (1 + t * opt.lr_decay) * g / (np.sqrt(v) + opt.eps)
            else:
                v = opt.alpha * v + (1 - opt.alpha) * g * g
                if opt.centered:
                    a = opt.alpha * a + (1 - opt.alpha) * g
                    denominator = np.sqrt(v - a * a) + opt.eps
                else:
                    denominator = np.sqrt(v) + opt.eps
                if momentum > 0:
                    buf = momentum * buf + g / denominator
                    theta = theta - lr * buf
                else:
                    theta = theta - lr * g / denominator
            t += 1
    return theta[:d], theta[d]


def _as_result(W, b, y):
    """(w, b) shaped as gdcore returns them for this y."""
    return (W[:, 0], float(b[0])) if np.ndim(y) == 1 else (W, b)


def _torch_fit(X, Y, *, name, keywords, lr, epochs, batch_size, orders=None, w0=None,
               b0=0.0, decay_bias=False, sample_weight=None):
    """The same run with torch.optim itself, in float64."""
    torch = pytest.importorskip("torch")
    X = np.asarray(X, float)
    Y2 = np.asarray(Y, float).reshape(X.shape[0], -1)
    n, d = X.shape
    k = Y2.shape[1]
    s = np.ones(n) if sample_weight is None else np.asarray(sample_weight, float)
    s = torch.tensor(s / s.mean())
    Xt, Yt = torch.tensor(X), torch.tensor(Y2)
    W = torch.tensor(np.zeros((d, k)) if w0 is None else np.asarray(w0, float).reshape(d, k),
                     requires_grad=True)
    b = torch.tensor(np.full(k, b0), requires_grad=True)
    keywords = dict(keywords)
    decay = keywords.pop("weight_decay", 0.0)
    groups = [{"params": [W], "weight_decay": decay},
              {"params": [b], "weight_decay": decay if decay_bias else 0.0}]
    optimiser = getattr(torch.optim, name)(groups, lr=lr, **keywords)
    for epoch in range(epochs):
        order = np.arange(n) if orders is None else np.asarray(orders[epoch])
        for start in range(0, n, batch_size):
            rows = torch.tensor(order[start:start + batch_size])
            optimiser.zero_grad()
            r = Xt[rows] @ W + b - Yt[rows]
            loss = (s[rows, None] * r * r).sum() / len(rows)
            loss.backward()
            optimiser.step()
    return W.detach().numpy(), b.detach().numpy()


def _split(options):
    """fit options -> the NumPy replay's keywords."""
    options = dict(options)
    return dict(optimizer=options.pop("optimizer"),
                weight_decay=options.pop("weight_decay", 0.0),
                momentum=options.pop("momentum", 0.0),
                decay_bias=options.pop("decay_bias", False)), options


# ---------------------------------------------------------------------------
# Backends, the NumPy replay, PyTorch
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("shuffle", [False, True], ids=["ordered", "shuffled"])
@pytest.mark.parametrize("method,batch_size", METHODS)
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_backends_agree(assert_agree, data, name, method, batch_size, shuffle):
    X, y = data
    options = dict(method=method, batch_size=batch_size, lr=LR, epochs=3, w0=W0, b0=0.2,
                   shuffle=shuffle, seed=11, **OPTIMIZERS[name][0])
    assert_agree(gdcore.fit(X, y, backend="cython", **options),
                 gdcore.fit(X, y, backend="reference", **options))


@pytest.mark.parametrize("multi", [False, True], ids=["one-output", "two-outputs"])
@pytest.mark.parametrize("method,batch_size", METHODS)
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_matches_numpy_replay(data, shuffle_orders, backend, name, method, batch_size,
                              multi):
    """w and b match PyTorch's documented rules restated with NumPy (shuffled,
    weighted, penalised intercept)."""
    X, y = data
    target = np.c_[y, 0.5 - y] if multi else y
    weights = np.linspace(0.5, 2.0, 23)
    options = OPTIMIZERS[name][0]
    result = gdcore.fit(X, target, method=method, batch_size=batch_size, lr=LR, epochs=3,
                        w0=np.c_[W0, -W0] if multi else W0, b0=0.2, seed=4,
                        decay_bias=True, sample_weight=weights, backend=backend, **options)
    replay, rest = _split(dict(options, decay_bias=True))
    assert not rest
    W, b = _numpy_optimizer_fit(X, target, lr=LR, epochs=3, batch_size=batch_size,
                                orders=shuffle_orders(23, 3, 4) if method != "batch" else None,
                                w0=np.c_[W0, -W0] if multi else W0, b0=0.2,
                                sample_weight=weights, **replay)
    w_expected, b_expected = _as_result(W, b, target)
    np.testing.assert_allclose(result.w, w_expected, rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(result.b, b_expected, rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize("multi", [False, True], ids=["one-output", "two-outputs"])
@pytest.mark.parametrize("method,batch_size", METHODS)
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_matches_torch_optim(data, shuffle_orders, name, method, batch_size, multi):
    """The trajectory of torch.optim's own class, float64, same order and
    hyper-parameters, to rtol 1e-12 (the intercept decayed or not as
    decay_bias says: a parameter group of its own in torch)."""
    X, y = data
    target = np.c_[y, 0.5 - y] if multi else y
    options = OPTIMIZERS[name][0]
    torch_name, keywords = OPTIMIZERS[name][1]
    w0 = np.c_[W0, -W0] if multi else W0
    for decay_bias in (False, True):
        result = gdcore.fit(X, target, method=method, batch_size=batch_size, lr=LR,
                            epochs=4, w0=w0, b0=0.2, seed=9, decay_bias=decay_bias,
                            **options)
        orders = shuffle_orders(23, 4, 9) if method != "batch" else None
        W, b = _torch_fit(X, target, name=torch_name, keywords=keywords, lr=LR, epochs=4,
                          batch_size=batch_size, orders=orders, w0=w0, b0=0.2,
                          decay_bias=decay_bias)
        w_expected, b_expected = _as_result(W, b, target)
        np.testing.assert_allclose(result.w, w_expected, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(result.b, b_expected, rtol=1e-12, atol=1e-15)


def test_matches_optax_adam(data):
    """Full-batch Adam against optax's adam (float64 under jax)."""
    optax = pytest.importorskip("optax")
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    X, y = data
    A = jnp.asarray(np.c_[X, np.ones(len(y))])
    theta = jnp.asarray(np.r_[W0, 0.2])
    transform = optax.adam(LR, b1=0.9, b2=0.999, eps=1e-8)
    state = transform.init(theta)
    grad = jax.grad(lambda p: jnp.mean((A @ p - y) ** 2))
    for _ in range(30):
        updates, state = transform.update(grad(theta), state)
        theta = optax.apply_updates(theta, updates)
    result = gdcore.fit(X, y, method="batch", lr=LR, epochs=30, w0=W0, b0=0.2,
                        optimizer="adam")
    np.testing.assert_allclose(np.r_[result.w, result.b], np.asarray(theta), rtol=1e-12)


@pytest.mark.parametrize("name", ["adam", "adagrad", "rmsprop"])
def test_first_step_closed_form(data, backend, name):
    """One full-batch step from w0: Adam and Adagrad move each parameter by
    lr * g / (|g| + eps), RMSprop by lr * g / (sqrt(1 - alpha) |g| + eps)."""
    X, y = data
    result = gdcore.fit(X, y, method="batch", lr=LR, epochs=1, w0=W0, b0=0.2,
                        optimizer=name, backend=backend)
    A = np.c_[X, np.ones(23)]
    theta = np.r_[W0, 0.2]
    g = (2 / 23) * A.T @ (A @ theta - y)
    scale = np.sqrt(1 - 0.99) if name == "rmsprop" else 1.0
    eps = optimizers.check_optimizer(name).eps
    expected = theta - LR * g / (scale * np.abs(g) + eps)
    np.testing.assert_allclose(np.r_[result.w, result.b], expected, rtol=1e-13)


@pytest.mark.parametrize("betas,amsgrad", [((0.9, 0.999), False), ((0.0, 0.5), False),
                                           ((0.5, 0.999), True)])
def test_adam_past_its_bias_corrections_keeps_pytorchs_bits(betas, amsgrad):
    """Past about 38,100 steps (beta2 = 0.999; 362 for beta1 = 0.9) PyTorch's
    bias corrections ``1 - beta**t`` are exactly 1, and the kernels stop
    computing them (and dividing by them): 45,000 steps give the parameters
    of the reference, which computes ``pow`` and divides at every step, bit
    for bit (the losses, summed in another order there, to rtol 1e-13)."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(15_000, 1))
    y = 1.5 * X[:, 0] - 0.5 + 0.1 * rng.normal(size=15_000)
    options = dict(method="sgd", lr=1e-3, epochs=3, shuffle=False,
                   optimizer=optimizers.Adam(betas=betas, amsgrad=amsgrad))
    fast = gdcore.fit(X, y, **options)
    spec = gdcore.fit(X, y, backend="reference", **options)
    np.testing.assert_array_equal(np.r_[fast.w, fast.b], np.r_[spec.w, spec.b])
    np.testing.assert_allclose(fast.history, spec.history, rtol=1e-13)


# ---------------------------------------------------------------------------
# L1 methods
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sparse_problem():
    """A problem whose least-squares solution has exact zeros once penalised."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((200, 8))
    w_true = np.array([3.0, 0.0, 0.0, -2.0, 0.0, 1.5, 0.0, 0.0])
    y = X @ w_true + 0.7 + 0.3 * rng.standard_normal(200)
    return X, y


def _lipschitz(X):
    """Largest eigenvalue of the half_mse Hessian [X, 1]^T [X, 1] / n."""
    A = np.c_[X, np.ones(X.shape[0])]
    return float(np.linalg.eigvalsh(A.T @ A / X.shape[0])[-1])


@pytest.mark.parametrize("l1_ratio", [1.0, 0.6], ids=["lasso", "elastic-net"])
def test_proximal_full_batch_is_sklearns_lasso(sparse_problem, backend, l1_ratio):
    """ISTA (proximal full-batch descent) converges to the minimiser scikit-learn's
    coordinate descent finds: the same coefficients to 1e-8 and the same exact
    zeros."""
    linear_model = pytest.importorskip("sklearn.linear_model")
    X, y = sparse_problem
    alpha = 0.15
    if backend == "reference":
        X, y = X[:60], y[:60]
    if l1_ratio == 1.0:
        model = linear_model.Lasso(alpha=alpha, tol=1e-15, max_iter=1_000_000)
    else:
        model = linear_model.ElasticNet(alpha=alpha, l1_ratio=l1_ratio, tol=1e-15,
                                        max_iter=1_000_000)
    model.fit(X, y)
    l2 = alpha * (1 - l1_ratio)
    result = gdcore.fit(X, y, method="batch", loss="half_mse", lr=1 / (_lipschitz(X) + l2),
                        epochs=3000, l1=alpha * l1_ratio, weight_decay=l2,
                        l1_method="proximal", backend=backend)
    np.testing.assert_allclose(result.w, model.coef_, atol=1e-8)
    assert result.b == pytest.approx(model.intercept_, abs=1e-8)
    np.testing.assert_array_equal(result.w == 0.0, model.coef_ == 0.0)
    assert np.sum(result.w == 0.0) >= 3


@pytest.mark.parametrize("penalty,l1_ratio", [("l1", 1.0), ("elasticnet", 0.7)])
def test_cumulative_is_sklearns_sgd_regressor(sparse_problem, backend, penalty, l1_ratio):
    """l1_method="cumulative" per-sample SGD is SGDRegressor's truncated-gradient
    trajectory (Tsuruoka et al.), from w = 0, to rtol 1e-12, exact zeros
    included."""
    linear_model = pytest.importorskip("sklearn.linear_model")
    X, y = sparse_problem
    if backend == "reference":
        X, y = X[:50], y[:50]
    alpha, lr, epochs = 0.1, 0.01, 5
    model = linear_model.SGDRegressor(loss="squared_error", penalty=penalty, alpha=alpha,
                                      l1_ratio=l1_ratio, learning_rate="constant", eta0=lr,
                                      max_iter=epochs, tol=None, shuffle=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")         # ConvergenceWarning: max_iter reached
        model.fit(X, y)
    result = gdcore.fit(X, y, method="sgd", loss="half_mse", lr=lr, epochs=epochs,
                        shuffle=False, l1=alpha * l1_ratio, weight_decay=alpha * (1 - l1_ratio),
                        l1_method="cumulative", backend=backend)
    np.testing.assert_allclose(result.w, model.coef_, rtol=1e-12, atol=1e-15)
    assert result.b == pytest.approx(model.intercept_[0], rel=1e-12)
    np.testing.assert_array_equal(result.w == 0.0, model.coef_ == 0.0)
    assert np.any(result.w == 0.0)


@pytest.mark.parametrize("method,batch_size", METHODS)
@pytest.mark.parametrize("l1_method", ["proximal", "cumulative"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam", "rmsprop"])
def test_l1_methods_agree_across_backends(assert_agree, data, method, batch_size, l1_method,
                                          optimizer):
    X, y = data
    for decay_bias in (False, True):
        options = dict(method=method, batch_size=batch_size, lr=LR, epochs=3, w0=W0, b0=0.2,
                       seed=2, l1=0.05, weight_decay=0.01, l1_method=l1_method,
                       decay_bias=decay_bias, optimizer=optimizer)
        assert_agree(gdcore.fit(X, y, backend="cython", **options),
                     gdcore.fit(X, y, backend="reference", **options))


def test_exact_zeros_proximal_full_batch_cumulative_per_sample(sparse_problem):
    """The subgradient never lands on 0.0; proximal full-batch descent (ISTA) finds
    the five true zeros; per sample, the cumulative penalty finds them (plain
    proximal SGD rarely ends on a zero: that is why the cumulative method exists)."""
    X, y = sparse_problem

    def zeros(method, l1_method, lr, epochs):
        res = gdcore.fit(X, y, method=method, lr=lr, epochs=epochs, seed=0, l1=0.05,
                         l1_method=l1_method)
        return int(np.sum(res.w == 0.0))

    assert zeros("batch", "subgradient", 0.3, 50) == 0
    assert zeros("batch", "proximal", 0.3, 50) == 5
    assert zeros("sgd", "subgradient", 0.01, 5) == 0
    assert zeros("sgd", "cumulative", 0.01, 5) == 5


# ---------------------------------------------------------------------------
# The option, its checks, and the state
# ---------------------------------------------------------------------------

def test_names_are_the_default_objects():
    for name, cls in optimizers.BY_NAME.items():
        assert optimizers.check_optimizer(name) == cls()
        assert optimizers.name_of(cls()) == name
        assert gdcore.fit(np.ones((4, 1)), np.ones(4), epochs=1,
                          optimizer=name).state.optimizer == name


BAD = [
    (dict(optimizer="adamax"), ValueError, "optimizer"),
    (dict(optimizer=3), TypeError, "optimizer"),
    (dict(optimizer=gdcore.schedules.Constant()), TypeError, "optimizer"),
    (dict(optimizer="adam", momentum=0.9), ValueError, "momentum"),
    (dict(optimizer="adagrad", momentum=0.9), ValueError, "momentum"),
    (dict(optimizer="rmsprop", momentum=0.9, nesterov=True), ValueError, "nesterov"),
    (dict(optimizer="rmsprop", dampening=0.5), ValueError, "dampening"),
    (dict(optimizer=optimizers.SGD(momentum=0.9), momentum=0.5), ValueError, "momentum"),
    (dict(l1_method="lasso"), ValueError, "l1_method"),
    (dict(l1_method=None), TypeError, "l1_method"),
]


@pytest.mark.parametrize("options,error,name", BAD)
def test_bad_options_name_themselves(options, error, name):
    with pytest.raises(error, match=name):
        gdcore.fit(np.ones((4, 1)), np.ones(4), **options)


@pytest.mark.parametrize("make,error,name", [
    (lambda: optimizers.Adam(betas=(0.9,)), TypeError, "betas"),
    (lambda: optimizers.Adam(betas=(0.9, 1.0)), ValueError, "betas"),
    (lambda: optimizers.Adam(betas=(0.9, "x")), TypeError, "betas"),
    (lambda: optimizers.Adam(eps=-1.0), ValueError, "eps"),
    (lambda: optimizers.Adam(amsgrad=1), TypeError, "amsgrad"),
    (lambda: optimizers.Adagrad(lr_decay=-0.1), ValueError, "lr_decay"),
    (lambda: optimizers.Adagrad(initial_accumulator_value=float("nan")), ValueError,
     "initial_accumulator_value"),
    (lambda: optimizers.RMSprop(alpha=1.5), ValueError, "alpha"),
    (lambda: optimizers.RMSprop(centered="yes"), TypeError, "centered"),
    (lambda: optimizers.SGD(momentum=-1.0), ValueError, "momentum"),
])
def test_bad_hyper_parameters_name_themselves(make, error, name):
    with pytest.raises(error, match=name):
        make()


def test_sgd_object_and_fit_options_merge():
    X, y = np.ones((4, 1)), np.ones(4)
    a = gdcore.fit(X, y, epochs=2, seed=0, optimizer=optimizers.SGD(momentum=0.9))
    b = gdcore.fit(X, y, epochs=2, seed=0, momentum=0.9)
    c = gdcore.fit(X, y, epochs=2, seed=0, momentum=0.9,
                   optimizer=optimizers.SGD(momentum=0.9))
    np.testing.assert_array_equal(a.w, b.w)
    np.testing.assert_array_equal(a.w, c.w)


def test_warm_start_with_another_optimizer_is_refused(data):
    X, y = data
    first = gdcore.fit(X, y, epochs=1, optimizer="adam")
    with pytest.raises(ValueError, match="warm_start"):
        gdcore.fit(X, y, epochs=1, optimizer="rmsprop", warm_start=first)


@pytest.mark.parametrize("name", ["adam-amsgrad", "adagrad", "rmsprop-centered-momentum"])
def test_warm_start_continues_the_optimizer_state(data, backend, name):
    """3 + 2 epochs == 5 epochs, bit for bit (moments, accumulators, step count)."""
    X, y = data
    options = dict(method="minibatch", batch_size=7, lr=LR, seed=3, backend=backend,
                   l1=0.01, l1_method="cumulative", **OPTIMIZERS[name][0])
    whole = gdcore.fit(X, y, epochs=5, **options)
    first = gdcore.fit(X, y, epochs=3, **options)
    second = gdcore.fit(X, y, epochs=2, warm_start=first, **options)
    np.testing.assert_array_equal(second.w, whole.w)
    assert second.b == whole.b
    np.testing.assert_array_equal(second.state.buffers, whole.state.buffers)
    assert second.state.l1_total == whole.state.l1_total


def test_command_line_optimizer(tmp_path):
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-m", "gdcore", "train", "-n", "300", "-d", "3",
                           "--optimizer", "adam:betas=0.8/0.99,amsgrad=true", "--l1", "0.01",
                           "--l1-method", "proximal", "--epochs", "2", "-o", "model.json"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    bad = subprocess.run([sys.executable, "-m", "gdcore", "train", "-n", "30", "-d", "2",
                          "--optimizer", "adam:betas=0.9"], cwd=tmp_path, capture_output=True,
                         text=True)
    assert bad.returncode == 2
    assert len(bad.stderr.strip().splitlines()) == 1 and "betas" in bad.stderr
