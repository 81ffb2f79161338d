"""W2: one per-sample SGD epoch (loss "mse"), d = 10 and 100, shuffle off and on.

Entries per (d, shuffle) group: gdcore ``fit(method="sgd", epochs=1)``,
scikit-learn ``SGDRegressor`` (max_iter=1), JAX ``jit`` + ``lax.scan`` over the
samples, and a PyTorch per-sample loop (``nn.Linear`` + ``MSELoss`` +
``optim.SGD``), which at full size runs on a subset and is scaled to n (the
ratio table says so).

Same updates everywhere: ``w -= lr * 2 r x``, ``b -= lr * 2 r`` with
``r = x.w + b - y``.  scikit-learn's "squared_error" is half the squared
error, so it gets ``eta0 = 2 * lr`` to take exactly the same steps.  With
shuffle on, each entry draws ``numpy.random.default_rng(0).permutation`` (or
its own shuffling, for scikit-learn) inside the timed call, as gdcore does.

Correctness, outside the timed calls: gdcore on the first samples against a
NumPy per-sample loop (shuffle off) or gdcore's pure-Python reference backend
(shuffle on) at rtol 1e-9; with shuffle off every peer's result is compared
with gdcore's on the same samples; every timed result must lower the loss.
"""

import warnings

import numpy as np
import pytest

LR = 1e-3
SEED = 0
CHECK_SAMPLES = 2_000  # prefix on which gdcore is checked against an independent loop


def _cases():
    for d in (10, 100):
        for shuffle in (False, True):
            yield pytest.param(
                d,
                shuffle,
                id=f"d{d}-{'shuffle' if shuffle else 'ordered'}",
                marks=pytest.mark.benchmark(group=f"W2 sgd epoch d={d} shuffle={shuffle}"),
            )


CASES = list(_cases())


def mse(X, y, w, b):
    r = X @ w + b - y
    return float(r @ r) / X.shape[0]


def numpy_sgd_epoch(X, y, lr, order=None):
    """Textbook per-sample SGD, one epoch, starting from w = 0, b = 0."""
    n, d = X.shape
    w = np.zeros(d)
    b = 0.0
    loss_sum = 0.0
    for i in range(n) if order is None else order:
        x = X[i]
        r = float(x @ w) + b - y[i]
        loss_sum += r * r
        g = lr * 2.0 * r
        w -= g * x
        b -= g
    return w, b, loss_sum / n


def assert_trained(X, y, w, b):
    before = mse(X, y, np.zeros(X.shape[1]), 0.0)
    after = mse(X, y, np.asarray(w, dtype=np.float64), float(b))
    assert np.isfinite(after) and after < before, (before, after)


def gdcore_sgd(X, y, shuffle, backend="cython"):
    import gdcore

    return gdcore.fit(X, y, method="sgd", lr=LR, epochs=1, shuffle=shuffle, seed=SEED,
                      backend=backend)


@pytest.mark.parametrize("d,shuffle", CASES)
def test_w2_gdcore(bench, regression_data, d, shuffle):
    data = regression_data(d)
    X, y = data.X, data.y

    # correctness on a prefix, untimed
    m = min(data.n, CHECK_SAMPLES)
    got = gdcore_sgd(X[:m], y[:m], shuffle)
    if shuffle:
        ref = gdcore_sgd(X[:m], y[:m], shuffle, backend="reference")
        exp_w, exp_b, exp_loss = ref.w, ref.b, ref.history[0]
        in_order = gdcore_sgd(X[:m], y[:m], False).w
        assert not np.allclose(got.w, in_order, rtol=1e-6), "shuffle had no effect"
    else:
        exp_w, exp_b, exp_loss = numpy_sgd_epoch(X[:m], y[:m], LR)
    np.testing.assert_allclose(got.w, exp_w, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got.b, exp_b, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got.history[0], exp_loss, rtol=1e-9)

    res = bench(lambda: gdcore_sgd(X, y, shuffle), impl="gdcore", role="gdcore")
    assert_trained(X, y, res.w, res.b)


