"""W3: one minibatch epoch (loss "mse"), d = 100, batch_size 32 and 256, shuffle off.

Entries per batch size: gdcore ``fit(method="minibatch", epochs=1)``, the
memory floor ``X.sum()``, a NumPy per-batch Python loop, a PyTorch loop
(``nn.Linear`` + ``MSELoss`` + ``optim.SGD``) and JAX ``jit`` + ``lax.scan``
over the batches.

All entries keep the last, partial batch and average its gradient over its own
size, as gdcore does (1,000,000 / 256 leaves 64 rows; 20,000 / 256 leaves 32).
JAX scans over the full batches (``lax.dynamic_slice``, no copy of X) and then
takes one more step on the remainder inside the same jitted function: nothing
is dropped or padded.

Correctness, outside the timed calls: gdcore against the NumPy loop at
rtol 1e-9, every peer against gdcore at rtol 1e-8.
"""

import numpy as np
import pytest

D = 100
LR = 0.01
BATCH_SIZES = (32, 256)

CASES = [
    pytest.param(B, id=f"B{B}",
                 marks=pytest.mark.benchmark(group=f"W3 minibatch epoch d={D} B={B}"))
    for B in BATCH_SIZES
]


def numpy_minibatch_epoch(X, y, B, lr):
    """Textbook minibatch GD, one epoch in order, from w = 0, b = 0."""
    n, d = X.shape
    w = np.zeros(d)
    b = 0.0
    loss_sum = 0.0
    steps = 0
    for start in range(0, n, B):
        Xb = X[start : start + B]
        yb = y[start : start + B]
        m = yb.shape[0]
        r = Xb @ w + b - yb
        loss_sum += (r @ r) / m
        w -= (lr * 2.0 / m) * (Xb.T @ r)
        b -= (lr * 2.0 / m) * r.sum()
        steps += 1
    return w, b, loss_sum / steps


def gdcore_minibatch(X, y, B):
    import gdcore

    return gdcore.fit(X, y, method="minibatch", batch_size=B, lr=LR, epochs=1, shuffle=False,
                      seed=0, backend="cython")


def assert_close_to(w, b, ref, rtol):
    np.testing.assert_allclose(np.asarray(w), ref.w, rtol=rtol, atol=1e-10)
    np.testing.assert_allclose(float(b), ref.b, rtol=rtol, atol=1e-10)


@pytest.fixture(scope="module")
def gdcore_result(regression_data):
    """gdcore's result per batch size, computed once (untimed) to check the peers against."""
    cache = {}

    def get(B):
        if B not in cache:
            data = regression_data(D)
            cache[B] = gdcore_minibatch(data.X, data.y, B)
        return cache[B]

    return get


@pytest.mark.parametrize("B", CASES)
def test_w3_gdcore(bench, regression_data, B):
    data = regression_data(D)
    X, y = data.X, data.y
    exp_w, exp_b, exp_loss = numpy_minibatch_epoch(X, y, B, LR)  # untimed
    res = bench(lambda: gdcore_minibatch(X, y, B), impl="gdcore", role="gdcore")
    np.testing.assert_allclose(res.w, exp_w, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(res.b, exp_b, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(res.history[0], exp_loss, rtol=1e-9)


@pytest.mark.parametrize("B", CASES)
def test_w3_floor_sum(bench, regression_data, B):
    X = regression_data(D).X
    assert np.isfinite(bench(X.sum, impl="floor X.sum()", role="floor"))


@pytest.mark.parametrize("B", CASES)
def test_w3_floor_two_cores(bench, regression_data, two_core_sum, B):
    X = regression_data(D).X
    assert np.isfinite(bench(lambda: two_core_sum(X), impl="2-core floor (2 threads sum halves)",
                             role="floor2"))


@pytest.mark.parametrize("B", CASES)
def test_w3_numpy_loop(bench, regression_data, gdcore_result, B):
    data = regression_data(D)
    X, y = data.X, data.y
    w, b, _ = bench(lambda: numpy_minibatch_epoch(X, y, B, LR), impl="numpy per-batch loop")
    assert_close_to(w, b, gdcore_result(B), rtol=1e-9)


@pytest.mark.parametrize("B", CASES)
def test_w3_torch_loop(bench, bench_size, regression_data, torch_data, torch_mod, gdcore_result, B):
    torch = torch_mod
    data = regression_data(D)
    Xt, yt = torch_data(D)
    n = data.n
    m = n if bench_size.torch_mb_subset is None else min(n, bench_size.torch_mb_subset)

    def run():
        model = torch.nn.Linear(D, 1, dtype=torch.float64)
        with torch.no_grad():
            model.weight.zero_()
            model.bias.zero_()
        opt = torch.optim.SGD(model.parameters(), lr=LR)
        loss_fn = torch.nn.MSELoss()
        for start in range(0, m, B):
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(Xt[start : start + B]).squeeze(1), yt[start : start + B])
            loss.backward()
            opt.step()
        return model

    model = bench(run, impl="torch nn.Linear+MSELoss+SGD loop", subset_n=m if m < n else None,
                  slow=True)
    w = model.weight.detach().numpy().ravel().copy()
    b = float(model.bias.detach()[0])
    ref = gdcore_result(B) if m == n else gdcore_minibatch(data.X[:m], data.y[:m], B)
    assert_close_to(w, b, ref, rtol=1e-8)


@pytest.fixture(scope="module")
def jax_minibatch_epoch(jax_mod):
    jax = jax_mod
    import jax.numpy as jnp
    from jax import lax

    def step(w, b, Xb, yb):
        m = Xb.shape[0]
        r = Xb @ w + b - yb
        w = w - (LR * 2.0 / m) * (Xb.T @ r)
        b = b - (LR * 2.0 / m) * jnp.sum(r)
        return w, b, (r @ r) / m

    def epoch(w, b, X, y, B):
        n, d = X.shape
        n_full = n // B

        def body(carry, k):
            w, b = carry
            Xb = lax.dynamic_slice(X, (k * B, 0), (B, d))
            yb = lax.dynamic_slice(y, (k * B,), (B,))
            w, b, loss = step(w, b, Xb, yb)
            return (w, b), loss

        (w, b), losses = lax.scan(body, (w, b), jnp.arange(n_full))
        loss_sum = jnp.sum(losses)
        steps = n_full
        if n_full * B < n:  # the partial last batch: one more step, same jit
            w, b, loss = step(w, b, X[n_full * B :], y[n_full * B :])
            loss_sum = loss_sum + loss
            steps += 1
        return w, b, loss_sum / steps

    return jax.jit(epoch, static_argnames=("B",))


@pytest.mark.parametrize("B", CASES)
def test_w3_jax_scan(bench, regression_data, jax_data, jax_mod, jax_minibatch_epoch,
                     gdcore_result, B):
    jax = jax_mod
    import jax.numpy as jnp

    Xj, yj = jax_data(D)

    def run():
        return jax.block_until_ready(jax_minibatch_epoch(jnp.zeros(D), jnp.asarray(0.0), Xj, yj,
                                                         B=B))

    run()  # compile, untimed
    w, b, loss = bench(run, impl="jax jit+lax.scan")
    ref = gdcore_result(B)
    assert_close_to(w, b, ref, rtol=1e-8)
    np.testing.assert_allclose(float(loss), ref.history[0], rtol=1e-8)
