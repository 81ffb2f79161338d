"""W1: one ``value_and_grad`` (loss "mse") over all the data, d = 100.

Entries: gdcore, the memory floor ``X.sum()`` and the 2-core floor, NumPy two-pass, PyTorch
autograd, JAX ``jit(value_and_grad)``.  Every entry's result is checked
(outside the timed call): gdcore against NumPy at rtol 1e-9, the peers at
rtol 1e-8.
"""

import numpy as np
import pytest

D = 100
GROUP = f"W1 value_and_grad d={D}"
pytestmark = pytest.mark.benchmark(group=GROUP)


def _params(d):
    rng = np.random.default_rng(1)
    return 0.1 * rng.standard_normal(d), 0.5


def numpy_value_and_grad(X, y, w, b):
    n = X.shape[0]
    r = X @ w + b - y
    loss = r @ r / n
    grad_w = (2.0 / n) * (X.T @ r)
    grad_b = (2.0 / n) * r.sum()
    return loss, grad_w, grad_b


def assert_vg_close(got, expected, rtol):
    loss, gw, gb = (np.asarray(v, dtype=np.float64) for v in got)
    e_loss, e_gw, e_gb = expected
    atol = 1e-12 * max(1.0, float(np.max(np.abs(e_gw))))
    np.testing.assert_allclose(loss, e_loss, rtol=rtol, err_msg="loss")
    np.testing.assert_allclose(gw, e_gw, rtol=rtol, atol=atol, err_msg="grad_w")
    np.testing.assert_allclose(gb, e_gb, rtol=rtol, atol=atol, err_msg="grad_b")


@pytest.fixture(scope="module")
def w1(regression_data):
    data = regression_data(D)
    w, b = _params(D)
    expected = numpy_value_and_grad(data.X, data.y, w, b)
    return data, w, b, expected


def test_w1_gdcore(bench, w1):
    import gdcore

    data, w, b, expected = w1
    X, y = data.X, data.y
    # once, untimed, so that a broken kernel fails before it is timed
    assert_vg_close(gdcore.value_and_grad(X, y, w, b, loss="mse"), expected, rtol=1e-9)
    got = bench(lambda: gdcore.value_and_grad(X, y, w, b, loss="mse"), impl="gdcore", role="gdcore")
    assert_vg_close(got, expected, rtol=1e-9)


def test_w1_floor_sum(bench, w1):
    data = w1[0]
    X = data.X
    total = bench(X.sum, impl="floor X.sum()", role="floor")
    assert np.isfinite(total)


def test_w1_floor_two_cores(bench, w1, two_core_sum):
    X = w1[0].X
    assert np.isfinite(bench(lambda: two_core_sum(X), impl="2-core floor (2 threads sum halves)",
                             role="floor2"))


def test_w1_numpy(bench, w1):
    data, w, b, expected = w1
    X, y = data.X, data.y
    got = bench(lambda: numpy_value_and_grad(X, y, w, b), impl="numpy two-pass")
    assert_vg_close(got, expected, rtol=1e-9)


def test_w1_torch_autograd(bench, w1, torch_mod, torch_data):
    torch = torch_mod
    data, w, b, expected = w1
    Xt, yt = torch_data(D)
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(b, dtype=torch.float64, requires_grad=True)

    def run():
        wt.grad = None
        bt.grad = None
        r = Xt @ wt + bt - yt
        loss = (r * r).mean()
        loss.backward()
        return loss.item(), wt.grad.numpy(), bt.grad.item()

    got = bench(run, impl="torch autograd")
    assert_vg_close(got, expected, rtol=1e-8)


def test_w1_jax(bench, w1, jax_mod, jax_data):
    jax = jax_mod
    import jax.numpy as jnp

    data, w, b, expected = w1
    Xj, yj = jax_data(D)
    wj = jnp.asarray(w)
    bj = jnp.asarray(b, dtype=jnp.float64)

    def loss_fn(w, b, X, y):
        r = X @ w + b - y
        return jnp.mean(r * r)

    f = jax.jit(jax.value_and_grad(loss_fn, argnums=(0, 1)))

    def run():
        loss, (gw, gb) = f(wj, bj, Xj, yj)
        return jax.block_until_ready((loss, gw, gb))

    run()  # compile, untimed
    loss, gw, gb = bench(run, impl="jax jit(value_and_grad)")
    assert_vg_close((np.asarray(loss), np.asarray(gw), np.asarray(gb)), expected, rtol=1e-8)