@pytest.mark.parametrize("d,shuffle", CASES)
def test_w2_sklearn(bench, regression_data, d, shuffle):
    linear_model = pytest.importorskip("sklearn.linear_model")
    from sklearn.exceptions import ConvergenceWarning

    data = regression_data(d)
    X, y = data.X, data.y

    def run():
        model = linear_model.SGDRegressor(
            loss="squared_error",
            penalty=None,
            learning_rate="constant",
            eta0=2 * LR,  # sklearn's squared_error is 0.5 * r**2
            max_iter=1,
            tol=None,
            shuffle=shuffle,
            random_state=SEED,
            fit_intercept=True,
            average=False,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X, y)
        return model

    model = bench(run, impl="sklearn SGDRegressor")
    w, b = model.coef_, float(model.intercept_[0])
    assert_trained(X, y, w, b)
    if not shuffle:
        ref = gdcore_sgd(X, y, False)
        np.testing.assert_allclose(w, ref.w, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(b, ref.b, rtol=1e-6, atol=1e-9)


@pytest.fixture(scope="module")
def jax_sgd_epoch(jax_mod):
    jax = jax_mod
    import jax.numpy as jnp
    from jax import lax

    def step(carry, x, yi):
        w, b = carry
        r = x @ w + b - yi
        g = LR * 2.0 * r
        return (w - g * x, b - g), r * r

    @jax.jit
    def ordered(w, b, X, y):
        (w, b), losses = lax.scan(lambda c, xy: step(c, xy[0], xy[1]), (w, b), (X, y))
        return w, b, jnp.mean(losses)

    @jax.jit
    def shuffled(w, b, X, y, order):
        (w, b), losses = lax.scan(lambda c, i: step(c, X[i], y[i]), (w, b), order)
        return w, b, jnp.mean(losses)

    return ordered, shuffled


@pytest.mark.parametrize("d,shuffle", CASES)
def test_w2_jax_scan(bench, regression_data, jax_data, jax_mod, jax_sgd_epoch, d, shuffle):
    jax = jax_mod
    import jax.numpy as jnp

    ordered, shuffled = jax_sgd_epoch
    data = regression_data(d)
    Xj, yj = jax_data(d)
    n = data.n

    def run():
        w0 = jnp.zeros(d)
        b0 = jnp.asarray(0.0)
        if shuffle:
            order = jax.device_put(np.random.default_rng(SEED).permutation(n))
            out = shuffled(w0, b0, Xj, yj, order)
        else:
            out = ordered(w0, b0, Xj, yj)
        return jax.block_until_ready(out)

    run()  # compile, untimed
    w, b, _ = bench(run, impl="jax jit+lax.scan")
    w, b = np.asarray(w), float(b)
    assert_trained(data.X, data.y, w, b)
    if not shuffle:
        ref = gdcore_sgd(data.X, data.y, False)
        np.testing.assert_allclose(w, ref.w, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(b, ref.b, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("d,shuffle", CASES)
def test_w2_torch_loop(bench, bench_size, regression_data, torch_data, torch_mod, d, shuffle):
    torch = torch_mod
    data = regression_data(d)
    Xt, yt = torch_data(d)
    n = data.n
    m = min(n, bench_size.torch_sgd_subset)

    def run():
        model = torch.nn.Linear(d, 1, dtype=torch.float64)
        with torch.no_grad():
            model.weight.zero_()
            model.bias.zero_()
        opt = torch.optim.SGD(model.parameters(), lr=LR)
        loss_fn = torch.nn.MSELoss()
        # shuffled: a permutation of the subset, so that its cost scales with m too
        rows = np.random.default_rng(SEED).permutation(m).tolist() if shuffle else range(m)
        for i in rows:
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(Xt[i : i + 1]).squeeze(1), yt[i : i + 1])
            loss.backward()
            opt.step()
        return model

    model = bench(run, impl="torch per-sample loop", subset_n=m if m < n else None, slow=True)
    w = model.weight.detach().numpy().ravel().copy()
    b = float(model.bias.detach()[0])
    assert_trained(data.X, data.y, w, b)
    if not shuffle:
        ref = gdcore_sgd(data.X[:m], data.y[:m], False)
        np.testing.assert_allclose(w, ref.w, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(b, ref.b, rtol=1e-8, atol=1e-10)
